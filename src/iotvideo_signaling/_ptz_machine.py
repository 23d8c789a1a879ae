"""The PTZ state machine: every decision about the motor, with no threads, clock or hardware.

:func:`transition` is the one place where the state of the pan/tilt motor changes: it takes the
current :class:`State`, one event and the monotonic time, and returns the next state and the
actions to carry out, in order. States are immutable values here; events and actions are
immutable values in :mod:`iotvideo_signaling._ptz_events`. The driver,
:class:`~iotvideo_signaling.ptz.PtzController`, reads the hardware into events, carries out the
actions, and feeds the outcome of each motor command back as the next event.

Theory of operation
-------------------
Three phases are settled: IDLE, MOVING (one move in progress) and STOP_OWED (a stop failed and
the retry timer will send it again). Three wait for the outcome of the one motor command the
last transition asked for, which is always its last action: STARTING (``StartMotor``), STOPPING
(``StopMotor``) and UNWINDING (the ``StopMotor`` sent after a start failed, because the motor
state is then unknown). A waiting phase accepts only the outcome events of its command; any
other event there raises :class:`UnexpectedEvent` (the driver holds its turn from an event to
the end of the commands it leads to, so it never sends one)::

    IDLE        --Press/Step d-->                      STARTING   StartMotor d
    IDLE        --Press/Step d, d blocked-->           IDLE       (no command; apex)
    STARTING    --StartSucceeded-->                    MOVING     ArmTimer deadline + end stop, Announce start
    STARTING    --StartFailed-->                       UNWINDING  StopMotor
    UNWINDING   --StopSucceeded / StopFailed-->        IDLE       nothing / LogStopFailed
    MOVING d    --Press/Step d-->                      MOVING d   ArmTimer deadline (owner and kind updated)
    MOVING d    --Press/Step e-->                      STOPPING   StopMotor "redirect", then the start of e
    MOVING      --Stop r / VisitorGone(owner)-->       STOPPING   StopMotor r / "session_closed"
    MOVING      --DeadlineDue / EndStopDue-->          STOPPING   StopMotor "cap" or "step" / "end_stop"
    MOVING      --EndStopDue, feedback short of it-->  MOVING     ArmTimer end stop (look again)
    STOP_OWED r --RetryDue-->                          STOPPING   StopMotor r
    STOP_OWED r --Press/Step d-->                      STOPPING   StopMotor r, then the start of d
    STOP_OWED   --Stop / VisitorGone(owner)-->         STOPPING   (as from MOVING)
    STOPPING    --StopSucceeded-->                     IDLE       Announce stop (then the start it carries)
    STOPPING    --StopFailed, a move-->                STOP_OWED  LogRetry, ArmTimer retry (closed: LogGaveUp)
    STOPPING    --StopFailed, no move-->               IDLE       LogStopFailed
    any settled --Startup / Close-->                   STOPPING   StopMotor "startup" / "close", even when idle
    any settled --Press/Step, closed or not allowed--> unchanged  Refuse

Every ``StopMotor`` is preceded by ``CancelTimers`` when timers are armed, so timers live only
in MOVING (deadline and end stop) and STOP_OWED (retry; none once closed). Each ``ArmTimer``
carries a fresh token and the move records the token of each live timer; a timer event whose
token is not current (it was cancelled while already firing) changes nothing. A move ends, and
its stop is announced, only when a stop succeeded; the position announced is the one read when
the stop was decided, put on the end stop for an ``end_stop``.

Position: with feedback it is the hardware's; without, the estimate integrates the declared
speed from where the move started, clamped to the limits, starting at the centre of the limits.
"""

from __future__ import annotations

import enum
import math
import types
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, replace
from typing import Optional

from ._ptz_events import (
    Action,
    Announce,
    ArmTimer,
    CancelTimers,
    Close,
    DeadlineDue,
    EndStopDue,
    Event,
    LogGaveUp,
    LogRetry,
    LogStopFailed,
    Motion,
    Position,
    Refusal,
    Refuse,
    RetryDue,
    StartFailed,
    StartMotor,
    StartSucceeded,
    Startup,
    Stop,
    StopFailed,
    StopMotor,
    StopSucceeded,
    Timer,
    TimerEvent,
    VisitorGone,
)
from .hardware import PtzLimits

__all__ = [
    "DIRECTIONS", "MAX_MOVE_CAP_S", "MAX_STOP_RETRY_S", "MIN_MOVE_CAP_S", "RECHECK_S", "STOP_RETRY_S", "UNWIND",
    "Move", "NextStart", "Outcome", "Phase", "Settings", "State", "Stopping", "UnexpectedEvent", "apex", "clamp",
    "default_move_cap", "estimate", "initial_state", "remaining", "transition",
]

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
#: With feedback, how soon the end-stop timer looks again when the end stop is not reached yet.
RECHECK_S = 0.05
#: The reason of the stop sent after a failed start (never announced).
UNWIND = "start_failed"

_CAP_FACTOR = 1.25  # a real motor may be slower than it declares
_CAP_MARGIN_S = 0.5


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


# -- geometry -----------------------------------------------------------------------------------


def _axis(direction: str) -> int:
    return 0 if DIRECTIONS[direction][0] else 1


def remaining(pos: Position, direction: str, limits: PtzLimits) -> int:
    """Steps left before the end stop in ``direction``; 0 (or less) means blocked."""
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


def clamp(pos: Position, limits: PtzLimits) -> Position:
    """``pos`` moved inside the limits (the same tuple when it already is)."""
    min_x, max_x, min_y, max_y = limits
    x, y = pos
    if min_x <= x <= max_x and min_y <= y <= max_y:
        return pos  # the usual case: no new tuple
    return (min_x if x < min_x else max_x if x > max_x else x), (min_y if y < min_y else max_y if y > max_y else y)


def _centre(limits: PtzLimits) -> Position:
    min_x, max_x, min_y, max_y = limits
    return (min_x + max_x) // 2, (min_y + max_y) // 2


def apex(pos: Position, direction: Optional[str], limits: PtzLimits) -> str:
    """``"yes"`` when the axis of ``direction`` (the last one moved) is at its end stop, else ``"no"``."""
    return "no" if direction is None or remaining(pos, direction, limits) > 0 else "yes"



# -- state --------------------------------------------------------------------------------------


class Phase(enum.Enum):
    """Where the machine is; see the module's theory of operation."""

    IDLE = "idle"
    STARTING = "starting"
    MOVING = "moving"
    STOPPING = "stopping"
    STOP_OWED = "stop_owed"
    UNWINDING = "unwinding"


@dataclass(frozen=True)
class Settings:
    """The controller's configuration, carried in the state."""

    __slots__ = ("move_cap_s", "step_size")
    move_cap_s: Optional[float]
    step_size: int


@dataclass(frozen=True)
class Move:
    """The one move: what was started, from where, and the tokens of its live timers."""

    __slots__ = (
        "deadline_token", "direction", "end_token", "kind", "limits", "owed", "retries", "retry_token", "speed",
        "start", "started_at", "visitor",
    )
    direction: str
    kind: str  # "press" or "step"
    visitor: Optional[Hashable]
    started_at: float
    start: Position
    limits: PtzLimits
    speed: tuple[float, float]
    owed: Optional[str]  # STOP_OWED: the reason of the first stop that failed
    retries: int  # failed stops so far
    deadline_token: Optional[int]
    end_token: Optional[int]
    retry_token: Optional[int]

    def position_at(self, now: float) -> Position:
        """The estimate: start position plus speed times elapsed time, clamped to the limits."""
        dx, dy = DIRECTIONS[self.direction]
        elapsed = max(0.0, now - self.started_at)
        min_x, max_x, min_y, max_y = self.limits
        x = self.start[0] + dx * self.speed[0] * elapsed
        y = self.start[1] + dy * self.speed[1] * elapsed
        return round(min(max(x, min_x), max_x)), round(min(max(y, min_y), max_y))


@dataclass(frozen=True)
class NextStart:
    """A start decided by a press or step, made once the stop it waits for has succeeded."""

    __slots__ = ("at", "direction", "kind", "limits", "position", "speed", "visitor")
    direction: str
    kind: str
    visitor: Optional[Hashable]
    position: Position
    at: float
    limits: PtzLimits
    speed: tuple[float, float]


@dataclass(frozen=True)
class Stopping:
    """The stop in flight: its reason, the position to announce, and a start to follow it."""

    __slots__ = ("position", "reason", "then")
    reason: str
    position: Optional[Position]
    then: Optional[NextStart]


@dataclass(frozen=True)
class State:
    """Everything the machine knows; replaced, never mutated, by :func:`transition`.

    ``move`` is set in STARTING, MOVING and STOP_OWED (and in STOPPING when a move is being
    stopped); ``stopping`` only in STOPPING. ``estimate`` is the last known position when idle,
    ``last_direction`` the direction of the last press or step (for the apex), ``tokens`` the
    last timer token handed out.
    """

    __slots__ = ("closed", "estimate", "last_direction", "move", "phase", "settings", "stopping", "tokens")
    phase: Phase
    settings: Settings
    move: Optional[Move]
    stopping: Optional[Stopping]
    estimate: Optional[Position]
    last_direction: Optional[str]
    closed: bool
    tokens: int


def initial_state(*, move_cap_s: Optional[float], step_size: int) -> State:
    """IDLE, nothing known: the state of a new controller."""
    return State(Phase.IDLE, Settings(move_cap_s, step_size), None, None, None, None, False, 0)


def estimate(state: State, limits: PtzLimits, now: float) -> Position:
    """The position without feedback: the move's integration, else the last known, else the centre."""
    if state.move is not None:
        pos = state.move.position_at(now)
    elif state.estimate is not None:
        pos = state.estimate
    else:
        pos = _centre(limits)
    return clamp(pos, limits)


class UnexpectedEvent(RuntimeError):
    """An event that cannot happen in the current phase (a driver bug), e.g. a press while a
    motor command is in flight, or the outcome of a command that was not asked for."""


Outcome = tuple[State, tuple[Action, ...]]

_CANCEL = CancelTimers()


# -- the transition -----------------------------------------------------------------------------


def transition(state: State, event: Event, now: float) -> Outcome:
    """The next state and the actions to carry out, in order, after ``event`` at ``now``.

    Raises:
        UnexpectedEvent: ``event`` cannot happen in ``state.phase``.
    """
    phase = state.phase
    if phase is Phase.STARTING:
        if isinstance(event, StartSucceeded):
            return _started(state)
        if isinstance(event, StartFailed):
            return _start_failed(state)
    elif phase is Phase.STOPPING:
        if isinstance(event, StopSucceeded):
            return _stopped(state)
        if isinstance(event, StopFailed):
            return _stop_failed(state)
    elif phase is Phase.UNWINDING:
        if isinstance(event, StopSucceeded):
            return replace(state, phase=Phase.IDLE), ()
        if isinstance(event, StopFailed):
            return replace(state, phase=Phase.IDLE), (LogStopFailed(UNWIND),)
    elif isinstance(event, Motion):
        return _begin(state, event, now)
    elif isinstance(event, Stop):
        if state.move is None:
            return state, ()
        return _send_stop(state, event.reason, _event_position(state, event.feedback, now), None)
    elif isinstance(event, VisitorGone):
        move = state.move
        if event.visitor is None or move is None or move.visitor != event.visitor:
            return state, ()
        return _send_stop(state, "session_closed", _event_position(state, event.feedback, now), None)
    elif isinstance(event, TimerEvent):
        return _timer_fired(state, event, now)
    elif isinstance(event, Startup):
        geometry = event.geometry
        pos: Optional[Position] = None
        if geometry is not None:
            pos = geometry.feedback if geometry.feedback is not None else estimate(state, geometry.limits, now)
        return _send_stop(state, "startup", pos, None)
    elif isinstance(event, Close):
        if state.closed:
            return state, ()
        closed = replace(state, closed=True)
        return _send_stop(closed, "close", _event_position(state, event.feedback, now), None)
    raise UnexpectedEvent(f"{type(event).__name__} cannot happen in {phase.name}")


def _begin(state: State, event: Motion, now: float) -> Outcome:
    direction = event.direction
    if state.closed:
        return state, (Refuse(Refusal.CLOSED, event.kind, direction),)
    if not event.allowed:
        return state, (Refuse(Refusal.NOT_ALLOWED, event.kind, direction),)
    geo = event.geometry
    pos = geo.feedback if geo.feedback is not None else estimate(state, geo.limits, now)
    start = NextStart(direction, event.kind, event.visitor, pos, now, geo.limits, geo.speed)
    move = state.move
    if move is None:
        return _start(state, start)
    if state.phase is Phase.MOVING and move.direction == direction and remaining(pos, direction, geo.limits) > 0:
        token = state.tokens + 1
        move = replace(move, kind=event.kind, visitor=event.visitor, deadline_token=token)
        delay = _duration(event.kind, direction, geo.limits, geo.speed, state.settings)
        return replace(state, move=move, tokens=token), (ArmTimer(Timer.DEADLINE, delay, token),)
    # STOP_OWED settles the stop it owes first, even in the same direction
    reason = move.owed or ("end_stop" if move.direction == direction else "redirect")
    return _send_stop(state, reason, pos, start)


def _start(state: State, start: NextStart) -> Outcome:
    """Start the move of a press or step, or only record where it is when it is blocked."""
    state = replace(state, last_direction=start.direction)
    if remaining(start.position, start.direction, start.limits) <= 0:
        return replace(state, phase=Phase.IDLE, estimate=start.position), ()
    move = Move(
        start.direction, start.kind, start.visitor, start.at, start.position, start.limits, start.speed,
        None, 0, None, None, None,
    )
    return replace(state, phase=Phase.STARTING, move=move), (StartMotor(start.direction),)


def _started(state: State) -> Outcome:
    move = state.move
    if move is None:
        raise UnexpectedEvent("STARTING without a move")
    deadline, end = state.tokens + 1, state.tokens + 2
    speed = move.speed[_axis(move.direction)]
    to_end = remaining(move.start, move.direction, move.limits) / speed
    duration = _duration(move.kind, move.direction, move.limits, move.speed, state.settings)
    moving = replace(state, phase=Phase.MOVING, move=replace(move, deadline_token=deadline, end_token=end), tokens=end)
    return moving, (
        ArmTimer(Timer.DEADLINE, duration, deadline),
        ArmTimer(Timer.END_STOP, to_end, end),
        Announce("start", move.direction, move.kind, move.start),
    )


def _start_failed(state: State) -> Outcome:
    move = state.move
    if move is None:
        raise UnexpectedEvent("STARTING without a move")
    return replace(state, phase=Phase.UNWINDING, move=None, estimate=move.start), (StopMotor(UNWIND),)


def _timer_fired(state: State, event: TimerEvent, now: float) -> Outcome:
    move = state.move
    if move is None:
        return state, ()
    if isinstance(event, DeadlineDue) and event.token == move.deadline_token:
        reason = "step" if move.kind == "step" else "cap"
        return _send_stop(state, reason, _event_position(state, event.feedback, now), None)
    if isinstance(event, RetryDue) and event.token == move.retry_token and move.owed is not None:
        return _send_stop(state, move.owed, _event_position(state, event.feedback, now), None)
    if not (isinstance(event, EndStopDue) and event.token == move.end_token):
        return state, ()  # stale: cancelled while it was firing
    if event.feedback is None:
        return _send_stop(state, "end_stop", move.position_at(now), None)
    pos = clamp(event.feedback, move.limits)
    left = remaining(pos, move.direction, move.limits)
    if left <= 0:
        return _send_stop(state, "end_stop", pos, None)
    # a real motor may lag its declared speed: look again when it should have arrived
    token = state.tokens + 1
    delay = max(left / move.speed[_axis(move.direction)], RECHECK_S)
    return replace(state, move=replace(move, end_token=token), tokens=token), (ArmTimer(Timer.END_STOP, delay, token),)


def _send_stop(state: State, reason: str, pos: Optional[Position], then: Optional[NextStart]) -> Outcome:
    move = state.move
    actions: tuple[Action, ...] = (StopMotor(reason),)
    if move is not None and (move.deadline_token, move.end_token, move.retry_token) != (None, None, None):
        move = replace(move, deadline_token=None, end_token=None, retry_token=None)
        actions = (_CANCEL, *actions)
    return replace(state, phase=Phase.STOPPING, move=move, stopping=Stopping(reason, pos, then)), actions


def _stopped(state: State) -> Outcome:
    stopping = state.stopping
    if stopping is None:
        raise UnexpectedEvent("STOPPING without a stop")
    move, pos = state.move, stopping.position
    direction: Optional[str] = None
    if move is not None:
        direction = move.direction
        if pos is not None and stopping.reason == "end_stop":
            pos = _at_limit(pos, move.direction, move.limits)
    idle = replace(
        state, phase=Phase.IDLE, move=None, stopping=None, estimate=state.estimate if pos is None else pos
    )
    announced: tuple[Action, ...] = (Announce("stop", direction, stopping.reason, pos),)
    if stopping.then is None:
        return idle, announced
    state, actions = _start(idle, stopping.then)
    return state, announced + actions


def _stop_failed(state: State) -> Outcome:
    stopping, move = state.stopping, state.move
    if stopping is None:
        raise UnexpectedEvent("STOPPING without a stop")
    if move is None:
        return replace(state, phase=Phase.IDLE, stopping=None), (LogStopFailed(stopping.reason),)
    retries = move.retries + 1
    move = replace(move, owed=move.owed or stopping.reason, retries=retries)
    owed = replace(state, phase=Phase.STOP_OWED, move=move, stopping=None)  # the start it carried is dropped
    if state.closed:
        return owed, (LogGaveUp(stopping.reason, move.direction),)
    token = state.tokens + 1
    delay = min(STOP_RETRY_S * 2.0 ** min(retries - 1, 16), MAX_STOP_RETRY_S)
    owed = replace(owed, move=replace(move, retry_token=token), tokens=token)
    return owed, (LogRetry(stopping.reason, retries, delay), ArmTimer(Timer.RETRY, delay, token))


def _duration(kind: str, direction: str, limits: PtzLimits, speed: tuple[float, float], settings: Settings) -> float:
    """How long a press may move without another press, or how long a step lasts."""
    axis = _axis(direction)
    cap = settings.move_cap_s
    if cap is None:
        cap = default_move_cap(limits[2 * axis + 1] - limits[2 * axis], speed[axis])
    return min(cap, settings.step_size / speed[axis]) if kind == "step" else cap


def _event_position(state: State, feedback: Optional[Position], now: float) -> Optional[Position]:
    """The position a stop decided now announces: the feedback, else the estimate."""
    move = state.move
    if feedback is not None:
        return feedback if move is None else clamp(feedback, move.limits)
    if move is not None:
        return move.position_at(now)
    return state.estimate
