"""A Hypothesis state machine over the PTZ controller, on the fake clock and the virtual motor.

Rules: press, step, release, tick (time passes, timers fire), close a session, standby.
Invariants: the motor never moves longer than the cap (or step duration) since the last press,
nor past the moment it reaches its end stop; it is not moving after a release, a standby or its
owner's session closing; the position stays within the limits; every stop succeeds; the
controller, the motor (the estimate included) and the events agree.
"""

from __future__ import annotations

from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from iotvideo_signaling._virtual_motor import VirtualMotor
from iotvideo_signaling.events import Event
from iotvideo_signaling.hardware import Hardware, PtzLimits
from iotvideo_signaling.ptz import DIRECTIONS, ManualClock, PtzController, default_move_cap

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
    """PTZ hooks driving a VirtualMotor, with or without position feedback."""

    def __init__(self, motor: VirtualMotor, clock: ManualClock, *, feedback: bool) -> None:
        self.motor = motor
        self.clock = clock
        self.feedback = feedback
        self.end_stop_at = 0.0  # when the current run reaches its end stop

    def ptz_start(self, direction: str) -> None:
        axis = 0 if direction in ("left", "right") else 1
        distance = _distance(self.motor.position(), direction)
        self.end_stop_at = self.clock.now + distance / SPEED[axis]
        self.motor.start(direction)

    def ptz_stop(self) -> None:
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
        self.ptz = PtzController(
            self.hw,
            publish=self.events.append,
            clock=self.clock,
            scheduler=self.clock,
            move_cap_s=move_cap_s,
            step_size=STEP,
        )
        self.deadline = 0.0  # the latest time the motor may still be moving
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

    @rule(direction=directions, visitor=visitors)
    def press(self, direction: str, visitor: Any) -> None:
        report = self.ptz.press(direction, visitor)
        self.deadline = self.clock.now + self.cap(direction)
        self.owner = visitor
        if report.apex == "yes":
            assert self.motor.moving is None
            assert _blocked((report.current_x, report.current_y), direction)
        else:
            assert self.motor.moving == direction

    @rule(direction=directions)
    def step(self, direction: str) -> None:
        report = self.ptz.step(direction)
        axis = 0 if direction in ("left", "right") else 1
        self.deadline = self.clock.now + min(self.cap(direction), STEP / SPEED[axis])
        self.owner = None
        assert (self.motor.moving is None) == (report.apex == "yes")

    @rule(visitor=visitors)
    def release(self, visitor: Any) -> None:
        self.ptz.release(visitor)
        assert self.motor.moving is None

    @rule(seconds=durations)
    def tick(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(visitor=visitors)
    def close_session(self, visitor: Any) -> None:
        was_moving = self.motor.moving is not None
        self.ptz.visitor_gone(visitor)
        if visitor is not None and visitor == self.owner:
            assert self.motor.moving is None
        elif was_moving:
            assert self.motor.moving is not None

    @rule()
    def standby(self) -> None:
        self.ptz.stop("standby")
        assert self.motor.moving is None

    # -- invariants ------------------------------------------------------------------------------

    @invariant()
    def never_moving_past_the_cap(self) -> None:
        if self.motor.moving is not None:
            assert self.clock.now <= self.deadline + EPSILON

    @invariant()
    def never_moving_past_the_end_stop(self) -> None:
        if self.motor.moving is not None:
            assert self.clock.now <= self.hw.end_stop_at + EPSILON

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
        self.ptz.close()
        assert self.motor.moving is None
        assert self.clock.pending() == 0
        assert self.events[-1].data["reason"] == "close"


TestPtzMachine = PtzMachine.TestCase
TestPtzMachine.settings = settings(max_examples=300, stateful_step_count=50, deadline=None)
