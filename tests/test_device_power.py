"""Power (privacy mode): an unreadable state fails closed, and a camera that changes it by itself
tells the Device (``power_changed``) or has it read again (``refresh_power``)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import orjson
import pytest

from iotvideo_signaling import Device, DeviceConfig, Event, Hardware, SimulatedHardware
from iotvideo_signaling.ptz import ManualClock
from iotvideo_signaling.topics import UNKNOWN_POWER_REASON
from spec_examples import PANEL_PREFIX, ask, inner, send

PRESS_UP = {"topic": "ptz", "data": {"cmd": "ptz_up_press"}}
WAIT = 10.0


class Flaky(SimulatedHardware):
    """A camera whose ``get_power`` answers what the test sets: a value, or an exception to raise."""

    def __init__(self, state_dir: Path, answer: Any, **options: Any) -> None:
        super().__init__(state_dir, **options)
        self.answer = answer
        self.power_sets: list[str] = []

    def get_power(self) -> str:
        if isinstance(self.answer, BaseException):
            raise self.answer
        if self.answer is None:
            return super().get_power()
        answer: str = self.answer
        return answer

    def set_power(self, status: str) -> None:
        self.power_sets.append(status)
        super().set_power(status)


def make(hw: Hardware) -> Device:
    clock = ManualClock()
    return Device(hw, config=DeviceConfig(), clock=clock, scheduler=clock)


@pytest.fixture
def events() -> list[Event]:
    return []


def power_events(events: list[Event]) -> list[dict[str, Any]]:
    return [dict(e.data) for e in events if e.kind == "power"]


def get_status(device: Device) -> str:
    got = ask(device, {"topic": "get_status"})
    assert got["result"] == "0", got
    status: str = got["status"]
    return status


def live(device: Device) -> str:
    status: str = send(device, inner("get_device_st", type="live"))[0]["status"]
    return status


def power_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "get_power" in r.getMessage()]


FAILURES = {
    "raises OSError": OSError(5, "i2c read failed"),
    "raises RuntimeError": RuntimeError("pmic gone"),
    "unknown value": "exploded",
    "wrong case": "Working",
    "not a str": 1,
    "empty": "",
}


@pytest.mark.parametrize("answer", FAILURES.values(), ids=FAILURES.keys())
def test_an_unreadable_power_state_fails_closed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, answer: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="iotvideo_signaling")
    hw = Flaky(tmp_path, answer)
    with make(hw) as device:
        for _ in range(3):  # every request refused, one warning for them all
            assert get_status(device) == "standby"
            assert live(device) == "1"
            assert send(device, inner("get_device_st", type="voice"))[0]["status"] == "1"
            got = ask(device, PRESS_UP)
            assert (got["result"], got["reason"]) == ("8", UNKNOWN_POWER_REASON)
            assert len(got["reason"].encode()) < 64
            got = send(device, PANEL_PREFIX + "ptz_left")
            assert (got["result"], got["reason"]) == ("8", UNKNOWN_POWER_REASON)
            assert device.in_standby()
            assert device.refresh_power() == "unknown"
        assert hw.motor.moving is None
        assert ask(device, {"topic": "version"})["result"] == "0"  # what needs no power still works
    [warning] = power_warnings(caplog)
    assert warning.endswith("the privacy state is unknown, treated as standby until it is known")


def test_each_distinct_failure_is_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="iotvideo_signaling")
    hw = Flaky(tmp_path, OSError("bus error"))
    with make(hw) as device:
        device.refresh_power()
        hw.answer = "sideways"
        device.refresh_power()
        device.refresh_power()
        hw.answer = None  # readable again: the next failure is news
        assert device.refresh_power() == "working"
        hw.answer = OSError("bus error")
        device.refresh_power()
    assert [w.split(":")[0] for w in power_warnings(caplog)] == [
        "get_power failed (OSError",
        "get_power returned 'sideways'",
        "get_power failed (OSError",
    ]


def test_a_successful_set_status_ends_the_unknown_state(tmp_path: Path, events: list[Event]) -> None:
    hw = Flaky(tmp_path, RuntimeError("pmic gone"))
    with make(hw) as device:
        device.subscribe(events.append)
        assert ask(device, {"topic": "set_status", "status": "working"})["result"] == "0"
        assert hw.power_sets == ["working"]
        assert get_status(device) == "working"
        assert live(device) == "0"
        assert ask(device, PRESS_UP)["result"] == "0"
    assert power_events(events) == [{"status": "working"}]


def test_a_failed_set_status_leaves_the_state_unknown(tmp_path: Path) -> None:
    class Stuck(Flaky):
        def set_power(self, status: str) -> None:
            raise OSError("relay stuck")

    with make(Stuck(tmp_path, "??")) as device:
        assert ask(device, {"topic": "set_status", "status": "working"})["result"] == "7"
        assert ask(device, PRESS_UP)["reason"] == UNKNOWN_POWER_REASON


def test_a_camera_without_get_power_is_working(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    class NoPower(Hardware):
        def signal_strength(self) -> int:
            return 50

    caplog.set_level(logging.WARNING, logger="iotvideo_signaling")
    with make(NoPower()) as device:
        assert get_status(device) == "working"
        assert device.refresh_power() == "working"
    assert caplog.records == []


def test_without_get_power_what_the_camera_said_stands() -> None:
    class Switch(Hardware):
        started = False

        def start(self) -> None:
            self.started = True

    hw = Switch()
    device = make(hw)
    device.power_changed("standby")  # reported before start(): kept, and the Device not started
    assert not hw.started
    with device:
        assert hw.started
        assert device.in_standby()
        assert device.refresh_power() == "standby"  # nothing to read
        device.power_changed("working")
        assert device.refresh_power() == "working"


def test_a_camera_with_set_power_but_no_get_power_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    class WriteOnly(Hardware):
        def set_power(self, status: str) -> None:
            pass

    caplog.set_level(logging.WARNING, logger="iotvideo_signaling")
    with make(WriteOnly()) as device:
        assert not device.in_standby()
    assert "set_power hook but no get_power" in caplog.text


# -- a camera that changes power by itself ---------------------------------------------------------


@pytest.fixture
def camera(tmp_path: Path) -> Iterator[tuple[Flaky, Device]]:
    hw = Flaky(tmp_path, None, clock=ManualClock())
    device = make(hw).start()
    yield hw, device
    device.close()


def test_power_changed_records_publishes_and_stops_the_motor(
    camera: tuple[Flaky, Device], events: list[Event]
) -> None:
    hw, device = camera
    device.subscribe(events.append)
    assert ask(device, PRESS_UP, visitor="phone")["result"] == "0"
    assert hw.motor.moving == "up"
    device.power_changed("standby")  # the privacy switch was flipped
    assert hw.motor.moving is None
    assert [e.data["reason"] for e in events if e.kind == "ptz" and e.data["action"] == "stop"] == ["standby"]
    assert get_status(device) == "standby"
    assert live(device) == "1"
    got = ask(device, PRESS_UP)
    assert (got["result"], got["reason"]) == ("8", "camera is in standby")
    device.power_changed("standby")  # no change: no event
    device.power_changed("working")
    assert get_status(device) == "working"
    assert power_events(events) == [{"status": "standby"}, {"status": "working"}]
    assert hw.power_sets == []  # the camera changed itself: no hook is called


@pytest.mark.parametrize("status", ["unknown", "Standby", "", None, 1])
def test_power_changed_refuses_other_states(camera: tuple[Flaky, Device], status: Any) -> None:
    _, device = camera
    with pytest.raises(ValueError, match="'working' or 'standby'"):
        device.power_changed(status)
    assert get_status(device) == "working"


def test_power_changed_ends_an_unknown_state(tmp_path: Path, events: list[Event]) -> None:
    with make(Flaky(tmp_path, "??")) as device:
        device.subscribe(events.append)
        device.power_changed("standby")
        assert ask(device, PRESS_UP)["reason"] == "camera is in standby"
        device.power_changed("working")
        assert live(device) == "0"
    assert power_events(events) == [{"status": "standby"}, {"status": "working"}]


def test_refresh_power_reads_the_hook_again(camera: tuple[Flaky, Device], events: list[Event]) -> None:
    hw, device = camera
    device.subscribe(events.append)
    assert device.refresh_power() == "working"
    hw.answer = "standby"
    assert device.refresh_power() == "standby"
    assert get_status(device) == "standby"
    hw.answer = OSError("bus error")
    assert device.refresh_power() == "unknown"
    hw.answer = "working"
    assert device.refresh_power() == "working"
    assert power_events(events) == [
        {"status": "standby"},
        {"status": "standby", "reason": "privacy state unknown"},
        {"status": "working"},
    ]


def test_refresh_power_stops_a_move_when_the_state_becomes_unknown(camera: tuple[Flaky, Device]) -> None:
    hw, device = camera
    assert ask(device, PRESS_UP)["result"] == "0"
    hw.answer = OSError("bus error")
    device.refresh_power()
    assert hw.motor.moving is None


def test_power_changed_from_inside_set_power(tmp_path: Path, events: list[Event]) -> None:
    """A driver that reports every change, including those the Device asked for, as they happen."""

    class Reporting(Flaky):
        device: Optional[Device] = None

        def set_power(self, status: str) -> None:
            super().set_power(status)
            assert self.device is not None
            self.device.power_changed(status)

    hw = Reporting(tmp_path, None)
    with make(hw) as device:
        hw.device = device
        device.subscribe(events.append)
        assert ask(device, {"topic": "set_status", "status": "standby"})["result"] == "0"
        assert get_status(device) == "standby"
    assert power_events(events) == [{"status": "standby"}]


def test_a_switch_reported_during_a_set_status_is_recorded_after_it(tmp_path: Path) -> None:
    """The panel asks for standby; while the hook runs, the physical switch is turned to working:
    the later report wins, whatever the threads' timing."""
    entered, release = threading.Event(), threading.Event()

    class Slow(Flaky):
        def set_power(self, status: str) -> None:
            super().set_power(status)
            entered.set()
            assert release.wait(WAIT)

    with make(Slow(tmp_path, None)) as device:
        panel = threading.Thread(target=ask, args=(device, {"topic": "set_status", "status": "standby"}))
        panel.start()
        assert entered.wait(WAIT)
        switch = threading.Thread(target=device.power_changed, args=("working",))
        switch.start()
        switch.join(0.05)
        assert switch.is_alive()  # waits for the switch in progress
        release.set()
        panel.join(WAIT)
        switch.join(WAIT)
        assert get_status(device) == "working"
        assert orjson.loads(device.handle(PANEL_PREFIX + "ptz_left"))["result"] == "0"
