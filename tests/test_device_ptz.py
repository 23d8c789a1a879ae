"""PTZ through the Device: the topic, legacy tokens, and every way a move must stop."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from iotvideo_signaling import Device, DeviceConfig, Event, SimulatedHardware
from iotvideo_signaling.hardware import PtzLimits
from iotvideo_signaling.ptz import ManualClock

PRESS = {d: {"topic": "ptz", "data": {"cmd": f"ptz_{d}_press"}} for d in ("up", "down", "left", "right")}
RELEASE = {"topic": "ptz", "data": {"cmd": "ptz_release_pre"}}


class Rig:
    def __init__(self, tmp_path: Path, **config: Any) -> None:
        self.clock = ManualClock()
        self.hardware = SimulatedHardware(tmp_path, clock=self.clock)
        self.device = Device(self.hardware, config=DeviceConfig(**config), clock=self.clock, scheduler=self.clock)
        self.events: list[Event] = []
        self.device.subscribe(self.events.append)

    def ask(self, body: dict[str, Any], visitor: str | None = None) -> dict[str, Any]:
        raw = b"action=user_define&channel=0&cmd=" + orjson.dumps(body)
        reply: dict[str, Any] = orjson.loads(self.device.handle(raw, visitor=visitor))
        return reply

    def moving(self) -> str | None:
        return self.hardware.motor.moving

    def stops(self) -> list[str]:
        return [e.data["reason"] for e in self.events if e.kind == "ptz" and e.data["action"] == "stop"]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.device.close()


def test_press_hold_release_moves_and_stops(rig: Rig) -> None:
    start = rig.ask(RELEASE)
    reply = rig.ask(PRESS["right"], visitor="phone")
    assert reply["result"] == "0" and rig.moving() == "right"
    assert list(reply) == ["confirmation_topic", "result", "apex", "current_x", "current_y",
                           "max_x", "max_y", "min_x", "min_y"]
    rig.clock.advance(1.0)
    stopped = rig.ask(RELEASE, visitor="phone")
    assert rig.moving() is None
    assert stopped["current_x"] == start["current_x"] + 600  # 600 steps/s for 1 s
    assert stopped["apex"] == "no"
    assert rig.stops()[-1] == "release"


def test_end_stop_reports_apex_and_stops_the_motor(rig: Rig) -> None:
    rig.ask(PRESS["up"])
    rig.clock.advance(10.0)  # y spans 900 steps at 300/s: the end stop comes after 1.5 s
    assert rig.moving() is None
    assert "end_stop" in rig.stops()
    reply = rig.ask(RELEASE)
    assert (reply["current_y"], reply["apex"]) == (reply["max_y"], "yes")


def test_lost_release_is_cut_by_the_move_cap(tmp_path: Path) -> None:
    rig = Rig(tmp_path, ptz_move_cap_s=2.0)
    try:
        rig.ask(PRESS["left"])
        rig.clock.advance(1.9)
        assert rig.moving() == "left"
        rig.clock.advance(0.2)
        assert rig.moving() is None and rig.stops()[-1] == "cap"
    finally:
        rig.device.close()


def test_closing_the_pressing_session_stops_the_motor(rig: Rig) -> None:
    rig.device.open_session("phone", role="owner")
    rig.device.open_session("other", role="owner")
    rig.ask(PRESS["left"], visitor="phone")
    rig.device.close_session("other")
    assert rig.moving() == "left"  # someone else leaving does not stop it
    rig.device.close_session("phone")
    assert rig.moving() is None and rig.stops()[-1] == "session_closed"


def test_standby_stops_the_motor_and_refuses_ptz(rig: Rig) -> None:
    rig.ask(PRESS["down"])
    assert rig.ask({"topic": "set_status", "data": {"status": "standby"}})["result"] == "0"
    assert rig.moving() is None and rig.stops()[-1] == "standby"
    assert rig.ask(PRESS["down"])["result"] == "8"


def test_close_stops_the_motor_and_persists_the_position(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.ask(PRESS["right"])
    rig.clock.advance(0.5)
    rig.device.close()
    assert rig.moving() is None and rig.stops()[-1] == "close"
    x = rig.hardware.motor.position()[0]
    again = Rig(tmp_path)
    try:
        assert again.ask(RELEASE)["current_x"] == x
    finally:
        again.device.close()


def test_a_new_device_sends_a_stop_at_start(tmp_path: Path) -> None:
    clock = ManualClock()
    hardware = SimulatedHardware(tmp_path, clock=clock)
    hardware.motor.start("left")  # as if the process died mid-move
    with Device(hardware, clock=clock, scheduler=clock):
        assert hardware.motor.moving is None


@pytest.mark.parametrize(("token", "axis", "sign"), [("ptz_left", "current_x", -1), ("ptz_right", "current_x", 1),
                                                     ("ptz_up", "current_y", 1), ("ptz_down", "current_y", -1)])
def test_legacy_tokens_move_one_step(rig: Rig, token: str, axis: str, sign: int) -> None:
    before = rig.ask(RELEASE)[axis]
    reply: dict[str, Any] = orjson.loads(rig.device.handle(f"action=user_define&channel=0&cmd={token}"))
    assert (reply["confirmation_topic"], reply["result"]) == ("ptz", "0")
    rig.clock.advance(5.0)
    assert rig.moving() is None
    assert rig.ask(RELEASE)[axis] == before + sign * 100  # DeviceConfig.ptz_step


def test_a_camera_without_a_motor_answers_unsupported(tmp_path: Path) -> None:
    from iotvideo_signaling import Hardware

    with Device(Hardware()) as device:
        reply = orjson.loads(device.handle(b'{"topic":"ptz","message_id":3,"data":{"cmd":"ptz_up_press"}}'))
        assert (reply["result"], reply["message_id"]) == ("3", 3)


class HeldLimits(SimulatedHardware):
    """Holds the next press inside its geometry read, i.e. after the Device's standby check."""

    def __init__(self, path: Path, clock: ManualClock) -> None:
        super().__init__(path, clock=clock)
        self.hold = False
        self.reached = threading.Event()
        self.go = threading.Event()

    def ptz_limits(self) -> PtzLimits:
        if self.hold:
            self.hold = False
            self.reached.set()
            self.go.wait(5)
        return super().ptz_limits()


def test_a_press_racing_standby_is_refused_and_the_motor_stays_still(tmp_path: Path) -> None:
    clock = ManualClock()
    hw = HeldLimits(tmp_path, clock)
    with Device(hw, clock=clock, scheduler=clock) as device:
        replies: list[bytes] = []
        hw.hold = True
        press = threading.Thread(target=lambda: replies.append(device.handle(
            b'{"topic":"ptz","message_id":1,"data":{"cmd":"ptz_left_press"}}')))
        press.start()
        assert hw.reached.wait(5)
        standby = device.handle(b'{"topic":"set_status","data":{"status":"standby"}}')
        assert orjson.loads(standby)["result"] == "0"
        hw.go.set()
        press.join(5)
        assert orjson.loads(replies[0])["result"] == "8"
        assert hw.motor.moving is None
