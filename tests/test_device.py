"""The Device: topic semantics, standby, roles, busy, hooks, events, extension points, counters."""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from iotvideo_signaling import (
    Command,
    Device,
    DeviceConfig,
    Event,
    Hardware,
    Request,
    RequestError,
    ResultCode,
    SimulatedHardware,
)
from iotvideo_signaling.jobs import WorkerPool
from iotvideo_signaling.sessions import Admission
from spec_examples import PANEL_PREFIX, ask, inner, send

WAIT = 10.0  # seconds a test waits for background work before it gives up


class Recorder:
    """A subscriber that records events and lets a test wait for one."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    def __call__(self, event: Event) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def of(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e.data) for e in self.events if e.kind == kind]

    def kinds(self) -> list[str]:
        with self._lock:
            return [e.kind for e in self.events]

    def wait_for(self, kind: str, **data: Any) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            for e in self.events:
                if e.kind == kind and all(e.data.get(k) == v for k, v in data.items()):
                    return dict(e.data)
            return None

        with self._changed:
            assert self._changed.wait_for(lambda: found() is not None, WAIT), (kind, data, self.events)
            event = found()
            assert event is not None
            return event


@pytest.fixture
def recorder(device: Device) -> Recorder:
    rec = Recorder()
    device.subscribe(rec)
    return rec


def eventually(check: Callable[[], bool]) -> None:
    """Wait (in 1 ms steps, at most WAIT seconds) until ``check()`` is true."""
    pause = threading.Event()
    for _ in range(int(WAIT * 1000)):
        if check():
            return
        pause.wait(0.001)
    raise AssertionError("condition never became true")


def status(device: Device, visitor: str | None = None) -> dict[str, Any]:
    got: dict[str, Any] = ask(device, {"topic": "get_status", "message_id": 0}, visitor=visitor)
    assert got["result"] == "0", got
    return got


def device_st(device: Device, visitor: str | None = None, kind: str = "live") -> dict[str, Any]:
    got = send(device, inner("get_device_st", type=kind, quality="high"), visitor=visitor)
    assert isinstance(got, list)
    first: dict[str, Any] = got[0]
    return first


# -- the topics, one by one -----------------------------------------------------------------


def test_get_status_reports_power_viewers_and_signal(tmp_path: Path) -> None:
    with Device(SimulatedHardware(tmp_path, signal_strength=37)) as dev:
        assert status(dev) == {
            "confirmation_topic": "get_status",
            "result": "0",
            "status": "working",
            "user_num": 1,
            "signal_strength": 37,
            "message_id": 0,
        }


@pytest.mark.parametrize(("given", "reported"), [(-20, 0), (0, 0), (100, 100), (250, 100), (55.9, 55), (True, 1)])
def test_signal_strength_is_an_int_between_0_and_100(tmp_path: Path, given: Any, reported: int) -> None:
    with Device(SimulatedHardware(tmp_path, signal_strength=given)) as dev:
        got = status(dev)["signal_strength"]
        assert type(got) is int
        assert got == reported


def test_version_reads_the_running_firmware(device: Device, hw: SimulatedHardware) -> None:
    assert ask(device, {"topic": "version", "message_id": 1})["info"] == hw.firmware_version() == "V1.0.0"


def test_mirror_flip_sets_and_persists_the_orientation(tmp_path: Path) -> None:
    hw = SimulatedHardware(tmp_path)
    with Device(hw) as dev:
        assert ask(dev, {"topic": "Mirror_flip", "data": {"mode": "flip"}})["result"] == "0"
        assert hw.flip == "flip"
    assert SimulatedHardware(tmp_path).flip == "flip"
    with Device(SimulatedHardware(tmp_path)) as dev:
        assert ask(dev, {"topic": "Mirror_flip", "data": {"mode": "normal"}})["result"] == "0"
    assert SimulatedHardware(tmp_path).flip == "normal"


def test_set_status_switches_and_persists_power(tmp_path: Path) -> None:
    with Device(SimulatedHardware(tmp_path)) as dev:
        assert ask(dev, {"topic": "set_status", "data": {"status": "standby"}})["result"] == "0"
        assert status(dev)["status"] == "standby"
    with Device(SimulatedHardware(tmp_path)) as dev:
        assert status(dev)["status"] == "standby"
        assert ask(dev, {"topic": "set_status", "data": {"status": "working"}})["result"] == "0"
        assert status(dev)["status"] == "working"
    assert SimulatedHardware(tmp_path).get_power() == "working"


def test_bind_status_plays_the_bound_tone(device: Device, hw: SimulatedHardware, recorder: Recorder) -> None:
    got = ask(device, {"topic": "bind_status", "status": "success", "message_id": 0})
    assert got == {"confirmation_topic": "bind_status", "result": "0", "message_id": 0}
    recorder.wait_for("tone", name="bind_success")
    assert hw.tones() == ["bind_success"]
    ask(device, {"topic": "bind_status", "data": {"status": "success"}})
    eventually(lambda: len(recorder.of("tone")) == 2)
    assert hw.tones() == ["bind_success", "bind_success"]


def test_bind_status_with_an_invalid_status_plays_nothing(device: Device, hw: SimulatedHardware) -> None:
    assert ask(device, {"topic": "bind_status", "status": "failed"})["result"] == "4"
    device.close()
    assert hw.tones() == []


def test_sd_format_empties_the_card(device: Device, hw: SimulatedHardware, recorder: Recorder) -> None:
    (hw.sd_dir / "record").mkdir()
    (hw.sd_dir / "record" / "1-2.mp4").write_bytes(b"v")
    (hw.sd_dir / "top.jpg").write_bytes(b"p")
    got = ask(device, {"topic": "sd_format", "message_id": "f"})
    assert got == {"confirmation_topic": "sd_format", "result": "0", "message_id": "f"}
    recorder.wait_for("sd_format", state="done")
    assert hw.sd_dir.is_dir()
    assert list(hw.sd_dir.iterdir()) == []


def test_intercom_reports_using_and_unused(device: Device) -> None:
    assert ask(device, {"topic": "intercom", "message_id": 0})["status"] == "unused"
    assert device.start_intercom("a")
    assert ask(device, {"topic": "intercom"})["status"] == "using"
    assert ask(device, {"topic": "intercom"}, visitor="a")["status"] == "using"
    device.stop_intercom("a")
    assert ask(device, {"topic": "intercom"})["status"] == "unused"


# -- standby ------------------------------------------------------------------------------------


def test_standby_refuses_streams_but_everything_else_works(tmp_path: Path) -> None:
    hw = SimulatedHardware(tmp_path)
    with Device(hw) as dev:
        rec = Recorder()
        dev.subscribe(rec)
        assert ask(dev, {"topic": "set_status", "data": {"status": "standby"}})["result"] == "0"
        for kind in ("live", "voice", "playback"):
            assert device_st(dev, "v", kind)["status"] == "1"
        assert status(dev)["status"] == "standby"
        assert ask(dev, {"topic": "version"})["result"] == "0"
        assert ask(dev, {"topic": "Mirror_flip", "mode": "flip"})["result"] == "0"
        assert ask(dev, {"topic": "intercom"})["result"] == "0"
        assert ask(dev, {"topic": "bind_status", "status": "success"})["result"] == "0"
        assert ask(dev, {"topic": "sd_format"})["result"] == "0"
        rec.wait_for("sd_format", state="done")
        assert send(dev, inner("get_record_index", start_time="0", end_time="10")) == {"video_list": []}
        assert send(dev, inner("get_month_record", time="202401")) == {"video_list": "0"}
        assert hw.flip == "flip"
    # persisted: the next start is still in standby and still refuses streams
    with Device(SimulatedHardware(tmp_path)) as dev:
        assert status(dev)["status"] == "standby"
        assert device_st(dev, "v")["status"] == "1"
        assert ask(dev, {"topic": "set_status", "status": "working"})["result"] == "0"
        assert device_st(dev, "v")["status"] == "0"
        assert status(dev)["status"] == "working"


def test_standby_refuses_ptz_with_8(device: Device) -> None:
    assert ask(device, {"topic": "set_status", "status": "standby"})["result"] == "0"
    got = ask(device, {"topic": "ptz", "data": {"cmd": "ptz_left_press"}, "message_id": 1})
    assert (got["confirmation_topic"], got["result"], got["message_id"]) == ("ptz", "8", 1)
    got = send(device, PANEL_PREFIX + "ptz_left")
    assert (got["confirmation_topic"], got["result"]) == ("ptz", "8")
    assert ask(device, {"topic": "set_status", "status": "working"})["result"] == "0"
    assert ask(device, {"topic": "ptz", "data": {"cmd": "ptz_release_pre"}})["result"] == "0"


# -- roles --------------------------------------------------------------------------------------

SHARER_DENIED: dict[str, dict[str, Any]] = {
    "upgrade": {
        "topic": "upgrade",
        "data": {"url": "https://example.invalid/fw.bin", "md5": "0" * 32, "fileSize": 1024},
    },
    "sd_format": {"topic": "sd_format"},
    "set_status": {"topic": "set_status", "data": {"status": "standby"}},
}


@pytest.mark.parametrize("topic", list(SHARER_DENIED))
@pytest.mark.parametrize("claimed", [None, "owner"])
def test_sharer_is_refused_with_6(
    device: Device, hw: SimulatedHardware, recorder: Recorder, topic: str, claimed: Optional[str]
) -> None:
    (hw.sd_dir / "keep.mp4").write_bytes(b"x")
    device.open_session("guest", role="sharer")
    request = {**SHARER_DENIED[topic], "message_id": 4}
    if claimed is not None:  # the message's own claim is ignored, wherever it sits
        request["user"] = claimed
        request["data"] = {**request.get("data", {}), "user": claimed}
    got = ask(device, request, visitor="guest")
    assert got["result"] == "6", got
    assert got["confirmation_topic"] == topic
    assert got["message_id"] == 4
    assert status(device)["status"] == "working"
    device.close()
    assert (hw.sd_dir / "keep.mp4").exists()
    assert hw.get_power() == "working"
    assert recorder.of("sd_format") == []
    assert recorder.of("power") == []


@pytest.mark.parametrize("topic", ["sd_format", "set_status"])
def test_owner_claiming_to_be_a_sharer_is_still_an_owner(device: Device, topic: str) -> None:
    device.open_session("boss", role="owner")
    base = SHARER_DENIED[topic]
    request = {**base, "user": "sharer", "data": {**base.get("data", {}), "user": "sharer"}}
    assert ask(device, request, visitor="boss")["result"] == "0"


def test_sharer_may_use_the_other_topics(device: Device) -> None:
    device.open_session("guest", role="sharer")
    for request in (
        {"topic": "get_status", "user": "sharer"},
        {"topic": "version"},
        {"topic": "Mirror_flip", "mode": "flip"},
        {"topic": "bind_status", "status": "success"},
        {"topic": "intercom"},
    ):
        assert ask(device, request, visitor="guest")["result"] == "0", request


def test_role_comes_from_the_session_only(device: Device) -> None:
    assert device.role(None) == "owner"
    assert device.role("nobody") == "owner"
    device.open_session("guest", role="sharer")
    device.open_session("boss")
    device.open_session("someone", role=None)
    assert device.role("guest") == "sharer"
    assert device.role("boss") == "owner"
    assert device.role("someone") == "owner"
    ask(device, {"topic": "get_status", "user": "owner"}, visitor="guest")
    assert device.role("guest") == "sharer"
    assert ask(device, {"topic": "sd_format"})["result"] == "0"  # visitor=None: the default role


def test_reopening_a_session_changes_the_role(device: Device) -> None:
    device.open_session("v", role="owner")
    device.open_session("v", role="sharer")
    assert ask(device, {"topic": "set_status", "status": "working"}, visitor="v")["result"] == "6"


def test_default_role_sharer(tmp_path: Path) -> None:
    with Device(SimulatedHardware(tmp_path), config=DeviceConfig(default_role="sharer")) as dev:
        assert ask(dev, {"topic": "sd_format"})["result"] == "6"
        assert ask(dev, {"topic": "sd_format"}, visitor="unknown")["result"] == "6"
        dev.open_session("boss", role="owner")
        assert ask(dev, {"topic": "set_status", "status": "working"}, visitor="boss")["result"] == "0"
        dev.open_session("x", role=None)
        assert dev.role("x") == "sharer"


def test_configured_sharer_denied_topics(tmp_path: Path) -> None:
    config = DeviceConfig(sharer_denied_topics=("Mirror_flip", "zoom"))
    with Device(SimulatedHardware(tmp_path), config=config) as dev:
        dev.open_session("guest", role="sharer")
        assert ask(dev, {"topic": "Mirror_flip", "mode": "flip"}, visitor="guest")["result"] == "6"
        assert ask(dev, {"topic": "set_status", "status": "working"}, visitor="guest")["result"] == "0"

        @dev.topic("zoom")
        def zoom(request: Request, visitor: Optional[str]) -> None:
            return None

        got = ask(dev, {"topic": "zoom"}, visitor="guest")
        assert got["result"] == "6"
        assert "zoom" in got["reason"]
        assert ask(dev, {"topic": "zoom"})["result"] == "0"


@pytest.mark.parametrize("role", ["admin", "Owner", "guest", " owner", "sharer "])
def test_open_session_with_an_unknown_role_raises(device: Device, role: str) -> None:
    with pytest.raises(ValueError, match="role"):
        device.open_session("v", role=role)
    assert device.role("v") == "owner"


def test_a_session_needs_a_visitor_id(device: Device) -> None:
    """visitor=None means "no session" and always has the default role."""
    with pytest.raises(TypeError, match="visitor"):
        device.open_session(None, role="sharer")  # type: ignore[arg-type]
    assert device.role(None) == "owner"
    assert ask(device, {"topic": "sd_format", "message_id": 1})["result"] != "6"


def test_a_refusal_reason_is_cut_however_it_was_set(device: Device) -> None:
    """A vendor's RequestError subclass may set its reason itself: the reply still cuts it."""

    class Verbose(RequestError):
        def __init__(self) -> None:
            super().__init__("short")
            self.reason = "x" * 5000

    @device.topic("verbose")
    def verbose(request: Request, visitor: Optional[str]) -> None:
        raise Verbose()

    got = ask(device, {"topic": "verbose", "message_id": 2})
    assert (got["result"], len(got["reason"]), got["message_id"]) == ("4", 200, 2)

    for odd in (None, 42, ["a"], b"bytes"):

        class Odd(RequestError):
            def __init__(self, reason: Any = odd) -> None:
                super().__init__("short")
                self.reason = reason

        @device.topic("odd")
        def odd_topic(request: Request, visitor: Optional[str], error: Callable[[], RequestError] = Odd) -> None:
            raise error()

        got = ask(device, {"topic": "odd", "message_id": 3})
        assert (got["result"], got["reason"], got["message_id"]) == ("4", str(odd), 3)


def test_open_session_with_an_empty_role_raises(tmp_path: Path) -> None:
    with Device(SimulatedHardware(tmp_path)) as dev, pytest.raises(ValueError, match="role"):
        dev.open_session("v", role="")


def test_unknown_default_role_raises(hw: SimulatedHardware) -> None:
    with pytest.raises(ValueError, match="default_role"):
        Device(hw, config=DeviceConfig(default_role="root"))


# -- busy, no card, hooks --------------------------------------------------------------------


class BlockingFormat(SimulatedHardware):
    """A simulated camera whose SD format waits until the test releases it."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir)
        self.started = threading.Event()
        self.release = threading.Event()
        self.formats = 0

    def format_sd(self) -> None:
        self.formats += 1
        self.started.set()
        if not self.release.wait(WAIT):
            raise TimeoutError("the test never released the format")
        super().format_sd()


def test_sd_format_while_formatting_is_busy(tmp_path: Path) -> None:
    hw = BlockingFormat(tmp_path)
    rec = Recorder()
    with Device(hw) as dev:
        dev.subscribe(rec)
        try:
            assert ask(dev, {"topic": "sd_format", "message_id": 1})["result"] == "0"
            assert hw.started.wait(WAIT)
            for message_id in (2, 3):
                got = ask(dev, {"topic": "sd_format", "message_id": message_id})
                assert got["result"] == "5", got
                assert got["message_id"] == message_id
                assert got["confirmation_topic"] == "sd_format"
            # other topics are not blocked by a format in progress
            assert status(dev)["status"] == "working"
        finally:
            hw.release.set()
        rec.wait_for("sd_format", state="done")
        eventually(lambda: ask(dev, {"topic": "sd_format", "message_id": 4})["result"] == "0")
        eventually(lambda: hw.formats == 2)  # close() drops jobs that have not started yet
    assert hw.formats == 2


def test_sd_format_busy_with_a_slow_simulated_card(tmp_path: Path) -> None:
    with Device(SimulatedHardware(tmp_path, format_delay=0.5)) as dev:
        assert ask(dev, {"topic": "sd_format"})["result"] == "0"
        assert ask(dev, {"topic": "sd_format"})["result"] == "5"


def test_sd_format_without_a_card_is_7(tmp_path: Path, recorder_factory: Callable[[Device], Recorder]) -> None:
    with Device(SimulatedHardware(tmp_path, sd_card=False)) as dev:
        rec = recorder_factory(dev)
        got = ask(dev, {"topic": "sd_format", "message_id": 0})
        assert got["result"] == "7"
        assert got["reason"] == "no SD card"
        assert got["message_id"] == 0
    assert rec.of("sd_format") == []


def test_sd_format_after_the_card_is_removed_is_7(device: Device, hw: SimulatedHardware) -> None:
    hw.sd_dir.rmdir()
    assert ask(device, {"topic": "sd_format"})["result"] == "7"


@pytest.fixture
def recorder_factory() -> Callable[[Device], Recorder]:
    def make(dev: Device) -> Recorder:
        rec = Recorder()
        dev.subscribe(rec)
        return rec

    return make


class Bare(Hardware):
    """A camera that implements nothing."""


HOOKED: dict[str, dict[str, Any]] = {
    "get_status": {"topic": "get_status"},
    "version": {"topic": "version"},
    "Mirror_flip": {"topic": "Mirror_flip", "mode": "flip"},
    "set_status": {"topic": "set_status", "status": "standby"},
    "sd_format": {"topic": "sd_format"},
    "bind_status": {"topic": "bind_status", "status": "success"},
}


#: The hook each topic of HOOKED needs first.
FIRST_HOOK = {
    "get_status": "signal_strength",
    "version": "firmware_version",
    "Mirror_flip": "set_flip",
    "set_status": "set_power",
    "sd_format": "format_sd",
    "bind_status": "play_tone",
}


@pytest.mark.parametrize("topic", list(HOOKED))
def test_a_missing_hook_is_3_and_named(topic: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="iotvideo_signaling")
    hook = FIRST_HOOK[topic]
    with Device(Bare()) as dev:
        got = ask(dev, {**HOOKED[topic], "message_id": "h"})
        assert got == {
            "confirmation_topic": topic,
            "result": "3",
            "reason": f"not supported by this camera (no {hook} hook)",
            "message_id": "h",
        }
        assert len(got["reason"].encode()) < 64
        ask(dev, {**HOOKED[topic], "message_id": "again"})
    told = [r.getMessage() for r in caplog.records if f"no {hook} hook" in r.getMessage()]
    assert told == [f"{topic}: the camera has no {hook} hook; answering 'not supported' (logged once)"]


def test_every_hook_name_fits_the_short_reason() -> None:
    from iotvideo_signaling.protocol import missing_hook, unsupported_reason

    hooks = [name for name in vars(Hardware) if not name.startswith("_")]
    for name in hooks:
        method = getattr(Hardware(), name)
        parameters = inspect.signature(method).parameters.values()
        args = [0 for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD]
        kwargs = {p.name: 0 for p in parameters if p.kind is p.KEYWORD_ONLY}
        try:
            result = method(*args, **kwargs)
        except NotImplementedError as exc:
            assert missing_hook(exc) == name
            assert len(unsupported_reason(name).encode()) < 64
        else:
            assert name in ("close", "ptz_position", "start"), name  # the hooks with a default
            assert result is None


@pytest.mark.parametrize(
    ("raised", "reason"),
    [
        (NotImplementedError(), "not supported by this camera"),
        (NotImplementedError("zoom_motor"), "not supported by this camera (no zoom_motor hook)"),
        (NotImplementedError("no zoom on this model"), "not supported by this camera"),
        (NotImplementedError("a_name_much_too_long_for_a_reason"), "not supported by this camera"),
        (NotImplementedError("zoom", "motor"), "not supported by this camera"),
    ],
)
def test_a_vendor_handler_s_not_implemented_names_a_hook_only_when_it_gives_one(
    device: Device, raised: NotImplementedError, reason: str
) -> None:
    def zoom(request: Request, visitor: Optional[str]) -> None:
        raise raised

    device.topic("zoom")(zoom)
    assert ask(device, {"topic": "zoom"}) == {"confirmation_topic": "zoom", "result": "3", "reason": reason}


def test_a_missing_ptz_or_recording_hook_is_named_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="iotvideo_signaling")
    press = {"topic": "ptz", "data": {"cmd": "ptz_up_press"}}
    with Device(Bare()) as dev:
        for _ in range(2):
            assert ask(dev, press)["reason"] == "not supported by this camera (no ptz_start hook)"
            assert send(dev, PANEL_PREFIX + "ptz_left")["reason"] == "not supported by this camera (no ptz_start hook)"
            assert send(dev, inner("get_record_index", start_time="0", end_time="1")) == {"status": "406"}
    told = [r.getMessage() for r in caplog.records if "answering 'not supported'" in r.getMessage()]
    assert told == [
        "ptz: the camera has no ptz_start hook; answering 'not supported' (logged once)",
        "get_record_index: the camera has no record_index hook; answering 'not supported' (logged once)",
    ]


def test_a_camera_without_hooks_still_answers_what_needs_none() -> None:
    with Device(Bare()) as dev:
        assert ask(dev, {"topic": "intercom"}) == {"confirmation_topic": "intercom", "result": "0", "status": "unused"}
        assert device_st(dev)["status"] == "0"
        assert send(dev, inner("get_device_st", type="playback"))[0]["status"] == "406"
        assert send(dev, inner("get_record_index", start_time="0", end_time="1")) == {"status": "406"}


def test_a_missing_hook_does_not_change_the_power_state() -> None:
    with Device(Bare()) as dev:
        assert ask(dev, {"topic": "set_status", "status": "standby"})["result"] == "3"
        assert device_st(dev)["status"] == "0"


class Broken(SimulatedHardware):
    """A camera whose hooks all fail."""

    def signal_strength(self) -> int:
        raise RuntimeError("wifi chip gone")

    def firmware_version(self) -> str:
        raise OSError("cannot read version")

    def set_flip(self, mode: str) -> None:
        raise RuntimeError("sensor i2c timeout")

    def set_power(self, status: str) -> None:
        raise RuntimeError("pmic refused")

    def sd_card_present(self) -> bool:
        raise OSError("mmc error")


@pytest.mark.parametrize("topic", ["get_status", "version", "Mirror_flip", "set_status", "sd_format"])
def test_a_raising_hook_is_7_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture, topic: str) -> None:
    caplog.set_level(logging.WARNING, logger="iotvideo_signaling")
    with Device(Broken(tmp_path)) as dev:
        got = ask(dev, {**HOOKED[topic], "message_id": 8})
        assert got["result"] == "7", got
        assert got["confirmation_topic"] == topic
        assert got["message_id"] == 8
        assert "Traceback" not in got["reason"]
        assert len(got["reason"]) <= 200
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name.startswith("iotvideo_signaling")]
    assert warnings, caplog.text
    assert topic in caplog.text


def test_a_failed_power_switch_leaves_the_power_state_alone(tmp_path: Path) -> None:
    with Device(Broken(tmp_path)) as dev:
        assert ask(dev, {"topic": "set_status", "status": "standby"})["result"] == "7"
        assert device_st(dev)["status"] == "0"


class BrokenBackground(SimulatedHardware):
    def play_tone(self, name: str) -> None:
        raise RuntimeError("speaker unplugged")

    def format_sd(self) -> None:
        raise OSError("card is write-protected")


def test_a_raising_background_hook_is_logged_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, recorder_factory: Callable[[Device], Recorder]
) -> None:
    caplog.set_level(logging.WARNING, logger="iotvideo_signaling")
    with Device(BrokenBackground(tmp_path)) as dev:
        rec = recorder_factory(dev)
        assert ask(dev, {"topic": "bind_status", "status": "success"})["result"] == "0"
        assert ask(dev, {"topic": "sd_format"})["result"] == "0"
        failed = rec.wait_for("sd_format", state="failed")
        assert "write-protected" in failed["reason"]
        # the device is not stuck "formatting": a later request is accepted again
        eventually(lambda: ask(dev, {"topic": "sd_format"})["result"] == "0")
    assert "speaker unplugged" in caplog.text
    assert "write-protected" in caplog.text
    assert rec.of("tone") == []


def test_signal_strength_that_is_not_a_number_is_7(tmp_path: Path) -> None:
    with Device(SimulatedHardware(tmp_path, signal_strength="strong")) as dev:  # type: ignore[arg-type]
        assert ask(dev, {"topic": "get_status"})["result"] == "7"


# -- events -------------------------------------------------------------------------------------


def test_events_for_every_state_change(device: Device, recorder: Recorder) -> None:
    ask(device, {"topic": "Mirror_flip", "mode": "flip"})
    ask(device, {"topic": "set_status", "status": "standby"})
    ask(device, {"topic": "set_status", "status": "standby"})  # no change: no event
    ask(device, {"topic": "set_status", "status": "working"})
    ask(device, {"topic": "sd_format"})
    recorder.wait_for("sd_format", state="done")
    ask(device, {"topic": "bind_status", "status": "success"})
    recorder.wait_for("tone")
    device.open_session("v", role="sharer")
    device.start_stream("v")
    device.start_stream("v")  # already streaming: no event
    device.start_intercom("v")
    device.start_intercom("v")  # already talking: no event
    device.stop_intercom("v")
    device.stop_stream("v")
    device.stop_stream("v")  # not streaming: no event
    device.start_stream("v")
    device.start_intercom("v")
    device.close_session("v")

    assert recorder.of("flip") == [{"mode": "flip"}]
    assert recorder.of("power") == [{"status": "standby"}, {"status": "working"}]
    # (their order is test_sd_format_events_arrive_in_order's business)
    assert sorted(e["state"] for e in recorder.of("sd_format")) == ["done", "formatting"]
    assert recorder.of("tone") == [{"name": "bind_success"}]
    assert recorder.of("session") == [
        {"visitor": "v", "state": "open", "role": "sharer"},
        {"visitor": "v", "state": "closed"},
    ]
    assert recorder.of("stream") == [
        {"visitor": "v", "state": "started"},
        {"visitor": "v", "state": "stopped"},
        {"visitor": "v", "state": "started"},
        {"visitor": "v", "state": "stopped"},
    ]
    assert recorder.of("intercom") == [
        {"visitor": "v", "state": "using"},
        {"visitor": "v", "state": "unused"},
        {"visitor": "v", "state": "using"},
        {"visitor": "v", "state": "unused"},
    ]
    assert all(e.time > 0 for e in recorder.events)


def test_no_events_for_refused_requests(device: Device, recorder: Recorder) -> None:
    device.open_session("guest", role="sharer")
    ask(device, {"topic": "Mirror_flip", "mode": "sideways"})
    ask(device, {"topic": "set_status", "status": "standby"}, visitor="guest")
    ask(device, {"topic": "sd_format"}, visitor="guest")
    assert device.start_intercom("a")
    assert not device.start_intercom("b")
    device.stop_intercom("b")  # b never had it
    device.close_session("never-opened")
    assert recorder.kinds() == ["session", "intercom"]


def test_sd_format_events_arrive_in_order(hw: SimulatedHardware) -> None:
    # Simulate the request thread being descheduled right after it hands the job to the pool:
    # the worker then finishes the (instant) format before the request thread goes on.
    recorder = Recorder()

    class StallingPool(WorkerPool):
        def submit(self, run: Callable[[], None], /, *, on_drop: Optional[Callable[[], None]] = None) -> None:
            super().submit(run, on_drop=on_drop)
            recorder.wait_for("sd_format", state="done")

    with Device(hw, jobs=StallingPool()) as device:
        device.subscribe(recorder)
        assert ask(device, {"topic": "sd_format"})["result"] == "0"
        assert recorder.of("sd_format") == [{"state": "formatting"}, {"state": "done"}]


def test_a_format_requested_on_the_done_event_is_accepted(device: Device) -> None:
    answers: list[str] = []
    answered = threading.Event()

    first = threading.Lock()

    def on_event(event: Event) -> None:
        # only the first 'done' asks again (the second format's own 'done' must not)
        if event.kind == "sd_format" and event.data.get("state") == "done" and first.acquire(blocking=False):
            answers.append(ask(device, {"topic": "sd_format"})["result"])
            answered.set()

    device.subscribe(on_event)
    assert ask(device, {"topic": "sd_format"})["result"] == "0"
    assert answered.wait(WAIT)
    assert answers == ["0"]


def test_unsubscribe_stops_delivery(device: Device) -> None:
    first, second = Recorder(), Recorder()
    unsubscribe = device.subscribe(first)
    device.subscribe(second)
    ask(device, {"topic": "Mirror_flip", "mode": "flip"})
    unsubscribe()
    unsubscribe()  # twice is harmless
    ask(device, {"topic": "Mirror_flip", "mode": "normal"})
    device.open_session("v")
    assert first.of("flip") == [{"mode": "flip"}]
    assert first.of("session") == []
    assert second.of("flip") == [{"mode": "flip"}, {"mode": "normal"}]
    assert len(second.of("session")) == 1


def test_the_same_callback_subscribed_twice_gets_each_event_twice_until_unsubscribed(device: Device) -> None:
    rec = Recorder()
    unsubscribe = device.subscribe(rec)
    device.subscribe(rec)
    device.open_session("v")
    assert len(rec.of("session")) == 2
    unsubscribe()
    device.open_session("w")
    assert len(rec.of("session")) == 2


def test_a_raising_subscriber_breaks_nothing(device: Device, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="iotvideo_signaling")
    calls: list[str] = []

    def angry(event: Event) -> None:
        calls.append(event.kind)
        raise RuntimeError("subscriber bug")

    rec = Recorder()
    device.subscribe(angry)
    device.subscribe(rec)
    assert ask(device, {"topic": "Mirror_flip", "mode": "flip"})["result"] == "0"
    assert ask(device, {"topic": "set_status", "status": "standby"})["result"] == "0"
    device.open_session("v")
    device.start_stream("v")
    assert device.start_intercom("v")
    device.close_session("v")
    assert ask(device, {"topic": "bind_status", "status": "success"})["result"] == "0"
    rec.wait_for("tone")
    assert status(device)["status"] == "standby"
    assert rec.kinds() == calls
    assert rec.kinds()[:2] == ["flip", "power"]
    assert "subscriber" in caplog.text


def test_publish_fills_in_the_time(device: Device, recorder: Recorder) -> None:
    device.publish(Event("vendor", {"x": 1}))
    device.publish(Event("vendor", {"x": 2}, 12.5))
    assert [e.time > 0 for e in recorder.events] == [True, True]
    assert recorder.events[1].time == 12.5


# -- custom topics and tokens ------------------------------------------------------------------


def test_custom_topic(device: Device) -> None:
    seen: list[tuple[str, Any, Optional[str]]] = []

    @device.topic("zoom")
    def zoom(request: Request, visitor: Optional[str]) -> Mapping[str, Any]:
        seen.append((request.topic, request.get("level"), visitor))
        level = request.get("level")
        if not isinstance(level, int):
            raise RequestError("'level' must be an integer")
        if level > 10:
            raise RequestError("lens is moving", code=ResultCode.BUSY)
        return {"level": level, "max": 10}

    got = ask(device, {"topic": "zoom", "message_id": 3, "data": {"level": 4}}, visitor="v")
    assert list(got.items()) == [
        ("confirmation_topic", "zoom"),
        ("result", "0"),
        ("level", 4),
        ("max", 10),
        ("message_id", 3),
    ]
    assert seen == [("zoom", 4, "v")]
    assert ask(device, {"topic": "zoom", "level": "x"})["result"] == "4"
    assert ask(device, {"topic": "zoom", "level": 11, "message_id": "b"}) == {
        "confirmation_topic": "zoom",
        "result": "5",
        "reason": "lens is moving",
        "message_id": "b",
    }


def test_custom_topic_unknown_before_registration(device: Device) -> None:
    assert ask(device, {"topic": "zoom"})["result"] == "3"
    device.topic("zoom")(lambda request, visitor: None)
    assert ask(device, {"topic": "zoom", "message_id": 1}) == {
        "confirmation_topic": "zoom",
        "result": "0",
        "message_id": 1,
    }


def test_custom_topic_failures(device: Device, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="iotvideo_signaling")

    @device.topic("crash")
    def crash(request: Request, visitor: Optional[str]) -> None:
        raise ValueError("secret stack detail")

    @device.topic("later")
    def later(request: Request, visitor: Optional[str]) -> None:
        raise NotImplementedError

    got = ask(device, {"topic": "crash", "message_id": 1})
    assert got["result"] == "7"
    assert "secret" not in got["reason"]
    assert got["message_id"] == 1
    assert "secret stack detail" in caplog.text
    assert ask(device, {"topic": "later"})["result"] == "3"


def test_custom_topic_may_replace_a_built_in(device: Device) -> None:
    @device.topic("version")
    def version(request: Request, visitor: Optional[str]) -> Mapping[str, Any]:
        return {"info": "V9.9.9"}

    assert ask(device, {"topic": "version"})["info"] == "V9.9.9"


def test_custom_topic_returning_unserialisable_fields(device: Device) -> None:
    @device.topic("odd")
    def odd(request: Request, visitor: Optional[str]) -> Mapping[str, Any]:
        return {"when": object()}

    got = ask(device, {"topic": "odd", "message_id": 11})
    assert got["result"] == "7"
    assert got["confirmation_topic"] == "odd"
    assert got["message_id"] == 11


def test_custom_token(device: Device) -> None:
    seen: list[tuple[Command, Optional[str]]] = []

    @device.command("wx_call_start")
    def call_start(command: Command, visitor: Optional[str]) -> Mapping[str, Any]:
        seen.append((command, visitor))
        return {"status": "ringing"}

    got = send(device, PANEL_PREFIX + "wx_call_start&extra=1", visitor="v")
    assert list(got.items()) == [("confirmation_topic", "wx_call_start"), ("result", "0"), ("status", "ringing")]
    command, visitor = seen[0]
    assert command.cmd == "wx_call_start"
    assert command.params == (("extra", "1"),)
    assert visitor == "v"


def test_custom_token_failures(device: Device) -> None:
    @device.command("busy")
    def busy(command: Command, visitor: Optional[str]) -> None:
        raise RequestError("line busy", code=ResultCode.BUSY)

    @device.command("boom")
    def boom(command: Command, visitor: Optional[str]) -> None:
        raise KeyError("x")

    assert send(device, PANEL_PREFIX + "busy") == {"confirmation_topic": "busy", "result": "5", "reason": "line busy"}
    got = send(device, PANEL_PREFIX + "boom")
    assert got["result"] == "7"
    assert got["confirmation_topic"] == "boom"


@pytest.mark.parametrize("token", ["wx_call_start", "wx_call_end", "ptz_stop", "get_status", "reboot%20now"])
def test_unknown_token_is_3(device: Device, token: str) -> None:
    got = send(device, PANEL_PREFIX + token)
    assert got["result"] == "3", got
    assert got["confirmation_topic"] == ""
    assert "message_id" not in got


def test_a_token_registered_on_one_device_is_unknown_on_another(device: Device, tmp_path: Path) -> None:
    device.command("wx_call_start")(lambda command, visitor: None)
    with Device(SimulatedHardware(tmp_path / "other")) as other:
        assert send(other, PANEL_PREFIX + "wx_call_start")["result"] == "3"
        assert ask(other, {"topic": "zoom"})["result"] == "3"
    assert send(device, PANEL_PREFIX + "wx_call_start")["result"] == "0"


# -- user_num -----------------------------------------------------------------------------------


def test_user_num_counts_distinct_streaming_visitors_and_the_sender_once(device: Device) -> None:
    assert status(device)["user_num"] == 1
    assert status(device, "a")["user_num"] == 1
    device.open_session("a")
    device.open_session("b")
    assert status(device, "a")["user_num"] == 1  # sessions alone do not count
    device.start_stream("a")
    assert status(device, "a")["user_num"] == 1  # the sender, counted once
    assert status(device, "b")["user_num"] == 2
    assert status(device)["user_num"] == 2
    device.start_stream("a")  # twice: still one viewer
    device.start_stream("b")
    assert status(device, "a")["user_num"] == 2
    assert status(device, "b")["user_num"] == 2
    assert status(device, "c")["user_num"] == 3
    device.stop_stream("a")
    assert status(device, "a")["user_num"] == 2  # b streaming + the sender a
    assert status(device, "b")["user_num"] == 1
    device.close_session("b")  # closing a session ends its stream
    assert status(device, "b")["user_num"] == 1
    assert status(device, "a")["user_num"] == 1
    device.stop_stream("nobody")
    device.close_session("nobody")
    assert status(device)["user_num"] == 1


def test_user_num_for_visitors_without_sessions(device: Device) -> None:
    device.start_stream("x")
    device.start_stream("y")
    assert status(device)["user_num"] == 3
    assert status(device, "x")["user_num"] == 2
    device.close_session("x")
    assert status(device)["user_num"] == 2


# -- intercom -----------------------------------------------------------------------------------


def test_intercom_one_talker_at_a_time(device: Device) -> None:
    device.open_session("a")
    device.open_session("b")
    assert device.start_intercom("a") is True
    assert device.start_intercom("a") is True  # the holder asking again keeps it
    assert device.start_intercom("b") is False
    assert device.admit_stream("b", "voice") == Admission("1", 1)
    assert device.admit_stream("a", "voice").accepted
    assert device_st(device, "b", "voice")["status"] == "1"
    assert device_st(device, "a", "voice")["status"] == "0"
    assert device_st(device, "b", "live")["status"] == "0"
    device.stop_intercom("b")  # not the holder: nothing happens
    assert ask(device, {"topic": "intercom"})["status"] == "using"
    device.stop_intercom("a")
    assert ask(device, {"topic": "intercom"})["status"] == "unused"
    assert device.start_intercom("b") is True
    assert ask(device, {"topic": "intercom"}, visitor="a")["status"] == "using"
    device.close_session("b")  # leaving ends the talk
    assert ask(device, {"topic": "intercom"})["status"] == "unused"
    assert device.start_intercom("a") is True


# -- lifecycle ----------------------------------------------------------------------------------


def test_close_is_idempotent_and_waits_for_background_work(tmp_path: Path) -> None:
    hw = SimulatedHardware(tmp_path, format_delay=0.05)
    dev = Device(hw)
    (hw.sd_dir / "f").write_bytes(b"x")
    assert ask(dev, {"topic": "sd_format"})["result"] == "0"
    dev.close()
    assert list(hw.sd_dir.iterdir()) == []
    dev.close()


def test_background_work_after_close_is_a_device_error(tmp_path: Path) -> None:
    dev = Device(SimulatedHardware(tmp_path))
    dev.close()
    got = ask(dev, {"topic": "sd_format", "message_id": 1})
    assert got["result"] == "7"
    assert got["message_id"] == 1
    # nothing is left "formatting" by the refused job
    assert ask(dev, {"topic": "sd_format"})["result"] == "7"
    assert ask(dev, {"topic": "version"})["result"] == "0"


def test_handle_never_raises_on_hardware_that_returns_garbage(tmp_path: Path) -> None:
    class Garbage(SimulatedHardware):
        def firmware_version(self) -> str:
            return None  # type: ignore[return-value]

        def get_power(self) -> str:
            return "exploded"

    with Device(Garbage(tmp_path)) as dev:
        assert status(dev)["status"] == "standby"  # an unknown power state fails closed
        got = ask(dev, {"topic": "version"})
        assert got["result"] in ("0", "7")
        assert isinstance(got.get("info", ""), str)


@pytest.mark.parametrize("visitor", [["a"], {"a": 1}, 5, b"v", 1.5], ids=["list", "dict", "int", "bytes", "float"])
def test_a_visitor_of_another_type_is_refused_clearly(
    device: Device, visitor: object, caplog: pytest.LogCaptureFixture
) -> None:
    """The caller's bug: named in the reply and in one error line, without a traceback."""
    with caplog.at_level(logging.ERROR, logger="iotvideo_signaling"):
        got = ask(device, {"topic": "get_status", "message_id": 1}, visitor=visitor)  # type: ignore[arg-type]
    reason = f"visitor must be a str or None, not {type(visitor).__name__}"
    assert (got["result"], got["reason"]) == ("7", reason)
    assert [(r.levelno, r.getMessage(), r.exc_info) for r in caplog.records] == [
        (logging.ERROR, f"Device.handle: {reason}", None)
    ]
    with pytest.raises(TypeError, match=f"^visitor must be a str, not {type(visitor).__name__}$"):
        device.start_stream(visitor)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=f"^{reason}$"):
        device.role(visitor)  # type: ignore[arg-type]


def test_a_str_subclass_is_a_visitor(device: Device) -> None:
    class Peer(str):
        pass

    device.open_session(Peer("guest"), role="sharer")
    assert ask(device, {"topic": "sd_format", "message_id": 1}, visitor=Peer("guest"))["result"] == "6"
