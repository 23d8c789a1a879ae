"""A Hypothesis state machine over the PTZ controller, on the fake clock and the virtual motor.

Rules: press, step, release, tick (time passes, timers fire), close a session, standby (the
``allow_start`` predicate turns False, then a stop) and wake, and a transient fault that makes
the next few ``ptz_stop`` calls fail.
Invariants: the motor never moves longer than the cap (or step duration) since the last press,
nor past the moment it reaches its end stop, except while stops fail: then it stops at most
``MAX_STOP_RETRY_S`` after the last failed stop; it is not moving after a release, a standby or
its owner's session closing unless that stop failed; in standby it starts only if a stop failed;
the position stays within the limits; the controller, the motor (the estimate included) and the
events agree, so a stop is published only when the motor really stopped.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from iotvideo_signaling._virtual_motor import VirtualMotor
from iotvideo_signaling.events import Event
from iotvideo_signaling.hardware import Hardware, PtzLimits
from iotvideo_signaling.ptz import (
    DIRECTIONS,
    MAX_STOP_RETRY_S,
    ManualClock,
    PtzController,
    PtzRefused,
    default_move_cap,
)

LIMITS: PtzLimits = (-1000, 2600, 0, 900)
SPEED = (600.0, 300.0)
CENTRE = (800, 450)
STEP = 200
EPSILON = 1e-9

directions = st.sampled_from(sorted(DIRECTIONS))
visitors = st.sampled_from(["alice", "bob", None])
durations = st.one_of(
    st.sampled_from([0.0, 0.05, 0.5, 1.0, 2.0, 4.25, 8.0]),
    st.floats(min_value=0.0, max_value=12.0, allow_nan=False),
)


class MotorHardware(Hardware):
    """PTZ hooks driving a VirtualMotor, with or without position feedback; stops can fail."""

    def __init__(self, motor: VirtualMotor, clock: ManualClock, *, feedback: bool) -> None:
        self.motor = motor
        self.clock = clock
        self.feedback = feedback
        self.end_stop_at = 0.0  # when the current run reaches its end stop
        self.stop_failures = 0  # how many of the next ptz_stop calls fail
        self.failed_stops = 0
        self.last_failure = -math.inf  # when a ptz_stop last failed

    def ptz_start(self, direction: str) -> None:
        axis = 0 if direction in ("left", "right") else 1
        distance = _distance(self.motor.position(), direction)
        self.end_stop_at = self.clock.now + distance / SPEED[axis]
        self.motor.start(direction)

    def ptz_stop(self) -> None:
        if self.stop_failures > 0:
            self.stop_failures -= 1
            self.failed_stops += 1
            self.last_failure = self.clock.now
            raise OSError("ptz_stop failed (transient)")
        self.motor.stop()

    def ptz_position(self) -> tuple[int, int] | None:
        return self.motor.position() if self.feedback else None

    def ptz_limits(self) -> PtzLimits:
        return self.motor.limits()

    def ptz_speed(self) -> tuple[float, float]:
        return self.motor.speed()


def _distance(pos: tuple[int, int], direction: str) -> int:
    min_x, max_x, min_y, max_y = LIMITS
    x, y = pos
    return {"right": max_x - x, "left": x - min_x, "up": max_y - y, "down": y - min_y}[direction]


def _blocked(pos: tuple[int, int], direction: str) -> bool:
    return _distance(pos, direction) <= 0


class PtzMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[Event] = []
        self._build(feedback=True, position=CENTRE, move_cap_s=None)

    def _build(self, *, feedback: bool, position: tuple[int, int], move_cap_s: float | None) -> None:
        self.clock = ManualClock()
        self.motor = VirtualMotor(limits=LIMITS, speed=SPEED, clock=self.clock, position=position)
        self.hw = MotorHardware(self.motor, self.clock, feedback=feedback)
        self.events = []
        self.move_cap_s = move_cap_s
        self.standby = False
        self.standby_since = 0.0
        self.ptz = PtzController(
            self.hw,
            publish=self.events.append,
            clock=self.clock,
            scheduler=self.clock,
            move_cap_s=move_cap_s,
            step_size=STEP,
            allow_start=lambda: not self.standby,
        )
        self.deadline = 0.0  # the latest time the motor may still be moving, unless a stop failed
        self.owner: Any = None

    @initialize(
        feedback=st.booleans(),
        x=st.integers(LIMITS[0], LIMITS[1]),
        y=st.integers(LIMITS[2], LIMITS[3]),
        move_cap_s=st.one_of(st.none(), st.floats(min_value=0.1, max_value=10.0)),
    )
    def setup(self, feedback: bool, x: int, y: int, move_cap_s: float | None) -> None:
        self.ptz.close()
        # without feedback the estimate starts at the centre, so the motor does too: they must agree
        self._build(feedback=feedback, position=(x, y) if feedback else CENTRE, move_cap_s=move_cap_s)

    def cap(self, direction: str) -> float:
        if self.move_cap_s is not None:
            return self.move_cap_s
        axis = 0 if direction in ("left", "right") else 1
        return default_move_cap(LIMITS[2 * axis + 1] - LIMITS[2 * axis], SPEED[axis])

    # -- rules -----------------------------------------------------------------------------------

    def _refused_or_failed(self, command: Any, *args: Any) -> Any:
        """Run a press or step; None when it was refused (standby) or a stop it needed failed."""
        before, failed = self.motor.moving, self.hw.failed_stops
        try:
            return command(*args)
        except PtzRefused:
            assert self.standby
        except OSError:
            assert self.hw.failed_stops > failed  # a redirect, or the stop a move still owed
        assert self.motor.moving == before  # either way nothing changed
        return None

    @rule(direction=directions, visitor=visitors)
    def press(self, direction: str, visitor: Any) -> None:
        report = self._refused_or_failed(self.ptz.press, direction, visitor)
        if report is None:
            return
        self.deadline = self.clock.now + self.cap(direction)
        self.owner = visitor
        if report.apex == "yes":
            assert self.motor.moving is None
            assert _blocked((report.current_x, report.current_y), direction)
        else:
            assert self.motor.moving == direction

    @rule(direction=directions)
    def step(self, direction: str) -> None:
        report = self._refused_or_failed(self.ptz.step, direction)
        if report is None:
            return
        axis = 0 if direction in ("left", "right") else 1
        self.deadline = self.clock.now + min(self.cap(direction), STEP / SPEED[axis])
        self.owner = None
        assert (self.motor.moving is None) == (report.apex == "yes")

    @rule(visitor=visitors)
    def release(self, visitor: Any) -> None:
        try:
            self.ptz.release(visitor)
        except OSError:
            assert self.motor.moving is not None  # the move stays armed; its timers retry
            return
        assert self.motor.moving is None

    @rule(seconds=durations)
    def tick(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(visitor=visitors)
    def close_session(self, visitor: Any) -> None:
        was_moving = self.motor.moving is not None
        failed = self.hw.failed_stops
        self.ptz.visitor_gone(visitor)  # never raises, even when its stop fails
        if visitor is not None and visitor == self.owner:
            assert (self.motor.moving is None) == (self.hw.failed_stops == failed)
        elif was_moving:
            assert self.motor.moving is not None

    @rule()
    def enter_standby(self) -> None:
        self.standby = True  # what the Device does: switch the power, then stop the motor
        self.standby_since = self.clock.now
        try:
            self.ptz.stop("standby")
        except OSError:
            assert self.motor.moving is not None
            return
        assert self.motor.moving is None

    @rule()
    def wake(self) -> None:
        self.standby = False

    @rule(n=st.integers(1, 6))
    def stop_fails(self, n: int) -> None:
        self.hw.stop_failures = n  # the next n stops fail, then the hardware has recovered

    # -- invariants ------------------------------------------------------------------------------

    @invariant()
    def never_moving_past_the_cap(self) -> None:
        if self.motor.moving is not None:
            assert self.clock.now <= max(self.deadline, self.hw.last_failure + MAX_STOP_RETRY_S) + EPSILON

    @invariant()
    def never_moving_past_the_end_stop(self) -> None:
        if self.motor.moving is not None:
            assert self.clock.now <= max(self.hw.end_stop_at, self.hw.last_failure + MAX_STOP_RETRY_S) + EPSILON

    @invariant()
    def not_moving_in_standby_unless_a_stop_failed(self) -> None:
        if self.standby and self.motor.moving is not None:
            assert self.hw.last_failure >= self.standby_since

    @invariant()
    def controller_and_motor_agree(self) -> None:
        assert self.ptz.direction == self.motor.moving
        report = self.ptz.report()
        assert (report.current_x, report.current_y) == self.motor.position()  # estimate included
        assert report.apex in ("yes", "no")

    @invariant()
    def within_limits(self) -> None:
        x, y = self.motor.position()
        assert LIMITS[0] <= x <= LIMITS[1]
        assert LIMITS[2] <= y <= LIMITS[3]

    @invariant()
    def events_alternate(self) -> None:
        moving: str | None = None
        for event in self.events:
            data = event.data
            if data["action"] == "start":
                assert moving is None
                moving = data["direction"]
            else:
                assert data["direction"] == moving
                moving = None
        assert moving == self.motor.moving

    def teardown(self) -> None:
        self.hw.stop_failures = 0
        self.ptz.close()
        assert self.motor.moving is None
        assert self.clock.pending() == 0
        assert self.events[-1].data["reason"] == "close"


TestPtzMachine = PtzMachine.TestCase
TestPtzMachine.settings = settings(max_examples=300, stateful_step_count=50, deadline=None)
