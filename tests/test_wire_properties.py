"""Hypothesis properties of the wire layer.

(a) Commands *constructed* the way a panel sends them (raw JSON after ``cmd=``, other values
    percent-encoded, parameters in any order) parse back to exactly what was constructed.
(b) Arbitrary input gives a :class:`Command` or a :class:`WireError`, never anything else.
(c) The C and Python backends agree on every input: same result, or same error code, reason and
    offset. Every kernel entry point (``parse_command``, ``decode_command``, ``loads``), with its
    limit or offset given and left out, on bytes, bytearray, memoryview and str (arbitrary bytes,
    arbitrary text, mutated valid commands, the panel's framing, JSON-like payloads). The comparison
    itself is :mod:`fuzz.differential`, shared with the fuzz harnesses.

Example counts come from the settings profile (``tests/conftest.py``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Optional
from urllib.parse import quote, quote_plus

import orjson
from fuzz.differential import Raw, assert_same, assert_same_loads
from hypothesis import example, given
from hypothesis import strategies as st

from iotvideo_signaling import Command, ResultCode, WireError

ACTIONS = ("user_define", "inner_define")
PROTOCOL_NAMES = frozenset({"action", "channel", "cmd"})
JSON_WHITESPACE = " \t\r\n"
#: Characters that break naive query-string or JSON scanners.
HOSTILE = '&=+%{}[]"\\'

# --- (a) constructed commands ---------------------------------------------------------------------

hostile_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(HOSTILE),
        st.sampled_from(" \t\r\n\0\x7f\u00e9\u20ac\u2028\ufeff\ufffd\U0001f4a9"),
        st.characters(exclude_categories=["Cs"]),
    ),
    max_size=12,
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    hostile_text,
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(hostile_text, children, max_size=4)),
    max_leaves=12,
)
#: A ``cmd`` that is not JSON: anything non-empty whose first character is not ``{`` or ``[``.
tokens = st.builds(
    str.__add__,
    st.one_of(st.sampled_from('&=+%}]"\\ '), st.characters(exclude_categories=["Cs"], exclude_characters="{[")),
    hostile_text,
)
json_payloads = st.one_of(st.dictionaries(hostile_text, json_values, max_size=5), st.lists(json_values, max_size=5))


def _dumps_compact(value: Any) -> bytes:
    """What the panel's ``JSON.stringify`` sends: compact, raw UTF-8."""
    return orjson.dumps(value)


def _dumps_pretty(value: Any) -> bytes:
    """What a hand-made test tool may send: indented, ``\\u`` escapes."""
    return json.dumps(value, indent=1, ensure_ascii=True).encode()


def _encode_component(text: str) -> str:
    """``encodeURIComponent``."""
    return quote(text, safe="-_.!~*'()")


def _encode_every_byte(text: str) -> str:
    return "".join(f"%{byte:02X}" for byte in text.encode())


ENCODERS: list[Callable[[str], str]] = [_encode_component, quote_plus, _encode_every_byte]


@dataclass(frozen=True)
class Constructed:
    raw: bytes
    command: Command
    value: Any


def _not_protocol_name(name: str) -> bool:
    return name not in PROTOCOL_NAMES


@st.composite
def constructed_commands(draw: st.DrawFn) -> Constructed:
    encode = draw(st.sampled_from(ENCODERS))
    action = draw(st.sampled_from(ACTIONS))
    channel: Optional[int] = draw(st.none() | st.integers(min_value=0, max_value=2**32 - 1))
    if draw(st.booleans()):  # a JSON payload
        value = draw(json_payloads)
        text = draw(st.sampled_from([_dumps_compact, _dumps_pretty]))(value)
        cmd = None
        if draw(st.booleans()):  # raw, as the panel sends it; JSON whitespace may surround it
            leading = draw(st.sampled_from(["", " ", "\t\n", "\r\n  "])).encode()
            trailing = draw(st.sampled_from(["", " ", "\n", " \t\r\n"])).encode()
            payload = leading + text
            cmd_value = payload + trailing
        else:  # percent-encoded JSON (docs/protocol.md §2.4)
            payload = text
            cmd_value = encode(text.decode()).encode()
        if draw(st.booleans()) and channel is None and action == "user_define" and text.startswith(b"{"):
            # A bare payload: the whole input is the JSON text.
            suffix = draw(st.sampled_from([b"", b"\0", b"\r\n", b"\r\n\0"]))
            return Constructed(text + suffix, Command("user_define", 0, None, text, ()), value)
    else:  # a plain token such as "wx_call_start" or "ptz_left", percent-encoded
        token = draw(tokens)
        value, payload, cmd = None, None, token
        cmd_value = encode(token).encode()

    def protocol_name(name: str) -> bytes:
        return (_encode_every_byte(name) if draw(st.booleans()) else name).encode()

    pairs: list[tuple[str, bytes]] = [
        ("action", protocol_name("action") + b"=" + action.encode()),
        ("cmd", protocol_name("cmd") + b"=" + cmd_value),
    ]
    if channel is not None:
        zeros = "0" * draw(st.integers(min_value=0, max_value=3))
        pairs.append(("channel", protocol_name("channel") + f"={zeros}{channel}".encode()))
    extras = draw(st.lists(st.tuples(hostile_text.filter(_not_protocol_name), hostile_text), max_size=4))
    for index, (name, extra_value) in enumerate(extras):
        if extra_value == "" and name != "" and draw(st.booleans()):
            pairs.append((str(index), encode(name).encode()))  # a name without "="
        else:
            pairs.append((str(index), f"{encode(name)}={encode(extra_value)}".encode()))
    order = draw(st.permutations(pairs))
    separators = draw(st.lists(st.sampled_from([b"&", b"&", b"&&"]), min_size=len(order), max_size=len(order)))
    lead = draw(st.sampled_from([b"", b"&"]))
    raw = lead + b"".join(pair + separator for (_, pair), separator in zip(order, separators))
    if draw(st.booleans()):
        raw = raw.rstrip(b"&")
    raw += draw(st.sampled_from([b"", b"\0", b"\r\n", b"\n\0"]))
    params = tuple(extras[int(key)] for key, _ in order if key not in PROTOCOL_NAMES)
    return Constructed(raw, Command(action, channel or 0, cmd, payload, params), value)


@given(constructed_commands())
@example(
    Constructed(
        b'action=user_define&channel=0&cmd={"a":"&=+%{}[]\\"\\\\"}',
        Command("user_define", 0, None, b'{"a":"&=+%{}[]\\"\\\\"}', ()),
        {"a": '&=+%{}[]"\\'},
    )
)
def test_constructed_commands_parse_back(backend: ModuleType, constructed: Constructed) -> None:
    raw = constructed.raw
    assert backend.parse_command(raw, max_size=len(raw)) == constructed.command
    command, value = backend.decode_command(raw, max_size=len(raw))
    assert command == constructed.command
    assert type(command) is Command
    if constructed.command.cmd is not None:
        assert value is None
    else:
        assert value == constructed.value
        assert orjson.dumps(value) == orjson.dumps(constructed.value)  # same types, same key order


# --- (b) only documented outcomes -----------------------------------------------------------------

#: Fragments that make random input look like commands, so it gets past the first checks.
FRAGMENTS = [
    b"action",
    b"channel",
    b"cmd",
    b"=",
    b"&",
    b"user_define",
    b"inner_define",
    b"{",
    b"}",
    b"[",
    b"]",
    b'"',
    b"\\",
    b":",
    b",",
    b" ",
    b"\t",
    b"%",
    b"%7B",
    b"%5B",
    b"%2",
    b"+",
    b"0",
    b"4294967295",
    b"4294967296",
    b"\0",
    b"\r",
    b"\n",
    b"\xff",
    b"\xc3",
    b"\xe2\x82\xac",
    b'{"topic":"version"}',
    b"[1,]",
    b'"a\\"',
    b"action=user_define&",
    b"cmd=",
    b"&cmd={",
    b"c%6Dd",
    b"channel=4294967295&",
    b"channel=4294967296&",
    b"channel=00",
    b"cmd=x&",
    b"&cmd=ptz_left",
]
wire_noise = st.one_of(
    st.binary(max_size=200),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=3)), max_size=40).map(b"".join),
)
text_noise = st.one_of(
    st.text(max_size=120),
    st.text(
        alphabet=st.one_of(
            st.sampled_from(HOSTILE + JSON_WHITESPACE + "\0\ufeff\ufffd\u20ac\U0001f4a9"),
            st.characters(categories=["Cs"]),  # lone surrogates pass through as bytes
            st.characters(),
        ),
        max_size=120,
    ),
    st.lists(st.sampled_from(FRAGMENTS), max_size=30).map(lambda parts: b"".join(parts).decode("latin-1")),
)
max_sizes = st.one_of(st.just(16384), st.integers(min_value=0, max_value=80))


def _check_command(command: Any) -> None:
    assert type(command) is Command
    assert command.action in ACTIONS
    assert type(command.channel) is int and 0 <= command.channel < 2**32
    assert (command.cmd is None) != (command.payload is None)
    if command.cmd is not None:
        assert type(command.cmd) is str and command.cmd[0] not in "{["
    else:
        assert type(command.payload) is bytes
        assert command.payload.lstrip(JSON_WHITESPACE.encode())[:1] in (b"{", b"[")
    assert type(command.params) is tuple
    for pair in command.params:
        assert type(pair) is tuple and len(pair) == 2
        assert type(pair[0]) is str and type(pair[1]) is str
        assert pair[0] not in PROTOCOL_NAMES


def _check_error(error: WireError, raw: Raw, max_size: int, codes: tuple[ResultCode, ...]) -> None:
    assert type(error) is WireError
    assert error.code in codes
    assert type(error.reason) is str and 0 < len(error.reason) <= 200
    assert type(error.offset) is int
    size = len(raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw)
    # The offset is max_size for an oversized input, else a position within the input.
    assert error.offset == max_size if size > max_size else 0 <= error.offset <= size


def _check_outcomes(backend: ModuleType, raw: Raw, max_size: int) -> None:
    try:
        command = backend.parse_command(raw, max_size=max_size)
    except WireError as exc:
        _check_error(exc, raw, max_size, (ResultCode.MALFORMED_COMMAND,))
        command = None
    else:
        _check_command(command)
    try:
        result = backend.decode_command(raw, max_size=max_size)
    except WireError as exc:
        _check_error(exc, raw, max_size, (ResultCode.MALFORMED_COMMAND, ResultCode.MALFORMED_JSON))
        assert command is not None or exc.code is ResultCode.MALFORMED_COMMAND
    else:
        assert type(result) is tuple and len(result) == 2
        assert result[0] == command
        _check_command(result[0])
        assert (result[1] is None) == (result[0].cmd is not None)


@given(wire_noise, max_sizes)
def test_arbitrary_bytes_give_a_command_or_a_wire_error(backend: ModuleType, raw: bytes, max_size: int) -> None:
    _check_outcomes(backend, raw, max_size)


@given(text_noise)
def test_arbitrary_text_gives_a_command_or_a_wire_error(backend: ModuleType, raw: str) -> None:
    _check_outcomes(backend, raw, 16384)


# --- (c) differential: C against Python -----------------------------------------------------------


#: ``max_size`` left out, typical limits, and values a C ``Py_ssize_t`` must refuse alike.
#: (``sys.maxsize`` is the platform's bound: 2**63-1, or 2**31-1 on 32-bit ARM.)
limits = st.one_of(
    st.none(),
    max_sizes,
    st.sampled_from([-1, 2**63 - 1, 2**63, -(2**63) - 1, True, 2**31 - 1, 2**31, -(2**31) - 1]),
    st.sampled_from([sys.maxsize, sys.maxsize + 1, -sys.maxsize - 1, -sys.maxsize - 2]),
)


@given(wire_noise, limits)
@example(b"action=user_define&cmd=x&v=" + b"%41+%e2%82%ac" * 100 + b"%4", 16384)
@example(b"c%6Dd=%5B%22" + b"%FF\xff" * 100 + b"&action=inner%5Fdefine&channel=%34", None)
@example(b'{"a":1}\0\r\n', 9)
@example(b"action=user_define&cmd=x", 2**63)
def test_backends_agree_on_arbitrary_bytes(
    py_backend: ModuleType, c_backend: ModuleType, raw: bytes, max_size: Optional[int]
) -> None:
    assert_same(py_backend, c_backend, raw, max_size)


@given(text_noise, limits)
def test_backends_agree_on_arbitrary_text(
    py_backend: ModuleType, c_backend: ModuleType, raw: str, max_size: Optional[int]
) -> None:
    assert_same(py_backend, c_backend, raw, max_size)


SEEDS = [
    b'action=user_define&channel=0&cmd={"topic":"get_status","message_id":1,"user":"owner"}',
    b'action=user_define&cmd={"topic":"upgrade","data":{"url":"https://h/f?a=1&b=%2B+","md5":"x","fileSize":1}}',
    b'cmd=["a\\"&b",{"c":"]\\\\"}] &channel=007&action=inner_define&x=%7B%FF+',
    b"action=inner_define&cmd=get_device_st&type=live&quality=high\0",
    b'{"topic":"sd_format","message_id":"m",}\r\n',
    b"action=user_define&channel=4294967295&cmd=%7B%22a%22%3A%5B1%2C%5D%7D&=&a",
    b"action=user_define&cmd=ptz_left",
    b'c%6Dd=\t{"a":"&"}\n&%61ction=user%5Fdefine',
]
MUTATION_ALPHABET = b'&={}[]"\\%+\0\r\n\xff :,0123456789acdemnotx\t\xc3\xa9'
mutations = st.lists(
    st.tuples(
        st.sampled_from(["insert", "delete", "replace"]),
        st.floats(min_value=0, max_value=1, exclude_max=True),
        st.sampled_from(MUTATION_ALPHABET),
    ),
    min_size=1,
    max_size=6,
)


def _mutate(raw: bytes, edits: list[tuple[str, float, int]]) -> bytes:
    data = bytearray(raw)
    for operation, where, byte in edits:
        index = int(where * (len(data) + (operation == "insert")))
        if operation == "insert":
            data.insert(index, byte)
        elif data:
            if operation == "delete":
                del data[index]
            else:
                data[index] = byte
    return bytes(data)


@given(st.one_of(st.sampled_from(SEEDS), constructed_commands().map(lambda built: built.raw)), mutations)
def test_backends_agree_on_mutated_commands(
    py_backend: ModuleType, c_backend: ModuleType, seed: bytes, edits: list[tuple[str, float, int]]
) -> None:
    assert_same(py_backend, c_backend, _mutate(seed, edits))


# The panel's own framing (plain action and channel, then raw JSON to the end) and its near misses:
# where a faster path for the common case would most likely part from the grammar.
panel_tails = st.one_of(
    json_payloads.map(_dumps_compact),
    json_payloads.map(_dumps_pretty),
    json_payloads.map(lambda value: _dumps_compact(value)[:-1] + b",}"),  # trailing comma: lenient
    st.binary(max_size=24).map(lambda tail: b"{" + tail),
    st.sampled_from([b"{", b"[", b"{}}", b'{"a":"}"}', b'["\\"]', b'{"a":1} {"b":2}', b'{"a":NaN}', b"[" * 1100]),
)


panel_heads = st.builds(
    lambda action, channel: b"action=" + action + b"&channel=" + channel + b"&cmd=",
    st.sampled_from([b"user_define", b"inner_define", b"user%5Fdefine", b"other"]),
    st.one_of(st.integers(0, 2**32 + 1).map(lambda n: str(n).encode()), st.sampled_from([b"007", b"00000000001", b""])),
)


@given(panel_heads, panel_tails, st.sampled_from([b"", b" ", b"\t\n", b"\0\r\n", b"&x=1", b"&cmd=y", b"}", b" x"]))
def test_backends_agree_on_the_panels_framing(
    py_backend: ModuleType, c_backend: ModuleType, head: bytes, tail: bytes, suffix: bytes
) -> None:
    raw = head + tail + suffix
    assert_same(py_backend, c_backend, raw)
    assert_same(py_backend, c_backend, raw.replace(b"&cmd=", b"&cmd= ", 1))  # not the panel's: general scan


json_noise = st.one_of(panel_tails, wire_noise, text_noise)
#: ``offset`` left out, any C ``Py_ssize_t`` (negative: a percent-decoded payload), and beyond.
offsets = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, -1, 2**63, -(2**63) - 1, True, 2**31, sys.maxsize + 1, -sys.maxsize - 2]),
)


@given(json_noise, offsets)
@example(b'{"a":[1,],}', None)
@example(b'{"a":1', 30)
@example("[1,]", ~12)
def test_backends_agree_on_loads(
    py_backend: ModuleType, c_backend: ModuleType, payload: Raw, offset: Optional[int]
) -> None:
    assert_same_loads(py_backend, c_backend, payload, offset)
