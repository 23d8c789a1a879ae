"""Named edge cases of the wire grammar (docs/protocol.md §2, ``_wire_py`` docstring), on both backends.

Expected values, error reasons and offsets are those of the pure-Python reference.
"""

from __future__ import annotations

import array
import json
import sys
from types import ModuleType
from typing import Any, NamedTuple, Optional, Union

import pytest
from fuzz.differential import LyingBytearray, LyingBytes, LyingStr

from iotvideo_signaling import Command, ResultCode, WireError

HEAD = b"action=user_define&channel=0&cmd="
MALFORMED_COMMAND = ResultCode.MALFORMED_COMMAND
MALFORMED_JSON = ResultCode.MALFORMED_JSON
CHANNEL_ERROR = "'channel' must be a decimal number below 2**32"

Raw = Union[bytes, bytearray, memoryview, str]


def user(
    payload: Optional[bytes] = None, cmd: Optional[str] = None, *params: tuple[str, str], channel: int = 0
) -> Command:
    return Command("user_define", channel, cmd, payload, tuple(params))


def wire_error(backend: ModuleType, raw: Raw, **options: Any) -> WireError:
    """The error ``decode_command`` raises for ``raw``; ``parse_command`` must agree for code 1."""
    with pytest.raises(WireError) as info:
        backend.decode_command(raw, **options)
    if info.value.code is MALFORMED_COMMAND:
        with pytest.raises(WireError) as parse_info:
            backend.parse_command(raw, **options)
        assert parse_info.value == info.value
    return info.value


def assert_error(error: WireError, code: ResultCode, reason: str, offset: int) -> None:
    assert (error.code, error.reason, error.offset) == (code, reason, offset)
    assert isinstance(error, ValueError)


# --- raw JSON after cmd= --------------------------------------------------------------------------


@pytest.mark.parametrize("char", ["&", "=", "+", "%", "{", "}", "[", "]"])
def test_query_syntax_inside_json_strings(backend: ModuleType, char: str) -> None:
    payload = json.dumps({"k": f"a{char}b", char: [char, f"{char}{char}"]}, separators=(",", ":")).encode()
    command, value = backend.decode_command(HEAD + payload + b"&extra=1")
    assert command == user(payload, None, ("extra", "1"))
    assert value == {"k": f"a{char}b", char: [char, f"{char}{char}"]}


def test_signed_ota_url_inside_json(backend: ModuleType) -> None:
    url = "https://cos.example.com/fw.bin?sign=q%2Bx%3D&t=1+2&x=[1]{2}"
    payload = json.dumps({"topic": "upgrade", "data": {"url": url}}).encode()
    command, value = backend.decode_command(b"action=user_define&cmd=" + payload + b"&channel=3")
    assert command == user(payload, channel=3)
    assert value["data"]["url"] == url


@pytest.mark.parametrize(
    "payload",
    [
        rb'{"a":"x\""}',
        rb'{"a":"\\"}',
        rb'{"a":"\\\\"}',
        rb'["\\"]',
        rb'["\"]&"]',
        rb'{"a":"\\","b":"}&\""}',
    ],
)
def test_escaped_quote_or_backslash_before_closing_quote(backend: ModuleType, payload: bytes) -> None:
    command, value = backend.decode_command(HEAD + payload + b"&next=1")
    assert command == user(payload, None, ("next", "1"))
    assert value == json.loads(payload)


def test_whitespace_around_raw_json(backend: ModuleType) -> None:
    # Leading JSON whitespace stays in the payload, trailing JSON whitespace before "&" or the end does not.
    command, value = backend.decode_command(b'action=user_define&cmd= \t\n{"a":1} \t\r\n&x=1')
    assert command == user(b' \t\n{"a":1}', None, ("x", "1"))
    assert value == {"a": 1}
    assert backend.parse_command(b"action=user_define&cmd=  [1]  ") == user(b"  [1]")


def test_brackets_that_never_balance_run_to_the_end(backend: ModuleType) -> None:
    command = backend.parse_command(b'action=user_define&cmd={"a":[1,2}&x=1')
    assert command == user(b'{"a":[1,2}&x=1')
    error = wire_error(backend, b'action=user_define&cmd={"a":[1,2}&x=1')
    assert_error(error, MALFORMED_JSON, "invalid JSON at byte 32", 32)


def test_unterminated_string_runs_to_the_end(backend: ModuleType) -> None:
    assert backend.parse_command(b'action=user_define&cmd={"a":"&x=1') == user(b'{"a":"&x=1')
    assert_error(
        wire_error(backend, b'action=user_define&cmd={"a":"&x=1'), MALFORMED_JSON, "invalid JSON at byte 33", 33
    )


def test_unbalanced_json_swallows_later_params(backend: ModuleType) -> None:
    # The unbalanced value takes "&action=..." with it, so the action is missing.
    error = wire_error(backend, b'cmd={"a":1&action=user_define')
    assert_error(error, MALFORMED_COMMAND, "missing 'action' parameter", 29)


def test_extra_closing_bracket(backend: ModuleType) -> None:
    error = wire_error(backend, b'action=user_define&cmd={"a":1}}')
    assert_error(error, MALFORMED_COMMAND, "unexpected byte after the JSON value of 'cmd'", 30)


# --- parameter order, presence, duplicates --------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b'cmd={"topic":"version"}&action=user_define&channel=2',
        b'action=user_define&cmd={"topic":"version"}&channel=2',
        b'action=user_define&channel=2&cmd={"topic":"version"}',
    ],
    ids=["first", "middle", "last"],
)
def test_cmd_first_middle_last(backend: ModuleType, raw: bytes) -> None:
    command, value = backend.decode_command(raw)
    assert command == user(b'{"topic":"version"}', channel=2)
    assert value == {"topic": "version"}


def test_cmd_token_first_middle_last(backend: ModuleType) -> None:
    expected = Command("inner_define", 0, "get_device_st", None, (("type", "live"),))
    for raw in (
        b"cmd=get_device_st&action=inner_define&type=live",
        b"action=inner_define&cmd=get_device_st&type=live",
        b"action=inner_define&type=live&cmd=get_device_st",
    ):
        assert backend.decode_command(raw) == (expected, None)


def test_missing_channel_is_zero(backend: ModuleType) -> None:
    assert backend.parse_command(b"action=user_define&cmd=wx_call_start") == user(None, "wx_call_start")


def test_missing_action(backend: ModuleType) -> None:
    assert_error(wire_error(backend, b"channel=0&cmd=x"), MALFORMED_COMMAND, "missing 'action' parameter", 15)


def test_missing_cmd(backend: ModuleType) -> None:
    assert_error(wire_error(backend, b"action=user_define&x=1\0"), MALFORMED_COMMAND, "missing 'cmd' parameter", 22)


@pytest.mark.parametrize("value", ["+1", "-1", "%2B1", "%2D1"])
def test_channel_with_sign(backend: ModuleType, value: str) -> None:
    error = wire_error(backend, f"action=user_define&channel={value}&cmd=x")
    assert_error(error, MALFORMED_COMMAND, CHANNEL_ERROR, 19)


@pytest.mark.parametrize("value", ["", "x", "1a", "0x10", "1.0", "1e3", " 1", "1 ", "1+", "\u0661", "\uff11", "%FF"])
def test_channel_non_digits(backend: ModuleType, value: str) -> None:
    error = wire_error(backend, f"action=user_define&channel={value}&cmd=x")
    assert_error(error, MALFORMED_COMMAND, CHANNEL_ERROR, 19)


def test_channel_without_value(backend: ModuleType) -> None:
    assert_error(wire_error(backend, "action=user_define&channel&cmd=x"), MALFORMED_COMMAND, CHANNEL_ERROR, 19)


@pytest.mark.parametrize(
    ("value", "channel"),
    [("00", 0), ("007", 7), ("0" * 40 + "42", 42), ("00004294967295", 2**32 - 1), ("%30%37", 7)],
)
def test_channel_leading_zeros_and_escapes(backend: ModuleType, value: str, channel: int) -> None:
    assert backend.parse_command(f"action=user_define&channel={value}&cmd=x") == user(None, "x", channel=channel)


@pytest.mark.parametrize("value", [str(2**32), "4294967300", str(2**64), "9" * 30, "0" + str(2**32)])
def test_channel_2_32_and_more(backend: ModuleType, value: str) -> None:
    error = wire_error(backend, f"action=user_define&channel={value}&cmd=x")
    assert_error(error, MALFORMED_COMMAND, CHANNEL_ERROR, 19)


def test_channel_2_32_minus_1(backend: ModuleType) -> None:
    command = backend.parse_command(b"action=user_define&channel=4294967295&cmd=x")
    assert command == user(None, "x", channel=4294967295)


@pytest.mark.parametrize(
    ("raw", "reason", "offset"),
    [
        (b"action=user_define&cmd=x&action=inner_define", "duplicate 'action' parameter", 25),
        (b"action=user_define&cmd=x&action=user_define", "duplicate 'action' parameter", 25),
        (b"action=user_define&cmd=x&action=bogus", "duplicate 'action' parameter", 25),
        (b"action=user_define&channel=1&channel=1&cmd=x", "duplicate 'channel' parameter", 29),
        (b"action=user_define&channel=1&cmd=x&channel=x", "duplicate 'channel' parameter", 35),
        (b"action=user_define&cmd=x&cmd=y", "duplicate 'cmd' parameter", 25),
        (b"action=user_define&cmd={}&cmd={}", "duplicate 'cmd' parameter", 26),
        (b"action=user_define&cmd=x&cmd={}", "duplicate 'cmd' parameter", 25),
        (b"action=user_define&cmd={}&cmd=x", "duplicate 'cmd' parameter", 26),
        (b"action=user_define&cmd=x&cmd=", "duplicate 'cmd' parameter", 25),
        (b"action=user_define&cmd=x&c%6Dd=y", "duplicate 'cmd' parameter", 25),
        (b"action=user_define&cmd=x&%61ction=user_define", "duplicate 'action' parameter", 25),
    ],
)
def test_duplicate_protocol_params(backend: ModuleType, raw: bytes, reason: str, offset: int) -> None:
    assert_error(wire_error(backend, raw), MALFORMED_COMMAND, reason, offset)


def test_duplicate_extra_params_are_kept_in_order(backend: ModuleType) -> None:
    command = backend.parse_command(b"a=1&action=user_define&a=2&cmd=x&a&a=3")
    assert command == user(None, "x", ("a", "1"), ("a", "2"), ("a", ""), ("a", "3"))


def test_escaped_protocol_names(backend: ModuleType) -> None:
    # Names are decoded before they are recognised, so an escaped "cmd" still takes raw JSON.
    command, value = backend.decode_command(b'%61ction=inner%5Fdefine&ch%61nnel=%35&c%6Dd={"a":"&"}&x=1')
    assert command == Command("inner_define", 5, None, b'{"a":"&"}', (("x", "1"),))
    assert value == {"a": "&"}


def test_protocol_names_are_case_sensitive(backend: ModuleType) -> None:
    command = backend.parse_command(b"action=user_define&cmd=x&CMD=y&Action=z&channel =1")
    assert command == user(None, "x", ("CMD", "y"), ("Action", "z"), ("channel ", "1"))


@pytest.mark.parametrize("value", ["", "User_define", "user_define ", "user%20define", "user+define", "userdefine"])
def test_bad_action(backend: ModuleType, value: str) -> None:
    error = wire_error(backend, f"cmd=x&action={value}")
    assert_error(error, MALFORMED_COMMAND, "'action' must be 'user_define' or 'inner_define'", 6)


def test_action_without_value(backend: ModuleType) -> None:
    error = wire_error(backend, "cmd=x&action")
    assert_error(error, MALFORMED_COMMAND, "'action' must be 'user_define' or 'inner_define'", 6)


@pytest.mark.parametrize("raw", [b"action=user_define&cmd=", b"action=user_define&cmd", b"action=user_define&cmd=&x"])
def test_empty_cmd(backend: ModuleType, raw: bytes) -> None:
    assert_error(wire_error(backend, raw), MALFORMED_COMMAND, "'cmd' is empty", 19)


# --- input framing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", [b"", "", bytearray(), memoryview(b"")], ids=["bytes", "str", "bytearray", "memoryview"]
)
def test_empty_input(backend: ModuleType, raw: Raw) -> None:
    assert_error(wire_error(backend, raw), MALFORMED_COMMAND, "empty command", 0)


@pytest.mark.parametrize("raw", [b"\0", b"\0" * 100, b"\r\n", b"\0\r\n\0\n\r"])
def test_only_nuls(backend: ModuleType, raw: bytes) -> None:
    assert_error(wire_error(backend, raw), MALFORMED_COMMAND, "empty command", 0)


@pytest.mark.parametrize("tail", [b"\0", b"\r\n", b"\r\n\0", b"\0\0\0", b"\n", b"\r", b"\n\0\r"])
def test_trailing_nul_and_crlf(backend: ModuleType, tail: bytes) -> None:
    assert backend.parse_command(b"action=user_define&cmd=wx_call_start" + tail) == user(None, "wx_call_start")
    command, value = backend.decode_command(HEAD + b'{"topic":"version"}' + tail)
    assert command == user(b'{"topic":"version"}')
    assert value == {"topic": "version"}
    assert backend.parse_command(b'{"topic":"version"}' + tail) == user(b'{"topic":"version"}')


def test_nothing_else_is_trimmed(backend: ModuleType) -> None:
    assert backend.parse_command(b"action=user_define&cmd=x \t") == user(None, "x \t")
    assert backend.parse_command(b"action=user_define&cmd=x\0y\0") == user(None, "x\0y")
    assert backend.parse_command(b"action=user_define&cmd=x&y=\r\nz\r\n") == user(None, "x", ("y", "\r\nz"))


def test_bare_payload(backend: ModuleType) -> None:
    command, value = backend.decode_command(b'{"topic":"get_status","message_id":1}\0')
    assert command == user(b'{"topic":"get_status","message_id":1}')
    assert value == {"topic": "get_status", "message_id": 1}
    # The whole input is the payload: "&" and "=" after it are not parameters.
    assert backend.parse_command(b'{"a":1}&action=inner_define') == user(b'{"a":1}&action=inner_define')
    assert_error(wire_error(backend, b'{"a":1}&x'), MALFORMED_JSON, "invalid JSON at byte 7", 7)
    assert_error(wire_error(backend, b'{"a":}'), MALFORMED_JSON, "invalid JSON at byte 5", 5)


@pytest.mark.parametrize("raw", [b"[1]", b' {"a":1}', b"\n{}"])
def test_only_a_brace_starts_a_bare_payload(backend: ModuleType, raw: bytes) -> None:
    assert_error(wire_error(backend, raw), MALFORMED_COMMAND, "missing 'action' parameter", len(raw))


def test_percent_encoded_json_cmd(backend: ModuleType) -> None:
    command, value = backend.decode_command(b"action=user_define&cmd=%7B%22topic%22%3A%22version%22%7D&x=%26")
    assert command == user(b'{"topic":"version"}', None, ("x", "&"))
    assert value == {"topic": "version"}
    # An encoded value is form-decoded like any other: "+" is a space, "%2B" a plus.
    command, value = backend.decode_command(b"action=user_define&cmd=%7B%22tz%22%3A%22+08%3A00%2B%22%7D")
    assert value == {"tz": " 08:00+"}
    assert command.payload == b'{"tz":" 08:00+"}'
    command, value = backend.decode_command(b"action=user_define&cmd=%5B1%2C2%5D")
    assert (command.payload, value) == (b"[1,2]", [1, 2])


@pytest.mark.parametrize(
    "raw",
    [
        b"action=user_define&cmd=%7B%22a%22%3A%7D",
        b"action=user_define&cmd=%5B1%2C%2C%5D",
        # U+FFFD replacement makes the decoded payload longer than the input it came from.
        b'action=user_define&cmd=%5B"\xff\xff\xff\xff',
    ],
)
def test_percent_encoded_json_error_points_at_the_value(backend: ModuleType, raw: bytes) -> None:
    # Positions inside a percent-decoded payload do not map back to the input: the error is
    # reported at the start of the value.
    assert_error(wire_error(backend, raw), MALFORMED_JSON, "invalid JSON at byte 23", 23)


@pytest.mark.parametrize("raw", [b"action=user_define&cmd=%20%7B%7D", b"action=user_define&cmd=+[1]"])
def test_percent_encoded_json_after_a_space_is_a_token(backend: ModuleType, raw: bytes) -> None:
    command, value = backend.decode_command(raw)
    assert command.payload is None
    assert command.cmd is not None
    assert command.cmd[0] == " "
    assert value is None


def test_invalid_utf8_in_value_becomes_replacement_character(backend: ModuleType) -> None:
    command = backend.parse_command(b"action=user_define&cmd=ptz\xff&n\xc3=\xe2\x82&e=%FF%C3%28&ok=%E2%82%AC")
    assert command == user(None, "ptz\ufffd", ("n\ufffd", "\ufffd"), ("e", "\ufffd\ufffd("), ("ok", "\u20ac"))
    # Percent-decoded JSON is decoded with replacement too, so it reaches orjson as valid UTF-8.
    command, value = backend.decode_command(b"action=user_define&cmd=%7B%22a%22%3A%22%FF%22%7D")
    assert command.payload == b'{"a":"\xef\xbf\xbd"}'
    assert value == {"a": "\ufffd"}


@pytest.mark.parametrize("length", [85, 86, 87, 300])
def test_long_escaped_names_and_values(backend: ModuleType, length: int) -> None:
    # 3 * 85 = 255 escaped bytes: around the 256-byte stack buffer of the C decoder, and far past it.
    name = "%E2%82%AC" * (length // 3) + "+n" * (length % 3)
    value = "%41+" * length + "%" + "%2"
    command = backend.parse_command(f"action=user_define&{name}={value}&cmd=%7B%22a%22%3A%22{'%62' * length}%22%7D")
    decoded_name = "\u20ac" * (length // 3) + " n" * (length % 3)
    assert command.params == ((decoded_name, "A " * length + "%%2"),)
    assert command.payload == b'{"a":"' + b"b" * length + b'"}'


def test_lone_surrogate_in_str_input_becomes_replacement_characters(backend: ModuleType) -> None:
    assert backend.parse_command("action=user_define&cmd=\ud800") == user(None, "\ufffd\ufffd\ufffd")


def test_invalid_utf8_in_raw_payload_is_a_json_error(backend: ModuleType) -> None:
    raw = b'action=user_define&cmd={"a":"\xff"}'
    # The command string is fine: the payload is kept verbatim ...
    assert backend.parse_command(raw) == user(b'{"a":"\xff"}')
    # ... and orjson, which validates UTF-8 before parsing, rejects it (reported at the payload start).
    assert_error(wire_error(backend, raw), MALFORMED_JSON, "invalid JSON at byte 23", 23)
    assert_error(wire_error(backend, b'{"a":"\xc3"}'), MALFORMED_JSON, "invalid JSON at byte 0", 0)


# --- size limit -----------------------------------------------------------------------------------


def _command_of_size(size: int) -> bytes:
    head = b"action=user_define&cmd=x&pad="
    return head + b"p" * (size - len(head))


@pytest.mark.parametrize("max_size", [None, 64, 3000])
def test_exactly_max_size_and_one_byte_more(backend: ModuleType, max_size: Optional[int]) -> None:
    options = {} if max_size is None else {"max_size": max_size}
    limit = 16384 if max_size is None else max_size
    raw = _command_of_size(limit)
    assert len(raw) == limit
    assert backend.parse_command(raw, **options).params == (("pad", "p" * (limit - 29)),)
    assert_error(wire_error(backend, raw + b"p", **options), MALFORMED_COMMAND, f"command exceeds {limit} bytes", limit)
    # Trailing NUL, CR and LF count towards the limit: it applies to the input as received.
    assert_error(
        wire_error(backend, raw + b"\0", **options), MALFORMED_COMMAND, f"command exceeds {limit} bytes", limit
    )


def test_max_size_applies_to_str_as_utf8(backend: ModuleType) -> None:
    text = "action=user_define&cmd=" + "\u20ac" * 10  # 23 + 30 bytes, 33 characters
    assert backend.parse_command(text, max_size=53).cmd == "\u20ac" * 10
    assert_error(wire_error(backend, text, max_size=52), MALFORMED_COMMAND, "command exceeds 52 bytes", 52)


def test_4k_command(backend: ModuleType) -> None:
    url = "https://ota.example.com/fw/V1.04.12.bin?" + "&".join(f"k{i}=v%2B{i}+{{x}}" for i in range(230))
    body = {"topic": "upgrade", "message_id": "m-1", "data": {"url": url, "md5": "0" * 32, "fileSize": 4096}}
    payload = json.dumps(body, separators=(",", ":")).encode()
    head = b"action=user_define&channel=0&cmd=" + payload + b"&sig="
    raw = head + b"%41" * 60 + b"A" * (4096 - len(head) - 180)
    assert len(raw) == 4096
    command, value = backend.decode_command(raw)
    assert command == user(payload, None, ("sig", "A" * (4096 - len(head) - 120)))
    assert value == body


# --- input types ----------------------------------------------------------------------------------

TYPE_CASES = [
    b'action=user_define&channel=7&cmd={"topic":"ptz","data":{"cmd":"ptz_left_press"}}&x=%E2%82%AC+1\0',
    b"action=inner_define&cmd=get_device_st&type=live&quality=high",
    b'{"topic":"version"}\r\n',
    'action=user_define&cmd={"a":"\u00e9\u20ac\U0001f4a9"}&\u00e9=\u20ac'.encode(),
    b"action=user_define&cmd=x&channel=4294967296",
    b'action=user_define&cmd={"a":}',
    b"",
]


def _views(raw: bytes) -> list[Raw]:
    spread = bytes(byte for value in raw for byte in (value, 0x21))  # every other byte is filler
    strided = memoryview(spread)[::2]
    assert not strided.c_contiguous and strided.tobytes() == raw
    offset = memoryview(b"\xff\xff" + raw + b"\xff")[2:-1]
    return [raw, bytearray(raw), memoryview(raw), raw.decode("utf-8"), strided, offset, memoryview(bytearray(raw))]


def _outcome(call: Any, raw: Raw) -> tuple[str, Any]:
    try:
        return "ok", call(raw)
    except WireError as exc:
        return "error", (exc.code, exc.reason, exc.offset)


@pytest.mark.parametrize("raw", TYPE_CASES)
def test_input_types_give_identical_results(backend: ModuleType, raw: bytes) -> None:
    for call in (backend.parse_command, backend.decode_command):
        expected = _outcome(call, raw)
        for view in _views(raw):
            outcome = _outcome(call, view)
            assert outcome == expected, type(view)
            if outcome[0] == "ok":
                command = outcome[1] if call is backend.parse_command else outcome[1][0]
                assert type(command) is Command
                assert command.payload is None or type(command.payload) is bytes


class TaggedBytes(bytes):
    """A bytes subclass, as a transport might hand over."""


@pytest.mark.parametrize("raw", [b'{"topic":"version"}', b'{"topic":"version"}\0', HEAD + b'{"topic":"version"}'])
def test_payload_of_a_bytes_subclass_is_plain_bytes(backend: ModuleType, raw: bytes) -> None:
    tagged = TaggedBytes(raw)
    assert type(backend.parse_command(tagged).payload) is bytes
    command, value = backend.decode_command(tagged)
    assert (type(command.payload), command.payload, value) == (bytes, b'{"topic":"version"}', {"topic": "version"})


def test_input_memoryview_of_other_formats(backend: ModuleType) -> None:
    raw = b"action=user_define&cmd=xy"  # 25 bytes: 5 x 5
    assert backend.parse_command(memoryview(raw).cast("B", (5, 5))) == user(None, "xy")
    assert backend.parse_command(memoryview(array.array("B", raw))) == user(None, "xy")


@pytest.mark.parametrize(
    "raw",
    [None, 1, 1.5, ["action=user_define&cmd=x"], object(), {b"cmd": b"x"}],
    ids=["None", "int", "float", "list", "object", "dict"],
)
def test_non_buffer_input_raises_type_error(backend: ModuleType, raw: object) -> None:
    for call in (backend.parse_command, backend.decode_command):
        with pytest.raises(TypeError, match="expected bytes, bytearray, memoryview or str"):
            call(raw)


def test_other_buffer_types_are_refused(backend: ModuleType) -> None:
    # Only the four documented types are read; other buffers go through memoryview().
    raw = array.array("B", b"action=user_define&cmd=x")
    with pytest.raises(TypeError, match="expected bytes, bytearray, memoryview or str, not array"):
        backend.parse_command(raw)
    assert backend.parse_command(memoryview(raw)) == user(None, "x")


# --- odd size and offset arguments --------------------------------------------------------------

SIZE_ARGUMENTS: dict[str, tuple[Any, Any]] = {
    # max_size and the loads offset are read as a C Py_ssize_t by both backends.
    "int": (30, "ok"),
    "zero": (0, (MALFORMED_COMMAND, "command exceeds 0 bytes", 0)),
    "negative": (-1, (MALFORMED_COMMAND, "command exceeds -1 bytes", -1)),
    "bool": (True, (MALFORMED_COMMAND, "command exceeds 1 bytes", 1)),
    "float": (10.5, TypeError),
    "str": ("64", TypeError),
    "2**63": (2**63, OverflowError),
    "sys.maxsize + 1": (sys.maxsize + 1, OverflowError),
    "-sys.maxsize - 2": (-sys.maxsize - 2, OverflowError),
    "sys.maxsize": (sys.maxsize, "ok"),
}


def _call_outcome(call: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        call(*args, **kwargs)
    except WireError as exc:
        return (exc.code, exc.reason, exc.offset)
    except (TypeError, OverflowError) as exc:
        return type(exc)
    return "ok"


@pytest.mark.parametrize(("max_size", "expected"), SIZE_ARGUMENTS.values(), ids=SIZE_ARGUMENTS.keys())
def test_odd_max_size(backend: ModuleType, max_size: Any, expected: Any) -> None:
    raw = b"action=user_define&cmd=x"
    assert _call_outcome(backend.parse_command, raw, max_size=max_size) == expected
    assert _call_outcome(backend.decode_command, raw, max_size=max_size) == expected


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (7, (MALFORMED_JSON, "invalid JSON at byte 8", 8)),
        (True, (MALFORMED_JSON, "invalid JSON at byte 2", 2)),
        (1.5, TypeError),
        (2**63, OverflowError),
    ],
    ids=["int", "bool", "float", "2**63"],
)
def test_odd_loads_offset(backend: ModuleType, offset: Any, expected: Any) -> None:
    assert _call_outcome(backend.loads, b"[x", offset) == expected


# 32-bit ARM: a Py_ssize_t ends at 2**31-1, where the compiled backend raises OverflowError.
SIZES_ON_32_BIT = {
    "2**31-1": (2**31 - 1, "ok", (MALFORMED_JSON, "invalid JSON at byte 2147483648", 2**31)),
    "2**31": (2**31, OverflowError, OverflowError),
    "-2**31": (
        -(2**31),
        (MALFORMED_COMMAND, "command exceeds -2147483648 bytes", -(2**31)),
        (MALFORMED_JSON, "invalid JSON at byte 2147483647", 2**31 - 1),  # ~n: the value at n
    ),
    "-2**31-1": (-(2**31) - 1, OverflowError, OverflowError),
    "2**63-1": (2**63 - 1, OverflowError, OverflowError),
}


@pytest.mark.parametrize(("size", "as_max_size", "as_offset"), SIZES_ON_32_BIT.values(), ids=SIZES_ON_32_BIT.keys())
def test_the_twin_reads_sizes_as_a_32_bit_py_ssize_t(
    py_backend: ModuleType, monkeypatch: pytest.MonkeyPatch, size: int, as_max_size: Any, as_offset: Any
) -> None:
    monkeypatch.setattr(sys, "maxsize", 2**31 - 1)
    raw = b"action=user_define&cmd=x"
    assert _call_outcome(py_backend.parse_command, raw, max_size=size) == as_max_size
    assert _call_outcome(py_backend.decode_command, raw, max_size=size) == as_max_size
    assert _call_outcome(py_backend.loads, b"[x", size) == as_offset


# --- JSON layer -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "value"),
    [
        (b'{"a":1,}', {"a": 1}),
        (b"[1,]", [1]),
        (b"[1 ,\n\t]", [1]),
        (b'{"a":[1,{"b":2,},],}', {"a": [1, {"b": 2}]}),
        (b'{"a":",}"}', {"a": ",}"}),
        (b'{"a":",}",}', {"a": ",}"}),
        (b'{"a":"\\",]",}', {"a": '",]'}),
        (b'{"sd_format":{"data":{},}}', {"sd_format": {"data": {}}}),
    ],
)
def test_lenient_trailing_comma_retry(backend: ModuleType, payload: bytes, value: Any) -> None:
    assert backend.decode_command(HEAD + payload) == (user(payload), value)
    assert backend.loads(payload) == value


@pytest.mark.parametrize(
    ("payload", "offset"),
    [(b"[1,,]", 3), (b"[,,]", 1), (b'{"a":1,,}', 7), (b'{,"a":1}', 1), (b'{"a":1,]', 7)],
)
def test_lenient_retry_repairs_nothing_else(backend: ModuleType, payload: bytes, offset: int) -> None:
    expected_offset = len(HEAD) + offset
    error = wire_error(backend, HEAD + payload)
    assert_error(error, MALFORMED_JSON, f"invalid JSON at byte {expected_offset}", expected_offset)
    with pytest.raises(WireError) as info:
        backend.loads(payload, 10)
    assert_error(info.value, MALFORMED_JSON, f"invalid JSON at byte {10 + offset}", 10 + offset)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (HEAD + b"[1,2]", [1, 2]),
        (HEAD + b"[]", []),
        (HEAD + b'["topic","version"]', ["topic", "version"]),
        (HEAD + b'[{"topic":"version"}]', [{"topic": "version"}]),
        (HEAD + b"%5B%22a%22%5D", ["a"]),
        (HEAD + b" [null]", [None]),
        (HEAD + b'{"topic":7,"data":"x"}', {"topic": 7, "data": "x"}),
    ],
)
def test_non_object_json_is_returned_as_is(backend: ModuleType, raw: bytes, value: Any) -> None:
    command, decoded = backend.decode_command(raw)
    assert command.payload is not None
    assert decoded == value
    assert type(decoded) is type(value)


def test_cmd_token_decodes_to_none(backend: ModuleType) -> None:
    assert backend.decode_command(b"action=user_define&cmd=ptz_left") == (user(None, "ptz_left"), None)


def test_loads_offset_is_added(backend: ModuleType) -> None:
    with pytest.raises(WireError) as info:
        backend.loads(b'{"a":}')
    assert_error(info.value, MALFORMED_JSON, "invalid JSON at byte 5", 5)
    with pytest.raises(WireError) as info:
        backend.loads(b'{"\xc3\xa9":}', 40)  # the offset counts bytes, not characters
    assert_error(info.value, MALFORMED_JSON, "invalid JSON at byte 46", 46)


# --- every error kind: exact code, reason and offset ------------------------------------------


class ErrorCase(NamedTuple):
    raw: bytes
    max_size: int
    code: ResultCode
    reason: str
    offset: int


ERRORS = {
    "oversized": ErrorCase(b"action=user_define&cmd=xxxx", 20, MALFORMED_COMMAND, "command exceeds 20 bytes", 20),
    "empty": ErrorCase(b"\0\r\n", 16384, MALFORMED_COMMAND, "empty command", 0),
    "missing-action": ErrorCase(b"cmd=x&a=b\r\n", 16384, MALFORMED_COMMAND, "missing 'action' parameter", 9),
    "missing-cmd": ErrorCase(b"action=user_define&channel=1", 16384, MALFORMED_COMMAND, "missing 'cmd' parameter", 28),
    "bad-action": ErrorCase(
        b"a=1&action=foo&cmd=x", 16384, MALFORMED_COMMAND, "'action' must be 'user_define' or 'inner_define'", 4
    ),
    "duplicate-action": ErrorCase(
        b"action=user_define&action=inner_define&cmd=x", 16384, MALFORMED_COMMAND, "duplicate 'action' parameter", 19
    ),
    "bad-channel": ErrorCase(b"action=user_define&cmd=x&channel=-1", 16384, MALFORMED_COMMAND, CHANNEL_ERROR, 25),
    "duplicate-channel": ErrorCase(
        b"channel=1&action=user_define&channel=2&cmd=x", 16384, MALFORMED_COMMAND, "duplicate 'channel' parameter", 29
    ),
    "empty-cmd": ErrorCase(b"action=user_define&x=1&cmd=", 16384, MALFORMED_COMMAND, "'cmd' is empty", 23),
    "duplicate-cmd": ErrorCase(
        b'cmd={"a":1}&action=user_define&cmd={}', 16384, MALFORMED_COMMAND, "duplicate 'cmd' parameter", 31
    ),
    "after-json": ErrorCase(
        b'action=user_define&cmd={"a":1} \tx',
        16384,
        MALFORMED_COMMAND,
        "unexpected byte after the JSON value of 'cmd'",
        32,
    ),
    "json": ErrorCase(b'action=user_define&cmd={"a":tru}', 16384, MALFORMED_JSON, "invalid JSON at byte 28", 28),
    "json-bare": ErrorCase(b'{"a":1,"b"}', 16384, MALFORMED_JSON, "invalid JSON at byte 10", 10),
    "json-utf8-offset": ErrorCase(
        'action=user_define&cmd={"\u00e9\u20ac":x}'.encode(), 16384, MALFORMED_JSON, "invalid JSON at byte 32", 32
    ),
}


@pytest.mark.parametrize("case", ERRORS.values(), ids=ERRORS.keys())
def test_error_code_reason_and_offset(backend: ModuleType, case: ErrorCase) -> None:
    error = wire_error(backend, case.raw, max_size=case.max_size)
    assert_error(error, case.code, case.reason, case.offset)
    assert len(error.reason) <= 200
    assert str(error) == case.reason
    if case.code is MALFORMED_JSON:
        backend.parse_command(case.raw, max_size=case.max_size)  # the command string itself is fine


# --- subclasses are read by their contents, never through their methods --------------------------

class LyingInt(int):
    """An int whose conversions disagree with its value."""

    def __index__(self) -> int:
        return 5

    def __int__(self) -> int:
        return 5


SUBCLASS_CASES = [HEAD + b'{"topic":"version"}', b'{"a":1}\r\n', b"action=user_define&cmd=x&channel=7", b"&&", b""]


@pytest.mark.parametrize("raw", SUBCLASS_CASES)
@pytest.mark.parametrize("kind", [LyingStr, LyingBytes, LyingBytearray])
def test_subclasses_are_read_by_their_contents(backend: ModuleType, kind: type, raw: bytes) -> None:
    plain = raw.decode() if kind is LyingStr else raw
    for call in (backend.parse_command, backend.decode_command):
        assert _outcome(call, kind(plain)) == _outcome(call, plain)
        assert _call_outcome(call, kind(plain), max_size=4) == _call_outcome(call, plain, max_size=4)


def test_size_arguments_of_an_int_subclass_are_read_by_value(backend: ModuleType) -> None:
    raw = b"action=user_define&cmd=x"
    assert _call_outcome(backend.parse_command, raw, max_size=LyingInt(30)) == "ok"
    assert _call_outcome(backend.decode_command, raw, max_size=LyingInt(4)) == (
        MALFORMED_COMMAND, "command exceeds 4 bytes", 4)
    with pytest.raises(WireError) as info:
        backend.loads(b"{", LyingInt(7))
    assert info.value.offset == 8
