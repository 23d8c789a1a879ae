"""The corpus is what the panel sends, and the stdlib reference does the library's job.

The benchmarks are only comparable if every contender produces the same result, so the stdlib
reference must agree with the library (``action``, ``channel``, ``cmd``, ``payload``, ``params``
and the decoded JSON) on every corpus entry, and on the verbatim examples of the original
document (trailing commas included), which exercise the lenient decode.
"""

from __future__ import annotations

import json
import re
from types import ModuleType
from typing import Any, Callable
from urllib.parse import parse_qsl

import pytest

from iotvideo_signaling import WireError, _wire_py

from . import stdlib_reference
from .corpus import (
    CORPUS,
    INNER_DEFINE_COMMAND,
    LARGE_COMMAND,
    LARGE_SIZE,
    ORIGINAL_REQUEST_EXAMPLES,
    PANEL_PREFIX,
    PANEL_REQUEST_EXAMPLES,
    SIGNED_UPGRADE_URL,
    UPGRADE_SIGNED_JSON,
    js_stringify,
    messages,
    panel_command,
)

Decode = Callable[[bytes], tuple[Any, Any]]

ORIGINAL_AS_SENT = {topic: panel_command(text) for topic, text in ORIGINAL_REQUEST_EXAMPLES.items()}

#: Inputs beyond the corpus on which the reference must agree with the library too.
MORE_AGREEMENT = {
    "cmd first, no channel": b'cmd={"topic":"version"}&action=user_define',
    "percent-encoded json": b"action=user_define&channel=3&cmd=%7B%22topic%22%3A%22a%26b%22%7D",
    "token": b"action=user_define&channel=0&cmd=wx_call_start",
    "bare payload with NUL": b'{"topic":"intercom","message_id":"7"}\0',
    "whitespace around json": b'action=user_define&cmd= \n{"a":[1,{"b":"}]&"}]} \r\n&x=1',
    "form-encoded params": b"action=inner_define&cmd=get_file_list&n%61me=a+b%2Bc&e=&flag&bad=%zz%4&u=%E4%BD%A0%FF",
    "trailing comma, percent-encoded": b"action=user_define&cmd=%7B%22topic%22%3A%22x%22%2C%7D",
    "array payload": b"action=user_define&channel=4294967295&cmd=[1,2,3]&z",
    "escaped quote before &": b'action=user_define&cmd={"k":"a\\"&b=c"}&tail=%26',
}

#: Malformed inputs: both must refuse them.
MORE_REFUSALS = {
    "duplicate cmd": b"action=user_define&cmd=a&cmd={}",
    "bad action": b"action=other&cmd=x",
    "channel overflow": b"action=user_define&channel=4294967296&cmd=x",
    "junk after json": b'action=user_define&cmd={"a":1}x&b=2',
    "invalid json": b'action=user_define&cmd={"a":}',
    "no action": b"cmd=x",
    "empty cmd": b"action=user_define&cmd=",
    "invalid utf-8 in json": b'action=user_define&cmd={"a":"\xff"}',
}


def _fields(command: Any) -> tuple[Any, ...]:
    """What a command of the library and one of the stdlib reference must agree on."""
    return command.action, command.channel, command.cmd, command.payload, command.params


@pytest.fixture(params=["py", "c"])
def library_decode(request: pytest.FixtureRequest) -> Decode:
    if request.param == "c":
        wire_c: ModuleType = request.getfixturevalue("wire_c")
        decode: Decode = wire_c.decode_command
        return decode
    return _wire_py.decode_command


def test_panel_examples_are_the_original_examples_stringified() -> None:
    assert list(PANEL_REQUEST_EXAMPLES) == list(ORIGINAL_REQUEST_EXAMPLES)
    for topic, text in ORIGINAL_REQUEST_EXAMPLES.items():
        without_trailing_commas = re.sub(r",(\s*[}\]])", r"\1", text)
        assert js_stringify(json.loads(without_trailing_commas)) == PANEL_REQUEST_EXAMPLES[topic]


def test_original_examples_keep_their_trailing_commas() -> None:
    with_commas = {topic for topic, text in ORIGINAL_REQUEST_EXAMPLES.items() if re.search(r",\s*}", text)}
    assert with_commas == {"sd_format", "bind_status", "intercom"}


def test_corpus_shape() -> None:
    assert len({entry.name for entry in CORPUS}) == len(CORPUS) == len(messages())
    for entry in CORPUS:
        if entry.raw != INNER_DEFINE_COMMAND:
            assert entry.raw.startswith(PANEL_PREFIX.encode())
            payload = entry.raw[len(PANEL_PREFIX) :].decode()
            assert js_stringify(json.loads(payload)) == payload  # compact, as JSON.stringify writes it
    assert len(LARGE_COMMAND) == LARGE_SIZE == 4096
    assert all(byte in SIGNED_UPGRADE_URL for byte in "&=%+")
    assert SIGNED_UPGRADE_URL.startswith("https://")
    assert len(SIGNED_UPGRADE_URL) <= 2048  # PROTOCOL.md §4: the device refuses longer URLs
    assert json.loads(UPGRADE_SIGNED_JSON)["data"]["url"] == SIGNED_UPGRADE_URL


def test_naive_parse_qsl_breaks_the_signed_upgrade() -> None:
    """Why the stdlib reference does more than ``parse_qsl``: raw JSON is cut at its first ``&``."""
    naive = dict(parse_qsl(panel_command(UPGRADE_SIGNED_JSON).decode(), keep_blank_values=True))
    assert naive["cmd"] != UPGRADE_SIGNED_JSON
    command, value = stdlib_reference.decode_command(panel_command(UPGRADE_SIGNED_JSON))
    assert command.payload == UPGRADE_SIGNED_JSON.encode()
    assert value["data"]["url"] == SIGNED_UPGRADE_URL


@pytest.mark.parametrize(
    "raw",
    [
        *(pytest.param(entry.raw, id=entry.name) for entry in CORPUS),
        *(pytest.param(raw, id=f"original-{topic}") for topic, raw in ORIGINAL_AS_SENT.items()),
        *(pytest.param(raw, id=name) for name, raw in MORE_AGREEMENT.items()),
    ],
)
def test_stdlib_reference_agrees_with_library(library_decode: Decode, raw: bytes) -> None:
    expected_command, expected_value = library_decode(raw)
    command, value = stdlib_reference.decode_command(raw)
    assert _fields(command) == _fields(expected_command)
    assert value == expected_value
    assert type(value) is type(expected_value)
    assert _fields(stdlib_reference.parse_command(raw)) == _fields(expected_command)


@pytest.mark.parametrize("raw", [pytest.param(raw, id=name) for name, raw in MORE_REFUSALS.items()])
def test_stdlib_reference_refuses_what_library_refuses(library_decode: Decode, raw: bytes) -> None:
    with pytest.raises(WireError):
        library_decode(raw)
    with pytest.raises(ValueError):
        stdlib_reference.decode_command(raw)
