"""SimulatedHardware, and what a restart of the camera keeps (power, flip) or survives (a bad state file)."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import orjson
import pytest

from iotvideo_signaling import Device, Event, SimulatedHardware, state
from spec_examples import ask, inner, send

WAIT = 10.0


def _power(device: Device) -> str:
    got = ask(device, {"topic": "get_status"})
    assert got["result"] == "0"
    status: str = got["status"]
    return status


def _wait_for_format(device: Device) -> threading.Event:
    done = threading.Event()

    def on_event(event: Event) -> None:
        if event.kind == "sd_format" and event.data.get("state") in ("done", "failed"):
            done.set()

    device.subscribe(on_event)
    return done


# -- persisted state and restarts ------------------------------------------------------------


def test_defaults_on_first_start(tmp_path: Path) -> None:
    hw = SimulatedHardware(tmp_path / "new")
    assert hw.get_power() == "working"
    assert hw.flip == "normal"
    assert hw.firmware_version() == "V1.0.0"
    assert hw.signal_strength() == 80
    assert hw.sd_card_present()
    assert hw.sd_dir == tmp_path / "new" / "sdcard"
    assert hw.sd_dir.is_dir()


def test_power_and_flip_survive_a_restart(tmp_path: Path) -> None:
    with Device(SimulatedHardware(tmp_path)) as first:
        assert ask(first, {"topic": "set_status", "data": {"status": "standby"}})["result"] == "0"
        assert ask(first, {"topic": "Mirror_flip", "data": {"mode": "flip"}})["result"] == "0"
    second_hw = SimulatedHardware(tmp_path)
    assert second_hw.get_power() == "standby"
    assert second_hw.flip == "flip"
    with Device(second_hw) as second:
        assert _power(second) == "standby"
        assert send(second, inner("get_device_st", type="live"))[0]["status"] == "1"
        assert ask(second, {"topic": "set_status", "status": "working"})["result"] == "0"
        assert ask(second, {"topic": "Mirror_flip", "mode": "normal"})["result"] == "0"
    third_hw = SimulatedHardware(tmp_path)
    assert (third_hw.get_power(), third_hw.flip) == ("working", "normal")
    with Device(third_hw) as third:
        assert _power(third) == "working"


def test_state_is_on_disk_before_the_reply(tmp_path: Path) -> None:
    """No flush needed: a camera that loses power right after the reply keeps the change."""
    device = Device(SimulatedHardware(tmp_path))
    try:
        assert ask(device, {"topic": "Mirror_flip", "mode": "flip"})["result"] == "0"
        assert ask(device, {"topic": "set_status", "status": "standby"})["result"] == "0"
        on_disk = orjson.loads((tmp_path / "state.json").read_bytes())
        assert on_disk["flip"] == "flip"
        assert on_disk["power"] == "standby"
    finally:
        device.close()


def test_snapshot_lists_every_persisted_value(tmp_path: Path) -> None:
    hw = SimulatedHardware(tmp_path)
    hw.set_flip("flip")
    assert set(hw.snapshot()) >= {"power", "flip", "version"}
    assert hw.snapshot()["flip"] == "flip"


#: ``(content of state.json, whether loading it logs a warning)``.
BAD_STATE_FILES: list[tuple[bytes, bool]] = [
    (b"", True),
    (b'{"power": "standby", "fl', True),  # truncated mid-write
    (b"\x89PNG\r\n\x1a\n\x00\x00garbage", True),
    (b"\xff" * 64, True),
    (b"[1, 2, 3]", True),
    (b'"standby"', True),
    (b'{"power": 1, "flip": null, "version": []}', True),  # wrong types: defaults, each named
    (b'{"power": "exploded", "flip": "sideways"}', True),  # unknown values: defaults, each named
]


@pytest.mark.parametrize(("content", "warns"), BAD_STATE_FILES, ids=lambda c: repr(c)[:30])
def test_a_bad_state_file_does_not_stop_the_camera(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes, warns: bool
) -> None:
    caplog.set_level(logging.WARNING, logger="iotvideo_signaling")
    (tmp_path / "state.json").write_bytes(content)
    with Device(SimulatedHardware(tmp_path)) as dev:
        assert _power(dev) == "working"
        assert ask(dev, {"topic": "version"})["result"] == "0"
        assert send(dev, inner("get_device_st", type="live"))[0]["status"] == "0"
        assert ask(dev, {"topic": "set_status", "status": "standby"})["result"] == "0"
        assert ask(dev, {"topic": "Mirror_flip", "mode": "flip"})["result"] == "0"
    if warns:
        assert any(r.levelno == logging.WARNING for r in caplog.records), caplog.text
    again = SimulatedHardware(tmp_path)
    assert (again.get_power(), again.flip) == ("standby", "flip")


def test_a_truncated_state_file_logs_a_warning_that_names_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="iotvideo_signaling")
    hw = SimulatedHardware(tmp_path)
    hw.set_power("standby")
    data = (tmp_path / "state.json").read_bytes()
    (tmp_path / "state.json").write_bytes(data[: len(data) // 2])
    restarted = SimulatedHardware(tmp_path)
    assert restarted.get_power() == "working"
    assert "state.json" in caplog.text


def test_set_status_retried_after_a_failed_write_is_persisted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Device(SimulatedHardware(tmp_path)) as dev:
        assert ask(dev, {"topic": "Mirror_flip", "mode": "normal"})["result"] == "0"  # state.json exists

        def boom(*args: Any, **kwargs: Any) -> Any:
            raise OSError("disk full")

        monkeypatch.setattr(os, "replace", boom)
        assert ask(dev, {"topic": "set_status", "status": "standby"})["result"] == "7"
        monkeypatch.undo()
        assert ask(dev, {"topic": "set_status", "status": "standby"})["result"] == "0"
        assert _power(dev) == "standby"
    assert SimulatedHardware(tmp_path).get_power() == "standby"


def test_an_unknown_flip_mode_falls_back_alone_and_is_named(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="iotvideo_signaling")
    (tmp_path / "state.json").write_bytes(orjson.dumps({"power": "standby", "flip": "upside-down", "version": "V2"}))
    hw = SimulatedHardware(tmp_path)
    assert (hw.get_power(), hw.flip, hw.firmware_version()) == ("standby", "normal", "V2")
    [warning] = [r.getMessage() for r in caplog.records]
    assert "flip is 'upside-down', which is not valid; using the default 'normal'" in warning


def test_a_corrupt_state_file_is_kept_beside(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_bytes(b'{"power": "stand')
    with Device(SimulatedHardware(tmp_path)) as dev:
        assert ask(dev, {"topic": "Mirror_flip", "mode": "flip"})["result"] == "0"
    [kept] = tmp_path.glob("state.json.corrupt-*")
    assert kept.read_bytes() == b'{"power": "stand'
    assert SimulatedHardware(tmp_path).flip == "flip"


def _unwritable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every write in the state directory fail as a read-only directory would (even for root)."""
    def refused(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied", str(args[0].parent))

    monkeypatch.setattr(state, "_temporary_beside", refused)  # where every write begins


def test_an_unwritable_state_directory_is_one_line_at_start_and_per_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="iotvideo_signaling")
    hw = SimulatedHardware(tmp_path)
    _unwritable(monkeypatch)
    with Device(hw) as dev:
        [at_start] = caplog.records
        assert at_start.getMessage().startswith(f"state directory {tmp_path} is not writable ([Errno 13]")
        assert at_start.exc_info is None
        caplog.clear()
        for _ in range(2):
            got = ask(dev, {"topic": "Mirror_flip", "mode": "flip"})
            assert (got["result"], got["reason"]) == ("7", "device error")
        assert ask(dev, {"topic": "version"})["result"] == "0"  # the rest still works
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage().split(":")[0] for r in warnings] == ["Mirror_flip failed", "Mirror_flip failed"]
    assert all(r.exc_info is None for r in warnings)  # no traceback at WARNING


def test_a_writable_state_directory_logs_nothing_at_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="iotvideo_signaling")
    with Device(SimulatedHardware(tmp_path)):
        pass
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_position_that_cannot_be_saved_does_not_fail_the_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="iotvideo_signaling")
    hw = SimulatedHardware(tmp_path)
    hw.ptz_start("left")
    _unwritable(monkeypatch)
    hw.ptz_stop()
    assert hw.motor.moving is None
    [warning] = caplog.records
    assert warning.getMessage().startswith("cannot save the PTZ position")
    assert warning.exc_info is None


def test_no_temporary_files_after_many_changes(tmp_path: Path) -> None:
    with Device(SimulatedHardware(tmp_path)) as dev:
        for i in range(20):
            ask(dev, {"topic": "Mirror_flip", "mode": "flip" if i % 2 else "normal"})
            ask(dev, {"topic": "set_status", "status": "standby" if i % 2 else "working"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sdcard", "state.json"]


# -- the SD card --------------------------------------------------------------------------------


def _fill_card(hw: SimulatedHardware, outside: Path) -> None:
    sd = hw.sd_dir
    (sd / "record").mkdir()
    (sd / "record" / "100-200.mp4").write_bytes(b"video")
    (sd / "deep" / "er" / "est").mkdir(parents=True)
    (sd / "deep" / "er" / "est" / "f.bin").write_bytes(b"x")
    (sd / ".hidden").write_bytes(b"h")
    (sd / "empty-dir").mkdir()
    (sd / "link-to-outside-dir").symlink_to(outside, target_is_directory=True)
    (sd / "link-to-outside-file").symlink_to(outside / "precious.txt")
    (sd / "deep" / "link-to-outside-dir").symlink_to(outside, target_is_directory=True)
    (sd / "dangling").symlink_to(outside / "does-not-exist")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "precious.txt").write_bytes(b"keep me")
    (folder / "sub").mkdir()
    (folder / "sub" / "more.txt").write_bytes(b"and me")
    return folder


@pytest.mark.parametrize("via", ["device", "hook"])
def test_sd_format_empties_the_card_and_nothing_else(tmp_path: Path, outside: Path, via: str) -> None:
    state_dir = tmp_path / "cam"
    hw = SimulatedHardware(state_dir)
    _fill_card(hw, outside)
    (state_dir / "beside-the-card.txt").write_bytes(b"not on the card")
    (state_dir / "sdcard-backup").mkdir()
    (state_dir / "sdcard-backup" / "b.mp4").write_bytes(b"b")
    hw.play_tone("bind_success")
    state_before = (state_dir / "state.json").read_bytes() if (state_dir / "state.json").exists() else None
    if via == "hook":
        hw.format_sd()
    else:
        with Device(hw) as dev:
            done = _wait_for_format(dev)
            assert ask(dev, {"topic": "sd_format", "message_id": 1})["result"] == "0"
            assert done.wait(WAIT)
    assert hw.sd_dir.is_dir()
    assert list(hw.sd_dir.iterdir()) == []
    assert (outside / "precious.txt").read_bytes() == b"keep me"
    assert (outside / "sub" / "more.txt").read_bytes() == b"and me"
    assert (state_dir / "beside-the-card.txt").read_bytes() == b"not on the card"
    assert (state_dir / "sdcard-backup" / "b.mp4").exists()
    assert hw.tones() == ["bind_success"]
    if state_before is not None:
        assert (state_dir / "state.json").read_bytes() == state_before


def test_sd_format_of_an_empty_card(tmp_path: Path) -> None:
    hw = SimulatedHardware(tmp_path)
    hw.format_sd()
    hw.format_sd()
    assert list(hw.sd_dir.iterdir()) == []


def test_no_sd_card(tmp_path: Path) -> None:
    hw = SimulatedHardware(tmp_path, sd_card=False)
    assert not hw.sd_card_present()
    assert not hw.sd_dir.exists()
    with pytest.raises(OSError, match="no SD card"):
        hw.format_sd()
    assert hw.record_index(0, 2**32) == []


def test_a_removed_card_is_not_present(tmp_path: Path) -> None:
    hw = SimulatedHardware(tmp_path)
    hw.sd_dir.rmdir()
    assert not hw.sd_card_present()
    with pytest.raises(OSError):
        hw.format_sd()


def test_format_delay(tmp_path: Path) -> None:
    hw = SimulatedHardware(tmp_path, format_delay=0.05)
    (hw.sd_dir / "x").write_bytes(b"x")
    hw.format_sd()
    assert list(hw.sd_dir.iterdir()) == []


# -- recordings, tones, signal --------------------------------------------------------------------


def test_recordings_come_from_the_record_folder(tmp_path: Path) -> None:
    hw = SimulatedHardware(tmp_path)
    folder = hw.sd_dir / "record"
    folder.mkdir()
    (folder / "300-400.mp4").write_bytes(b"abc")
    (folder / "100-200.mp4").write_bytes(b"a")
    (folder / "x-1.mp4").write_bytes(b"")
    (folder / "5-6.avi").write_bytes(b"")
    (hw.sd_dir / "500-600.mp4").write_bytes(b"")  # not in record/
    assert hw.record_index(0, 1000) == [(100, 200), (300, 400)]
    assert hw.record_index(150, 350) == [(100, 200), (300, 400)]
    assert hw.record_index(201, 299) == []
    assert hw.record_index(200, 200) == [(100, 200)]
    assert hw.file_list(0, 1000, 0) == [
        {"file_type": 0, "file_name": "100-200.mp4", "file_size": 1, "start_time": 100, "end_time": 200},
        {"file_type": 0, "file_name": "300-400.mp4", "file_size": 3, "start_time": 300, "end_time": 400},
    ]
    assert hw.file_list(0, 1000, 1) == []
    assert hw.month_record(1970, 1) == 1  # 100 s after the epoch: 1 January 1970
    assert hw.month_record(1970, 2) == 0


REAL_LOCALTIME = time.localtime


def _time_t_32(error: type[Exception]) -> Callable[..., time.struct_time]:
    """``time.localtime`` as on armhf (a 32-bit ``time_t``): ``error`` beyond 2**31-1."""

    def localtime(stamp: Optional[float] = None) -> time.struct_time:
        if stamp is not None and not -(2**31) <= stamp < 2**31:
            raise error("timestamp out of range for platform time_t")
        return REAL_LOCALTIME(stamp)

    return localtime


@pytest.mark.parametrize("error", [OverflowError, OSError, ValueError])
def test_a_recording_after_2038_on_a_32_bit_time_t_is_left_out_of_month_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, error: type[Exception]
) -> None:
    caplog.set_level(logging.WARNING, logger="iotvideo_signaling")
    hw = SimulatedHardware(tmp_path)
    folder = hw.sd_dir / "record"
    folder.mkdir()
    (folder / "1700000000-1700000060.mp4").write_bytes(b"a")  # November 2023
    (folder / "2147570048-2147570100.mp4").write_bytes(b"b")  # January 2038, after 2**31-1
    (folder / "2200000000-2200000060.mp4").write_bytes(b"c")  # September 2039
    day = REAL_LOCALTIME(1700000000)
    month = f"{day.tm_year}{day.tm_mon:02d}"
    monkeypatch.setattr(time, "localtime", _time_t_32(error))
    with Device(hw) as dev:
        for _ in range(2):
            assert send(dev, inner("get_month_record", time=month)) == {"video_list": str(1 << (day.tm_mday - 1))}
            assert send(dev, inner("get_month_record", time="203801")) == {"video_list": "0"}
        # listing needs no conversion: the recordings are all there
        got = send(dev, inner("get_record_index", start_time="0", end_time="3000000000"))
        assert len(got["video_list"]) == 3
        files = send(dev, inner("get_file_list", start_time="0", end_time="3000000000", file_type="0"))
        assert len(files["file_list"]) == 3
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning.startswith("recording 2147570048-2147570100.mp4: this platform cannot convert its time")


def test_a_recording_named_beyond_any_time_is_skipped(tmp_path: Path) -> None:
    hw = SimulatedHardware(tmp_path)
    folder = hw.sd_dir / "record"
    folder.mkdir()
    (folder / "100-200.mp4").write_bytes(b"a")
    (folder / f"{2**40 + 1}-{2**40 + 2}.mp4").write_bytes(b"")  # beyond what a request can name
    (folder / f"300-{10**30}.mp4").write_bytes(b"")  # an end no JSON integer holds
    (folder / "\u00b2-\u00b3.mp4").write_bytes(b"")  # superscript digits: str.isdigit() but not int()
    assert hw.record_index(0, 2**40) == [(100, 200)]
    assert [f["file_name"] for f in hw.file_list(0, 2**40, 0)] == ["100-200.mp4"]
    assert hw.month_record(1970, 1) == 1


def test_a_dangling_recording_does_not_hide_the_others(tmp_path: Path) -> None:
    hw = SimulatedHardware(tmp_path / "cam")
    folder = hw.sd_dir / "record"
    folder.mkdir()
    (folder / "100-200.mp4").write_bytes(b"a")
    (folder / "300-400.mp4").symlink_to(tmp_path / "gone.mp4")
    assert hw.record_index(0, 1000) == [(100, 200)]


def test_a_directory_named_like_a_recording_is_not_a_recording(tmp_path: Path) -> None:
    hw = SimulatedHardware(tmp_path)
    folder = hw.sd_dir / "record"
    folder.mkdir()
    (folder / "100-200.mp4").write_bytes(b"a")
    (folder / "500-600.mp4").mkdir()
    assert hw.record_index(0, 1000) == [(100, 200)]
    assert [f["file_name"] for f in hw.file_list(0, 1000, 0)] == ["100-200.mp4"]


def test_tones_are_logged_in_order(tmp_path: Path) -> None:
    hw = SimulatedHardware(tmp_path)
    assert hw.tones() == []
    hw.play_tone("bind_success")
    hw.play_tone("other tone")
    assert hw.tones() == ["bind_success", "other tone"]
    assert SimulatedHardware(tmp_path).tones() == ["bind_success", "other tone"]


def test_tones_from_many_threads(tmp_path: Path) -> None:
    hw = SimulatedHardware(tmp_path)
    def play() -> None:
        for _ in range(50):
            hw.play_tone("t")

    threads = [threading.Thread(target=play) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert hw.tones() == ["t"] * 200


def test_bind_status_tone_via_the_device(tmp_path: Path) -> None:
    hw = SimulatedHardware(tmp_path)
    with Device(hw) as dev:
        assert ask(dev, {"topic": "bind_status", "status": "success"})["result"] == "0"
    assert hw.tones() == ["bind_success"]


def test_playback_progress_is_zero(tmp_path: Path) -> None:
    hw = SimulatedHardware(tmp_path)
    assert hw.playback("progress", {}) == 0
    assert hw.playback("pause", {}) is None


def test_start_removes_temporary_files_a_crash_left_beside_the_state_file(tmp_path: Path) -> None:
    stale = [tmp_path / ".state.json.0badf00d.tmp", tmp_path / ".state.json.12345678.tmp"]
    keep = [tmp_path / ".state.json.1234567.tmp", tmp_path / ".tones.log.12345678.tmp", tmp_path / "state.json.bak"]
    for path in stale + keep:
        path.write_bytes(b'{"power": "sta')  # a write cut short
    hardware = SimulatedHardware(tmp_path)
    assert all(path.exists() for path in stale)  # not in the constructor
    hardware.start()
    assert not any(path.exists() for path in stale)
    assert all(path.exists() for path in keep)
    hardware.set_power("standby")
    assert sorted(p.name for p in tmp_path.glob(".state.json.*")) == [".state.json.1234567.tmp"]
