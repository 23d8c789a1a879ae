"""The values the PTZ state machine takes and returns: events in, actions out.

Small frozen, slotted dataclasses (equal only to values of their own class), built by the
driver, :class:`~iotvideo_signaling.ptz.PtzController`, and by
:func:`~iotvideo_signaling._ptz_machine.transition`. Events carry what the driver read of the
hardware (the geometry of a press, the position feedback of a stop) and the outcome of each
motor command; actions say what to do, a motor command always last.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import ClassVar, NamedTuple, Optional, Union

from .hardware import PtzLimits

__all__ = [
    "Action", "Announce", "ArmTimer", "CancelTimers", "Close", "DeadlineDue", "EndStopDue", "Event", "Geometry",
    "LogGaveUp", "LogRetry", "LogStopFailed", "Motion", "Position", "Press", "Refusal", "Refuse", "RetryDue",
    "StartFailed", "StartMotor", "StartSucceeded", "Startup", "Step", "Stop", "StopFailed", "StopMotor",
    "StopSucceeded", "Timer", "TimerEvent", "VisitorGone", "timer_due",
]

#: ``(x, y)`` in motor steps.
Position = tuple[int, int]

# What one command reads of the hardware: limits, speeds, and the position if there is feedback
# (already clamped to the limits). The functional form: the class syntax compiles each annotation.
Geometry = NamedTuple(  # noqa: UP014
    "Geometry", [("limits", PtzLimits), ("speed", "tuple[float, float]"), ("feedback", "Position | None")]
)


class Timer(enum.Enum):
    """The timers of a move: its deadline (cap or step duration), its end stop, a stop's retry."""

    DEADLINE = "deadline"
    END_STOP = "end_stop"
    RETRY = "retry"



# -- events -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Startup:
    """The controller starts: send a stop, as the motor may run after a crash (None: no geometry)."""

    __slots__ = ("geometry",)
    geometry: Optional[Geometry]


@dataclass(frozen=True)
class Motion:
    """A press or a step: the common fields."""

    __slots__ = ("allowed", "direction", "geometry", "visitor")
    kind: ClassVar[str]
    direction: str
    visitor: Optional[Hashable]
    geometry: Geometry
    allowed: bool  # what allow_start() answered


@dataclass(frozen=True)
class Press(Motion):
    """A ``ptz_<dir>_press``: start a continuous move, redirect it, or refresh its cap."""

    __slots__ = ()
    kind: ClassVar[str] = "press"


@dataclass(frozen=True)
class Step(Motion):
    """A legacy one-step token: move ``step_size`` steps, or extend the step in progress."""

    __slots__ = ()
    kind: ClassVar[str] = "step"


@dataclass(frozen=True)
class Stop:
    """Stop the move, whoever started it (``release``, ``standby`` ...); nothing when idle."""

    __slots__ = ("feedback", "reason")
    reason: str
    feedback: Optional[Position]


@dataclass(frozen=True)
class VisitorGone:
    """A visitor's session closed: stop the move if it started it."""

    __slots__ = ("feedback", "visitor")
    visitor: Optional[Hashable]
    feedback: Optional[Position]


@dataclass(frozen=True)
class TimerEvent:
    """A timer fired: the token it was armed with, and the position feedback read then."""

    __slots__ = ("feedback", "token")
    token: int
    feedback: Optional[Position]


@dataclass(frozen=True)
class DeadlineDue(TimerEvent):
    """The deadline timer fired: the move cap of a press, or the duration of a step."""

    __slots__ = ()


@dataclass(frozen=True)
class EndStopDue(TimerEvent):
    """The end-stop timer fired: the axis should be at its end stop."""

    __slots__ = ()


@dataclass(frozen=True)
class RetryDue(TimerEvent):
    """The retry timer fired: send the stop that failed again."""

    __slots__ = ()


@dataclass(frozen=True)
class StartSucceeded:
    """``ptz_start`` returned."""

    __slots__ = ()


@dataclass(frozen=True)
class StartFailed:
    """``ptz_start`` raised."""

    __slots__ = ()


@dataclass(frozen=True)
class StopSucceeded:
    """``ptz_stop`` returned."""

    __slots__ = ()


@dataclass(frozen=True)
class StopFailed:
    """``ptz_stop`` raised."""

    __slots__ = ()


@dataclass(frozen=True)
class Close:
    """The controller closes: send a stop, even when idle, and never retry it."""

    __slots__ = ("feedback",)
    feedback: Optional[Position]


Event = Union[
    Startup, Press, Step, Stop, VisitorGone, DeadlineDue, EndStopDue, RetryDue, StartSucceeded, StartFailed,
    StopSucceeded, StopFailed, Close,
]

_DUE: Mapping[Timer, Callable[[int, Optional[Position]], Event]] = {
    Timer.DEADLINE: DeadlineDue, Timer.END_STOP: EndStopDue, Timer.RETRY: RetryDue
}


def timer_due(timer: Timer, token: int, feedback: Optional[Position]) -> Event:
    """The event of ``timer`` firing, for the timer armed with ``token``."""
    return _DUE[timer](token, feedback)



# -- actions ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartMotor:
    """Call ``ptz_start(direction)`` and feed back StartSucceeded or StartFailed."""

    __slots__ = ("direction",)
    direction: str


@dataclass(frozen=True)
class StopMotor:
    """Call ``ptz_stop()`` and feed back StopSucceeded or StopFailed."""

    __slots__ = ("reason",)
    reason: str


@dataclass(frozen=True)
class ArmTimer:
    """Arm ``timer`` (replacing the one armed before); it fires ``timer_due(timer, token, ...)``."""

    __slots__ = ("delay", "timer", "token")
    timer: Timer
    delay: float
    token: int


@dataclass(frozen=True)
class CancelTimers:
    """Cancel every armed timer."""

    __slots__ = ()


@dataclass(frozen=True)
class Announce:
    """Publish a ``ptz`` event: a move started or a stop succeeded."""

    __slots__ = ("action", "direction", "position", "reason")
    action: str  # "start" or "stop"
    direction: Optional[str]
    reason: str
    position: Optional[Position]


class Refusal(enum.Enum):
    """Why a press or step was refused."""

    CLOSED = "closed"
    NOT_ALLOWED = "not allowed"


@dataclass(frozen=True)
class Refuse:
    """Refuse the press or step (nothing changed): raise to its caller."""

    __slots__ = ("direction", "kind", "refusal")
    refusal: Refusal
    kind: str
    direction: str


@dataclass(frozen=True)
class LogRetry:
    """A stop failed; it is sent again in ``delay`` seconds (``attempt`` failed stops so far)."""

    __slots__ = ("attempt", "delay", "reason")
    reason: str
    attempt: int
    delay: float


@dataclass(frozen=True)
class LogGaveUp:
    """A stop failed after close: no retry, the motor may still be moving ``direction``."""

    __slots__ = ("direction", "reason")
    reason: str
    direction: str


@dataclass(frozen=True)
class LogStopFailed:
    """A stop with no move to keep (start-up, close when idle, after a failed start) failed."""

    __slots__ = ("reason",)
    reason: str


Action = Union[StartMotor, StopMotor, ArmTimer, CancelTimers, Announce, Refuse, LogRetry, LogGaveUp, LogStopFailed]
