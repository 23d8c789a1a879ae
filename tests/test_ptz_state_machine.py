"""Hypothesis state machines over the pure PTZ machine and over the controller that drives it.

:class:`PureMachine` feeds :func:`~iotvideo_signaling._ptz_machine.transition` every event in
every phase, answers its motor commands with success or failure, and fires its timers, keeping a
model of the motor and of the armed timers. Invariants: an event a phase cannot receive raises
UnexpectedEvent and changes nothing; a motor command is always the last action and the phase
waits for its outcome; IDLE never leaves the motor running, not even after a failed stop; a
running motor is MOVING with its deadline and end-stop timers armed, or STOP_OWED with its retry
timer armed (none once closed); timers are armed only while MOVING or STOP_OWED, with the tokens
the move records; the announcements follow the motor; answering every command with success and
firing every timer always ends IDLE with the motor stopped. (The model takes a start that raised
as a motor that did not start.)

:class:`PtzMachine` drives the controller on the fake clock and the virtual motor, started
explicitly or by its first command. Rules: press, step, release, tick (time passes, timers fire),
close a session, standby (the ``allow_start`` predicate turns False, then a stop) and wake, and
a transient fault that makes the next few ``ptz_stop`` calls fail.
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

from hypothesis import assume, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from iotvideo_signaling import _ptz_events as ev
from iotvideo_signaling import _ptz_machine as m
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
        start=st.booleans(),
    )
    def setup(self, feedback: bool, x: int, y: int, move_cap_s: float | None, start: bool) -> None:
        self.ptz.close()
        # without feedback the estimate starts at the centre, so the motor does too: they must agree
        self._build(feedback=feedback, position=(x, y) if feedback else CENTRE, move_cap_s=move_cap_s)
        if start:
            self.ptz.start()  # else the first command starts it

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


# -- the pure machine ------------------------------------------------------------------------------

SETTLED = (m.Phase.IDLE, m.Phase.MOVING, m.Phase.STOP_OWED)
OUTCOMES = (ev.StartSucceeded, ev.StartFailed, ev.StopSucceeded, ev.StopFailed)

positions = st.one_of(
    st.tuples(st.integers(LIMITS[0], LIMITS[1]), st.integers(LIMITS[2], LIMITS[3])),
    st.tuples(st.sampled_from(LIMITS[:2]), st.sampled_from(LIMITS[2:])),  # on the end stops
)
feedbacks = st.one_of(st.none(), positions)
geometries = st.builds(ev.Geometry, st.just(LIMITS), st.just(SPEED), feedbacks)
events = st.one_of(
    st.builds(ev.Press, directions, visitors, geometries, st.booleans()),
    st.builds(ev.Step, directions, visitors, geometries, st.booleans()),
    st.builds(ev.Stop, st.sampled_from(["release", "standby"]), feedbacks),
    st.builds(ev.VisitorGone, visitors, feedbacks),
    st.builds(ev.Startup, st.one_of(st.none(), geometries)),
    st.builds(ev.Close, feedbacks),
    st.builds(ev.timer_due, st.sampled_from(list(ev.Timer)), st.integers(0, 40), feedbacks),  # mostly stale
)
outcomes = st.sampled_from([ev.StartSucceeded(), ev.StartFailed(), ev.StopSucceeded(), ev.StopFailed()])


def _answers(command: ev.StartMotor | ev.StopMotor | None, event: ev.Event) -> bool:
    if isinstance(command, ev.StartMotor):
        return isinstance(event, (ev.StartSucceeded, ev.StartFailed))
    if isinstance(command, ev.StopMotor):
        return isinstance(event, (ev.StopSucceeded, ev.StopFailed))
    return False


class PureMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.state = m.initial_state(move_cap_s=None, step_size=STEP)
        self.now = 0.0
        self.motor: str | None = None  # what the (modelled) hardware does
        self.announced: str | None = None  # what the announcements say it does
        self.command: ev.StartMotor | ev.StopMotor | None = None  # awaiting its outcome
        self.timers: dict[ev.Timer, tuple[int, float]] = {}  # armed: token and due time

    @initialize(move_cap_s=st.one_of(st.none(), st.floats(min_value=0.1, max_value=10.0)))
    def setup(self, move_cap_s: float | None) -> None:
        self.state = m.initial_state(move_cap_s=move_cap_s, step_size=STEP)

    def feed(self, event: ev.Event) -> None:
        before = self.state
        expected = _answers(self.command, event) if self.command is not None else not isinstance(event, OUTCOMES)
        try:
            after, actions = m.transition(before, event, self.now)
        except m.UnexpectedEvent:
            assert not expected, event
            return
        assert expected, event
        assert m.transition(before, event, self.now) == (after, actions)  # pure
        self.state = after
        if any(isinstance(action, ev.Refuse) for action in actions):
            assert (after, len(actions)) == (before, 1)
        commands = [a for a in actions if isinstance(a, (ev.StartMotor, ev.StopMotor))]
        assert len(commands) <= 1
        assert not commands or actions[-1] is commands[0]
        self.command = commands[0] if commands else None
        for action in actions:
            if isinstance(action, ev.ArmTimer):
                self.timers[action.timer] = (action.token, self.now + action.delay)
            elif isinstance(action, ev.CancelTimers):
                self.timers.clear()
            elif isinstance(action, ev.Announce):
                self.announce(action)

    def announce(self, action: ev.Announce) -> None:
        if action.action == "start":
            assert self.announced is None
            assert action.direction == self.motor  # announced once the start succeeded
            self.announced = action.direction
        else:
            assert action.direction == self.announced
            assert self.motor is None  # announced once the stop succeeded
            self.announced = None

    # -- rules -------------------------------------------------------------------------------------

    @rule(event=events)
    def event(self, event: ev.Event) -> None:
        self.feed(event)

    @precondition(lambda self: self.command is not None)
    @rule(succeed=st.booleans())
    def answer(self, succeed: bool) -> None:
        command = self.command
        if isinstance(command, ev.StartMotor):
            if succeed:
                self.motor = command.direction
            self.feed(ev.StartSucceeded() if succeed else ev.StartFailed())
        else:
            if succeed:
                self.motor = None
            self.feed(ev.StopSucceeded() if succeed else ev.StopFailed())

    @rule(event=outcomes)
    def stray_outcome(self, event: ev.Event) -> None:
        assume(not _answers(self.command, event))
        self.feed(event)

    @precondition(lambda self: self.command is None and self.timers)
    @rule(feedback=feedbacks)
    def fire_next_timer(self, feedback: tuple[int, int] | None) -> None:
        timer, (token, due) = min(self.timers.items(), key=lambda item: item[1][1])
        self.now = max(self.now, due)
        del self.timers[timer]
        self.feed(ev.timer_due(timer, token, feedback))

    @rule(seconds=durations)
    def tick(self, seconds: float) -> None:
        self.now += seconds  # timers may fire late: a slow hook held the turn

    # -- invariants --------------------------------------------------------------------------------

    @invariant()
    def the_phase_waits_for_the_command(self) -> None:
        phase = self.state.phase
        if self.command is None:
            assert phase in SETTLED
        elif isinstance(self.command, ev.StartMotor):
            assert phase is m.Phase.STARTING
        else:
            assert phase in (m.Phase.STOPPING, m.Phase.UNWINDING)

    @invariant()
    def a_running_motor_is_always_being_stopped(self) -> None:
        state, move = self.state, self.state.move
        if self.command is not None:
            return
        if state.phase is m.Phase.IDLE:
            assert self.motor is None and move is None  # even after a failed stop
        elif state.phase is m.Phase.MOVING:
            assert move is not None and self.motor == move.direction
            assert set(self.timers) == {ev.Timer.DEADLINE, ev.Timer.END_STOP}
        else:
            assert move is not None and self.motor == move.direction and move.owed is not None
            assert set(self.timers) == (set() if state.closed else {ev.Timer.RETRY})

    @invariant()
    def timers_only_while_moving_or_owing_with_the_tokens_of_the_move(self) -> None:
        move = self.state.move
        if self.timers:
            assert self.state.phase in (m.Phase.MOVING, m.Phase.STOP_OWED)
            assert move is not None
            tokens = {ev.Timer.DEADLINE: move.deadline_token, ev.Timer.END_STOP: move.end_token,
                      ev.Timer.RETRY: move.retry_token}
            assert {timer: token for timer, (token, _) in self.timers.items()} == {
                timer: token for timer, token in tokens.items() if token is not None
            }

    @invariant()
    def announcements_follow_the_motor(self) -> None:
        assert self.announced == self.motor

    @invariant()
    def the_estimate_is_within_the_limits(self) -> None:
        if self.state.estimate is not None:
            x, y = self.state.estimate
            assert LIMITS[0] <= x <= LIMITS[1] and LIMITS[2] <= y <= LIMITS[3]

    def teardown(self) -> None:
        """Every move ends once commands succeed and timers fire (a closed STOP_OWED needs a stop by hand)."""
        for _ in range(100):
            if self.command is not None:
                self.answer(succeed=True)
            elif self.timers:
                self.fire_next_timer(feedback=None)
            elif self.state.move is not None:
                self.feed(ev.Stop("shutdown", None))
            else:
                break
        assert (self.state.phase, self.motor, self.timers) == (m.Phase.IDLE, None, {})


TestPureMachine = PureMachine.TestCase
TestPureMachine.settings = settings(max_examples=300, stateful_step_count=50, deadline=None)
