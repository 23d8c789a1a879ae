"""Pan/tilt motion: one :class:`PtzController` owns the motor.

Theory of operation
-------------------
The panel sends one ``ptz_<dir>_press`` when a finger touches the button and ``ptz_release_pre``
200-500 ms after it lifts; nothing while the finger is held and nothing at all if the link drops.
A press therefore starts a *continuous* move, and the controller, not the panel, guarantees that
every move ends.

The decisions are a pure state machine, :mod:`iotvideo_signaling._ptz_machine` (its theory of
operation has the transition table); this module is its driver: it reads the hardware into
events, carries out the actions, feeds the outcome of each motor command back as an event, and
owns the timers, the locks and the publishing. In short: a press starts a move or redirects the
current one (a stop ``redirect``, then the start), a press in the same direction re-arms its
deadline, and a move ends by a release, a :meth:`~PtzController.stop`, its owner's session
closing, its *end-stop timer* (time until the moving axis reaches its limit at the declared
speed, so the motor is stopped there without polling) or its *deadline timer* (the move cap for
a press, the step duration for a legacy one-step token). A press toward an end stop the axis is
already at (by feedback or estimate) does not start the motor. Every start and every stop that
succeeded is published as ``Event(kind="ptz")``.

A failed stop never ends a move and publishes nothing. Whatever asked for the stop, the move
then waits in STOP_OWED: one *retry timer* sends it again after :data:`STOP_RETRY_S`, doubling up
to :data:`MAX_STOP_RETRY_S`, until a stop succeeds, so the motor runs at most
``MAX_STOP_RETRY_S`` past the last failed stop. Under :meth:`~PtzController.press`,
:meth:`~PtzController.step`, :meth:`~PtzController.release` and :meth:`~PtzController.stop` the
error also propagates to the caller; in a timer or :meth:`~PtzController.visitor_gone` it is
logged. :meth:`~PtzController.close` gives up after its own attempt: it logs an error and no
timer is left; the move stays recorded (``direction`` still says it may be moving), so a later
:meth:`~PtzController.stop` or :meth:`~PtzController.release` can still try.

Lifecycle: the constructor does no I/O and starts no thread. :meth:`~PtzController.start`
creates the owned scheduler, if any, and sends a stop (``startup``): after a crash the motor may
be running. A command (press, step, release, stop) before :meth:`~PtzController.start` starts
the controller first, once. :meth:`~PtzController.close` sends a stop (``close``) even when idle
and ends the lifecycle.

Locking: hardware hooks, ``allow_start`` and subscribers are never called with a lock held.
Every transition, with the motor commands it leads to, runs under the controller's *turn*
(:class:`~iotvideo_signaling._turn.Turn`), so motor commands reach the hardware in the order
they were decided: a press's start is never overtaken by a later release's stop. The *state
lock* is held only while the machine computes a transition and the driver records its timers and
events, and by readers (:meth:`~PtzController.report`, :attr:`~PtzController.direction`) to take
the current state, an immutable value, as a snapshot. So a slow hook delays no reader; a timer
callback waits for the turn like any transition, so its stop comes after the commands decided
before it. A hook that calls back a command of its own controller gets a RuntimeError from the
turn instead of a deadlock.
``allow_start`` (the Device passes "not in standby") is evaluated inside the turn, just before
the transition of every press and step; a caller that flips the predicate and then calls
:meth:`~PtzController.stop` (which waits for the turn) therefore has no window in which a racing
press could start or extend a move. The geometry of a press is read before the turn, the
feedback of a stop inside it. Events are published after the turn is released, in the order of
the transitions, from the thread that caused them (a scheduler thread for timer stops).
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple, Optional, Union

from . import _ptz_events as ev
from . import _ptz_machine as m
from ._ptz_events import Geometry, Position
from ._ptz_machine import (
    DIRECTIONS,
    MAX_MOVE_CAP_S,
    MAX_STOP_RETRY_S,
    MIN_MOVE_CAP_S,
    STOP_RETRY_S,
    default_move_cap,
)
from ._turn import Turn
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

#: Default size of a legacy one-step move (``ptz_left`` ...), in motor steps.
DEFAULT_STEP_SIZE = DEFAULT_PTZ_STEP


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


# -- checks of what the hooks return ------------------------------------------------------------


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
            ``ptz_speed`` are used; none is called with a lock held.
        publish: receives one ``Event(kind="ptz")`` per start and stop, with ``data``
            ``{"action": "start"|"stop", "direction": str|None, "reason": str, "x": int|None,
            "y": int|None}``. Start reasons: ``press``, ``step``. Stop reasons: ``release``,
            ``redirect``, ``end_stop``, ``cap``, ``step``, ``session_closed``, ``close``,
            ``startup`` or the reason given to :meth:`stop`. May be called from a timer thread.
        clock: monotonic seconds.
        wall_clock: the time stamped on events, in seconds since the epoch.
        scheduler: runs the timers; by default a :class:`ThreadScheduler` created by
            :meth:`start` and closed by :meth:`close`.
        move_cap_s: the longest a press may move without another press; None for the
            automatic cap of :func:`default_move_cap` for the moving axis.
        step_size: size of a legacy one-step move, in motor steps.
        allow_start: called with no lock held, in the controller's turn, just before every
            :meth:`press` and :meth:`step` takes effect; when it returns False the command
            raises :class:`PtzRefused` and changes nothing. It must be quick and must not call
            the controller. None allows all.

    Hook errors from :meth:`press`, :meth:`step`, :meth:`release`, :meth:`stop` and
    :meth:`report` propagate; the controller stays safe (a failed start leaves it idle and a stop
    is attempted; a failed stop keeps the move armed so its timer tries again). Timer callbacks,
    :meth:`visitor_gone`, :meth:`start` and :meth:`close` never raise; they log a warning, and a
    stop that failed there is retried by a timer (except at :meth:`close`, which logs an error).
    """

    def __init__(
        self,
        hardware: Hardware,
        /,
        *,
        publish: Publish,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
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
        self._wall_clock = wall_clock
        self._scheduler = scheduler  # an owned one is created by start()
        self._owned_scheduler: ThreadScheduler | None = None
        self._allow_start = allow_start
        self._turn = Turn()
        self._lock = threading.Lock()
        self._state = m.initial_state(move_cap_s=move_cap_s, step_size=step_size)  # replaced under the lock
        self._timers: dict[ev.Timer, TimerHandle] = {}
        self._outbox: deque[Event] = deque()
        self._publish_lock = threading.RLock()
        self._checked_limits: PtzLimits | None = None  # the last ptz_limits() answer found valid
        self._started = False

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Send the start-up stop (after a crash the motor may be running); idempotent, never raises.

        Creates the owned :class:`ThreadScheduler` (its thread starts with the first timer).
        :meth:`press`, :meth:`step`, :meth:`release` and :meth:`stop` call this first, so a
        controller that was never started starts with its first command. Does nothing after
        :meth:`close`. A failed stop is logged.
        """
        if self._started:
            return
        try:
            with self._turn:
                if self._started or self._state.closed:
                    return
                self._started = True
                if self._scheduler is None:
                    self._scheduler = self._owned_scheduler = ThreadScheduler()
                self._run(ev.Startup(self._startup_geometry()))
        finally:
            self._flush()

    def close(self) -> None:
        """Stop the motor (always sent, even when idle), cancel the timers; idempotent, never raises.

        A stop that fails here is not retried: the error is logged and no timer is left running.
        """
        closing = False
        try:
            with self._turn:
                if not self._state.closed:
                    closing = True
                    self._run(ev.Close(self._safe_feedback()))
        finally:
            self._flush()
            if closing and self._owned_scheduler is not None:
                self._owned_scheduler.close()  # after the turn: its thread may be waiting for it

    def __enter__(self) -> PtzController:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- public API ----------------------------------------------------------------------------

    @property
    def direction(self) -> str | None:
        """The direction of the move in progress (stop pending included), or None when idle."""
        with self._lock:
            move = self._state.move
        return None if move is None else move.direction

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        with self._lock:
            return self._state.closed

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
        return self._begin(ev.Press, direction, visitor)

    def step(self, direction: str, /, visitor: Hashable | None = None) -> PtzReport:
        """Move ``step_size`` motor steps (legacy ``ptz_left`` ... tokens), or to the end stop.

        The motor is started now and stopped after ``step_size / speed`` seconds by the
        scheduler, so the report shows the position at the start of the step. Another step in
        the same direction extends the move by one step duration from now. Raises as :meth:`press`.
        """
        return self._begin(ev.Step, direction, visitor)

    def release(self, visitor: Hashable | None = None) -> PtzReport:
        """Stop whatever moves, whoever started it; idempotent.

        ``visitor`` is accepted for symmetry with :meth:`press`: a stop is always safe.
        """
        del visitor
        self.stop("release")
        return self.report()

    def report(self) -> PtzReport:
        """The current position, limits and apex."""
        limits = self._hw.ptz_limits()
        if limits is not self._checked_limits:  # the same (immutable) tuple as last time is valid
            limits = self._checked_limits = _check_limits(limits)
        return self._report(limits)

    def visitor_gone(self, visitor: Hashable | None) -> None:
        """Stop the move if ``visitor`` started it (its session closed); never raises.

        Unlike the commands it does not start the controller: before :meth:`start` no visitor
        has started anything.
        """
        if visitor is None:
            return
        try:
            self._halt(functools.partial(ev.VisitorGone, visitor))  # a failed stop was logged
        except Exception:
            log.warning("PTZ stop after session close failed", exc_info=True)

    def stop(self, reason: str = "standby") -> None:
        """Stop the move in progress, if any (standby, shutdown of the video pipeline ...).

        Raises:
            Exception: whatever ``ptz_stop`` raised; the move stays armed so its timer retries.
        """
        if not reason:
            raise ValueError("a stop needs a reason")
        self.start()
        error = self._halt(functools.partial(ev.Stop, reason))
        if error is not None:
            raise error

    # -- commands ------------------------------------------------------------------------------

    def _begin(self, command: type[ev.Press] | type[ev.Step], direction: str, visitor: Hashable | None) -> PtzReport:
        _check_direction(direction)
        self.start()
        geo = self._read_geometry()
        try:
            with self._turn:
                allowed = self._allow_start is None or bool(self._allow_start())
                error = self._run(command(direction, visitor, geo, allowed))
        finally:
            self._flush()
        if error is not None:
            raise error
        return self._report(geo.limits)

    def _halt(self, make_event: Callable[[Position | None], ev.Event]) -> Exception | None:
        """Feed a stop built with the position feedback, unless nothing moves; its first error."""
        ran = False
        try:
            with self._turn:
                if self._state.move is None:  # the turn holder is the only writer: no lock needed
                    return None  # nothing ran, nothing to publish
                ran = True
                return self._run(make_event(self._safe_feedback()))
        finally:
            if ran:
                self._flush()

    def _report(self, limits: PtzLimits) -> PtzReport:
        pos = _check_position(self._hw.ptz_position())
        with self._lock:
            state = self._state  # an immutable snapshot
        if pos is None:
            pos = m.estimate(state, limits, self._clock())
        min_x, max_x, min_y, max_y = limits
        x, y = pos
        x = min_x if x < min_x else max_x if x > max_x else x
        y = min_y if y < min_y else max_y if y > max_y else y
        return _new_tuple(PtzReport, (m.apex((x, y), state.last_direction, limits), x, y, min_x, max_x, min_y, max_y))

    # -- the driver (in the turn) --------------------------------------------------------------

    def _run(self, event: ev.Event) -> Exception | None:
        """Feed ``event`` and the outcome of every motor command it leads to; the caller holds the turn.

        Returns the first error for the caller to raise (a hook's, or a refusal); log actions
        are carried out here. An interrupt (a BaseException) from a hook is raised once its
        outcome has been fed.
        """
        errors: list[BaseException] = []
        hook_error: BaseException | None = None
        pending: ev.Event | None = event
        while pending is not None:
            with self._lock:
                self._state, actions = m.transition(self._state, pending, self._clock())
                for action in actions:
                    self._book(action)
            pending = None
            for action in actions:  # a motor command is always the last action
                if isinstance(action, ev.StartMotor):
                    pending, hook_error = self._start_motor(action.direction)
                elif isinstance(action, ev.StopMotor):
                    pending, hook_error = self._stop_motor()
                elif isinstance(action, ev.Refuse):
                    errors.append(_refusal(action))
                elif isinstance(action, (ev.LogRetry, ev.LogGaveUp, ev.LogStopFailed)):
                    _log_stop_failure(action, hook_error)
            if isinstance(pending, (ev.StartFailed, ev.StopFailed)) and hook_error is not None:
                errors.append(hook_error)  # kept in hook_error for the log actions of the next transition
        return _first_error(errors)

    def _start_motor(self, direction: str) -> tuple[ev.Event, BaseException | None]:
        """Call ``ptz_start``: its outcome as an event, and what it raised."""
        try:
            self._hw.ptz_start(direction)
        except BaseException as exc:  # noqa: BLE001 - fed back as a failure; _run re-raises an interrupt
            return ev.StartFailed(), exc
        return ev.StartSucceeded(), None

    def _stop_motor(self) -> tuple[ev.Event, BaseException | None]:
        """Call ``ptz_stop``: its outcome as an event, and what it raised."""
        try:
            self._hw.ptz_stop()
        except BaseException as exc:  # noqa: BLE001 - fed back as a failure; _run re-raises an interrupt
            return ev.StopFailed(), exc
        return ev.StopSucceeded(), None

    def _book(self, action: ev.Action) -> None:
        """Record a timer or an event under the state lock; other actions are carried out later."""
        if isinstance(action, ev.ArmTimer):
            scheduler = self._scheduler
            if scheduler is None:
                raise RuntimeError("a PTZ timer was armed before start()")
            previous = self._timers.pop(action.timer, None)
            if previous is not None:
                previous.cancel()
            self._timers[action.timer] = scheduler.call_later(action.delay, functools.partial(self._due, action))
        elif isinstance(action, ev.CancelTimers):
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()
        elif isinstance(action, ev.Announce):
            pos = action.position
            data = {
                "action": action.action,
                "direction": action.direction,
                "reason": action.reason,
                "x": None if pos is None else pos[0],
                "y": None if pos is None else pos[1],
            }
            self._outbox.append(Event("ptz", data, self._wall_clock()))

    def _due(self, armed: ev.ArmTimer) -> None:
        """A timer's callback: feed its event with the position feedback. Never raises."""
        try:
            with self._turn:
                self._run(ev.timer_due(armed.timer, armed.token, self._safe_feedback()))
        except Exception:
            log.warning("PTZ timer failed", exc_info=True)
        finally:
            self._flush()

    # -- hardware reads ------------------------------------------------------------------------

    def _read_geometry(self) -> Geometry:
        limits = _check_limits(self._hw.ptz_limits())
        speed = _check_speed(self._hw.ptz_speed())
        feedback = _check_position(self._hw.ptz_position())
        return _new_tuple(Geometry, (limits, speed, None if feedback is None else m.clamp(feedback, limits)))

    def _startup_geometry(self) -> Geometry | None:
        try:
            return self._read_geometry()
        except NotImplementedError:
            return None
        except Exception:
            log.warning("cannot read the PTZ geometry at start-up", exc_info=True)
            return None

    def _safe_feedback(self) -> Position | None:
        try:
            return _check_position(self._hw.ptz_position())
        except NotImplementedError:
            return None
        except Exception:
            log.warning("cannot read the PTZ position; using the estimate", exc_info=True)
            return None

    # -- events --------------------------------------------------------------------------------

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


def _first_error(errors: list[BaseException]) -> Exception | None:
    """The first error to raise to the caller; an interrupt among them is raised here."""
    first: Exception | None = None
    for error in errors:
        if not isinstance(error, Exception):
            raise error
        first = first or error
    return first


def _refusal(action: ev.Refuse) -> Exception:
    if action.refusal is ev.Refusal.CLOSED:
        return RuntimeError("the PTZ controller is closed")
    return PtzRefused(f"PTZ {action.kind} {action.direction!r} refused: starting the motor is not allowed now")


def _log_stop_failure(action: Union[ev.LogRetry, ev.LogGaveUp, ev.LogStopFailed], exc: Optional[BaseException]) -> None:
    if isinstance(action, ev.LogRetry):
        log.warning(
            "PTZ stop (%s) failed (attempt %d); retrying in %.2g s",
            action.reason, action.attempt, action.delay, exc_info=exc if action.attempt == 1 else None,
        )
    elif isinstance(action, ev.LogGaveUp):
        log.error(
            "PTZ stop (%s) failed and the controller is closed: the motor may still be moving %s",
            action.reason, action.direction, exc_info=exc,
        )
    elif isinstance(exc, NotImplementedError):
        log.debug("ptz_stop is not implemented (%s)", action.reason)
    else:
        log.warning("PTZ stop (%s) failed", action.reason, exc_info=exc)
