"""The built-in ``inner_define`` commands (docs/protocol.md §6), answered in Tencent's formats.

These replies carry a ``status`` string instead of ``result``: ``0`` accept, ``1`` refuse,
``404`` bad request, ``405`` too many visitors, ``406`` unsupported, ``407`` device error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable, Protocol

import orjson

from ._command import Command
from ._log import logger
from .hardware import Hardware
from .sessions import STREAM_KINDS

if TYPE_CHECKING:
    from .sessions import Admission

__all__: list[str] = []  # used by the Device; nothing here is public API

log = logger(__name__)

BAD_REQUEST = orjson.dumps({"status": "404"})
UNSUPPORTED = orjson.dumps({"status": "406"})
DEVICE_ERROR = orjson.dumps({"status": "407"})

#: Replies stay well under the 16 KiB the panel side expects: at most this many list entries
#: (a video span is ~60 bytes of JSON, a file ~130), the earliest first.
MAX_RECORD_SPANS = 200
MAX_FILES = 100

_QUALITIES = ("standard", "high", "super")
_MAX_TIME = 2**40


class InnerContext(Protocol):
    """What the inner commands need of the Device (implemented by it)."""

    hardware: Hardware

    def admit_stream(self, visitor: str | None, kind: str) -> Admission:
        """May ``visitor`` start a stream of ``kind`` now (the sessions' admission)?"""


class _BadRequest(Exception):
    pass


def _int(params: Mapping[str, str], name: str, low: int = 0, high: int = _MAX_TIME) -> int:
    value = params.get(name, "")
    if not (value.isascii() and value.isdigit()) or len(value) > 13 or not low <= int(value) <= high:
        raise _BadRequest(name)
    return int(value)


def _device_status(ctx: InnerContext, params: Mapping[str, str], visitor: str | None) -> Any:
    if params.get("type") not in STREAM_KINDS or params.get("quality", "standard") not in _QUALITIES:
        return [{"status": "404"}]
    admission = ctx.admit_stream(visitor, params["type"])
    return [{"status": admission.status, "appConnectNum": str(admission.viewers)}]


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Spans sorted, with overlapping or touching ones joined (continuous recording in clips)."""
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _record_index(ctx: InnerContext, params: Mapping[str, str], visitor: str | None) -> Any:
    start, end = _int(params, "start_time"), _int(params, "end_time")
    if end < start:
        raise _BadRequest("end_time")
    spans = _merged(ctx.hardware.record_index(start, end))[:MAX_RECORD_SPANS]
    return {"video_list": [{"type": 0, "start_time": str(a), "end_time": str(b)} for a, b in spans]}


def _month_record(ctx: InnerContext, params: Mapping[str, str], visitor: str | None) -> Any:
    stamp = params.get("time", "")
    if len(stamp) != 6:
        raise _BadRequest("time")
    yyyymm = _int(params, "time", 100001, 999912)
    year, month = divmod(yyyymm, 100)
    if not 1 <= month <= 12:
        raise _BadRequest("time")
    return {"video_list": str(ctx.hardware.month_record(year, month) & 0xFFFFFFFF)}


def _file_list(ctx: InnerContext, params: Mapping[str, str], visitor: str | None) -> Any:
    start, end = _int(params, "start_time"), _int(params, "end_time")
    if end < start:
        raise _BadRequest("end_time")
    file_type = _int(params, "file_type", 0, 1)
    return {"file_list": ctx.hardware.file_list(start, end, file_type)[:MAX_FILES]}


def _playback(action: str) -> Callable[[InnerContext, Mapping[str, str], str | None], Any]:
    def run(ctx: InnerContext, params: Mapping[str, str], visitor: str | None) -> Any:
        if action == "seek" and "progress" not in params and "time" not in params:
            raise _BadRequest("progress")
        if action == "seek":
            _int(params, "progress" if "progress" in params else "time")
        position = ctx.hardware.playback(action, dict(params))
        body: dict[str, str] = {"status": "0"}
        if action == "progress":
            body["progress"] = str(int(position or 0))
        return body

    return run


_COMMANDS: dict[str, Callable[[InnerContext, Mapping[str, str], str | None], Any]] = {
    "get_device_st": _device_status,
    "get_record_index": _record_index,
    "get_month_record": _month_record,
    "get_file_list": _file_list,
    "playback_pause": _playback("pause"),
    "playback_resume": _playback("resume"),
    "playback_seek": _playback("seek"),
    "playback_progress": _playback("progress"),
}


def handle_inner(
    ctx: InnerContext,
    command: Command,
    visitor: str | None,
    *,
    on_unsupported: Callable[[str, NotImplementedError], None] | None = None,
) -> bytes:
    """Answer one ``inner_define`` command; never raises.

    ``on_unsupported`` is told of each NotImplementedError (a missing hook) answered 406.
    """
    run = _COMMANDS.get(command.cmd or "")
    if run is None:
        return UNSUPPORTED
    params: dict[str, str] = {}
    for name, value in command.params:
        params.setdefault(name, value)
    try:
        return orjson.dumps(run(ctx, params, visitor))
    except _BadRequest:
        return BAD_REQUEST
    except NotImplementedError as exc:
        if on_unsupported is not None:
            on_unsupported(command.cmd or "", exc)
        return UNSUPPORTED
    except Exception as exc:
        log.warning("inner command %s failed: %s", command.cmd, exc, exc_info=True)
        return DEVICE_ERROR
