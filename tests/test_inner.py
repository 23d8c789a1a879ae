"""The built-in ``inner_define`` commands (docs/protocol.md §6)."""

from __future__ import annotations

import calendar
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest

from iotvideo_signaling import Device, DeviceConfig, Hardware, SimulatedHardware
from spec_examples import check_reply, inner, send


def device_st(device: Device, visitor: str | None = None, **params: str) -> list[dict[str, Any]]:
    got = send(device, inner("get_device_st", **params), visitor=visitor)
    assert isinstance(got, list)
    assert len(got) == 1
    return got


def _ts(*parts: int) -> int:
    """Unix time of ``(year, month, day, hour, minute, second)`` in UTC."""
    return calendar.timegm(parts)


FEB_1 = _ts(2024, 2, 1, 10, 0, 0)
FEB_29 = _ts(2024, 2, 29, 23, 0, 0)
MAR_1 = _ts(2024, 3, 1, 0, 30, 0)


def record(hw: SimulatedHardware, start: int, end: int, size: int = 10) -> str:
    folder = hw.sd_dir / "record"
    folder.mkdir(exist_ok=True)
    name = f"{start}-{end}.mp4"
    (folder / name).write_bytes(b"v" * size)
    return name


# -- get_device_st --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["live", "voice", "playback"])
@pytest.mark.parametrize("quality", ["standard", "high", "super", None])
def test_get_device_st_accepts(device: Device, kind: str, quality: str | None) -> None:
    params = {"type": kind} if quality is None else {"type": kind, "quality": quality}
    raw_reply = device.handle(inner("get_device_st", **params))
    assert raw_reply == b'[{"status":"0","appConnectNum":"1"}]'


def test_get_device_st_with_percent_encoded_params_and_no_channel(device: Device) -> None:
    got = send(device, b"action=inner_define&cmd=get_device_st&type=%6C%69%76%65&quality=h%69gh")
    assert got == [{"status": "0", "appConnectNum": "1"}]
    got = send(device, b"type=live&cmd=get_device_st&quality=high&action=inner_define")
    assert got == [{"status": "0", "appConnectNum": "1"}]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"quality": "high"},
        {"type": ""},
        {"type": "LIVE"},
        {"type": "video"},
        {"type": "live", "quality": "ultra"},
        {"type": "live", "quality": ""},
        {"type": "live", "quality": "High"},
    ],
    ids=repr,
)
def test_get_device_st_bad_request_is_404(device: Device, params: dict[str, str]) -> None:
    assert device_st(device, **params) == [{"status": "404"}]


@pytest.mark.parametrize("kind", ["live", "voice", "playback"])
def test_get_device_st_refuses_in_standby(device: Device, kind: str) -> None:
    send(device, b'{"topic":"set_status","status":"standby"}')
    got = device_st(device, "v", type=kind)
    assert got[0]["status"] == "1"
    assert got[0]["appConnectNum"] == "1"


def test_get_device_st_refuses_voice_while_another_visitor_talks(device: Device) -> None:
    assert device.start_intercom("talker")
    assert device_st(device, "other", type="voice")[0]["status"] == "1"
    assert device_st(device, None, type="voice")[0]["status"] == "1"
    assert device_st(device, "talker", type="voice")[0]["status"] == "0"
    assert device_st(device, "other", type="live")[0]["status"] == "0"
    device.stop_intercom("talker")
    assert device_st(device, "other", type="voice")[0]["status"] == "0"


def test_get_device_st_405_beyond_max_connections(tmp_path: Path) -> None:
    with Device(SimulatedHardware(tmp_path), config=DeviceConfig(max_connections=2)) as dev:
        assert dev.config.max_connections == 2
        dev.start_stream("a")
        assert device_st(dev, "b", type="live") == [{"status": "0", "appConnectNum": "2"}]
        dev.start_stream("b")
        assert device_st(dev, "c", type="live") == [{"status": "405", "appConnectNum": "3"}]
        assert device_st(dev, "c", type="voice")[0]["status"] == "405"
        assert device_st(dev, "c", type="playback")[0]["status"] == "405"
        # a visitor already streaming is not refused
        assert device_st(dev, "a", type="live") == [{"status": "0", "appConnectNum": "2"}]
        dev.stop_stream("a")
        assert device_st(dev, "c", type="live") == [{"status": "0", "appConnectNum": "2"}]
        dev.start_stream("c")
        dev.close_session("b")
        assert device_st(dev, "d", type="live")[0]["status"] == "0"


def test_get_device_st_one_connection(tmp_path: Path) -> None:
    with Device(SimulatedHardware(tmp_path), config=DeviceConfig(max_connections=1)) as dev:
        assert device_st(dev, "a", type="live")[0]["status"] == "0"
        dev.start_stream("a")
        assert device_st(dev, "a", type="live")[0]["status"] == "0"
        assert device_st(dev, "b", type="live")[0]["status"] == "405"


def test_get_device_st_standby_wins_over_the_other_refusals(tmp_path: Path) -> None:
    with Device(SimulatedHardware(tmp_path), config=DeviceConfig(max_connections=1)) as dev:
        dev.start_stream("a")
        dev.start_intercom("a")
        send(dev, b'{"topic":"set_status","status":"standby"}')
        assert device_st(dev, "b", type="voice")[0]["status"] == "1"


class NoRecords(SimulatedHardware):
    """A camera without recording hooks (no SD playback)."""

    record_index = Hardware.record_index
    month_record = Hardware.month_record
    file_list = Hardware.file_list
    playback = Hardware.playback


def test_get_device_st_playback_unsupported_is_406(tmp_path: Path) -> None:
    with Device(NoRecords(tmp_path)) as dev:
        assert device_st(dev, "v", type="playback") == [{"status": "406", "appConnectNum": "1"}]
        assert device_st(dev, "v", type="live")[0]["status"] == "0"
        assert device_st(dev, "v", type="voice")[0]["status"] == "0"


def test_app_connect_num_follows_the_user_num_rule(device: Device) -> None:
    for visitor in ("a", "b", "c"):
        device.start_stream(visitor)
    assert device_st(device, "a", type="live")[0]["appConnectNum"] == "3"
    assert device_st(device, "z", type="live")[0]["appConnectNum"] == "4"
    got = send(device, b'{"topic":"get_status"}', visitor="z")
    assert got["user_num"] == 4
    device.close_session("a")
    device.stop_stream("b")
    assert device_st(device, "z", type="live")[0]["appConnectNum"] == "2"


# -- recordings -------------------------------------------------------------------------------


def test_get_record_index(device: Device, hw: SimulatedHardware) -> None:
    record(hw, FEB_1, FEB_1 + 60)
    record(hw, FEB_29, FEB_29 + 7200)
    record(hw, MAR_1, MAR_1 + 30)
    got = send(device, inner("get_record_index", start_time=str(FEB_1 - 10), end_time=str(FEB_29)))
    assert got == {
        "video_list": [
            {"type": 0, "start_time": str(FEB_1), "end_time": str(FEB_1 + 60)},
            {"type": 0, "start_time": str(FEB_29), "end_time": str(FEB_29 + 7200)},
        ]
    }
    # a span that only overlaps the window is included; one outside it is not
    got = send(device, inner("get_record_index", start_time=str(FEB_1 + 30), end_time=str(FEB_1 + 40)))
    assert [v["start_time"] for v in got["video_list"]] == [str(FEB_1)]
    got = send(device, inner("get_record_index", start_time="0", end_time=str(FEB_1 - 1)))
    assert got == {"video_list": []}


def test_get_record_index_ignores_files_that_are_not_recordings(device: Device, hw: SimulatedHardware) -> None:
    record(hw, FEB_1, FEB_1 + 60)
    folder = hw.sd_dir / "record"
    for name in ("notes.txt", "abc-def.mp4", "12-34.mkv", "1-2-3.mp4", "-5.mp4"):
        (folder / name).write_bytes(b"x")
    got = send(device, inner("get_record_index", start_time="0", end_time=str(2**32)))
    assert got == {"video_list": [{"type": 0, "start_time": str(FEB_1), "end_time": str(FEB_1 + 60)}]}


def test_get_record_index_without_a_record_folder(device: Device) -> None:
    assert send(device, inner("get_record_index", start_time="0", end_time="1")) == {"video_list": []}


def test_get_month_record(device: Device, hw: SimulatedHardware) -> None:
    record(hw, FEB_1, FEB_1 + 60)
    record(hw, FEB_29, FEB_29 + 7200)
    record(hw, MAR_1, MAR_1 + 30)
    assert send(device, inner("get_month_record", time="202402")) == {"video_list": str((1 << 0) | (1 << 28))}
    assert send(device, inner("get_month_record", time="202403")) == {"video_list": "1"}
    assert send(device, inner("get_month_record", time="202401")) == {"video_list": "0"}
    assert send(device, inner("get_month_record", time="202302")) == {"video_list": "0"}


def test_get_month_record_day_31_is_bit_30(device: Device, hw: SimulatedHardware) -> None:
    record(hw, _ts(2024, 1, 31, 12, 0, 0), _ts(2024, 1, 31, 13, 0, 0))
    got = send(device, inner("get_month_record", time="202401"))
    assert got == {"video_list": str(1 << 30)}
    assert int(got["video_list"]) < 2**32


def test_get_file_list(device: Device, hw: SimulatedHardware) -> None:
    first = record(hw, FEB_1, FEB_1 + 60, size=123)
    record(hw, MAR_1, MAR_1 + 30, size=7)
    got = send(device, inner("get_file_list", start_time="0", end_time=str(FEB_29), file_type="0"))
    assert got == {
        "file_list": [
            {"file_type": 0, "file_name": first, "file_size": 123, "start_time": FEB_1, "end_time": FEB_1 + 60},
        ]
    }
    assert send(device, inner("get_file_list", start_time="0", end_time=str(FEB_29), file_type="1")) == {
        "file_list": []
    }


def test_recordings_are_gone_after_sd_format(device: Device, hw: SimulatedHardware) -> None:
    record(hw, FEB_1, FEB_1 + 60)
    assert send(device, b'{"topic":"sd_format"}')["result"] == "0"
    device.close()
    assert send(device, inner("get_record_index", start_time="0", end_time=str(2**32))) == {"video_list": []}


BAD_RECORD_PARAMS: list[tuple[str, dict[str, str]]] = [
    ("get_record_index", {}),
    ("get_record_index", {"start_time": "0"}),
    ("get_record_index", {"end_time": "10"}),
    ("get_record_index", {"start_time": "", "end_time": "10"}),
    ("get_record_index", {"start_time": "-1", "end_time": "10"}),
    ("get_record_index", {"start_time": "%2B1", "end_time": "10"}),
    ("get_record_index", {"start_time": "1.5", "end_time": "10"}),
    ("get_record_index", {"start_time": "0x10", "end_time": "10"}),
    ("get_record_index", {"start_time": "%EF%BC%91", "end_time": "10"}),  # fullwidth digit one
    ("get_record_index", {"start_time": "1" * 14, "end_time": "1" * 14}),
    ("get_record_index", {"start_time": "0", "end_time": str(2**40 + 1)}),
    ("get_record_index", {"start_time": "20", "end_time": "10"}),
    ("get_record_index", {"start_time": "0", "end_time": "abc"}),
    ("get_month_record", {}),
    ("get_month_record", {"time": ""}),
    ("get_month_record", {"time": "2024"}),
    ("get_month_record", {"time": "2024021"}),
    ("get_month_record", {"time": "202400"}),
    ("get_month_record", {"time": "202413"}),
    ("get_month_record", {"time": "2024-2"}),
    ("get_month_record", {"time": "2024%202"}),
    ("get_month_record", {"time": "%32%30%32%34%30%30"}),
    ("get_month_record", {"time": "abcdef"}),
    ("get_month_record", {"time": "000001"}),
    ("get_file_list", {}),
    ("get_file_list", {"start_time": "0", "end_time": "10"}),
    ("get_file_list", {"start_time": "0", "end_time": "10", "file_type": "2"}),
    ("get_file_list", {"start_time": "0", "end_time": "10", "file_type": "-1"}),
    ("get_file_list", {"start_time": "0", "end_time": "10", "file_type": "video"}),
    ("get_file_list", {"start_time": "x", "end_time": "10", "file_type": "0"}),
    ("get_file_list", {"start_time": "0", "end_time": "", "file_type": "0"}),
    ("playback_seek", {}),
    ("playback_seek", {"progress": "abc"}),
    ("playback_seek", {"time": "-5"}),
    ("playback_seek", {"progress": ""}),
]


@pytest.mark.parametrize(("cmd", "params"), BAD_RECORD_PARAMS, ids=lambda v: repr(v)[:40])
def test_bad_parameters_are_404(device: Device, hw: SimulatedHardware, cmd: str, params: dict[str, str]) -> None:
    record(hw, FEB_1, FEB_1 + 60)
    assert device.handle(inner(cmd, **params)) == b'{"status":"404"}'


def test_get_file_list_with_end_before_start_is_404(device: Device, hw: SimulatedHardware) -> None:
    record(hw, FEB_1, FEB_1 + 60)
    raw = inner("get_file_list", start_time=str(FEB_1 + 60), end_time=str(FEB_1), file_type="0")
    assert device.handle(raw) == b'{"status":"404"}'


def test_the_first_of_duplicate_parameters_wins(device: Device, hw: SimulatedHardware) -> None:
    record(hw, FEB_1, FEB_1 + 60)
    raw = f"action=inner_define&cmd=get_record_index&start_time=0&end_time={FEB_29}&end_time=1".encode()
    assert len(send(device, raw)["video_list"]) == 1


# -- playback -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cmd", "params", "expected"),
    [
        ("playback_pause", {}, {"status": "0"}),
        ("playback_resume", {}, {"status": "0"}),
        ("playback_seek", {"progress": "1500"}, {"status": "0"}),
        ("playback_seek", {"time": "12"}, {"status": "0"}),
        ("playback_progress", {}, {"status": "0", "progress": "0"}),
    ],
)
def test_playback_commands(device: Device, cmd: str, params: dict[str, str], expected: dict[str, str]) -> None:
    assert send(device, inner(cmd, **params)) == expected


def test_playback_hooks_see_the_action_and_params(tmp_path: Path) -> None:
    calls: list[tuple[str, dict[str, str]]] = []

    class Player(SimulatedHardware):
        def playback(self, action: str, params: Mapping[str, str]) -> int | None:
            calls.append((action, dict(params)))
            return 4321 if action == "progress" else None

    with Device(Player(tmp_path)) as dev:
        assert send(dev, inner("playback_seek", progress="900")) == {"status": "0"}
        assert send(dev, inner("playback_progress")) == {"status": "0", "progress": "4321"}
    assert calls == [("seek", {"progress": "900"}), ("progress", {})]


def test_playback_without_hooks_is_406(tmp_path: Path) -> None:
    with Device(NoRecords(tmp_path)) as dev:
        for cmd in ("playback_pause", "playback_resume", "playback_progress", "get_file_list"):
            params = {"start_time": "0", "end_time": "1", "file_type": "0"} if cmd == "get_file_list" else {}
            assert dev.handle(inner(cmd, **params)) == b'{"status":"406"}', cmd
        assert dev.handle(inner("playback_seek", time="3")) == b'{"status":"406"}'
        assert dev.handle(inner("get_month_record", time="202401")) == b'{"status":"406"}'
        assert dev.handle(inner("get_record_index", start_time="0", end_time="1")) == b'{"status":"406"}'


# -- unknown commands and failing hooks ---------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        inner("get_nvr_list"),
        inner("GET_DEVICE_ST", type="live"),
        inner("get_device_st%20"),
        inner("reboot"),
        b'action=inner_define&channel=0&cmd={"topic":"get_status"}',
        b"action=inner_define&channel=0&cmd=[1]",
    ],
    ids=lambda v: v[34:60].decode(),
)
def test_unknown_inner_command_is_406(device: Device, raw: bytes) -> None:
    assert device.handle(raw) == b'{"status":"406"}'


class BrokenRecords(SimulatedHardware):
    def record_index(self, start: int, end: int) -> list[tuple[int, int]]:
        raise OSError("mmc read error")

    def month_record(self, year: int, month: int) -> int:
        raise RuntimeError("index corrupt")

    def file_list(self, start: int, end: int, file_type: int) -> list[dict[str, Any]]:
        return [{"file_name": object()}]  # not serialisable

    def playback(self, action: str, params: Mapping[str, str]) -> int | None:
        raise RuntimeError("decoder crashed")


@pytest.mark.parametrize(
    "raw",
    [
        inner("get_record_index", start_time="0", end_time="10"),
        inner("get_month_record", time="202402"),
        inner("get_file_list", start_time="0", end_time="10", file_type="0"),
        inner("playback_pause"),
        inner("playback_progress"),
        inner("playback_seek", progress="1"),
    ],
    ids=lambda v: v[34:60].decode(),
)
def test_a_raising_hook_is_407_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture, raw: bytes) -> None:
    caplog.set_level(logging.WARNING, logger="iotvideo_signaling")
    with Device(BrokenRecords(tmp_path)) as dev:
        assert dev.handle(raw) == b'{"status":"407"}'
    assert any(r.levelno == logging.WARNING for r in caplog.records), caplog.text


def test_a_hook_returning_garbage_is_407(tmp_path: Path) -> None:
    class Garbage(SimulatedHardware):
        def record_index(self, start: int, end: int) -> list[tuple[int, int]]:
            return 5  # type: ignore[return-value]

        def month_record(self, year: int, month: int) -> int:
            return "lots"  # type: ignore[return-value]

    with Device(Garbage(tmp_path)) as dev:
        assert dev.handle(inner("get_record_index", start_time="0", end_time="1")) == b'{"status":"407"}'
        assert dev.handle(inner("get_month_record", time="202401")) == b'{"status":"407"}'


def test_a_month_bitmask_beyond_32_bits_is_cut(tmp_path: Path) -> None:
    class Wide(SimulatedHardware):
        def month_record(self, year: int, month: int) -> int:
            return (1 << 40) | 5

    with Device(Wide(tmp_path)) as dev:
        assert send(dev, inner("get_month_record", time="202401")) == {"video_list": "5"}


def test_inner_replies_are_valid_json_with_documented_statuses(device: Device, hw: SimulatedHardware) -> None:
    record(hw, FEB_1, FEB_1 + 60)
    for raw in (
        inner("get_device_st", type="live"),
        inner("get_record_index", start_time="0", end_time=str(FEB_29)),
        inner("get_month_record", time="202402"),
        inner("get_file_list", start_time="0", end_time=str(FEB_29), file_type="0"),
        inner("playback_progress"),
        inner("nothing"),
    ):
        body = check_reply(device.handle(raw), raw)
        assert orjson.loads(orjson.dumps(body)) == body
