"""The examples of the original protocol document, verbatim, and the checks every reply must pass.

:data:`REQUEST_EXAMPLES` and :data:`REPLY_EXAMPLES` hold, per topic, the text of the fenced
``json`` blocks of the original (Chinese) document, byte for byte: indentation, tabs, blank lines
and the trailing commas of ``sd_format``, ``bind_status`` and ``intercom`` included. The panel
never sends them like this; integrators paste them into test tools, so the device must accept them.

:func:`check_reply` is the oracle shared by the protocol, device and inner tests: one non-empty
JSON text, a documented result or status code, a short reason that echoes little of the input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Union

import orjson
from benchmarks.corpus import ORIGINAL_REQUEST_EXAMPLES, PANEL_PREFIX

from iotvideo_signaling import Device

__all__ = [
    "INNER_STATUSES",
    "MAX_ECHO",
    "MAX_REASON",
    "PANEL_PREFIX",
    "REPLY_EXAMPLES",
    "REQUEST_EXAMPLES",
    "RESULT_CODES",
    "TOPICS",
    "ask",
    "bare",
    "check_reply",
    "echoes_more_than",
    "example_object",
    "inner",
    "panel",
    "send",
]

#: The ``result`` codes of docs/protocol.md §5.
RESULT_CODES = frozenset({"0", "1", "2", "3", "4", "5", "6", "7", "8"})
#: The ``status`` codes of the inner commands (docs/protocol.md §6).
INNER_STATUSES = frozenset({"0", "1", "404", "405", "406", "407"})
#: Longest ``reason`` (characters) and longest run of input a reason may quote (bytes).
MAX_REASON = 200
MAX_ECHO = 64

Raw = Union[bytes, str]

#: The request examples of the original document (one copy, shared with the benchmark corpus).
REQUEST_EXAMPLES: dict[str, str] = ORIGINAL_REQUEST_EXAMPLES

REPLY_EXAMPLES: dict[str, str] = {
    "get_status": (
        '{\n'
        '    "confirmation_topic": "get_status",\n'
        '    "message_id": 0,\n'
        '    "status": "working",\n'
        '\t \t"user_num": 1,\n'
        '    "signal_strength": 50\n'
        '}\n'
    ),
    "version": (
        '{\n'
        '    "confirmation_topic":"version",\n'
        '    "result":"0",\n'
        '    "info":"V1.04.11",\n'
        '    "message_id": 0\n'
        '}\n'
    ),
    "upgrade": (
        '{\n'
        '    "confirmation_topic":"upgrade",\n'
        '    "result":"0",\n'
        '    "message_id": 0\n'
        '}\n'
    ),
    "Mirror_flip": (
        '{\n'
        '    "confirmation_topic":"Mirror_flip",\n'
        '    "result":"0",\n'
        '    "message_id": 0\n'
        '}\n'
        '\n'
    ),
    "set_status": (
        '{\n'
        '    "confirmation_topic": "set_status",\n'
        '    "result": "0",\n'
        '    "message_id": 0\n'
        '}\n'
        '\n'
    ),
    "ptz": (
        '{\n'
        '    "confirmation_topic": "ptz",\n'
        '    "result": "0",\n'
        '    "apex": "yes",\n'
        '  \t"current_x": 123,\n'
        '  \t"current_y": 123,\n'
        '  \t"max_x": 123,\n'
        '  \t"max_y": 123,\n'
        '  \t"min_x": 123,\n'
        '  \t"min_y": 123,\n'
        '    "message_id": 0\n'
        '}\n'
        '\n'
    ),
    "sd_format": (
        '{\n'
        '    "confirmation_topic": "sd_format",\n'
        '    "result": "0",\n'
        '    "message_id": 0\n'
        '}\n'
        '\n'
    ),
    "bind_status": (
        '{\n'
        '    "confirmation_topic": "bind_status",\n'
        '    "result": "0",\n'
        '    "message_id": 0\n'
        '}\n'
        '\n'
    ),
    "intercom": (
        '{\n'
        '    "confirmation_topic": "intercom",\n'
        '    "result": "0",\n'
        '    "status": "using",\n'
        '    "message_id": 0\n'
        '}\n'
        '\n'
    ),
}

#: The built-in topics, in the order of the original document.
TOPICS: tuple[str, ...] = tuple(REQUEST_EXAMPLES)

_TRAILING_COMMA = re.compile(r",(\s*[}\]])")


def example_object(text: str) -> dict[str, Any]:
    """Decode an example of the original document (its trailing commas dropped)."""
    value = orjson.loads(_TRAILING_COMMA.sub(r"\1", text))
    assert isinstance(value, dict)
    return value


def panel(payload: Raw) -> bytes:
    """``payload`` as the panel sends it: ``action=user_define&channel=0&cmd=<payload>``."""
    body = payload.encode("utf-8") if isinstance(payload, str) else payload
    return PANEL_PREFIX.encode() + body


def bare(payload: Raw) -> bytes:
    """``payload`` as the vendor SDK's high-level API hands it over: the JSON alone."""
    return payload.encode("utf-8") if isinstance(payload, str) else payload


def inner(cmd: str, **params: str) -> bytes:
    """An ``inner_define`` command with ``params`` (values given already encoded)."""
    text = f"action=inner_define&channel=0&cmd={cmd}"
    for name, value in params.items():
        text += f"&{name}={value}"
    return text.encode()


def echoes_more_than(limit: int, text: str, raw: Raw) -> bool:
    """True when ``text`` contains a run of more than ``limit`` bytes that also occurs in ``raw``."""
    needle = text.encode("utf-8", "surrogatepass")
    haystack = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
    width = limit + 1
    return any(needle[i : i + width] in haystack for i in range(len(needle) - width + 1))


def check_reply(reply: object, raw: Raw | None = None) -> Any:
    """Assert ``reply`` is a valid reply (docs/protocol.md §4-§6) and return it decoded.

    A ``user_define`` reply is an object starting with ``confirmation_topic`` and ``result``
    (a documented code), ending with ``message_id`` when it has one; an error carries a
    ``reason`` of at most 200 characters that quotes at most 64 bytes of ``raw``. An
    ``inner_define`` reply is an array whose first element has a documented ``status``, an
    object with a documented ``status``, or a record list (``video_list``/``file_list``).
    """
    assert isinstance(reply, bytes), type(reply)
    assert reply, "empty reply"
    assert b"\0" not in reply
    body = orjson.loads(reply)
    if isinstance(body, dict) and "confirmation_topic" in body:
        keys = list(body)
        assert keys[:2] == ["confirmation_topic", "result"], keys
        assert isinstance(body["confirmation_topic"], str)
        assert body["result"] in RESULT_CODES, body
        if "message_id" in body:
            assert keys[-1] == "message_id", keys
            assert type(body["message_id"]) in (int, str), body
        if body["result"] != "0":
            assert isinstance(body.get("reason"), str), body
        if "reason" in body:
            reason = body["reason"]
            assert isinstance(reason, str)
            assert len(reason) <= MAX_REASON, len(reason)
            if raw is not None:
                assert not echoes_more_than(MAX_ECHO, reason, raw), reason
        assert len(reply) < 16384
    elif isinstance(body, list):
        assert body, "empty array"
        first = body[0]
        assert isinstance(first, dict), body
        assert first.get("status") in INNER_STATUSES, body
    else:
        assert isinstance(body, dict), body
        if "status" in body:
            assert body["status"] in INNER_STATUSES, body
        else:
            assert "video_list" in body or "file_list" in body, body
    return body


def send(device: Device, raw: Raw, *, visitor: str | None = None) -> Any:
    """``device.handle(raw)``, checked with :func:`check_reply`, decoded."""
    return check_reply(device.handle(raw, visitor=visitor), raw)


def ask(device: Device, request: Mapping[str, Any], *, visitor: str | None = None) -> Any:
    """Send ``request`` (an object) as the panel's ``JSON.stringify`` would, checked and decoded.

    The stdlib encoder is used so that integers beyond 64 bits can be sent.
    """
    text = json.dumps(request, ensure_ascii=False, separators=(",", ":"))
    return send(device, panel(text.encode("utf-8", "surrogatepass")), visitor=visitor)
