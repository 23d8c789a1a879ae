"""Pan/tilt motion: one :class:`PtzController` owns the motor.

Theory of operation
-------------------
The panel sends one ``ptz_<dir>_press`` when a finger touches the button and ``ptz_release_pre``
200-500 ms after it lifts; nothing while the finger is held and nothing at all if the link drops.
A press therefore starts a *continuous* move, and the controller, not the panel, guarantees that
every move ends.

The controller has three states: IDLE, MOVING(direction, kind, owner) and STOPPING(r), a move
whose stop (for reason r) failed and is being retried. Every move arms two timers on the
injected scheduler: the *end-stop timer* (time until the moving axis reaches its limit at the
configured speed, so the motor is stopped there without polling) and the *deadline timer* (the
move cap for a press, the step duration for a legacy one-step token)::

    IDLE       --press/step d-->                      MOVING d  (start; stays IDLE if d is blocked)
    MOVING d   --press/step d-->                      MOVING d  (deadline re-armed, owner updated)
    MOVING d   --press/step e-->                      MOVING e  (stop "redirect", then start e)
    MOVING     --release / stop(reason)-->            IDLE      (stop "release" / reason)
    MOVING     --visitor_gone(owner)-->               IDLE      (stop "session_closed")
    MOVING     --end-stop timer / deadline timer-->   IDLE      (stop "end_stop" / "cap" / "step")
    MOVING     --any stop that fails-->               STOPPING r (r: its reason; retry armed)
    STOPPING r --retry timer-->                       IDLE      (stop r; fails: retry re-armed)
    STOPPING r --press/step d-->                      MOVING d  (stop r, then start d)
    STOPPING r --release / stop / visitor_gone-->     IDLE      (as from MOVING)
    any        --press/step, allow_start() False-->   unchanged (PtzRefused, nothing sent)
    any        --close()-->                           CLOSED    (stop "close", always sent, not retried)

A stop ("startup") is also sent when the controller is created: after a crash the motor may be
running. All transitions happen in :meth:`PtzController._begin_locked` and
:meth:`PtzController._end_locked`; every start and stop is published as ``Event(kind="ptz")``.

A failed stop never ends a move and publishes nothing: the stop event is published when a stop
has succeeded. Whatever asked for the stop, the move goes to STOPPING: its timers are replaced by
one *retry timer* (the deadline timer slot), after :data:`STOP_RETRY_S`, doubling up to
:data:`MAX_STOP_RETRY_S`, until a stop succeeds. Under :meth:`~PtzController.press`,
:meth:`~PtzController.step`, :meth:`~PtzController.release` and :meth:`~PtzController.stop` the
error also propagates to the caller; in a timer or :meth:`~PtzController.visitor_gone` it is
logged. So the motor runs at most ``MAX_STOP_RETRY_S`` past the last failed stop.
:meth:`~PtzController.close` gives up after its own attempt: it logs an error and cancels every
timer; the move stays recorded (``direction`` still says it may be moving), so a later
:meth:`~PtzController.stop` or :meth:`~PtzController.release` can still try.

``allow_start`` (the Device passes "not in standby") is called under the lock at the start of
every press and step. When it returns False the press is refused before anything changes, so a
caller that flips the predicate and then calls :meth:`~PtzController.stop` (which takes the same
lock) has no window in which a racing press could start or extend a move.

Position comes from ``ptz_position()`` when the motor has feedback. Without feedback it is an
*estimate* integrated from time and the declared speed, clamped to the limits and starting at
the centre of the limits; it re-synchronises whenever a move runs into an end stop. A press
toward an end stop the axis is already at (by feedback or estimate) does not start the motor.

Locking: one lock serialises the transitions. ``ptz_start`` and ``ptz_stop`` (documented as
non-blocking) and ``allow_start`` (which must be quick and must not call the controller) are
called under it; ``ptz_position``, ``ptz_limits`` and ``ptz_speed`` are read before it is
taken. Events are queued under the lock and published after it is released, in order, from the
thread that caused them (a scheduler thread for timer stops).
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
import types
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from typing import Any, NamedTuple

from .config import DEFAULT_PTZ_STEP
from .errors import SignalingError
from .events import Event, Publish
from .hardware import Hardware, PtzLimits
from .scheduling import ManualClock, Scheduler, ThreadScheduler, TimerHandle

__all__ = [
    "DEFAULT_STEP_SIZE",
    "DIRECTIONS",
    "MAX_MOVE_CAP_S",
    "MAX_STOP_RETRY_S",
    "MIN_MOVE_CAP_S",
    "STOP_RETRY_S",
    "ManualClock",
    "PtzController",
    "PtzRefused",
    "PtzReport",
    "Scheduler",
    "ThreadScheduler",
    "TimerHandle",
    "default_move_cap",
]

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Position = tuple[int, int]

#: Unit vector of each direction, in (x, y): ``right`` and ``up`` move toward ``max_x``/``max_y``.
DIRECTIONS: Mapping[str, tuple[int, int]] = types.MappingProxyType(
    {"left": (-1, 0), "right": (1, 0), "up": (0, 1), "down": (0, -1)}
)

#: Bounds of the automatic move cap, in seconds.
MIN_MOVE_CAP_S = 2.0
MAX_MOVE_CAP_S = 30.0
#: First delay before a failed stop is retried, in seconds; it doubles up to MAX_STOP_RETRY_S.
STOP_RETRY_S = 0.5
MAX_STOP_RETRY_S = 2.0
#: Default size of a legacy one-step move (``ptz_left`` ...), in motor steps.
DEFAULT_STEP_SIZE = DEFAULT_PTZ_STEP

_CAP_FACTOR = 1.25  # a real motor may be slower than it declares
_CAP_MARGIN_S = 0.5
_RECHECK_S = 0.05  # with feedback, how soon to look again when the end stop is not reached yet


def default_move_cap(span: float, speed: float) -> float:
    """The automatic move cap of an axis: a full sweep at ``speed`` plus 25 % and 0.5 s, in 2-30 s.

    Args:
        span: ``max - min`` of the axis, in motor steps.
        speed: speed of the axis in steps per second; a non-positive speed gives the maximum.
    """
    if not (speed > 0 and math.isfinite(speed)):
        return MAX_MOVE_CAP_S
    sweep = max(span, 0.0) / speed
    return min(MAX_MOVE_CAP_S, max(MIN_MOVE_CAP_S, sweep * _CAP_FACTOR + _CAP_MARGIN_S))


# -- values -------------------------------------------------------------------------------------


class PtzRefused(SignalingError):
    """A press or step was refused because ``allow_start()`` returned False; nothing was changed."""


# The functional form: NamedTuple's class syntax would compile each (string) annotation at import.
_PtzReportBase = NamedTuple(  # noqa: UP014
    "_PtzReportBase",
    [("apex", str), ("current_x", int), ("current_y", int), ("min_x", int), ("max_x", int), ("min_y", int),
     ("max_y", int)],
)


_new_tuple = tuple.__new__  # builds a NamedTuple without its Python-level __new__


class PtzReport(_PtzReportBase):
    """The state a ``ptz`` reply carries, read after the command took effect (an immutable tuple).

    Attributes:
        apex: ``"yes"`` when the moving (or last moved) axis is at its end stop in the direction
            of motion, else ``"no"``.
        current_x, current_y: position in motor steps (an estimate without position feedback).
        min_x, max_x, min_y, max_y: the end stops.
    """

    __slots__ = ()

    def fields(self) -> dict[str, str | int]:
        """The reply fields, in reply order: apex, current_x, current_y, max_x, max_y, min_x, min_y."""
        apex, x, y, min_x, max_x, min_y, max_y = self
        return {
            "apex": apex,
            "current_x": x,
            "current_y": y,
            "max_x": max_x,
            "max_y": max_y,
            "min_x": min_x,
            "min_y": min_y,
        }


# What one command reads of the hardware: limits, speeds, and the position if there is feedback.
_Geometry = NamedTuple(  # noqa: UP014
    "_Geometry", [("limits", PtzLimits), ("speed", "tuple[float, float]"), ("feedback", "Position | None")]
)


class _Move:
    """The one move in progress; mutated only under the controller's lock."""

    __slots__ = (
        "deadline_timer",
        "deadline_token",
        "direction",
        "end_timer",
        "end_token",
        "kind",
        "limits",
        "owed",
        "retries",
        "speed",
        "start",
        "started_at",
        "visitor",
    )

    def __init__(
        self, direction: str, kind: str, *, visitor: Hashable | None, now: float, start: Position, geo: _Geometry
    ) -> None:
        self.direction = direction
        self.kind = kind  # "press" or "step"
        self.visitor = visitor
        self.started_at = now
        self.start = start
        self.limits = geo.limits
        self.speed = geo.speed
        self.deadline_timer: TimerHandle | None = None
        self.deadline_token = -1
        self.end_timer: TimerHandle | None = None
        self.end_token = -1
        self.owed: str | None = None  # STOPPING: the reason of the stop that failed
        self.retries = 0  # failed stops so far

    def position_at(self, now: float) -> Position:
        """The estimate: start position plus speed times elapsed time, clamped to the limits."""
        dx, dy = DIRECTIONS[self.direction]
        elapsed = max(0.0, now - self.started_at)
        min_x, max_x, min_y, max_y = self.limits
        x = self.start[0] + dx * self.speed[0] * elapsed
        y = self.start[1] + dy * self.speed[1] * elapsed
        return round(min(max(x, min_x), max_x)), round(min(max(y, min_y), max_y))

    def cancel_timers(self) -> None:
        """Cancel both timers; a callback already running when this is called finds its token stale."""
        for timer in (self.deadline_timer, self.end_timer):
            if timer is not None:
                timer.cancel()
        self.deadline_token = self.end_token = -1


# -- geometry helpers ---------------------------------------------------------------------------


def _axis(direction: str) -> int:
    return 0 if DIRECTIONS[direction][0] else 1


def _remaining(pos: Position, direction: str, limits: PtzLimits) -> int:
    """Steps left before the end stop in ``direction``; 0 means blocked."""
    if direction == "right":
        return limits[1] - pos[0]
    if direction == "left":
        return pos[0] - limits[0]
    if direction == "up":
        return limits[3] - pos[1]
    if direction == "down":
        return pos[1] - limits[2]
    raise KeyError(direction)


def _at_limit(pos: Position, direction: str, limits: PtzLimits) -> Position:
    """``pos`` with the moving axis put on its end stop."""
    if direction == "right":
        return limits[1], pos[1]
    if direction == "left":
        return limits[0], pos[1]
    if direction == "up":
        return pos[0], limits[3]
    if direction == "down":
        return pos[0], limits[2]
    raise KeyError(direction)


def _clamp(pos: Position, limits: PtzLimits) -> Position:
    min_x, max_x, min_y, max_y = limits
    x, y = pos
    if min_x <= x <= max_x and min_y <= y <= max_y:
        return pos  # the usual case: no new tuple
    return (min_x if x < min_x else max_x if x > max_x else x), (min_y if y < min_y else max_y if y > max_y else y)


def _centre(limits: PtzLimits) -> Position:
    min_x, max_x, min_y, max_y = limits
    return (min_x + max_x) // 2, (min_y + max_y) // 2


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown PTZ direction {direction!r}")


def _check_limits(value: Any) -> PtzLimits:
    if type(value) is tuple and len(value) == 4:  # the usual answer, checked without copying
        min_x, max_x, min_y, max_y = value
        if type(min_x) is type(max_x) is type(min_y) is type(max_y) is int and min_x <= max_x and min_y <= max_y:
            return value
    try:
        min_x, max_x, min_y, max_y = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"ptz_limits() returned {value!r}, not four integers") from None
    if min_x > max_x or min_y > max_y:
        raise ValueError(f"ptz_limits() returned {value!r}: a minimum is above its maximum")
    return min_x, max_x, min_y, max_y


def _check_speed(value: Any) -> tuple[float, float]:
    if type(value) is tuple and len(value) == 2:  # the usual answer, checked without copying
        sx, sy = value
        if type(sx) is float and type(sy) is float and 0.0 < sx < math.inf and 0.0 < sy < math.inf:
            return value
    try:
        sx, sy = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"ptz_speed() returned {value!r}, not two numbers") from None
    if not all(s > 0 and math.isfinite(s) for s in (sx, sy)):
        raise ValueError(f"ptz_speed() returned {value!r}: speeds must be positive")
    return sx, sy


def _check_position(value: Any) -> Position | None:
    if value is None:
        return None
    if type(value) is tuple and len(value) == 2 and type(value[0]) is type(value[1]) is int:
        return value
    try:
        x, y = value
        return round(x), round(y)
    except (TypeError, ValueError):
        raise ValueError(f"ptz_position() returned {value!r}, not (x, y) or None") from None


# -- the controller -----------------------------------------------------------------------------


class PtzController:
    """Owns the pan/tilt motor: continuous moves, one-step moves, and every way a move ends.

    Args:
        hardware: the hooks ``ptz_start``, ``ptz_stop``, ``ptz_position``, ``ptz_limits`` and
            ``ptz_speed`` are used.
        publish: receives one ``Event(kind="ptz")`` per start and stop, with ``data``
            ``{"action": "start"|"stop", "direction": str|None, "reason": str, "x": int|None,
            "y": int|None}``. Start reasons: ``press``, ``step``. Stop reasons: ``release``,
            ``redirect``, ``end_stop``, ``cap``, ``step``, ``session_closed``, ``close``,
            ``startup`` or the reason given to :meth:`stop`. May be called from a timer thread.
        clock: monotonic seconds.
        scheduler: runs the timers; by default a :class:`ThreadScheduler` owned (and closed) by
            the controller.
        move_cap_s: the longest a press may move without another press; None for the
            automatic cap of :func:`default_move_cap` for the moving axis.
        step_size: size of a legacy one-step move, in motor steps.
        allow_start: called under the controller's lock at the start of every :meth:`press` and
            :meth:`step`; when it returns False the command raises :class:`PtzRefused` and
            changes nothing. It must be quick and must not call the controller. None allows all.

    Hook errors from :meth:`press`, :meth:`step`, :meth:`release`, :meth:`stop` and
    :meth:`report` propagate; the controller stays safe (a failed start leaves it idle and a stop
    is attempted; a failed stop keeps the move armed so its timers try again). Timer callbacks,
    :meth:`visitor_gone` and :meth:`close` never raise; they log a warning, and a stop that
    failed there is retried by a timer (except at :meth:`close`, which logs an error).
    """

    def __init__(
        self,
        hardware: Hardware,
        /,
        *,
        publish: Publish,
        clock: Clock = time.monotonic,
        scheduler: Scheduler | None = None,
        move_cap_s: float | None = None,
        step_size: int = DEFAULT_STEP_SIZE,
        allow_start: Callable[[], bool] | None = None,
    ) -> None:
        if move_cap_s is not None and not (move_cap_s > 0 and math.isfinite(move_cap_s)):
            raise ValueError("move_cap_s must be a positive number of seconds or None")
        if isinstance(step_size, bool) or not isinstance(step_size, int) or step_size <= 0:
            raise ValueError("step_size must be a positive integer")
        self._hw = hardware
        self._publish = publish
        self._clock = clock
        self._owned_scheduler: ThreadScheduler | None = None
        if scheduler is None:
            scheduler = self._owned_scheduler = ThreadScheduler()
        self._scheduler: Scheduler = scheduler
        self._move_cap_s = move_cap_s
        self._step_size = step_size
        self._allow_start = allow_start
        self._lock = threading.Lock()
        self._publish_lock = threading.RLock()
        self._outbox: deque[Event] = deque()
        self._tokens = itertools.count()
        self._move: _Move | None = None
        self._estimate: Position | None = None
        self._last_direction: str | None = None
        self._checked_limits: PtzLimits | None = None  # the last ptz_limits() answer found valid
        self._closed = False
        self._startup_stop()

    # -- public API ----------------------------------------------------------------------------

    @property
    def direction(self) -> str | None:
        """The direction of the move in progress (stop pending included), or None when idle."""
        with self._lock:
            return None if self._move is None else self._move.direction

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def press(self, direction: str, /, visitor: Hashable | None = None) -> PtzReport:
        """Start a continuous move, redirect the current one, or refresh its cap (same direction).

        A press toward an end stop the axis is already at does not start the motor; the report
        says ``apex: "yes"``.

        Raises:
            ValueError: unknown direction, or a hook returned nonsense.
            RuntimeError: the controller is closed.
            PtzRefused: ``allow_start()`` returned False.
            Exception: whatever a hook (``allow_start`` included) raised.
        """
        return self._command(direction, "press", visitor)

    def step(self, direction: str, /, visitor: Hashable | None = None) -> PtzReport:
        """Move ``step_size`` motor steps (legacy ``ptz_left`` ... tokens), or to the end stop.

        The motor is started now and stopped after ``step_size / speed`` seconds by the
        scheduler, so the report shows the position at the start of the step. Another step in
        the same direction extends the move by one step duration from now. Raises as :meth:`press`.
        """
        return self._command(direction, "step", visitor)

    def release(self, visitor: Hashable | None = None) -> PtzReport:
        """Stop whatever moves, whoever started it; idempotent.

        ``visitor`` is accepted for symmetry with :meth:`press`: a stop is always safe.
        """
        del visitor
        self._halt("release", None, True)
        return self.report()

    def report(self) -> PtzReport:
        """The current position, limits and apex."""
        limits = self._hw.ptz_limits()
        if limits is not self._checked_limits:  # the same (immutable) tuple as last time is valid
            limits = self._checked_limits = _check_limits(limits)
        return self._report(limits)

    def visitor_gone(self, visitor: Hashable | None) -> None:
        """Stop the move if ``visitor`` started it (its session closed); never raises."""
        if visitor is None:
            return
        try:
            self._halt("session_closed", visitor, False)
        except Exception:
            log.warning("PTZ stop after session close failed", exc_info=True)

    def stop(self, reason: str = "standby") -> None:
        """Stop the move in progress, if any (standby, shutdown of the video pipeline ...).

        Raises:
            Exception: whatever ``ptz_stop`` raised; the move stays armed so its timers retry.
        """
        if not reason:
            raise ValueError("a stop needs a reason")
        self._halt(reason, None, True)

    def close(self) -> None:
        """Stop the motor (always sent, even when idle), cancel the timers; idempotent, never raises.

        A stop that fails here is not retried: the error is logged and no timer is left running.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        feedback = self._safe_feedback()
        try:
            with self._lock:
                self._end_locked("close", self._event_position_locked(feedback), strict=False)
        finally:
            self._flush()
            if self._owned_scheduler is not None:
                self._owned_scheduler.close()

    # -- commands ------------------------------------------------------------------------------

    def _command(self, direction: str, kind: str, visitor: Hashable | None) -> PtzReport:
        _check_direction(direction)
        geo = self._read_geometry()
        try:
            with self._lock:
                if self._closed:
                    raise RuntimeError("the PTZ controller is closed")
                self._begin_locked(direction, kind, visitor, geo)
        finally:
            self._flush()
        return self._report(geo.limits)

    def _halt(self, reason: str, owner: Hashable | None, strict: bool, /) -> None:
        """Stop the move (``owner``'s only, if given); ``strict`` raises a failed stop."""
        self._lock.acquire()  # not a bare read: a start in progress holds the lock until its move is set
        idle = self._move is None
        self._lock.release()
        if idle:
            return
        feedback = self._safe_feedback()
        try:
            with self._lock:
                move = self._move
                if move is None or (owner is not None and move.visitor != owner):
                    return
                self._end_locked(reason, self._event_position_locked(feedback), strict=strict)
        finally:
            self._flush()

    def _report(self, limits: PtzLimits) -> PtzReport:
        pos = _check_position(self._hw.ptz_position())
        if pos is None:
            with self._lock:
                pos = self._estimate_locked(limits)
                direction = self._last_direction
        else:
            direction = self._last_direction  # with feedback, nothing else is read: no lock
        min_x, max_x, min_y, max_y = limits
        x, y = pos
        x = min_x if x < min_x else max_x if x > max_x else x
        y = min_y if y < min_y else max_y if y > max_y else y
        apex = "no" if direction is None or _remaining((x, y), direction, limits) > 0 else "yes"
        return _new_tuple(PtzReport, (apex, x, y, min_x, max_x, min_y, max_y))

    # -- transitions (under the lock) ----------------------------------------------------------

    def _begin_locked(self, direction: str, kind: str, visitor: Hashable | None, geo: _Geometry) -> None:
        if self._allow_start is not None and not self._allow_start():
            raise PtzRefused(f"PTZ {kind} {direction!r} refused: starting the motor is not allowed now")
        now = self._clock()
        pos = geo.feedback if geo.feedback is not None else self._estimate_locked(geo.limits, now)
        blocked = _remaining(pos, direction, geo.limits) <= 0
        move = self._move
        if move is not None and move.owed is None and move.direction == direction and not blocked:
            move.kind = kind
            move.visitor = visitor
            self._arm_deadline(move, self._duration(kind, direction, geo))
            return
        if move is not None:  # STOPPING: settle the stop it owes first, even in the same direction
            reason = move.owed or ("end_stop" if move.direction == direction else "redirect")
            self._end_locked(reason, pos, strict=True)
        self._last_direction = direction
        if blocked:
            self._estimate = pos
            return
        move = _Move(direction, kind, visitor=visitor, now=now, start=pos, geo=geo)
        try:
            self._arm_deadline(move, self._duration(kind, direction, geo))
            self._arm_end_stop(move, _remaining(pos, direction, geo.limits) / geo.speed[_axis(direction)])
            self._hw.ptz_start(direction)
        except BaseException:
            move.cancel_timers()
            self._estimate = pos
            self._stop_after_failed_start()
            raise
        self._move = move
        self._queue("start", direction, kind, pos)

    def _end_locked(self, reason: str, pos: Position | None, *, strict: bool) -> None:
        """Send a stop; only a stop that succeeded ends the move (if any) and queues its event.

        A failed stop puts the move (if any) in STOPPING, whose retry timer tries again soon;
        with ``strict`` the error then propagates to the caller, otherwise it is logged.
        """
        move = self._move
        try:
            self._hw.ptz_stop()
        except Exception as exc:
            if move is not None:
                self._owe_stop_locked(move, reason)
            if strict:
                raise
            if move is not None:
                return  # _owe_stop_locked logged it
            if isinstance(exc, NotImplementedError):
                log.debug("ptz_stop is not implemented (%s)", reason)
            else:
                log.warning("PTZ stop (%s) failed", reason, exc_info=True)
            return
        if move is not None:
            move.cancel_timers()
            self._move = None
            if pos is not None and reason == "end_stop":
                pos = _at_limit(pos, move.direction, move.limits)
        if pos is not None:
            self._estimate = pos
        self._queue("stop", None if move is None else move.direction, reason, pos)

    def _owe_stop_locked(self, move: _Move, reason: str) -> None:
        """MOVING/STOPPING --stop failed--> STOPPING: the move stays; one retry timer replaces its timers.

        Called from an ``except`` block. After :meth:`close` nothing is re-armed: the error is logged.
        """
        move.cancel_timers()
        if move.owed is None:
            move.owed = reason
        move.retries += 1
        if self._closed:
            log.error(
                "PTZ stop (%s) failed and the controller is closed: the motor may still be moving %s",
                reason, move.direction, exc_info=True,
            )
            return
        delay = min(STOP_RETRY_S * 2.0 ** min(move.retries - 1, 16), MAX_STOP_RETRY_S)
        self._arm_deadline(move, delay)  # in STOPPING the deadline timer is the retry timer
        log.warning(
            "PTZ stop (%s) failed (attempt %d); retrying in %.2g s",
            reason, move.retries, delay, exc_info=move.retries == 1,
        )

    def _stop_after_failed_start(self) -> None:
        try:
            self._hw.ptz_stop()
        except Exception:
            log.warning("PTZ stop after a failed start failed", exc_info=True)

    def _startup_stop(self) -> None:
        geo: _Geometry | None = None
        try:
            geo = self._read_geometry()
        except NotImplementedError:
            pass
        except Exception:
            log.warning("cannot read the PTZ geometry at start-up", exc_info=True)
        with self._lock:
            pos: Position | None = None
            if geo is not None:
                pos = geo.feedback if geo.feedback is not None else self._estimate_locked(geo.limits)
            self._end_locked("startup", pos, strict=False)
        self._flush()

    # -- timers --------------------------------------------------------------------------------

    def _duration(self, kind: str, direction: str, geo: _Geometry) -> float:
        axis = _axis(direction)
        speed = geo.speed[axis]
        cap = self._move_cap_s
        if cap is None:
            cap = default_move_cap(geo.limits[2 * axis + 1] - geo.limits[2 * axis], speed)
        return min(cap, self._step_size / speed) if kind == "step" else cap

    def _arm_deadline(self, move: _Move, delay: float) -> None:
        token = next(self._tokens)
        timer = self._scheduler.call_later(delay, lambda: self._on_timer(move, token, "deadline"))
        if move.deadline_timer is not None:
            move.deadline_timer.cancel()
        move.deadline_timer, move.deadline_token = timer, token

    def _arm_end_stop(self, move: _Move, delay: float) -> None:
        token = next(self._tokens)
        timer = self._scheduler.call_later(delay, lambda: self._on_timer(move, token, "end"))
        if move.end_timer is not None:
            move.end_timer.cancel()
        move.end_timer, move.end_token = timer, token

    def _on_timer(self, move: _Move, token: int, which: str) -> None:
        """Deadline or end-stop timer of ``move``; a stale timer does nothing. Never raises."""
        try:
            feedback = self._safe_feedback()
            with self._lock:
                current = move.deadline_token if which == "deadline" else move.end_token
                if self._move is not move or current != token:
                    return
                if which == "deadline":  # in STOPPING, the retry timer
                    reason = move.owed or ("step" if move.kind == "step" else "cap")
                    self._end_locked(reason, self._event_position_locked(feedback), strict=False)
                    return
                if feedback is not None:
                    pos = _clamp(feedback, move.limits)
                    left = _remaining(pos, move.direction, move.limits)
                    if left > 0:  # a real motor may lag its declared speed: look again later
                        speed = move.speed[_axis(move.direction)]
                        self._arm_end_stop(move, max(left / speed, _RECHECK_S))
                        return
                else:
                    pos = move.position_at(self._clock())
                self._end_locked("end_stop", pos, strict=False)
        except Exception:
            log.warning("PTZ timer failed", exc_info=True)
        finally:
            self._flush()

    # -- position ------------------------------------------------------------------------------

    def _read_geometry(self) -> _Geometry:
        limits = _check_limits(self._hw.ptz_limits())
        speed = _check_speed(self._hw.ptz_speed())
        feedback = _check_position(self._hw.ptz_position())
        return _new_tuple(_Geometry, (limits, speed, None if feedback is None else _clamp(feedback, limits)))

    def _safe_feedback(self) -> Position | None:
        try:
            return _check_position(self._hw.ptz_position())
        except NotImplementedError:
            return None
        except Exception:
            log.warning("cannot read the PTZ position; using the estimate", exc_info=True)
            return None

    def _estimate_locked(self, limits: PtzLimits, now: float | None = None) -> Position:
        if self._move is not None:
            pos = self._move.position_at(self._clock() if now is None else now)
        elif self._estimate is not None:
            pos = self._estimate
        else:
            pos = _centre(limits)
        return _clamp(pos, limits)

    def _event_position_locked(self, feedback: Position | None) -> Position | None:
        move = self._move
        if feedback is not None:
            return feedback if move is None else _clamp(feedback, move.limits)
        if move is not None:
            return move.position_at(self._clock())
        return self._estimate

    # -- events --------------------------------------------------------------------------------

    def _queue(self, action: str, direction: str | None, reason: str, pos: Position | None) -> None:
        data = {
            "action": action,
            "direction": direction,
            "reason": reason,
            "x": None if pos is None else pos[0],
            "y": None if pos is None else pos[1],
        }
        self._outbox.append(Event("ptz", data, time.time()))

    def _flush(self) -> None:
        """Publish queued events in order; the RLock keeps order across threads and allows re-entry."""
        with self._publish_lock:
            while True:
                with self._lock:
                    if not self._outbox:
                        return
                    event = self._outbox.popleft()
                try:
                    self._publish(event)
                except Exception:
                    log.warning("PTZ event subscriber failed", exc_info=True)
