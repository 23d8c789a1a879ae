"""The fuzz harnesses: one function per wire entry point that checks one input, raising on a fault.

Each harness takes the fuzzer's bytes and raises (:class:`~fuzz.differential.Mismatch`, an
``AssertionError`` or whatever escaped) when something is wrong; atheris (``fuzz/run``), the plain
mutator (:mod:`fuzz.mutate`) and the test suite (``tests/test_fuzz_harness.py``) all call them.

* ``parse_command``, ``decode_command``: the input as bytes, bytearray, contiguous and strided
  memoryview, and as text (``surrogateescape``: undecodable bytes become lone surrogates), each
  with the default limit, ``max_size`` equal to its length and one less. Both backends must agree,
  and only a result or a :class:`~iotvideo_signaling.WireError` may come out.
* ``loads``: the input as a JSON payload in the same buffer types, offset left out, positive,
  a decoded payload's ``~n`` and ``sys.maxsize``; the backends must agree.
* ``device``: ``Device.handle`` on a fresh Device whose hooks do nothing (:class:`FuzzCamera`): the
  reply must pass the tests' oracle (``check_reply``) and be byte-identical to the reply of the
  same Device running on the pure-Python backend in a peer process (:mod:`fuzz.peer`).
* ``bridge``: the input as the byte stream of one bridge connection, fed to
  :class:`~iotvideo_signaling.server.bridge.BridgePeer` whole and again in two reads: the frames
  out must be well formed, the same both ways and the same on the Python backend, and every
  ``REPLY`` body must pass ``check_reply``.

A Device picks its wire backend once per process (``IOTVIDEO_SIGNALING_NO_EXTENSIONS``); the
harnesses do not patch it. So the ``device`` and ``bridge`` harnesses run in a process on the C
backend and ask the peer, a second process on the Python backend, for its answer to each input.
Every run starts from fresh Devices on a fake clock with jobs run inline, so an answer depends on
the input alone and a saved crash reproduces.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import struct
import sys
import zlib
from collections.abc import Iterator, Mapping
from types import ModuleType
from typing import Any, Callable, NamedTuple, Optional

from benchmarks.null_hardware import NullCamera

from fuzz.differential import Mismatch, assert_same, assert_same_loads
from fuzz.oracle import check_reply
from iotvideo_signaling import Device, Hardware, WireError, _wire
from iotvideo_signaling.jobs import InlineJobs
from iotvideo_signaling.scheduling import ManualClock
from iotvideo_signaling.server.bridge import HEADER, MAX_BODY, BridgePeer, FrameType

__all__ = [
    "HARNESSES",
    "PEER_OUTCOMES",
    "FuzzCamera",
    "Harness",
    "as_text",
    "bridge_outcome",
    "device_outcome",
    "fresh_device",
    "no_error_logged",
    "quiet_logs",
]


class Harness(NamedTuple):
    """A named one-input check."""

    name: str
    run: Callable[[bytes], None]
    doc: str


# -- the wire kernel ---------------------------------------------------------------------------------


@functools.cache
def backends() -> tuple[ModuleType, ModuleType]:
    """``(python, c)``: the two wire backends, imported directly (not through the selector).

    Raises:
        ImportError: the C backend is not built.
    """
    return (
        importlib.import_module("iotvideo_signaling._wire_py"),
        importlib.import_module("iotvideo_signaling._wire_c"),
    )


def as_text(data: bytes) -> str:
    """The input as a ``str``: UTF-8, each undecodable byte a lone surrogate."""
    return data.decode("utf-8", "surrogateescape")


def _limits(data: bytes) -> tuple[Optional[int], ...]:
    return (None, len(data), len(data) - 1)


def _documented(module: ModuleType, name: str, raw: Any) -> None:
    """Only a result or a WireError may come out of a command entry point (anything else escapes)."""
    with contextlib.suppress(WireError):
        getattr(module, name)(raw)


def _command_harness(name: str) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        py, c = backends()
        for raw in (data, as_text(data)):
            for limit in _limits(data):
                assert_same(py, c, raw, limit, entry_points=(name,))
        _documented(py, name, data)

    run.__name__ = run.__qualname__ = name
    return run


parse_command = _command_harness("parse_command")
decode_command = _command_harness("decode_command")

#: ``loads`` offsets: left out, a position, a percent-decoded payload's ``~n``, the largest.
_OFFSETS = (None, 5, ~5, sys.maxsize)


def loads(data: bytes) -> None:
    py, c = backends()
    for payload in (data, as_text(data)):
        for offset in _OFFSETS:
            assert_same_loads(py, c, payload, offset)


# -- the Device and the bridge ---------------------------------------------------------------------

_LOGGER = "iotvideo_signaling"


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def no_error_logged() -> Iterator[None]:
    """Fail when the library logs an error: the Device logs what it did not expect (an
    "internal error" reply) and the bridge a session it could not close."""
    handler = _Errors()
    logger = logging.getLogger(_LOGGER)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    if handler.records:
        record = handler.records[0]
        trace = logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
        raise AssertionError(f"the library logged an error: {record.getMessage()}\n{trace}")


def quiet_logs() -> None:
    """Keep the library's log off the fuzzer's output (the error check above still sees it)."""
    logger = logging.getLogger(_LOGGER)
    logger.addHandler(logging.NullHandler())
    logger.propagate = False


class FuzzCamera(NullCamera, Hardware):
    """Every hook but ``install_firmware`` (an upgrade would download): fixed answers, no I/O."""

    def ptz_speed(self) -> tuple[float, float]:
        return (600.0, 300.0)

    def record_index(self, start: int, end: int) -> list[tuple[int, int]]:
        return [(start, min(end, start + 60)), (end, end)]

    def month_record(self, year: int, month: int) -> int:
        return year ^ month

    def file_list(self, start: int, end: int, file_type: int) -> list[dict[str, Any]]:
        return [{"file_name": f"f{file_type}", "file_size": 1, "start_time": start, "end_time": end}]

    def playback(self, action: str, params: Mapping[str, str]) -> Optional[int]:
        return len(params) if action == "progress" else None


def fresh_device() -> Device:
    """A started Device on a :class:`FuzzCamera`: fake clock and scheduler, jobs run inline."""
    clock = ManualClock()
    device = Device(FuzzCamera(), clock=clock, scheduler=clock, wall_clock=clock, jobs=InlineJobs())
    return device.start()


def device_outcome(data: bytes) -> bytes:
    """The reply of a fresh Device to ``data``, checked by the tests' oracle."""
    with no_error_logged():
        device = fresh_device()
        try:
            reply = device.handle(data)
        finally:
            device.close()
    check_reply(reply, data)
    return reply


_ANSWERS = frozenset({FrameType.WELCOME, FrameType.REPLY, FrameType.STREAM_ANSWER, FrameType.ERROR})


def _check_frames(out: list[bytes]) -> None:
    """Each item is one well-formed frame of an answer type; a REPLY carries a valid reply."""
    for item in out:
        length, kind, _, reserved, _, _, _ = HEADER.unpack_from(item)
        assert len(item) == HEADER.size + length <= HEADER.size + MAX_BODY, (len(item), length)
        assert reserved == 0 and kind in _ANSWERS, (kind, reserved)
        if kind == FrameType.REPLY:
            check_reply(item[HEADER.size :])


def _exchange(data: bytes, split: int) -> tuple[list[bytes], bool, int]:
    """Feed ``data`` to a BridgePeer on fresh Devices as a listener would, in reads ending at
    ``split`` and at the end: ``(frames out, closed, bytes left unconsumed)``."""
    device = fresh_device()
    peer = BridgePeer({0: device}, "bridge-fuzz")
    out: list[bytes] = []
    pending = b""
    closed = False
    try:
        for chunk in (data[:split], data[split:]):
            pending += chunk
            with memoryview(pending) as view:
                result = peer.feed(view)
            assert 0 <= result.consumed <= len(pending), result.consumed
            _check_frames(result.out)
            out += result.out
            pending = pending[result.consumed :]
            if result.close:
                closed = True
                break
    finally:
        peer.close_all("end of input")
        device.close()
    if not closed and len(pending) >= HEADER.size:  # what is left must be an incomplete frame
        (length,) = struct.unpack_from("!I", pending)
        assert HEADER.size + length > len(pending), "a complete frame was left unanswered"
    return out, closed, len(pending)


def bridge_outcome(data: bytes) -> bytes:
    """The frames a BridgePeer answers to the stream ``data``, the same whether it arrives in one
    read or two; then whether it closed the connection and how many bytes it left."""
    with no_error_logged():
        whole = _exchange(data, len(data))
        split = _exchange(data, zlib.crc32(data) % (len(data) + 1))
    if whole[1]:  # a fatal error: the answers before it are the same, the rest may be cut short
        assert split[1] and split[0] == whole[0], "splitting the stream changed the answers"
    else:
        assert split == whole, "splitting the stream changed the answers"
    out, closed, left = whole
    return b"".join(out) + struct.pack("!?I", closed, left)


#: The outcomes the peer process computes on the Python backend.
PEER_OUTCOMES: dict[str, Callable[[bytes], bytes]] = {"device": device_outcome, "bridge": bridge_outcome}


def _against_peer(name: str) -> Callable[[bytes], None]:
    compute = PEER_OUTCOMES[name]

    def run(data: bytes) -> None:
        from fuzz.peer import peer  # noqa: PLC0415 - a process is started only when needed

        if _wire.implementation != "c":
            raise RuntimeError(f"the {name} harness needs the C backend in this process, not {_wire.implementation}")
        ours = compute(data)
        theirs = peer().outcome(name, data)
        if ours != theirs:
            raise Mismatch(f"{name}: the C backend answered {ours[:300]!r}, the Python backend {theirs[:300]!r}")

    run.__name__ = run.__qualname__ = name
    return run


device = _against_peer("device")
bridge = _against_peer("bridge")

HARNESSES: dict[str, Harness] = {
    harness.name: harness
    for harness in (
        Harness("parse_command", parse_command, "parse_command: both backends, every buffer type and limit"),
        Harness("decode_command", decode_command, "decode_command: both backends, every buffer type and limit"),
        Harness("loads", loads, "loads: both backends, every buffer type and offset"),
        Harness("device", device, "Device.handle: reply oracle, C against Python in a peer process"),
        Harness("bridge", bridge, "BridgePeer.feed: frames, any split, C against Python in a peer process"),
    )
}
