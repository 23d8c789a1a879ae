"""The Device's lifecycle: nothing happens in the constructor, start() begins it exactly once,
close() ends it; upgrade status and cancel through the Device; events on the injected wall clock."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from iotvideo_signaling import Device, DeviceConfig, Event, Hardware, ManualClock
from iotvideo_signaling.jobs import InlineJobs

STATUS = b'action=user_define&channel=0&cmd={"topic":"get_status","message_id":1}'


class Recording(Hardware):
    """Every hook the Device may call at start-up, recorded."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def _record(self, name: str) -> None:
        with self._lock:
            self.calls.append(name)

    def get_power(self) -> str:
        self._record("get_power")
        return "working"

    def signal_strength(self) -> int:
        self._record("signal_strength")
        return 50

    def ptz_start(self, direction: str) -> None:
        self._record("ptz_start")

    def ptz_stop(self) -> None:
        self._record("ptz_stop")

    def ptz_limits(self) -> tuple[int, int, int, int]:
        self._record("ptz_limits")
        return (0, 100, 0, 100)

    def ptz_speed(self) -> tuple[float, float]:
        self._record("ptz_speed")
        return (10.0, 10.0)

    def install_firmware(self, path: str, *, md5: str, size: int) -> None:
        self._record("install_firmware")

    def firmware_version(self) -> str:
        self._record("firmware_version")
        return "V1"

    def close(self) -> None:
        self._record("close")


def make(tmp_path: Path, hw: Hardware) -> Device:
    clock = ManualClock()
    config = DeviceConfig(download_dir=str(tmp_path / "ota"))
    return Device(hw, config=config, clock=clock, scheduler=clock, jobs=InlineJobs())


def test_the_constructor_calls_no_hook_touches_no_file_and_starts_no_thread(tmp_path: Path) -> None:
    hw = Recording()
    threads = threading.active_count()
    device = make(tmp_path, hw)
    assert hw.calls == []
    assert not (tmp_path / "ota").exists()
    assert threading.active_count() == threads
    device.close()
    assert hw.calls == ["close"]  # a Device never started still closes its hardware


def test_start_reads_the_power_and_stops_the_motor_once(tmp_path: Path) -> None:
    hw = Recording()
    device = make(tmp_path, hw)
    assert device.start() is device
    assert hw.calls.count("get_power") == 1
    assert hw.calls.count("ptz_stop") == 1  # the start-up stop: after a crash the motor may run
    assert "ptz_start" not in hw.calls
    calls = len(hw.calls)
    device.start()
    assert len(hw.calls) == calls
    device.close()
    with pytest.raises(RuntimeError):
        device.start()


class Starting(Recording):
    """Hardware whose start-up work fails ``failures`` times, then succeeds."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def start(self) -> None:
        self._record("start")
        if self.failures:
            self.failures -= 1
            raise OSError("camera sensor not ready")


def test_start_starts_the_hardware_first_and_once(tmp_path: Path) -> None:
    hw = Starting(0)
    device = make(tmp_path, hw)
    device.start()
    assert hw.calls[:2] == ["start", "get_power"]
    device.handle(STATUS)
    device.start()
    device.close()
    assert hw.calls.count("start") == 1


def test_a_failed_hardware_start_fails_the_device_start_and_is_retried(tmp_path: Path) -> None:
    hw = Starting(1)
    device = make(tmp_path, hw)
    with pytest.raises(OSError, match="sensor not ready"):
        device.start()
    assert hw.calls == ["start"]  # nothing else was done
    assert orjson.loads(device.handle(STATUS))["result"] == "0"  # first use starts it again
    assert hw.calls[:3] == ["start", "start", "get_power"]
    device.close()
    assert hw.calls.count("start") == 2


def test_the_default_hardware_start_does_nothing(tmp_path: Path) -> None:
    Hardware().start()
    with make(tmp_path, Hardware()) as device:
        assert orjson.loads(device.handle(STATUS))["result"] == "3"  # no signal_strength hook, but started


def test_first_use_starts_the_device_exactly_once_across_threads(tmp_path: Path) -> None:
    hw = Recording()
    device = make(tmp_path, hw)
    barrier = threading.Barrier(8)
    replies: list[dict[str, Any]] = []

    def use() -> None:
        barrier.wait()
        replies.append(orjson.loads(device.handle(STATUS)))

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert [r["result"] for r in replies] == ["0"] * 8
    assert hw.calls.count("get_power") == 1
    assert hw.calls.count("ptz_stop") == 1
    device.close()


def test_session_calls_start_the_device_too(tmp_path: Path) -> None:
    hw = Recording()
    device = make(tmp_path, hw)
    device.open_session("v")
    assert hw.calls.count("get_power") == 1
    device.close()


def test_a_closed_device_still_answers(tmp_path: Path) -> None:
    hw = Recording()
    device = make(tmp_path, hw)
    device.close()
    assert orjson.loads(device.handle(STATUS))["result"] == "0"
    assert "get_power" not in hw.calls  # closed before it began: never started


def test_with_starts_and_closes(tmp_path: Path) -> None:
    hw = Recording()
    with make(tmp_path, hw) as device:
        assert hw.calls.count("get_power") == 1
        assert device.upgrade_status().state == "idle"
        assert device.cancel_upgrade() is False
    assert hw.calls[-1] == "close"


def test_events_carry_the_injected_wall_clock(tmp_path: Path) -> None:
    clock = ManualClock()
    with Device(Recording(), clock=clock, scheduler=clock, wall_clock=lambda: 1234.5, jobs=InlineJobs()) as device:
        events: list[Event] = []
        device.subscribe(events.append)
        device.open_session("v")
        device.publish(Event("vendor", {"x": 1}))
    assert [e.kind for e in events] == ["session", "vendor", "ptz"]  # the motor's stop at close
    assert {e.time for e in events} == {1234.5}
