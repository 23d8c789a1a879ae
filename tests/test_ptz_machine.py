"""The pure PTZ state machine, transition by transition: no driver, no clock, no hardware."""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable
from typing import Optional

import pytest

from iotvideo_signaling import _ptz_events as ev
from iotvideo_signaling import _ptz_machine as m
from iotvideo_signaling._ptz_events import (
    Announce,
    ArmTimer,
    CancelTimers,
    Geometry,
    LogGaveUp,
    LogRetry,
    LogStopFailed,
    Refusal,
    Refuse,
    StartMotor,
    StopMotor,
    Timer,
)
from iotvideo_signaling._ptz_machine import UNWIND, Phase, State, transition
from iotvideo_signaling.hardware import PtzLimits

LIMITS: PtzLimits = (0, 3600, 0, 900)
SPEED = (600.0, 300.0)
CENTRE = (1800, 450)
X_CAP = m.default_move_cap(3600, 600.0)  # 8.0 s
CANCEL = CancelTimers()


def geo(feedback: Optional[tuple[int, int]] = None) -> Geometry:
    return Geometry(LIMITS, SPEED, feedback)


def idle(*, move_cap_s: Optional[float] = None) -> State:
    return m.initial_state(move_cap_s=move_cap_s, step_size=200)


def press(direction: str, visitor: Hashable | None = None, *, at: Optional[tuple[int, int]] = None) -> ev.Press:
    return ev.Press(direction, visitor, geo(at), True)


def moving(direction: str = "right", visitor: Hashable | None = "alice", *, state: Optional[State] = None) -> State:
    state, _ = transition(state or idle(), press(direction, visitor), 0.0)
    state, _ = transition(state, ev.StartSucceeded(), 0.0)
    assert state.phase is Phase.MOVING
    return state


def owing(reason: str = "release") -> State:
    state, _ = transition(moving(), ev.Stop(reason, None), 1.0)
    state, _ = transition(state, ev.StopFailed(), 1.0)
    assert state.phase is Phase.STOP_OWED
    return state


# -- starting ------------------------------------------------------------------------------------


def test_a_press_starts_and_its_success_arms_both_timers() -> None:
    state, actions = transition(idle(), press("right", "alice"), 5.0)
    assert (state.phase, actions) == (Phase.STARTING, (StartMotor("right"),))
    assert state.move is not None and state.move.started_at == 5.0
    state, actions = transition(state, ev.StartSucceeded(), 5.0)
    assert state.phase is Phase.MOVING
    assert actions == (
        ArmTimer(Timer.DEADLINE, X_CAP, 1),
        ArmTimer(Timer.END_STOP, 3.0, 2),  # 1800 steps to max_x at 600 steps/s
        Announce("start", "right", "press", CENTRE),
    )
    assert state.move is not None and (state.move.deadline_token, state.move.end_token) == (1, 2)


def test_a_step_lasts_step_size_over_speed_and_stops_as_a_step() -> None:
    state, _ = transition(idle(), ev.Step("up", None, geo(), True), 0.0)
    state, actions = transition(state, ev.StartSucceeded(), 0.0)
    assert actions[0] == ArmTimer(Timer.DEADLINE, 200 / 300, 1)
    state, actions = transition(state, ev.DeadlineDue(1, None), 200 / 300)
    assert actions == (CANCEL, StopMotor("step"))
    state, actions = transition(state, ev.StopSucceeded(), 200 / 300)
    assert (state.phase, actions) == (Phase.IDLE, (Announce("stop", "up", "step", (1800, 650)),))


def test_a_press_toward_the_end_stop_it_is_at_sends_nothing() -> None:
    state, actions = transition(idle(), press("left", at=(0, 450)), 0.0)
    assert (state.phase, actions) == (Phase.IDLE, ())
    assert (state.estimate, state.last_direction) == ((0, 450), "left")
    assert m.apex((0, 450), state.last_direction, LIMITS) == "yes"


def test_a_failed_start_unwinds_with_a_stop_that_publishes_nothing() -> None:
    state, _ = transition(idle(), press("down", at=(100, 200)), 0.0)
    state, actions = transition(state, ev.StartFailed(), 0.0)
    assert (state.phase, actions, state.move, state.estimate) == (
        Phase.UNWINDING, (StopMotor(UNWIND),), None, (100, 200)
    )
    assert transition(state, ev.StopSucceeded(), 0.0) == (dataclasses.replace(state, phase=Phase.IDLE), ())
    failed, actions = transition(state, ev.StopFailed(), 0.0)
    assert (failed.phase, actions) == (Phase.IDLE, (LogStopFailed(UNWIND),))


# -- while moving --------------------------------------------------------------------------------


def test_a_press_in_the_same_direction_rearms_the_deadline_only() -> None:
    state = moving("right", "alice")
    state, actions = transition(state, ev.Step("right", "bob", geo(), True), 1.0)
    assert state.phase is Phase.MOVING
    assert actions == (ArmTimer(Timer.DEADLINE, 200 / 600, 3),)
    assert state.move is not None and (state.move.kind, state.move.visitor, state.move.start) == ("step", "bob", CENTRE)


def test_a_redirect_stops_then_starts() -> None:
    state, actions = transition(moving("right"), press("up", "alice"), 1.0)
    assert (state.phase, actions) == (Phase.STOPPING, (CANCEL, StopMotor("redirect")))
    state, actions = transition(state, ev.StopSucceeded(), 1.0)
    assert state.phase is Phase.STARTING
    assert actions == (Announce("stop", "right", "redirect", (2400, 450)), StartMotor("up"))
    assert state.move is not None and state.move.start == (2400, 450)


def test_a_redirect_whose_stop_fails_does_not_start() -> None:
    state, _ = transition(moving("right"), press("up"), 1.0)
    state, actions = transition(state, ev.StopFailed(), 1.0)
    assert state.phase is Phase.STOP_OWED
    assert actions == (LogRetry("redirect", 1, m.STOP_RETRY_S), ArmTimer(Timer.RETRY, m.STOP_RETRY_S, 3))
    assert state.move is not None and (state.move.direction, state.move.owed) == ("right", "redirect")


def test_a_press_into_the_end_stop_of_the_move_stops_it_as_end_stop() -> None:
    state, actions = transition(moving("right"), press("right", at=(3600, 450)), 3.0)
    assert actions == (CANCEL, StopMotor("end_stop"))
    state, actions = transition(state, ev.StopSucceeded(), 3.0)
    assert (state.phase, actions) == (Phase.IDLE, (Announce("stop", "right", "end_stop", (3600, 450)),))


@pytest.mark.parametrize(
    ("feedback", "now", "expected"),
    [(None, 2.9, (3600, 450)), ((3600, 451), 3.0, (3600, 451)), ((3700, 451), 3.0, (3600, 451))],
    ids=["estimate-put-on-the-end-stop", "feedback", "feedback-clamped"],
)
def test_the_end_stop_timer_stops_on_the_end_stop(
    feedback: Optional[tuple[int, int]], now: float, expected: tuple[int, int]
) -> None:
    state, actions = transition(moving("right"), ev.EndStopDue(2, feedback), now)
    assert actions == (CANCEL, StopMotor("end_stop"))
    state, actions = transition(state, ev.StopSucceeded(), now)
    assert actions == (Announce("stop", "right", "end_stop", expected),)
    assert state.estimate == expected


def test_the_end_stop_timer_looks_again_when_feedback_says_it_is_short() -> None:
    state, actions = transition(moving("right"), ev.EndStopDue(2, (3000, 450)), 3.0)
    assert (state.phase, actions) == (Phase.MOVING, (ArmTimer(Timer.END_STOP, 1.0, 3),))
    state, actions = transition(state, ev.EndStopDue(3, (3599, 450)), 4.0)
    assert actions == (ArmTimer(Timer.END_STOP, m.RECHECK_S, 4),)
    assert transition(state, ev.EndStopDue(2, None), 4.0) == (state, ())  # the replaced timer is stale


def test_the_deadline_stops_a_press_as_cap() -> None:
    state, actions = transition(moving("left"), ev.DeadlineDue(1, (1000, 450)), X_CAP)
    assert actions == (CANCEL, StopMotor("cap"))
    assert transition(state, ev.StopSucceeded(), X_CAP)[1] == (Announce("stop", "left", "cap", (1000, 450)),)


@pytest.mark.parametrize("timer", [ev.DeadlineDue, ev.EndStopDue, ev.RetryDue])
def test_stale_timers_change_nothing(timer: type[ev.DeadlineDue] | type[ev.EndStopDue] | type[ev.RetryDue]) -> None:
    for state in (idle(), moving(), owing()):
        assert transition(state, timer(99, None), 1.0) == (state, ())


def test_only_the_owner_leaving_stops_the_move() -> None:
    state = moving("right", "alice")
    for visitor in ("bob", None):
        assert transition(state, ev.VisitorGone(visitor, None), 1.0) == (state, ())
    state, actions = transition(state, ev.VisitorGone("alice", None), 1.0)
    assert actions == (CANCEL, StopMotor("session_closed"))
    assert transition(moving("right", None), ev.VisitorGone(None, None), 1.0)[1] == ()


def test_a_stop_when_idle_does_nothing() -> None:
    assert transition(idle(), ev.Stop("release", None), 0.0) == (idle(), ())


# -- failed stops --------------------------------------------------------------------------------


def test_failed_stops_are_retried_with_a_bounded_back_off() -> None:
    state = owing("release")
    delays = []
    for attempt in range(2, 6):
        assert state.move is not None and state.move.retry_token is not None
        state, actions = transition(state, ev.RetryDue(state.move.retry_token, None), 10.0)
        assert actions == (CANCEL, StopMotor("release"))
        state, actions = transition(state, ev.StopFailed(), 10.0)
        log, arm = actions
        assert isinstance(log, LogRetry) and isinstance(arm, ArmTimer)
        assert (log.attempt, arm.timer, arm.delay) == (attempt, Timer.RETRY, log.delay)
        delays.append(arm.delay)
    assert delays == [2 * m.STOP_RETRY_S, 4 * m.STOP_RETRY_S, m.MAX_STOP_RETRY_S, m.MAX_STOP_RETRY_S]


def test_an_owed_stop_keeps_its_reason_but_a_new_stop_is_announced_with_its_own() -> None:
    state = owing("cap")
    state, actions = transition(state, press("right"), 2.0)  # settles the owed stop first, same direction
    assert actions == (CANCEL, StopMotor("cap"))
    state, _ = transition(state, ev.StopFailed(), 2.0)
    assert state.move is not None and (state.move.owed, state.move.retries) == ("cap", 2)
    state, actions = transition(state, ev.Stop("release", None), 2.0)
    assert actions == (CANCEL, StopMotor("release"))
    assert transition(state, ev.StopSucceeded(), 2.0)[1][0] == Announce("stop", "right", "release", (3000, 450))


def test_a_stop_with_no_move_that_fails_is_only_logged() -> None:
    state, actions = transition(idle(), ev.Startup(None), 0.0)
    assert (state.phase, actions) == (Phase.STOPPING, (StopMotor("startup"),))
    state, actions = transition(state, ev.StopFailed(), 0.0)
    assert (state.phase, actions) == (Phase.IDLE, (LogStopFailed("startup"),))


def test_startup_announces_the_position_it_knows() -> None:
    state, _ = transition(idle(), ev.Startup(geo()), 0.0)
    assert transition(state, ev.StopSucceeded(), 0.0)[1] == (Announce("stop", None, "startup", CENTRE),)
    state, _ = transition(idle(), ev.Startup(None), 0.0)
    assert transition(state, ev.StopSucceeded(), 0.0)[1] == (Announce("stop", None, "startup", None),)


# -- refusals and close --------------------------------------------------------------------------


def test_a_press_that_is_not_allowed_changes_nothing() -> None:
    for state in (idle(), moving("left"), owing()):
        event = ev.Press("right", "bob", geo(), False)
        assert transition(state, event, 1.0) == (state, (Refuse(Refusal.NOT_ALLOWED, "press", "right"),))


def test_close_always_stops_and_gives_up_after_its_own_failure() -> None:
    state, actions = transition(idle(), ev.Close(None), 0.0)
    assert (state.phase, state.closed, actions) == (Phase.STOPPING, True, (StopMotor("close"),))
    state, actions = transition(owing("cap"), ev.Close((900, 450)), 3.0)
    assert (state.closed, actions) == (True, (CANCEL, StopMotor("close")))
    state, actions = transition(state, ev.StopFailed(), 3.0)
    assert (state.phase, actions) == (Phase.STOP_OWED, (LogGaveUp("close", "right"),))
    assert state.move is not None and state.move.retry_token is None  # no timer after close
    assert transition(state, ev.Close(None), 3.0) == (state, ())
    assert transition(state, ev.Step("up", None, geo(), True), 3.0) == (
        state, (Refuse(Refusal.CLOSED, "step", "up"),)
    )
    state, actions = transition(state, ev.Stop("shutdown", None), 4.0)  # a stop by hand still tries
    assert actions == (StopMotor("shutdown"),)
    state, actions = transition(state, ev.StopSucceeded(), 4.0)
    assert (state.phase, state.move, actions[0].reason) == (Phase.IDLE, None, "shutdown")  # type: ignore[union-attr]


# -- the table -----------------------------------------------------------------------------------


def _in(phase: Phase) -> State:
    if phase is Phase.IDLE:
        return idle()
    if phase is Phase.MOVING:
        return moving()
    if phase is Phase.STOP_OWED:
        return owing()
    if phase is Phase.STARTING:
        return transition(idle(), press("left"), 0.0)[0]
    if phase is Phase.STOPPING:
        return transition(moving(), ev.Stop("release", None), 0.0)[0]
    return transition(transition(idle(), press("left"), 0.0)[0], ev.StartFailed(), 0.0)[0]


EVENTS: list[ev.Event] = [
    ev.Startup(geo()), press("up"), ev.Step("up", None, geo(), True), ev.Stop("release", None),
    ev.VisitorGone("alice", None), ev.DeadlineDue(1, None), ev.EndStopDue(2, None), ev.RetryDue(3, None),
    ev.Close(None), ev.StartSucceeded(), ev.StartFailed(), ev.StopSucceeded(), ev.StopFailed(),
]
OUTCOMES = {
    Phase.STARTING: (ev.StartSucceeded, ev.StartFailed),
    Phase.STOPPING: (ev.StopSucceeded, ev.StopFailed),
    Phase.UNWINDING: (ev.StopSucceeded, ev.StopFailed),
}
COMMANDS = (StartMotor, StopMotor)
WAITING_ON = {StartMotor: Phase.STARTING, StopMotor: Phase.STOPPING}


@pytest.mark.parametrize("phase", list(Phase), ids=[p.name for p in Phase])
@pytest.mark.parametrize("event", EVENTS, ids=[type(e).__name__ for e in EVENTS])
def test_the_table_is_total(phase: Phase, event: ev.Event) -> None:
    """Every event in every phase has a transition, or is one the driver can never send."""
    state = _in(phase)
    outcome = isinstance(event, (ev.StartSucceeded, ev.StartFailed, ev.StopSucceeded, ev.StopFailed))
    if not isinstance(event, OUTCOMES[phase]) if phase in OUTCOMES else outcome:
        with pytest.raises(m.UnexpectedEvent):
            transition(state, event, 1.0)
        return
    new, actions = transition(state, event, 1.0)
    assert transition(state, event, 1.0) == (new, actions)  # pure: the same answer every time
    commands = [a for a in actions if isinstance(a, COMMANDS)]
    assert len(commands) <= 1
    if commands:
        assert actions[-1] is commands[0]
        assert new.phase in (WAITING_ON[type(commands[0])], Phase.UNWINDING)
    else:
        assert new.phase not in OUTCOMES
