"""PtzController, its schedulers and the virtual motor.

Every test runs on a :class:`ManualClock` except ``test_real_clock_wiring`` and the
:class:`ThreadScheduler` tests, which prove the threads are wired, never how fast they are.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from iotvideo_signaling._virtual_motor import VirtualMotor
from iotvideo_signaling.events import Event
from iotvideo_signaling.hardware import Hardware, PtzLimits
from iotvideo_signaling.ptz import (
    DIRECTIONS,
    MAX_MOVE_CAP_S,
    MAX_STOP_RETRY_S,
    MIN_MOVE_CAP_S,
    STOP_RETRY_S,
    ManualClock,
    PtzController,
    PtzRefused,
    PtzReport,
    ThreadScheduler,
    default_move_cap,
)

LIMITS: PtzLimits = (0, 3600, 0, 900)
SPEED = (600.0, 300.0)
CENTRE = (1800, 450)
X_CAP = default_move_cap(3600, 600.0)  # 8.0 s
Y_CAP = default_move_cap(900, 300.0)  # 4.25 s


class MotorHardware(Hardware):
    """PTZ hooks driving a VirtualMotor; any hook can be made to fail, and calls are recorded.

    A hook named in ``failing`` always fails; ``fail_next[name] = n`` fails its next n calls.
    """

    def __init__(
        self, motor: VirtualMotor, *, feedback: bool = True, declared_speed: tuple[float, float] | None = None
    ) -> None:
        self.motor = motor
        self.feedback = feedback
        self.declared_speed = declared_speed
        self.failing: set[str] = set()
        self.fail_next: dict[str, int] = {}
        self.calls: list[str] = []

    def _hook(self, name: str) -> None:
        self.calls.append(name)
        if self.fail_next.get(name, 0) > 0:
            self.fail_next[name] -= 1
            raise OSError(f"{name} failed")
        if name in self.failing:
            raise OSError(f"{name} failed")

    def ptz_start(self, direction: str) -> None:
        self._hook("ptz_start")
        self.motor.start(direction)

    def ptz_stop(self) -> None:
        self._hook("ptz_stop")
        self.motor.stop()

    def ptz_position(self) -> tuple[int, int] | None:
        self._hook("ptz_position")
        return self.motor.position() if self.feedback else None

    def ptz_limits(self) -> PtzLimits:
        self._hook("ptz_limits")
        return self.motor.limits()

    def ptz_speed(self) -> tuple[float, float]:
        self._hook("ptz_speed")
        return self.declared_speed or self.motor.speed()


@dataclasses.dataclass
class Rig:
    clock: ManualClock
    motor: VirtualMotor
    hw: MotorHardware
    events: list[Event]
    ptz: PtzController

    def ptz_events(self) -> list[dict[str, Any]]:
        return [dict(event.data) for event in self.events if event.kind == "ptz"]

    def last(self) -> dict[str, Any]:
        return self.ptz_events()[-1]

    def reasons(self) -> list[tuple[str, str]]:
        return [(e["action"], e["reason"]) for e in self.ptz_events()]


def make_rig(
    *,
    position: tuple[int, int] = CENTRE,
    limits: PtzLimits = LIMITS,
    speed: tuple[float, float] = SPEED,
    feedback: bool = True,
    declared_speed: tuple[float, float] | None = None,
    move_cap_s: float | None = None,
    step_size: int = 200,
    allow_start: Callable[[], bool] | None = None,
) -> Rig:
    clock = ManualClock(100.0)
    motor = VirtualMotor(limits=limits, speed=speed, clock=clock, position=position)
    hw = MotorHardware(motor, feedback=feedback, declared_speed=declared_speed)
    events: list[Event] = []
    ptz = PtzController(
        hw,
        publish=events.append,
        clock=clock,
        scheduler=clock,
        move_cap_s=move_cap_s,
        step_size=step_size,
        allow_start=allow_start,
    )
    ptz.start()  # as the Device does
    return Rig(clock, motor, hw, events, ptz)


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = make_rig()
    yield r
    r.ptz.close()


def assert_alternating(events: Sequence[dict[str, Any]]) -> None:
    """A start is always followed by a stop of the same direction before the next start."""
    moving: str | None = None
    for event in events:
        if event["action"] == "start":
            assert moving is None, events
            moving = event["direction"]
        else:
            assert event["direction"] == moving, events
            moving = None


# -- values and helpers --------------------------------------------------------------------------


def test_report_fields_in_reply_order() -> None:
    report = PtzReport("no", 1, 2, 0, 10, -5, 5)
    assert list(report.fields()) == ["apex", "current_x", "current_y", "max_x", "max_y", "min_x", "min_y"]
    assert report.fields() == {
        "apex": "no",
        "current_x": 1,
        "current_y": 2,
        "max_x": 10,
        "max_y": 5,
        "min_x": 0,
        "min_y": -5,
    }
    with pytest.raises(AttributeError):
        report.apex = "yes"  # type: ignore[misc]
    assert not hasattr(report, "__dict__")


@pytest.mark.parametrize(
    ("span", "speed", "expected"),
    [
        (3600, 600.0, 8.0),
        (900, 300.0, 4.25),
        (100, 600.0, MIN_MOVE_CAP_S),
        (10**6, 1.0, MAX_MOVE_CAP_S),
        (100, 0.0, MAX_MOVE_CAP_S),
    ],
)
def test_default_move_cap(span: int, speed: float, expected: float) -> None:
    assert default_move_cap(span, speed) == pytest.approx(expected)


def test_bad_arguments(rig: Rig) -> None:
    with pytest.raises(ValueError, match="direction"):
        rig.ptz.press("north")
    with pytest.raises(ValueError, match="direction"):
        rig.ptz.step("ptz_left")
    with pytest.raises(ValueError, match="reason"):
        rig.ptz.stop("")
    for kwargs in ({"move_cap_s": 0.0}, {"move_cap_s": float("nan")}, {"step_size": 0}, {"step_size": True}):
        with pytest.raises(ValueError):
            PtzController(rig.hw, publish=rig.events.append, clock=rig.clock, scheduler=rig.clock, **kwargs)


# -- press, hold, release ------------------------------------------------------------------------


@pytest.mark.parametrize("direction", sorted(DIRECTIONS))
def test_press_hold_release_moves_the_right_way(rig: Rig, direction: str) -> None:
    report = rig.ptz.press(direction, "alice")
    assert (report.current_x, report.current_y) == CENTRE
    assert report.apex == "no"
    assert rig.ptz.direction == direction
    rig.clock.advance(0.5)
    report = rig.ptz.release("alice")
    dx, dy = DIRECTIONS[direction]
    assert (report.current_x, report.current_y) == (CENTRE[0] + dx * 300, CENTRE[1] + dy * 150)
    assert rig.ptz.direction is None
    assert rig.motor.moving is None
    rig.clock.advance(10)
    assert rig.motor.position() == (report.current_x, report.current_y)
    assert rig.reasons() == [("stop", "startup"), ("start", "press"), ("stop", "release")]
    assert rig.last() == {
        "action": "stop",
        "direction": direction,
        "reason": "release",
        "x": report.current_x,
        "y": report.current_y,
    }
    assert rig.clock.pending() == 0


def test_events_carry_kind_and_wall_time(rig: Rig) -> None:
    before = time.time()
    rig.ptz.press("left")
    event = rig.events[-1]
    assert event.kind == "ptz"
    assert set(event.data) == {"action", "direction", "reason", "x", "y"}
    assert before <= event.time <= time.time()


def test_redirect_without_release(rig: Rig) -> None:
    rig.ptz.press("right", "alice")
    rig.clock.advance(1.0)
    report = rig.ptz.press("up", "alice")
    assert rig.motor.moving == "up"
    assert (report.current_x, report.current_y) == (2400, 450)
    rig.clock.advance(1.0)
    assert rig.motor.position() == (2400, 750)
    assert rig.reasons()[1:] == [("start", "press"), ("stop", "redirect"), ("start", "press")]
    assert [e["direction"] for e in rig.ptz_events()[1:]] == ["right", "right", "up"]
    assert_alternating(rig.ptz_events())


def test_repeated_press_refreshes_the_cap() -> None:
    r = make_rig(position=(0, 450), move_cap_s=2.0, speed=(100.0, 100.0))
    r.ptz.press("right")
    r.clock.advance(1.5)
    r.ptz.press("right")  # the finger never lifted, or a second press: the cap starts again
    r.clock.advance(1.9)
    assert r.motor.moving == "right"
    assert r.reasons().count(("start", "press")) == 1  # the motor was not restarted
    r.clock.advance(0.1)
    assert r.motor.moving is None
    assert r.last()["reason"] == "cap"
    assert r.motor.position() == (350, 450)


def test_release_while_idle_is_idempotent(rig: Rig) -> None:
    stops = rig.hw.calls.count("ptz_stop")
    first = rig.ptz.release()
    second = rig.ptz.release("bob")
    assert first == second
    assert (first.current_x, first.current_y, first.apex) == (*CENTRE, "no")
    assert rig.hw.calls.count("ptz_stop") == stops
    assert rig.reasons() == [("stop", "startup")]


def test_release_after_a_press_in_another_direction(rig: Rig) -> None:
    """The release of the first press arrives after a redirect: it stops the current move."""
    rig.ptz.press("left", "alice")
    rig.clock.advance(0.2)
    rig.ptz.press("right", "alice")
    rig.clock.advance(0.2)
    rig.ptz.release("alice")
    assert rig.motor.moving is None
    assert rig.motor.position() == CENTRE
    assert rig.last()["reason"] == "release"


def test_release_from_another_visitor_stops(rig: Rig) -> None:
    rig.ptz.press("down", "alice")
    rig.ptz.release("bob")
    assert rig.motor.moving is None


# -- end stops ------------------------------------------------------------------------------------


@pytest.mark.parametrize("feedback", [True, False], ids=["feedback", "estimate"])
@pytest.mark.parametrize(
    ("direction", "expected"),
    [("right", (3600, 450)), ("left", (0, 450)), ("up", (1800, 900)), ("down", (1800, 0))],
)
def test_end_stops(direction: str, expected: tuple[int, int], feedback: bool) -> None:
    r = make_rig(feedback=feedback)
    r.ptz.press(direction)
    r.clock.advance(60)
    assert r.motor.moving is None
    assert r.motor.position() == expected
    assert r.last() == {
        "action": "stop",
        "direction": direction,
        "reason": "end_stop",
        "x": expected[0],
        "y": expected[1],
    }
    report = r.ptz.report()
    assert (report.current_x, report.current_y, report.apex) == (*expected, "yes")
    # pressing on toward the end stop does not start the motor and is not an error
    report = r.ptz.press(direction)
    assert report.apex == "yes"
    assert r.motor.moving is None
    assert r.reasons().count(("start", "press")) == 1


def test_end_stop_is_scheduled_not_polled(rig: Rig) -> None:
    rig.ptz.press("right")
    assert rig.clock.pending() == 2  # the cap and the end stop
    rig.clock.advance(2.9999)
    assert rig.motor.moving == "right"
    rig.clock.advance(0.0001)
    assert rig.motor.moving is None
    assert rig.clock.pending() == 0


def test_apex_only_on_the_blocked_axis(rig: Rig) -> None:
    rig.ptz.press("up")
    rig.clock.advance(10)
    assert rig.ptz.report().apex == "yes"
    report = rig.ptz.press("right")  # y stays at max_y, but x is the moving axis now
    assert (report.current_y, report.apex) == (900, "no")
    rig.clock.advance(1)
    assert rig.ptz.release().apex == "no"
    report = rig.ptz.press("down")
    assert report.apex == "no"
    rig.ptz.release()


def test_redirect_toward_a_blocked_end_stop() -> None:
    r = make_rig(position=(0, 450))
    r.ptz.press("up")
    report = r.ptz.press("left")
    assert report.apex == "yes"
    assert r.motor.moving is None
    assert r.reasons()[-1] == ("stop", "redirect")


def test_motor_slower_than_declared_is_followed_to_the_end_stop() -> None:
    """With feedback, the end-stop timer looks again while the motor has not arrived."""
    r = make_rig(declared_speed=(1200.0, 600.0))  # the motor really runs at half that
    r.ptz.press("right")
    r.clock.advance(1.5)  # the declared arrival: the motor is half-way
    assert r.motor.moving == "right"
    r.clock.advance(1.6)  # arrives at 3.0 s; the last look is at most 0.05 s late
    assert r.motor.moving is None
    assert r.motor.position() == (3600, 450)
    assert r.last()["reason"] == "end_stop"


# -- the move cap (lost release) ------------------------------------------------------------------


def test_lost_release_short_cap_stops_by_itself() -> None:
    r = make_rig(move_cap_s=0.5)
    r.ptz.press("left", "alice")
    r.clock.advance(0.49)
    assert r.motor.moving == "left"
    r.clock.advance(0.01)
    assert r.motor.moving is None
    assert r.last() == {"action": "stop", "direction": "left", "reason": "cap", "x": 1500, "y": 450}
    assert r.ptz.report().apex == "no"


@pytest.mark.parametrize(
    ("speed", "direction", "start", "expected"),
    [
        ((600.0, 300.0), "right", (0, 0), (3600, 0)),
        ((600.0, 300.0), "up", (0, 0), (0, 900)),
        ((200.0, 40.0), "right", (0, 0), (3600, 0)),  # an 18 s sweep
        ((2000.0, 1000.0), "left", (3600, 900), (0, 900)),  # under the 2 s floor
    ],
)
def test_default_cap_never_cuts_a_full_sweep_short(
    speed: tuple[float, float], direction: str, start: tuple[int, int], expected: tuple[int, int]
) -> None:
    r = make_rig(position=start, speed=speed)
    r.ptz.press(direction)
    r.clock.advance(MAX_MOVE_CAP_S + 1)
    assert r.motor.position() == expected
    assert r.last()["reason"] == "end_stop"


# -- other ways a move ends -------------------------------------------------------------------


def test_session_loss_stops_the_pressing_visitor_only(rig: Rig) -> None:
    rig.ptz.press("right", "alice")
    rig.ptz.visitor_gone("bob")
    rig.ptz.visitor_gone(None)
    assert rig.motor.moving == "right"
    rig.ptz.visitor_gone("alice")
    assert rig.motor.moving is None
    assert rig.last()["reason"] == "session_closed"


def test_session_loss_after_another_visitor_pressed(rig: Rig) -> None:
    rig.ptz.press("right", "alice")
    rig.ptz.press("right", "bob")
    rig.ptz.visitor_gone("alice")
    assert rig.motor.moving == "right"
    rig.ptz.visitor_gone("bob")
    assert rig.motor.moving is None


def test_standby_stops(rig: Rig) -> None:
    rig.ptz.press("down")
    rig.ptz.stop("standby")
    assert rig.motor.moving is None
    assert rig.last()["reason"] == "standby"
    rig.ptz.stop()  # idle: nothing to do, no event
    assert rig.reasons().count(("stop", "standby")) == 1


def test_close_stops_and_is_final(rig: Rig) -> None:
    rig.ptz.press("left")
    rig.ptz.close()
    assert rig.motor.moving is None
    assert rig.last()["reason"] == "close"
    assert rig.clock.pending() == 0
    assert rig.ptz.closed
    rig.ptz.close()
    assert rig.reasons().count(("stop", "close")) == 1
    with pytest.raises(RuntimeError, match="closed"):
        rig.ptz.press("left")
    assert rig.motor.moving is None
    rig.ptz.release()  # still answers
    rig.ptz.visitor_gone("alice")


def test_close_when_idle_still_sends_a_stop(rig: Rig) -> None:
    stops = rig.hw.calls.count("ptz_stop")
    rig.ptz.close()
    assert rig.hw.calls.count("ptz_stop") == stops + 1
    assert rig.last() == {"action": "stop", "direction": None, "reason": "close", "x": 1800, "y": 450}


def test_construction_calls_no_hook_and_start_sends_one_stop() -> None:
    clock = ManualClock()
    motor = VirtualMotor(clock=clock)
    motor.start("left")  # the state a crash left behind
    clock.advance(1)
    hw = MotorHardware(motor)
    events: list[Event] = []
    ptz = PtzController(hw, publish=events.append, clock=clock, scheduler=clock, wall_clock=lambda: 42.0)
    assert (hw.calls, events, motor.moving) == ([], [], "left")
    ptz.start()
    ptz.start()
    assert motor.moving is None
    assert hw.calls.count("ptz_stop") == 1
    assert events == [
        Event("ptz", {"action": "stop", "direction": None, "reason": "startup", "x": 1200, "y": 450}, 42.0)
    ]
    ptz.press("right")  # a started controller sends no second start-up stop
    assert hw.calls.count("ptz_stop") == 1
    ptz.close()


def test_construction_starts_no_thread_and_the_context_manager_starts_and_closes() -> None:
    before = set(threading.enumerate())
    hw = MotorHardware(VirtualMotor(speed=(6.0, 3.0)))  # no timer fires during the test
    ptz = PtzController(hw, publish=lambda event: None)  # its own ThreadScheduler, created by start()
    assert set(threading.enumerate()) == before
    assert hw.calls == []
    with ptz as entered:
        assert entered is ptz
        assert hw.calls.count("ptz_stop") == 1
        ptz.press("left")  # the first timer starts the scheduler's thread
        assert [t for t in threading.enumerate() if t.name == "iotvideo-ptz-timer"]
    assert ptz.closed
    assert hw.calls.count("ptz_stop") == 2
    assert not [t for t in threading.enumerate() if t.name == "iotvideo-ptz-timer" and t.is_alive()]


def test_the_first_commands_start_the_controller_once() -> None:
    clock = ManualClock()
    hw = MotorHardware(VirtualMotor(clock=clock))
    events: list[Event] = []
    ptz = PtzController(hw, publish=events.append, clock=clock, scheduler=clock)
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def command(i: int) -> None:
        try:
            barrier.wait(5)
            if i % 2:
                ptz.press("left" if i % 3 else "up", f"v{i}")
            else:
                ptz.release()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=command, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert errors == []
    reasons = [(e.data["action"], e.data["reason"]) for e in events]
    assert reasons[0] == ("stop", "startup")
    assert reasons.count(("stop", "startup")) == 1
    assert_alternating([dict(e.data) for e in events[1:]])
    ptz.close()


def test_visitor_gone_before_start_does_nothing() -> None:
    clock = ManualClock()
    hw = MotorHardware(VirtualMotor(clock=clock))
    events: list[Event] = []
    ptz = PtzController(hw, publish=events.append, clock=clock, scheduler=clock)
    ptz.visitor_gone("alice")  # no visitor can have started anything yet
    assert (hw.calls, events) == ([], [])
    ptz.close()


def test_start_after_close_does_nothing() -> None:
    clock = ManualClock()
    hw = MotorHardware(VirtualMotor(clock=clock))
    ptz = PtzController(hw, publish=lambda event: None, clock=clock, scheduler=clock)
    ptz.close()
    assert hw.calls.count("ptz_stop") == 1  # close always sends its stop
    ptz.start()
    ptz.release()
    assert hw.calls.count("ptz_stop") == 1
    with pytest.raises(RuntimeError, match="closed"):
        ptz.press("left")


# -- motors without position feedback ------------------------------------------------------------


def test_estimate_without_feedback() -> None:
    r = make_rig(feedback=False)
    assert r.ptz.report().current_x == 1800  # the estimate starts at the centre
    r.ptz.press("right")
    r.clock.advance(1.0)
    assert r.ptz.report().current_x == 2400
    r.ptz.press("down")
    r.clock.advance(0.5)
    report = r.ptz.release()
    assert (report.current_x, report.current_y) == (2400, 300) == r.motor.position()
    r.clock.advance(5)
    assert r.ptz.report() == report


def test_estimate_resynchronises_at_an_end_stop() -> None:
    r = make_rig(feedback=False, position=(0, 450))  # the motor really is at the left end stop
    assert r.ptz.report().current_x == 1800
    r.ptz.press("left")
    r.clock.advance(60)
    assert r.ptz.report().current_x == 0 == r.motor.position()[0]


# -- legacy one-step tokens -------------------------------------------------------------------


def test_step_moves_one_step(rig: Rig) -> None:
    report = rig.ptz.step("right")
    assert report.current_x == 1800  # the report shows where the step starts
    assert rig.motor.moving == "right"
    rig.clock.advance(200 / 600)
    assert rig.motor.moving is None
    assert rig.motor.position() == (2000, 450)
    assert rig.reasons()[1:] == [("start", "step"), ("stop", "step")]


def test_repeated_steps_extend_the_move(rig: Rig) -> None:
    rig.ptz.step("up")
    rig.clock.advance(0.5)
    rig.ptz.step("up")
    rig.clock.advance(1.0)
    assert rig.motor.position() == (1800, 450 + round(300 * (0.5 + 200 / 300)))
    assert rig.reasons().count(("start", "step")) == 1


def test_step_at_the_end_stop() -> None:
    r = make_rig(position=(3550, 450))
    r.ptz.step("right")
    r.clock.advance(1)
    assert r.motor.position() == (3600, 450)
    assert r.last()["reason"] == "end_stop"
    assert r.ptz.step("right").apex == "yes"
    assert r.motor.moving is None


def test_step_redirects_a_press(rig: Rig) -> None:
    rig.ptz.press("left")
    rig.ptz.step("right")
    rig.clock.advance(1)
    assert rig.motor.position() == (2000, 450)
    assert rig.reasons()[1:] == [("start", "press"), ("stop", "redirect"), ("start", "step"), ("stop", "step")]


# -- hooks that raise -------------------------------------------------------------------------


def test_failed_start_leaves_nothing_moving(rig: Rig) -> None:
    rig.hw.failing.add("ptz_start")
    stops = rig.hw.calls.count("ptz_stop")
    with pytest.raises(OSError, match="ptz_start failed"):
        rig.ptz.press("right")
    assert rig.ptz.direction is None
    assert rig.motor.moving is None
    assert rig.hw.calls.count("ptz_stop") == stops + 1  # a stop was attempted: the motor state is unknown
    assert rig.clock.pending() == 0
    assert ("start", "press") not in rig.reasons()
    rig.hw.failing.clear()
    rig.ptz.press("right")
    assert rig.motor.moving == "right"


def test_failed_start_during_a_redirect(rig: Rig) -> None:
    rig.ptz.press("right")
    rig.hw.failing.add("ptz_start")
    with pytest.raises(OSError):
        rig.ptz.press("left")
    assert rig.ptz.direction is None
    assert rig.motor.moving is None
    assert rig.reasons()[-1] == ("stop", "redirect")
    assert_alternating(rig.ptz_events())


def test_failed_stop_on_release_is_retried_soon(rig: Rig) -> None:
    rig.ptz.press("right")
    rig.hw.failing.add("ptz_stop")
    with pytest.raises(OSError, match="ptz_stop failed"):
        rig.ptz.release()
    assert rig.ptz.direction == "right"  # still moving as far as anyone can tell
    rig.hw.failing.clear()
    rig.clock.advance(STOP_RETRY_S)
    assert rig.motor.moving is None  # the retry timer stopped it, long before the end stop
    assert rig.last()["reason"] == "release"


def test_failed_stop_in_a_timer_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    r = make_rig(move_cap_s=1.0)
    r.ptz.press("left")
    r.hw.failing.add("ptz_stop")
    with caplog.at_level(logging.WARNING, logger="iotvideo_signaling.ptz"):
        r.clock.advance(1.0)
    assert "PTZ stop (cap) failed" in caplog.text
    assert r.ptz.direction == "left" == r.motor.moving  # the move stays armed: nothing stopped
    assert r.reasons()[-1] == ("start", "press")  # so no stop is published
    assert r.clock.pending() == 1  # the retry timer
    r.hw.failing.clear()  # the hardware recovers
    r.clock.advance(STOP_RETRY_S)
    assert r.motor.moving is None
    assert r.ptz.direction is None
    assert r.last() == {"action": "stop", "direction": "left", "reason": "cap", "x": 900, "y": 450}
    assert r.clock.pending() == 0
    stops = r.hw.calls.count("ptz_stop")
    r.ptz.close()  # close still sends its stop
    assert r.hw.calls.count("ptz_stop") == stops + 1


def test_a_stop_failing_once_at_the_cap_does_not_leave_the_motor_running() -> None:
    """The review's reproducer: cap 2 s, ptz_stop raises once when the cap fires."""
    r = make_rig(move_cap_s=2.0, position=(0, 450), speed=(100.0, 100.0))
    r.ptz.press("right")
    r.hw.fail_next["ptz_stop"] = 1
    r.clock.advance(3600)
    assert r.motor.moving is None
    assert r.ptz.direction is None
    assert r.clock.pending() == 0
    assert r.motor.position() == (250, 450)  # stopped by the retry 0.5 s after the cap
    assert r.reasons() == [("stop", "startup"), ("start", "press"), ("stop", "cap")]
    assert r.last() == {"action": "stop", "direction": "right", "reason": "cap", "x": 250, "y": 450}
    r.ptz.close()


def test_stop_retries_back_off_to_a_bound(caplog: pytest.LogCaptureFixture) -> None:
    r = make_rig(move_cap_s=2.0)
    attempts: list[float] = []
    stop = r.hw.ptz_stop

    def timed_stop() -> None:
        attempts.append(r.clock.now)
        stop()

    r.hw.ptz_stop = timed_stop  # type: ignore[method-assign]
    r.ptz.press("right")  # the end stop is 3 s away: the cap comes first
    r.hw.failing.add("ptz_stop")
    with caplog.at_level(logging.WARNING, logger="iotvideo_signaling.ptz"):
        r.clock.advance(60)
    gaps = [round(b - a, 6) for a, b in zip(attempts, attempts[1:])]
    assert attempts[0] == pytest.approx(102.0)  # the cap
    assert gaps[:4] == [STOP_RETRY_S, 2 * STOP_RETRY_S, 4 * STOP_RETRY_S, MAX_STOP_RETRY_S]
    assert set(gaps[3:]) == {MAX_STOP_RETRY_S}
    assert r.motor.moving == "right" == r.ptz.direction
    assert r.reasons()[-1] == ("start", "press")
    assert r.clock.pending() == 1
    assert caplog.text.count("Traceback") == 1  # one traceback, then one line per attempt
    assert f"attempt {len(attempts)}" in caplog.text
    r.hw.failing.clear()
    r.clock.advance(MAX_STOP_RETRY_S)
    assert r.motor.moving is None
    assert r.clock.pending() == 0
    assert r.reasons()[-1] == ("stop", "cap")
    r.ptz.close()


@pytest.mark.parametrize("feedback", [True, False], ids=["feedback", "estimate"])
def test_failed_stop_at_the_end_stop_is_retried(feedback: bool) -> None:
    r = make_rig(feedback=feedback)
    r.ptz.press("right")
    r.hw.fail_next["ptz_stop"] = 2
    r.clock.advance(3.0)  # the end stop: the first attempt fails
    assert r.motor.moving == "right"
    r.clock.advance(STOP_RETRY_S)  # the second fails too
    assert r.motor.moving == "right"
    r.clock.advance(2 * STOP_RETRY_S)
    assert r.motor.moving is None
    assert r.last() == {"action": "stop", "direction": "right", "reason": "end_stop", "x": 3600, "y": 450}
    assert r.ptz.report().apex == "yes"
    assert r.clock.pending() == 0


def test_failed_stop_on_session_loss_is_retried(caplog: pytest.LogCaptureFixture) -> None:
    r = make_rig()
    r.ptz.press("left", "alice")
    r.hw.fail_next["ptz_stop"] = 1
    with caplog.at_level(logging.WARNING, logger="iotvideo_signaling.ptz"):
        r.ptz.visitor_gone("alice")  # logged, not raised
    assert "PTZ stop (session_closed) failed" in caplog.text
    assert r.motor.moving == "left"
    assert r.clock.pending() == 1  # the cap and end-stop timers gave way to one retry timer
    r.clock.advance(STOP_RETRY_S)
    assert r.motor.moving is None
    assert r.reasons()[-1] == ("stop", "session_closed")
    assert_alternating(r.ptz_events())


def test_release_or_press_while_a_stop_is_pending() -> None:
    r = make_rig(move_cap_s=1.0)
    r.ptz.press("left", "alice")
    r.hw.fail_next["ptz_stop"] = 2
    r.clock.advance(1.0)  # the cap's stop fails
    with pytest.raises(OSError, match="ptz_stop failed"):
        r.ptz.press("left", "alice")  # the press settles the pending stop first, and that fails too
    assert r.motor.moving == "left"
    assert r.clock.pending() == 1  # the retry is still armed
    report = r.ptz.press("left", "alice")  # the hardware recovered: stop, then a fresh move
    assert report.current_x == 1200
    assert r.motor.moving == "left"
    assert r.reasons()[1:] == [("start", "press"), ("stop", "cap"), ("start", "press")]
    assert r.clock.pending() == 2  # a fresh cap and end stop
    r.clock.advance(0.99)
    assert r.motor.moving == "left"
    r.hw.fail_next["ptz_stop"] = 1
    r.clock.advance(0.01)  # this cap's stop fails as well
    r.ptz.release("alice")
    assert r.motor.moving is None
    assert r.reasons()[-1] == ("stop", "release")
    assert r.clock.pending() == 0
    assert_alternating(r.ptz_events())


def test_close_gives_up_after_its_own_failed_stop(caplog: pytest.LogCaptureFixture) -> None:
    r = make_rig(move_cap_s=1.0)
    r.ptz.press("up")
    r.hw.failing.add("ptz_stop")
    r.clock.advance(1.0)  # the cap fails: a retry is pending
    assert r.clock.pending() == 1
    stops = r.hw.calls.count("ptz_stop")
    with caplog.at_level(logging.WARNING, logger="iotvideo_signaling.ptz"):
        r.ptz.close()  # never raises
    assert r.hw.calls.count("ptz_stop") == stops + 1  # close did try
    assert [rec.levelno for rec in caplog.records if "closed" in rec.getMessage()] == [logging.ERROR]
    assert r.clock.pending() == 0  # and nothing keeps running after close
    r.clock.advance(60)
    assert r.hw.calls.count("ptz_stop") == stops + 1
    assert r.ptz.direction == "up"  # honest: it may still be moving
    assert ("stop", "close") not in r.reasons()
    r.hw.failing.clear()
    r.ptz.stop("shutdown")  # a stop by hand still works after close
    assert r.motor.moving is None
    assert r.ptz.direction is None
    assert r.reasons()[-1] == ("stop", "shutdown")
    assert r.clock.pending() == 0


def test_close_with_a_failing_stop_stops_the_timer_thread() -> None:
    motor = VirtualMotor(speed=(60.0, 30.0))
    hw = MotorHardware(motor)
    ptz = PtzController(hw, publish=lambda event: None, move_cap_s=0.01)
    hw.failing.add("ptz_stop")
    ptz.press("left")
    deadline = time.monotonic() + 5
    while hw.calls.count("ptz_stop") < 2 and time.monotonic() < deadline:  # startup, then the cap
        time.sleep(0.001)
    assert hw.calls.count("ptz_stop") >= 2
    ptz.close()
    assert not [t for t in threading.enumerate() if t.name == "iotvideo-ptz-timer" and t.is_alive()]
    assert motor.moving == "left"
    hw.failing.clear()
    motor.stop()


def test_failed_position_read_refuses_the_press(rig: Rig) -> None:
    rig.hw.failing.add("ptz_position")
    with pytest.raises(OSError):
        rig.ptz.press("up")
    assert rig.motor.moving is None
    rig.hw.failing.clear()


def test_failed_position_read_in_a_timer_uses_the_estimate(caplog: pytest.LogCaptureFixture) -> None:
    r = make_rig(move_cap_s=1.0)
    r.ptz.press("up")
    r.hw.failing.add("ptz_position")
    with caplog.at_level(logging.WARNING, logger="iotvideo_signaling.ptz"):
        r.clock.advance(1.0)
    assert r.motor.moving is None
    assert (r.last()["x"], r.last()["y"]) == (1800, 750)
    assert "using the estimate" in caplog.text


def test_failed_startup_stop_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    hw = MotorHardware(VirtualMotor(clock=clock))
    hw.failing.add("ptz_stop")
    events: list[Event] = []
    ptz = PtzController(hw, publish=events.append, clock=clock, scheduler=clock)
    with caplog.at_level(logging.WARNING, logger="iotvideo_signaling.ptz"):
        ptz.start()  # never raises
    assert "PTZ stop (startup) failed" in caplog.text
    assert events == []
    hw.failing.clear()
    ptz.close()


def test_hardware_without_ptz() -> None:
    clock = ManualClock()
    events: list[Event] = []
    ptz = PtzController(Hardware(), publish=events.append, clock=clock, scheduler=clock)
    with pytest.raises(NotImplementedError):
        ptz.press("left")
    with pytest.raises(NotImplementedError):
        ptz.report()
    ptz.stop("standby")
    ptz.visitor_gone("alice")
    ptz.close()
    assert events == []


def test_bad_hook_values_are_errors() -> None:
    clock = ManualClock()
    motor = VirtualMotor(clock=clock)

    class Broken(MotorHardware):
        limits: Any = (10, 0, 0, 900)
        speed: Any = (600.0, 300.0)

        def ptz_limits(self) -> PtzLimits:
            return self.limits  # type: ignore[no-any-return]

        def ptz_speed(self) -> tuple[float, float]:
            return self.speed  # type: ignore[no-any-return]

    hw = Broken(motor)
    ptz = PtzController(hw, publish=lambda event: None, clock=clock, scheduler=clock)
    with pytest.raises(ValueError, match="minimum"):
        ptz.press("left")
    hw.limits = "abc"
    with pytest.raises(ValueError, match="four integers"):
        ptz.press("left")
    hw.limits = LIMITS
    for speed in ((0, 300), (0.0, 300.0), (600.0, -1.0), (math.inf, 300.0), (math.nan, 300.0), (600.0,)):
        hw.speed = speed
        with pytest.raises(ValueError, match=r"positive|two numbers"):
            ptz.press("left")
    assert motor.moving is None
    # report() keeps the last limits found valid, but only while the hook returns that very tuple
    assert ptz.report().max_x == LIMITS[1]
    hw.limits = (LIMITS[0], LIMITS[1] - 1, LIMITS[2], LIMITS[3])
    assert ptz.report().max_x == LIMITS[1] - 1
    hw.limits = [LIMITS[0], LIMITS[1], LIMITS[2], LIMITS[3]]  # a list: checked (and converted) every time
    assert ptz.report().max_x == LIMITS[1]
    hw.limits = (LIMITS[1], LIMITS[0], LIMITS[2], LIMITS[3])
    with pytest.raises(ValueError, match="minimum"):
        ptz.report()
    ptz.close()


def test_a_failing_subscriber_does_not_break_the_controller(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    motor = VirtualMotor(clock=clock)

    def publish(event: Event) -> None:
        raise RuntimeError("subscriber bug")

    with caplog.at_level(logging.WARNING, logger="iotvideo_signaling.ptz"):
        ptz = PtzController(MotorHardware(motor), publish=publish, clock=clock, scheduler=clock)
        ptz.press("left")
        clock.advance(1)
        ptz.release()
    assert motor.moving is None
    assert "subscriber failed" in caplog.text
    ptz.close()


def test_a_subscriber_may_call_back_into_the_controller(rig: Rig) -> None:
    reports: list[PtzReport] = []
    controllers: list[PtzController] = []

    def publish(event: Event) -> None:
        if event.data["reason"] == "end_stop":
            reports.append(controllers[0].report())

    rig.ptz.close()
    ptz = PtzController(rig.hw, publish=publish, clock=rig.clock, scheduler=rig.clock)
    controllers.append(ptz)
    ptz.press("left")
    rig.clock.advance(10)
    assert [r.apex for r in reports] == ["yes"]
    ptz.close()


# -- allow_start (standby) ----------------------------------------------------------------------


def test_allow_start_false_refuses_press_and_step() -> None:
    allowed = False
    r = make_rig(allow_start=lambda: allowed)
    with pytest.raises(PtzRefused):
        r.ptz.press("left", "alice")
    with pytest.raises(PtzRefused):
        r.ptz.step("up")
    assert "ptz_start" not in r.hw.calls
    assert r.motor.moving is None
    assert r.ptz.direction is None
    assert r.clock.pending() == 0
    assert r.reasons() == [("stop", "startup")]
    assert r.ptz.release().apex == "no"  # releases and reports are not refused
    allowed = True
    r.ptz.press("left", "alice")
    assert r.motor.moving == "left"
    r.ptz.close()


def test_allow_start_false_refuses_extending_or_redirecting_a_move() -> None:
    allowed = True
    r = make_rig(move_cap_s=1.0, allow_start=lambda: allowed)
    r.ptz.press("left")
    allowed = False  # standby took effect; its stop comes next
    r.clock.advance(0.5)
    with pytest.raises(PtzRefused):
        r.ptz.press("left")  # does not refresh the cap
    with pytest.raises(PtzRefused):
        r.ptz.press("right")  # does not redirect
    assert r.motor.moving == "left"
    r.clock.advance(0.5)
    assert r.motor.moving is None
    assert r.reasons()[1:] == [("start", "press"), ("stop", "cap")]


def test_a_stop_waits_for_a_press_whose_allow_start_is_running() -> None:
    """allow_start runs in the controller's turn: a stop that comes meanwhile is made after the press."""
    clock = ManualClock()
    motor = VirtualMotor(clock=clock)
    events: list[Event] = []
    reached, proceed = threading.Event(), threading.Event()

    def allow() -> bool:
        reached.set()
        assert proceed.wait(5)
        return True

    ptz = PtzController(MotorHardware(motor), publish=events.append, clock=clock, scheduler=clock, allow_start=allow)
    ptz.start()
    presser = threading.Thread(target=ptz.press, args=("right",))
    presser.start()
    assert reached.wait(5)
    stopper = threading.Thread(target=ptz.stop, args=("standby",))
    stopper.start()
    proceed.set()
    presser.join(5)
    stopper.join(5)
    assert not presser.is_alive() and not stopper.is_alive()
    assert motor.moving is None
    assert [(e.data["action"], e.data["reason"]) for e in events] == [
        ("stop", "startup"), ("start", "press"), ("stop", "standby")
    ]
    ptz.close()


def test_no_lock_is_held_while_hooks_allow_start_and_subscribers_run() -> None:
    """Each hook checks from another thread that the controller's readers are not blocked."""
    clock = ManualClock()
    caller = threading.current_thread()  # commands, and timers through clock.advance, run here
    controllers: list[PtzController] = []
    probed: set[str] = set()

    def probe(name: str) -> None:
        if threading.current_thread() is not caller or not controllers:
            return  # the reader's own hook calls
        ptz = controllers[0]
        reader = threading.Thread(target=lambda: (ptz.direction, ptz.closed, ptz.report()), daemon=True)
        reader.start()
        reader.join(5)
        assert not reader.is_alive(), f"a lock of the controller was held while {name} ran"
        probed.add(name)

    class Probing(MotorHardware):
        def _hook(self, name: str) -> None:
            probe(name)
            super()._hook(name)

    def allow() -> bool:
        probe("allow_start")
        return True

    hw = Probing(VirtualMotor(clock=clock))
    ptz = PtzController(
        hw, publish=lambda event: probe("publish"), clock=clock, scheduler=clock, move_cap_s=1.0, allow_start=allow
    )
    controllers.append(ptz)
    ptz.start()
    ptz.press("left")
    ptz.step("up")  # a redirect: a stop, then a start
    hw.fail_next["ptz_stop"] = 1
    with pytest.raises(OSError):
        ptz.release()
    clock.advance(STOP_RETRY_S)  # the retry timer's stop
    ptz.press("right")
    clock.advance(1.0)  # the cap's stop
    ptz.close()
    assert hw.motor.moving is None
    assert probed == {"ptz_start", "ptz_stop", "ptz_position", "ptz_limits", "ptz_speed", "allow_start", "publish"}


def test_a_hook_that_calls_back_a_command_gets_an_error_not_a_deadlock() -> None:
    clock = ManualClock()
    controllers: list[PtzController] = []

    class Reentrant(MotorHardware):
        def ptz_start(self, direction: str) -> None:
            controllers[0].release()

    hw = Reentrant(VirtualMotor(clock=clock))
    ptz = PtzController(hw, publish=lambda event: None, clock=clock, scheduler=clock)
    controllers.append(ptz)
    with pytest.raises(RuntimeError, match="called back"):
        ptz.press("left")
    assert ptz.direction is None
    assert ptz.report().current_x == 1800  # the controller still answers
    ptz.close()


class GatedHardware(MotorHardware):
    """Holds a chosen hook until the test lets it go, to force one interleaving of two threads."""

    def __init__(self, motor: VirtualMotor) -> None:
        super().__init__(motor)
        self.gate: str | None = None
        self.reached = threading.Event()
        self.proceed = threading.Event()

    def _wait(self, name: str) -> None:
        if self.gate == name:
            self.gate = None
            self.reached.set()
            assert self.proceed.wait(5)

    def ptz_limits(self) -> PtzLimits:
        self._wait("ptz_limits")  # read before the controller's turn is taken
        return super().ptz_limits()

    def ptz_start(self, direction: str) -> None:
        self._wait("ptz_start")  # called in the controller's turn
        super().ptz_start(direction)


@pytest.mark.parametrize("gate", ["ptz_limits", "ptz_start"], ids=["before-the-turn", "in-the-turn"])
def test_a_press_racing_standby_never_leaves_the_motor_running(gate: str) -> None:
    """What the Device does: check standby, then press; meanwhile standby flips and stops the motor."""
    clock = ManualClock()
    motor = VirtualMotor(clock=clock)
    hw = GatedHardware(motor)
    standby = threading.Event()
    events: list[Event] = []
    ptz = PtzController(
        hw, publish=events.append, clock=clock, scheduler=clock, allow_start=lambda: not standby.is_set()
    )
    ptz.start()  # as Device.start() does
    outcome: list[str] = []

    def device_press() -> None:
        if standby.is_set():  # the Device's own check, without any lock
            outcome.append("refused by the device")
            return
        try:
            ptz.press("right", "phone")
            outcome.append("pressed")
        except PtzRefused:
            outcome.append("refused by the controller")

    hw.gate = gate
    presser = threading.Thread(target=device_press)
    presser.start()
    assert hw.reached.wait(5)  # the press passed the Device's check and is inside the controller
    standby.set()  # the Device switches to standby ...
    stopper = threading.Thread(target=ptz.stop, args=("standby",))  # ... then stops the motor
    stopper.start()
    if gate == "ptz_limits":
        stopper.join(5)  # nothing is moving yet: the stop is a no-op and returns at once
        assert not stopper.is_alive()
    hw.proceed.set()
    presser.join(5)
    stopper.join(5)
    assert not presser.is_alive() and not stopper.is_alive()
    assert motor.moving is None
    assert ptz.direction is None
    assert clock.pending() == 0
    reasons = [(e.data["action"], e.data["reason"]) for e in events]
    if gate == "ptz_limits":
        assert outcome == ["refused by the controller"]
        assert "ptz_start" not in hw.calls
        assert reasons == [("stop", "startup")]
    else:  # the press held the turn, so the standby stop came after its start
        assert outcome == ["pressed"]
        assert reasons == [("stop", "startup"), ("start", "press"), ("stop", "standby")]
    ptz.close()


# -- threads ----------------------------------------------------------------------------------


def test_concurrent_presses_and_releases(rig: Rig) -> None:
    errors: list[BaseException] = []
    done = threading.Event()

    def visitor(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(300):
                action = rng.random()
                if action < 0.5:
                    rig.ptz.press(rng.choice(sorted(DIRECTIONS)), f"v{seed % 3}")
                elif action < 0.6:
                    rig.ptz.step(rng.choice(sorted(DIRECTIONS)))
                elif action < 0.9:
                    rig.ptz.release()
                else:
                    rig.ptz.visitor_gone(f"v{seed % 3}")
        except BaseException as exc:
            errors.append(exc)

    def ticker() -> None:
        while not done.is_set():
            rig.clock.advance(0.05)
            time.sleep(0)

    tick = threading.Thread(target=ticker)
    tick.start()
    threads = [threading.Thread(target=visitor, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    tick.join()
    assert errors == []
    rig.ptz.release()
    assert rig.motor.moving is None
    assert rig.ptz.direction is None
    assert_alternating(rig.ptz_events())
    x, y = rig.motor.position()
    assert 0 <= x <= 3600
    assert 0 <= y <= 900


# -- ManualClock and ThreadScheduler -----------------------------------------------------------


def test_manual_clock_runs_due_callbacks_in_order() -> None:
    clock = ManualClock(5.0)
    seen: list[tuple[str, float]] = []
    clock.call_later(2.0, lambda: seen.append(("b", clock())))
    clock.call_later(1.0, lambda: seen.append(("a", clock())))
    cancelled = clock.call_later(1.5, lambda: seen.append(("x", clock())))
    cancelled.cancel()
    clock.call_later(0.5, lambda: clock.call_later(0.1, lambda: seen.append(("nested", clock()))))
    assert clock.pending() == 3
    clock.advance(1.9)
    assert seen == [("nested", 5.6), ("a", 6.0)]
    assert clock.now == 6.9
    clock.advance(0.1)
    assert seen[-1] == ("b", 7.0)
    assert clock.pending() == 0
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_thread_scheduler_runs_cancels_and_survives_errors(caplog: pytest.LogCaptureFixture) -> None:
    ran: list[str] = []
    done = threading.Event()
    with ThreadScheduler() as scheduler, caplog.at_level(logging.ERROR, logger="iotvideo_signaling.ptz"):
        scheduler.call_later(0.0, lambda: 1 / 0)
        scheduler.call_later(0.0, lambda: ran.append("first"))
        scheduler.call_later(0.01, lambda: ran.append("cancelled")).cancel()
        scheduler.call_later(0.02, lambda: ran.append("second"))
        scheduler.call_later(0.03, done.set)
        assert done.wait(5)
    assert ran == ["first", "second"]
    assert "timer callback failed" in caplog.text


def test_thread_scheduler_wakes_for_an_earlier_timer_only() -> None:
    fired: list[str] = []
    done = threading.Event()
    with ThreadScheduler() as scheduler:
        scheduler.call_later(3600, lambda: fired.append("late"))
        time.sleep(0.2)  # the timer thread has started and sleeps for an hour ...
        scheduler.call_later(0.05, lambda: fired.append("soon"))  # ... so this one must wake it
        scheduler.call_later(0.06, done.set)  # due after "soon": no wake-up needed, still on time
        assert done.wait(5)
    assert fired == ["soon"]


def test_rearmed_timers_do_not_pile_up() -> None:
    """A panel repeating a press re-arms the move cap each time: cancelled timers must not accumulate."""
    done = threading.Event()
    with ThreadScheduler() as scheduler:
        timer = scheduler.call_later(3600, lambda: None)
        for _ in range(10_000):
            timer.cancel()
            timer = scheduler.call_later(3600, lambda: None)
            assert scheduler.pending() <= 64
        scheduler.call_later(0.01, done.set)
        assert done.wait(5)
        assert scheduler.pending() <= 64


def test_thread_scheduler_closes_cleanly() -> None:
    scheduler = ThreadScheduler(name="ptz-test-timer")
    assert not [t for t in threading.enumerate() if t.name == "ptz-test-timer"]  # started on demand
    scheduler.call_later(3600, lambda: None)
    assert [t for t in threading.enumerate() if t.name == "ptz-test-timer"]
    scheduler.close()
    assert not [t for t in threading.enumerate() if t.name == "ptz-test-timer"]
    with pytest.raises(RuntimeError, match="closed"):
        scheduler.call_later(0, lambda: None)
    scheduler.close()


def test_real_clock_wiring() -> None:
    """The real clock, the controller's own ThreadScheduler and the VirtualMotor, end to end."""
    motor = VirtualMotor(speed=(36000.0, 9000.0), position=(0, 450))  # 3600 steps in 0.1 s
    stopped = threading.Event()
    events: list[Event] = []

    def publish(event: Event) -> None:
        events.append(event)
        if event.data["reason"] == "end_stop":
            stopped.set()

    ptz = PtzController(MotorHardware(motor), publish=publish)
    try:
        assert ptz.press("right").current_x < 3600
        assert stopped.wait(5), "the end-stop timer never stopped the motor"
        assert motor.moving is None
        assert motor.position() == (3600, 450)
        assert ptz.report().apex == "yes"
        ptz.press("left")
        time.sleep(0.01)
        assert ptz.release().apex == "no"
        assert motor.moving is None
    finally:
        ptz.close()
    assert not [t for t in threading.enumerate() if t.name == "iotvideo-ptz-timer" and t.is_alive()]
    assert [e.data["reason"] for e in events] == ["startup", "press", "end_stop", "press", "release", "close"]


# -- the virtual motor ------------------------------------------------------------------------


def test_virtual_motor_integrates_and_clamps() -> None:
    clock = ManualClock()
    stops: list[tuple[int, int]] = []
    motor = VirtualMotor(clock=clock, on_stop=stops.append)
    assert motor.position() == CENTRE
    assert (motor.limits(), motor.speed()) == (LIMITS, SPEED)
    motor.start("right")
    motor.start("right")  # same direction: keeps running from where it started
    clock.advance(0.25)
    assert motor.position() == (1950, 450)
    motor.start("down")
    clock.advance(10)
    assert motor.position() == (1950, 0)  # clamped, still "moving" until stopped
    assert motor.moving == "down"
    motor.stop()
    motor.stop()
    assert stops == [(1950, 0)]
    assert motor.moving is None


def test_virtual_motor_validates() -> None:
    with pytest.raises(ValueError):
        VirtualMotor(limits=(10, 0, 0, 1))
    with pytest.raises(ValueError):
        VirtualMotor(speed=(0.0, 1.0))
    assert VirtualMotor(position=(-50, 5000)).position() == (0, 900)
    with pytest.raises(ValueError):
        VirtualMotor().start("sideways")
