"""Bounds and races found in review: the power switch, the job queue, reply sizes, odd SD cards."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Optional

import orjson
import pytest

from iotvideo_signaling import Device, DeviceConfig, Event, Hardware, SimulatedHardware
from iotvideo_signaling.config import MAX_MESSAGE_SIZE_LIMIT
from iotvideo_signaling.device import MAX_REPLY_SIZE
from iotvideo_signaling.inner import MAX_FILES, MAX_RECORD_SPANS
from iotvideo_signaling.jobs import MAX_QUEUED_JOBS, WorkerPool


def ask(device: Device, body: dict[str, Any], visitor: str | None = None) -> dict[str, Any]:
    raw = b"action=user_define&channel=0&cmd=" + orjson.dumps(body)
    reply: dict[str, Any] = orjson.loads(device.handle(raw, visitor=visitor))
    return reply


class SlowPower(SimulatedHardware):
    """Switching to standby takes a while (after persisting), as a real privacy shutter may."""

    def set_power(self, status: str) -> None:
        super().set_power(status)
        if status == "standby":
            time.sleep(0.2)


def test_concurrent_power_switches_leave_hook_and_device_in_agreement(tmp_path: Path) -> None:
    hw = SlowPower(tmp_path)
    with Device(hw) as device:
        standby = threading.Thread(target=ask, args=(device, {"topic": "set_status", "status": "standby"}))
        standby.start()
        time.sleep(0.05)  # the standby switch is inside its hook now
        assert ask(device, {"topic": "set_status", "status": "working"})["result"] == "0"
        standby.join()
        assert ask(device, {"topic": "get_status"})["status"] == hw.get_power() == "working"


class BlockingTone(Hardware):
    def __init__(self) -> None:
        self.release = threading.Event()
        self.played = 0

    def play_tone(self, name: str) -> None:
        self.release.wait(10)
        self.played += 1

    def sd_card_present(self) -> bool:
        return True

    def format_sd(self) -> None:
        self.release.wait(10)


def test_repeated_tones_do_not_pile_up() -> None:
    hw = BlockingTone()
    with Device(hw) as device:
        for _ in range(1000):
            assert ask(device, {"topic": "bind_status", "status": "success"})["result"] == "0"
        hw.release.set()
    assert hw.played <= 3  # the one playing, at most one waiting (and a race at the start)


def test_the_background_queue_is_bounded(tmp_path: Path) -> None:
    hw = BlockingTone()
    pool = WorkerPool(2)
    with Device(hw, jobs=pool) as device:
        def wait() -> None:
            hw.release.wait(10)

        for _ in range(MAX_QUEUED_JOBS):
            pool.submit(wait)
        got = ask(device, {"topic": "sd_format", "message_id": 9})
        assert (got["result"], got["message_id"]) == ("5", 9)
        hw.release.set()
        deadline = time.monotonic() + 10
        while ask(device, {"topic": "sd_format"})["result"] != "0":
            assert time.monotonic() < deadline
            time.sleep(0.01)


def test_close_drops_jobs_that_have_not_started() -> None:
    hw = BlockingTone()
    pool = WorkerPool(2)
    device = Device(hw, jobs=pool)
    started = threading.Event()
    ran: list[int] = []
    dropped: list[int] = []

    def first() -> None:
        started.set()
        hw.release.wait(0.3)

    for _ in range(2):
        pool.submit(first)
    for i in range(10):
        pool.submit(lambda i=i: ran.append(i), on_drop=lambda i=i: dropped.append(i))  # type: ignore[misc]
    assert started.wait(5)
    begin = time.monotonic()
    device.close()
    assert time.monotonic() - begin < 5
    assert ran == []
    assert dropped == list(range(10))


def test_a_reply_over_16_kib_is_a_device_error(device: Device) -> None:
    device.topic("huge")(lambda request, visitor: {"blob": "x" * (MAX_REPLY_SIZE + 1)})
    got = ask(device, {"topic": "huge", "message_id": 3})
    assert (got["confirmation_topic"], got["result"], got["reason"], got["message_id"]) == (
        "huge", "7", "reply too large", 3)


def _clips(hw: SimulatedHardware, count: int, length: int = 60) -> None:
    folder = hw.sd_dir / "record"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        start = 1_700_000_000 + i * length * 2  # a gap between clips: no merging
        (folder / f"{start}-{start + length}.mp4").write_bytes(b"")


def _inner(device: Device, query: str) -> Any:
    return orjson.loads(device.handle(f"action=inner_define&channel=0&cmd={query}"))


def test_record_lists_are_capped(device: Device, hw: SimulatedHardware) -> None:
    _clips(hw, 400)
    spans = _inner(device, "get_record_index&start_time=0&end_time=2000000000")["video_list"]
    files = _inner(device, "get_file_list&start_time=0&end_time=2000000000&file_type=0")["file_list"]
    assert len(spans) == MAX_RECORD_SPANS and len(files) == MAX_FILES
    assert spans[0]["start_time"] == "1700000000"  # the earliest first


def test_touching_clips_merge_into_one_span(device: Device, hw: SimulatedHardware) -> None:
    folder = hw.sd_dir / "record"
    folder.mkdir(parents=True)
    for start in range(1_700_000_000, 1_700_000_000 + 60 * 1440, 60):  # a day of one-minute clips
        (folder / f"{start}-{start + 60}.mp4").write_bytes(b"")
    reply = device.handle("action=inner_define&channel=0&cmd=get_record_index&start_time=0&end_time=2000000000")
    assert orjson.loads(reply)["video_list"] == [
        {"type": 0, "start_time": "1700000000", "end_time": str(1_700_000_000 + 60 * 1440)}]
    assert len(reply) < 200


def test_format_refuses_a_symlinked_card_directory(tmp_path: Path) -> None:
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    state = tmp_path / "cam"
    state.mkdir()
    os.symlink(outside, state / "sdcard")
    with Device(SimulatedHardware(state)) as device:
        events: list[Any] = []
        device.subscribe(events.append)
        assert ask(device, {"topic": "sd_format"})["result"] == "0"
        deadline = time.monotonic() + 5
        while not any(e.kind == "sd_format" and e.data["state"] == "failed" for e in events):
            assert time.monotonic() < deadline
            time.sleep(0.01)
    assert (outside / "keep.txt").read_text() == "keep"


class VanishingCard(SimulatedHardware):
    """A card that reads as absent while it is being formatted (unmounted)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.formatting = threading.Event()
        self.release = threading.Event()

    def sd_card_present(self) -> bool:
        return not self.formatting.is_set()

    def format_sd(self) -> None:
        self.formatting.set()
        self.release.wait(10)
        self.formatting.clear()


def test_format_while_formatting_is_busy_even_when_the_card_reads_absent(tmp_path: Path) -> None:
    hw = VanishingCard(tmp_path)
    with Device(hw) as device:
        assert ask(device, {"topic": "sd_format"})["result"] == "0"
        assert hw.formatting.wait(5)
        assert ask(device, {"topic": "sd_format"})["result"] == "5"
        hw.release.set()


def test_an_oversized_str_is_refused_before_it_is_encoded(backend: ModuleType) -> None:
    from iotvideo_signaling import WireError

    with pytest.raises(WireError) as info:
        backend.parse_command("x" * 20000, max_size=100)
    assert (info.value.reason, info.value.offset) == ("command exceeds 100 bytes", 100)
    # a str of exactly max_size characters that encodes longer is refused as bytes are
    with pytest.raises(WireError):
        backend.parse_command("é" * 100, max_size=100)


@pytest.mark.parametrize(
    "bad",
    [{"workers": 0}, {"ptz_step": 0}, {"max_connections": -1}, {"max_message_size": 0}, {"ptz_move_cap_s": 0.0},
     {"ptz_move_cap_s": float("nan")}, {"default_role": "admin"}, {"sharer_denied_topics": "upgrade"},
     {"max_message_size": 2**31}, {"max_message_size": MAX_MESSAGE_SIZE_LIMIT + 1}],
)
def test_a_device_config_that_cannot_work_is_refused(tmp_path: Path, bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        Device(SimulatedHardware(tmp_path), config=DeviceConfig(**bad))


def test_the_largest_max_message_size_works(tmp_path: Path) -> None:
    # 1 MiB: far above the panel's 16 KiB, and a Py_ssize_t on 32-bit ARM too (2**31 is not).
    assert MAX_MESSAGE_SIZE_LIMIT == 2**20
    body = {"topic": "version", "pad": "x" * (2**20 - 200)}
    with Device(SimulatedHardware(tmp_path), config=DeviceConfig(max_message_size=MAX_MESSAGE_SIZE_LIMIT)) as device:
        assert ask(device, body)["result"] == "0"
        assert ask(device, {**body, "pad": "x" * 2**20})["result"] == "1"


def test_an_embedded_daemon_checks_its_settings(tmp_path: Path) -> None:
    import asyncio

    from iotvideo_signaling.server import ConfigError, Settings, parse_listen
    from iotvideo_signaling.server.daemon import Daemon

    with Device(SimulatedHardware(tmp_path)) as device:
        daemon = Daemon(device, Settings(listen=(parse_listen("tcp://0.0.0.0:0"),)))  # no tokens
        with pytest.raises(ConfigError):
            asyncio.run(daemon.start())


class FailingOnce(WorkerPool):
    """A pool that refuses its first job, as a pool does when it cannot start a thread."""

    failed = False

    def submit(self, run: Callable[[], None], /, *, on_drop: Optional[Callable[[], None]] = None) -> None:
        if not self.failed:
            self.failed = True
            raise RuntimeError("can't start new thread")
        super().submit(run, on_drop=on_drop)


class CountingCard(SimulatedHardware):
    formats = 0

    def format_sd(self) -> None:
        self.formats += 1


def test_a_job_the_pool_refuses_is_answered_7_and_releases_the_card(tmp_path: Path) -> None:
    hw = CountingCard(tmp_path)
    with Device(hw, jobs=FailingOnce()) as device:
        events: list[Event] = []
        device.subscribe(events.append)
        assert ask(device, {"topic": "sd_format", "message_id": 1})["result"] == "7"
        assert ask(device, {"topic": "sd_format", "message_id": 2})["result"] == "0"  # not busy: released
    assert hw.formats == 1
    formats = [dict(event.data) for event in events if event.kind == "sd_format"]
    assert formats == [
        {"state": "formatting"}, {"state": "failed", "reason": "can't start new thread"},
        {"state": "formatting"}, {"state": "done"},
    ]


def test_close_reports_a_format_still_waiting_for_the_pool_as_failed(tmp_path: Path) -> None:
    hw = CountingCard(tmp_path)
    pool = WorkerPool(1)
    device = Device(hw, jobs=pool)
    events: list[Event] = []
    device.subscribe(events.append)
    gate = threading.Event()
    running = threading.Event()

    def busy() -> None:
        running.set()
        gate.wait(5)

    pool.submit(busy)  # the only worker is busy ...
    assert running.wait(5)
    assert ask(device, {"topic": "sd_format"})["result"] == "0"  # ... so the format waits
    closer = threading.Thread(target=device.close)
    closer.start()
    time.sleep(0.1)  # close() waits for the running job
    gate.set()
    closer.join(5)
    assert not closer.is_alive()
    formats = [dict(event.data) for event in events if event.kind == "sd_format"]
    assert formats == [{"state": "formatting"}, {"state": "failed", "reason": "device closed"}]
    assert hw.formats == 0


class GatedHooks(SimulatedHardware):
    """set_power and sd_card_present wait for the test: they stand for slow hardware."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir)
        self.inside = threading.Event()
        self.gate = threading.Event()

    def _hold(self) -> None:
        self.inside.set()
        assert self.gate.wait(10)

    def set_power(self, status: str) -> None:
        self._hold()
        super().set_power(status)

    def sd_card_present(self) -> bool:
        if not self.inside.is_set():  # the first call is the slow one
            self._hold()
        return True


@pytest.mark.parametrize(
    "slow", [{"topic": "set_status", "status": "standby"}, {"topic": "sd_format"}], ids=["set_power", "sd_card_present"]
)
def test_a_slow_hook_holds_up_no_other_topic(tmp_path: Path, slow: dict[str, Any]) -> None:
    hw = GatedHooks(tmp_path)
    with Device(hw) as device:
        device.open_session("a")
        stuck = threading.Thread(target=ask, args=(device, slow))
        stuck.start()
        try:
            assert hw.inside.wait(10)
            # the hook is running: every lock that guards state is free
            answers: list[str] = []

            def others() -> None:
                for topic in ("get_status", "intercom", "version", "Mirror_flip", "bind_status"):
                    body = {"topic": topic, "mode": "flip", "status": "success"}
                    answers.append(ask(device, body)["result"])
                device.start_stream("a")
                device.close_session("a")
                answers.append(ask(device, {"topic": "sd_format"})["result"])  # busy, or in the hook

            other = threading.Thread(target=others)
            other.start()
            other.join(10)
            assert not other.is_alive()
            assert answers[:5] == ["0"] * 5
        finally:
            hw.gate.set()
            stuck.join(10)
        assert not stuck.is_alive()


def test_a_hook_that_calls_back_into_its_own_switch_gets_an_error_not_a_deadlock(tmp_path: Path) -> None:
    class Reentrant(SimulatedHardware):
        device: Device

        def set_power(self, status: str) -> None:
            super().set_power(status)
            reply = ask(self.device, {"topic": "set_status", "status": "working"})
            assert reply["result"] == "7"

    hw = Reentrant(tmp_path)
    with Device(hw) as device:
        hw.device = device
        assert ask(device, {"topic": "set_status", "status": "standby"})["result"] == "0"
