"""The benchmark corpus: what the standard panel actually sends, as bytes.

Data first, then one small function. Device benchmarks reuse this module, so every entry is a
complete command string exactly as it reaches the camera (PROTOCOL.md §1)::

    action=user_define&channel=0&cmd=<JSON.stringify(command)>

* :data:`ORIGINAL_REQUEST_EXAMPLES`: the request examples of the original (Chinese) document,
  byte for byte as its fenced blocks print them: indentation, blank lines and the trailing commas
  of ``sd_format``, ``bind_status`` and ``intercom`` included. For protocol tests; the panel never
  sends these.
* :data:`PANEL_REQUEST_EXAMPLES`: the same commands as the panel's ``JSON.stringify`` renders the
  object literals: compact, keys in source order, no whitespace, no trailing commas (a trailing
  comma is legal in a JavaScript object literal and simply vanishes).
* :data:`SIGNED_UPGRADE_URL`: a long pre-signed HTTPS URL (COS ``sign=`` parameter, a base64
  security token, S3-style parameters), raw ``&``, ``=``, ``%`` and ``+`` in the JSON string.
* :data:`INNER_DEFINE_COMMAND`: a built-in command with percent-encoded extra parameters.
* :data:`LARGE_COMMAND`: a ``user_define`` command of exactly :data:`LARGE_SIZE` bytes.

:data:`CORPUS` puts them together as :class:`Entry` values; :func:`panel_command` builds one.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

__all__ = [
    "CORPUS",
    "INNER_DEFINE_COMMAND",
    "LARGE_COMMAND",
    "LARGE_SIZE",
    "ORIGINAL_REQUEST_EXAMPLES",
    "PANEL_PREFIX",
    "PANEL_REQUEST_EXAMPLES",
    "SIGNED_UPGRADE_URL",
    "UPGRADE_SIGNED_JSON",
    "Entry",
    "js_stringify",
    "messages",
    "panel_command",
]

#: What the panel's ``sendCommand`` puts before ``JSON.stringify(command)``.
PANEL_PREFIX = "action=user_define&channel=0&cmd="

#: The request examples of the original document, topic -> the text of its fenced ``json`` block.
#: Trailing commas and the document's blank lines are kept on purpose.
ORIGINAL_REQUEST_EXAMPLES: dict[str, str] = {
    "get_status": '{\n    "topic": "get_status",\n    "message_id": 0,\n    "user": "owner"\n}\n',
    "version": '{\n    "topic": "version",\n    "message_id": 0,\n    "data": {}\n}\n',
    "upgrade": (
        "{\n"
        '    "topic": "upgrade",\n'
        '    "message_id": 0,\n'
        '    "data": {\n'
        '        "url": "https://xxxxxx/xxx.bin",\n'
        '        "md5": "9D9F94E276DD57E4EA**********74DD",\n'
        '        "fileSize": 3137536\n'
        "    }\n"
        "}\n"
    ),
    "Mirror_flip": (
        '{\n    "topic": "Mirror_flip",\n    "message_id": 0,\n    "data": {\n        "mode": "normal"\n    }\n}\n'
    ),
    "set_status": (
        '{\n    "topic": "set_status",\n    "message_id": 0,\n    "data": {\n        "status": "working"\n    }\n}\n\n'
    ),
    "ptz": (
        '{\n    "topic": "ptz",\n    "message_id": 0,\n    "data": {\n        "cmd": "ptz_release_pre"\n    }\n}\n\n'
    ),
    "sd_format": '{\n    "topic": "sd_format",\n    "message_id": 0,\n}\n\n',
    "bind_status": '{\n    "topic": "bind_status",\n    "status": "success",\n    "message_id": 0,\n}\n\n',
    "intercom": '{\n    "topic": "intercom",\n    "message_id": 0,\n}\n\n',
}

#: The same requests as ``JSON.stringify`` produces them (compact, source key order).
PANEL_REQUEST_EXAMPLES: dict[str, str] = {
    "get_status": '{"topic":"get_status","message_id":0,"user":"owner"}',
    "version": '{"topic":"version","message_id":0,"data":{}}',
    "upgrade": (
        '{"topic":"upgrade","message_id":0,"data":{"url":"https://xxxxxx/xxx.bin",'
        '"md5":"9D9F94E276DD57E4EA**********74DD","fileSize":3137536}}'
    ),
    "Mirror_flip": '{"topic":"Mirror_flip","message_id":0,"data":{"mode":"normal"}}',
    "set_status": '{"topic":"set_status","message_id":0,"data":{"status":"working"}}',
    "ptz": '{"topic":"ptz","message_id":0,"data":{"cmd":"ptz_release_pre"}}',
    "sd_format": '{"topic":"sd_format","message_id":0}',
    "bind_status": '{"topic":"bind_status","status":"success","message_id":0}',
    "intercom": '{"topic":"intercom","message_id":0}',
}

#: A pre-signed firmware URL as an OTA backend hands it out (all credentials are fake).
SIGNED_UPGRADE_URL = (
    "https://iot-ota-1250000000.cos.ap-guangzhou.myqcloud.com/firmware/IPC-C200/V1.04.12%2Bbuild.7/"
    "firmware_V1.04.12.bin"
    "?sign=q-sign-algorithm%3Dsha1%26q-ak%3DAKIDEXAMPLEq0a1b2c3d4e5f6g7h8i9j0KLMN%26q-sign-time%3D1717200000"
    "%3B1717286400%26q-key-time%3D1717200000%3B1717286400%26q-header-list%3Dhost%26q-url-param-list%3D"
    "%26q-signature%3D6f1d3c2b5a4e9d8c7b6a5f4e3d2c1b0a9f8e7d6c"
    "&x-cos-security-token=Mb+zr9Ag6Ls/MTPRr0v+Tk3PWq8lJ7Cp/Ebj2+Nq4uXyZ0vQ1s/Fh8+Kd3Lw==Jm5Op7Qr9St1Uv3Wx5Yz"
    "+Ab2Cd4Ef6Gh8Ij0Kl2Mn4Op6Qr8St0Uv2Wx4Yz6Ab8Cd0Ef2Gh4Ij6Kl8Mn0Op2Qr4St6Uv8Wx0Yz2Ab4Cd6Ef8Gh0Ij2Kl4Mn6="
    "&response-content-disposition=attachment%3B%20filename%3D%22firmware_V1.04.12.bin%22"
    "&response-cache-control=no-cache&ci-process=&x-cos-traffic-limit=819200"
    "&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20240601%2Fap-guangzhou"
    "%2Fs3%2Faws4_request&X-Amz-Date=20240601T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
    "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
)

#: The ``upgrade`` request with :data:`SIGNED_UPGRADE_URL`, as ``JSON.stringify`` writes it.
UPGRADE_SIGNED_JSON = (
    '{"topic":"upgrade","message_id":1,"data":{"url":'
    + json.dumps(SIGNED_UPGRADE_URL)
    + ',"md5":"9d9f94e276dd57e4ea0f3c1b2a7d74dd","fileSize":3137536}}'
)

#: A built-in command (PROTOCOL.md §6): no JSON, extra parameters after ``cmd``.
INNER_DEFINE_COMMAND = b"action=inner_define&channel=0&cmd=get_device_st&type=live&quality=high"

#: Size in bytes of :data:`LARGE_COMMAND`, prefix included.
LARGE_SIZE = 4096


def js_stringify(value: Any) -> str:
    """``JSON.stringify(value)`` for the JSON types this corpus uses (no floats, no integer-like keys)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def panel_command(command: Any) -> bytes:
    """The bytes the panel sends for ``command``: a JSON text (``str``) or a JSON-able object.

    A ``str`` is taken as the already stringified JSON and is not re-encoded.
    """
    text = command if isinstance(command, str) else js_stringify(command)
    return (PANEL_PREFIX + text).encode("utf-8")


def _large_command() -> bytes:
    """A ``user_define`` command padded to exactly :data:`LARGE_SIZE` bytes.

    A plausible bulky request (a schedule of detection zones), with non-ASCII text, escaped
    quotes and the bytes ``&``, ``=``, ``%`` and ``+`` inside strings, so the scanner's string
    and escape handling is part of what is measured.
    """
    zones: list[dict[str, Any]] = []
    command: dict[str, Any] = {"topic": "set_schedule", "message_id": "large-1", "data": {"zones": zones, "note": ""}}
    for i in range(1000):
        zone = {
            "id": i,
            "name": f'区域{i} "door" & hall',
            "enabled": i % 3 != 0,
            "days": [1, 2, 3, 4, 5] if i % 2 else [0, 6],
            "start": "08:00",
            "end": "18:30",
            "rect": {"x": i * 7 % 1920, "y": i * 13 % 1080, "w": 320, "h": 240},
            "tag": "a=b&c=50%+d\\e",
        }
        zones.append(zone)
        if len(panel_command(command)) > LARGE_SIZE:
            zones.pop()
            break
    command["data"]["note"] = "x" * (LARGE_SIZE - len(panel_command(command)))
    raw = panel_command(command)
    assert len(raw) == LARGE_SIZE
    return raw


#: A ``user_define`` command of exactly 4 KiB.
LARGE_COMMAND = _large_command()


class Entry(NamedTuple):
    """One corpus message: a short stable ``name`` (used as a test id) and its ``raw`` bytes."""

    name: str
    raw: bytes


#: Everything the benchmarks measure: the panel examples first, then the special cases.
CORPUS: tuple[Entry, ...] = (
    *(Entry(topic, panel_command(text)) for topic, text in PANEL_REQUEST_EXAMPLES.items()),
    Entry("upgrade_signed_url", panel_command(UPGRADE_SIGNED_JSON)),
    Entry("inner_define", INNER_DEFINE_COMMAND),
    Entry("large_4k", LARGE_COMMAND),
)


def messages() -> list[bytes]:
    """The raw bytes of every :data:`CORPUS` entry, in order."""
    return [entry.raw for entry in CORPUS]
