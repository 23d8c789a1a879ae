"""The device benchmarks compare like with like: same replies, same hardware hooks, no shared code.

* The stdlib reference (:mod:`benchmarks.stdlib_device`) gives the same replies as
  :meth:`Device.handle`, compared as parsed JSON, on the seed corpus (the panel's examples), on
  the original document's examples (whitespace, trailing commas), on the 4 KiB command, and
  (result code, topic and ``message_id`` only) on a sequence of error and edge cases. Error
  replies are compared without their ``reason``: each words its own.
* All three contenders call the same hardware hooks for each message of the seed corpus, and the
  floor's replies equal the Device's except for ``upgrade`` (the floor does not validate).
* The floor, the stdlib reference and its camera import nothing from ``iotvideo_signaling``.

The corpus entry ``upgrade_signed_url`` is left out on purpose: it is a valid request, and an
integrated Device would start downloading from its (fake) host. ``inner_define`` and ``cmd``
tokens are outside the stdlib reference's nine topics.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import orjson
import pytest

from iotvideo_signaling import Device
from iotvideo_signaling.jobs import InlineJobs

from .corpus import CORPUS, ORIGINAL_REQUEST_EXAMPLES, PANEL_PREFIX, PANEL_REQUEST_EXAMPLES, panel_command
from .device_contenders import DEVICE_CORPUS, NullHardware, make_device
from .floor import Floor
from .null_hardware import InlineExecutor, NullCamera
from .stdlib_device import StdlibDevice

HOOKS = frozenset(name for cls in (NullCamera, NullHardware) for name in vars(cls) if not name.startswith("_"))


class RecordingHardware(NullHardware):
    """NullHardware that records the name of every hook called."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattribute__(self, name: str) -> Any:
        value = super().__getattribute__(name)
        if name in HOOKS:
            super().__getattribute__("calls").append(name)
        return value


class Pair:
    """A Device and a stdlib reference on their own do-nothing cameras, jobs inline."""

    def __init__(self, download_dir: Path) -> None:
        self.jobs = InlineJobs()
        self.device = make_device(NullHardware(), str(download_dir), jobs=self.jobs)
        self.reference = StdlibDevice(NullCamera(), executor=InlineExecutor())

    def both(self, raw: bytes, visitor: str | None = None) -> tuple[Any, Any]:
        """The two replies to ``raw``, parsed."""
        return (
            orjson.loads(self.device.handle(raw, visitor=visitor)),
            orjson.loads(self.reference.handle(raw, visitor=visitor)),
        )

    def close(self) -> None:
        self.device.close()
        self.jobs.close()
        self.reference.close()


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    p = Pair(tmp_path)
    yield p
    p.close()


def _cases(examples: dict[str, str]) -> list[Any]:
    return [pytest.param(topic, panel_command(text), id=topic) for topic, text in examples.items()]


def _without_reason(reply: dict[str, Any]) -> dict[str, Any]:
    assert isinstance(reply.get("reason"), str) and reply["reason"], reply
    return {key: value for key, value in reply.items() if key != "reason"}


def _check(device_reply: Any, reference_reply: Any) -> None:
    """Equal replies; error replies equal but for the wording of their reasons."""
    if device_reply.get("result") != "0":
        device_reply, reference_reply = _without_reason(device_reply), _without_reason(reference_reply)
    assert device_reply == reference_reply


@pytest.mark.parametrize(("topic", "raw"), _cases(PANEL_REQUEST_EXAMPLES))
def test_seed_corpus(pair: Pair, topic: str, raw: bytes) -> None:
    assert raw in [entry.raw for entry in DEVICE_CORPUS]
    _check(*pair.both(raw))


def test_seed_corpus_upgrade_is_refused_by_both(pair: Pair) -> None:
    """The document's MD5 is redacted with ``*``: a correct device refuses it (error 4)."""
    device_reply, reference_reply = pair.both(panel_command(PANEL_REQUEST_EXAMPLES["upgrade"]))
    assert device_reply["result"] == reference_reply["result"] == "4"


@pytest.mark.parametrize(("topic", "raw"), _cases(ORIGINAL_REQUEST_EXAMPLES))
def test_original_examples(pair: Pair, topic: str, raw: bytes) -> None:
    _check(*pair.both(raw))


def test_large_command(pair: Pair) -> None:
    raw = next(entry.raw for entry in CORPUS if entry.name == "large_4k")
    device_reply, reference_reply = pair.both(raw)
    assert device_reply["result"] == "3"  # a topic the panel does not have
    _check(device_reply, reference_reply)


def _user(text: str) -> bytes:
    return (PANEL_PREFIX + text).encode()


#: Error and edge cases, in order (some change state: standby, sessions): (visitor, raw).
SEQUENCE: list[tuple[str | None, bytes]] = [
    (None, _user('{"topic":"Mirror_flip","message_id":"abc","data":{"mode":"upside"}}')),
    (None, _user('{"topic":"Mirror_flip","message_id":1}')),
    (None, _user('{"topic":"Mirror_flip","message_id":1,"mode":"flip"}')),
    (None, _user('{"topic":"get_status","message_id":1,"user":"guest"}')),
    (None, _user('{"topic":"get_status","message_id":1,"user":1}')),
    (None, _user('{"topic":"zoom","message_id":7}')),
    (None, _user('{"topic":"' + "z" * 80 + '","message_id":7}')),
    (None, _user("[1,2]")),
    (None, _user('"get_status"')),
    (None, _user('{"message_id":1}')),
    (None, _user('{"topic":"","message_id":1}')),
    (None, _user('{"topic":5,"message_id":"x"}')),
    (None, _user('{"message_id":true}')),
    (None, _user('{"topic":"' + "z" * 80 + '","message_id":[]}')),
    (None, _user('{"topic":"version","message_id":1.5}')),
    (None, _user('{"topic":"version","message_id":true}')),
    (None, _user('{"topic":"version","message_id":9007199254740992}')),
    (None, _user('{"topic":"version","message_id":-9007199254740991}')),
    (None, _user('{"topic":"version","message_id":"' + "m" * 129 + '"}')),
    (None, _user('{"topic":"version","message_id":null}')),
    (None, _user('{"topic":"version","data":[]}')),
    (None, _user('{"topic":"version","message_id":5,"data":"x"}')),
    (None, _user('{"topic":"version"}')),
    (None, _user('{"topic":"sd_format","message_id":1,}')),
    (None, _user('{"topic":"bind_status","message_id":1,"data":{"status":"failed"}}')),
    (None, _user('{"topic":"bind_status","message_id":1}')),
    (None, b'{"topic":"version","message_id":"bare"}'),
    (None, b"action=user_define&cmd="),
    (None, b"action=user_define&channel=0&cmd=" + b'{"topic":'),
    (None, b"action=nope&channel=0&cmd=x"),
    (None, _user('{"topic":"ptz","message_id":2,"data":{"cmd":"ptz_spin"}}')),
    (None, _user('{"topic":"ptz","message_id":3,"data":{"cmd":"ptz_left_press"}}')),
    (None, _user('{"topic":"ptz","message_id":4,"data":{"cmd":"ptz_release_pre"}}')),
    (None, _user('{"topic":"set_status","message_id":5,"status":"standby"}')),
    (None, _user('{"topic":"get_status","message_id":6}')),
    (None, _user('{"topic":"ptz","message_id":7,"data":{"cmd":"ptz_up_press"}}')),
    (None, _user('{"topic":"set_status","message_id":8,"data":{"status":"working"}}')),
    ("guest", _user('{"topic":"sd_format","message_id":9}')),
    ("guest", _user('{"topic":"set_status","message_id":10,"data":{"status":"working"}}')),
    ("guest", _user('{"topic":"upgrade","message_id":11}')),
    ("guest", _user('{"topic":"version","message_id":12}')),
]


def _summary(reply: Any) -> Any:
    return reply["confirmation_topic"], reply["result"], reply.get("message_id", "<none>")


def test_error_and_edge_sequence(pair: Pair) -> None:
    pair.device.open_session("guest", role="sharer")
    pair.reference.open_session("guest", role="sharer")
    for visitor, raw in SEQUENCE:
        device_reply, reference_reply = pair.both(raw, visitor)
        assert _summary(device_reply) == _summary(reference_reply), raw


@pytest.mark.parametrize(
    ("data", "result"),
    [
        ({"url": "https://cdn.example.com/fw.bin", "md5": "9D9F94E276DD57E4EA**********74DD", "fileSize": 1}, "4"),
        ({"url": "http://cdn.example.com/fw.bin", "md5": "9d9f94e276dd57e4ea0f3c1b2a7d74dd", "fileSize": 1}, "4"),
        ({"url": "https://cdn.example.com/fw.bin", "md5": "9d9f94e276dd57e4ea0f3c1b2a7d74dd", "fileSize": 0}, "4"),
        (
            {"url": "https://cdn.example.com/fw.bin", "md5": "9d9f94e276dd57e4ea0f3c1b2a7d74dd", "fileSize": 2**27 + 1},
            "4",
        ),
        ({"url": "https://cdn.example.com/fw.bin", "md5": "9d9f94e276dd57e4ea0f3c1b2a7d74dd"}, "4"),
        ({"url": 5, "md5": "9d9f94e276dd57e4ea0f3c1b2a7d74dd", "fileSize": 1}, "4"),
    ],
    ids=["redacted-md5", "http", "size-0", "size-over-cap", "no-size", "url-not-str"],
)
def test_upgrade_validation(pair: Pair, data: dict[str, Any], result: str) -> None:
    raw = panel_command({"topic": "upgrade", "message_id": 1, "data": data})
    device_reply, reference_reply = pair.both(raw)
    assert reference_reply["result"] == result
    assert device_reply["result"] == result


def _hooks_per_message(handle: Callable[[bytes], object], hardware: RecordingHardware) -> dict[str, list[str]]:
    for entry in DEVICE_CORPUS:  # once untimed: lazy set-up (the OTA manager reads the version)
        handle(entry.raw)
    calls = {}
    for entry in DEVICE_CORPUS:
        hardware.calls.clear()
        handle(entry.raw)
        calls[entry.name] = sorted(hardware.calls)
    return calls


def test_same_hooks(wire_c: ModuleType, tmp_path: Path) -> None:
    hardware = [RecordingHardware() for _ in range(3)]
    jobs = InlineJobs()
    device: Device = make_device(hardware[0], str(tmp_path), jobs=jobs)
    reference = StdlibDevice(hardware[1], executor=InlineExecutor())
    floor = Floor(hardware[2], decode=wire_c.decode_command, executor=InlineExecutor())
    handles: list[Callable[[bytes], object]] = [device.handle, reference.handle, floor.handle]
    try:
        found = [_hooks_per_message(handle, hw) for handle, hw in zip(handles, hardware)]
    finally:
        device.close()
        jobs.close()
    assert found[0] == found[1] == found[2]
    assert found[0]["sd_format"] == ["format_sd", "sd_card_present"]
    assert found[0]["bind_status"] == ["play_tone"]


def test_floor_matches_device(wire_c: ModuleType, tmp_path: Path) -> None:
    jobs = InlineJobs()
    device = make_device(NullHardware(), str(tmp_path), jobs=jobs)
    floor = Floor(NullCamera(), decode=wire_c.decode_command, executor=InlineExecutor())
    try:
        for entry in DEVICE_CORPUS:
            device_reply = orjson.loads(device.handle(entry.raw))
            floor_reply = orjson.loads(floor.handle(entry.raw))
            if entry.name == "upgrade":
                assert floor_reply == {"confirmation_topic": "upgrade", "result": "0", "message_id": 0}
                assert device_reply["result"] != "0"
            else:
                assert device_reply == floor_reply, entry.name
    finally:
        device.close()
        jobs.close()


def test_contenders_import_nothing_from_the_library() -> None:
    probe = (
        "import sys\n"
        "import benchmarks.floor, benchmarks.stdlib_device, benchmarks.stdlib_reference\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'iotvideo_signaling'))\n"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
