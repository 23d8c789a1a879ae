"""The request layer (docs/protocol.md §3-§5) through ``Device.handle``, and ``protocol.py`` itself.

* Every request example of the original document, verbatim, in every form the panel or the SDK
  hands it over, gets the original's reply.
* The envelope: ``message_id`` echo rules, ``data`` vs top level, key order, wire errors.
* Reasons: at most 200 characters, never more than 64 bytes of the input.
* Properties: arbitrary bytes and mutated examples always get one valid, documented reply.
"""

from __future__ import annotations

import json
import pickle
import re
import string
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Callable, Optional, cast

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotvideo_signaling import (
    Device,
    DeviceConfig,
    Hardware,
    Request,
    RequestError,
    ResultCode,
    SimulatedHardware,
    WireError,
)
from iotvideo_signaling.errors import MAX_REASON
from iotvideo_signaling.protocol import (
    FIELDS,
    MISSING,
    EnvelopeError,
    Field,
    error_reply,
    parse_request,
    reply,
    short,
)
from spec_examples import (
    PANEL_PREFIX,
    REPLY_EXAMPLES,
    REQUEST_EXAMPLES,
    TOPICS,
    ask,
    bare,
    check_reply,
    echoes_more_than,
    example_object,
    panel,
    send,
)

# -- the examples of the original document -------------------------------------------------

_ORIGINAL = Path(__file__).resolve().parents[2] / "shared" / "spec" / "000_e79efa7557af3adb.txt"


def test_examples_are_verbatim_copies_of_the_original_document() -> None:
    if not _ORIGINAL.is_file():
        pytest.skip("the original document (../shared/spec) is not beside this checkout")
    blocks = re.findall(r"```json\n(.*?)```", _ORIGINAL.read_text(encoding="utf-8"), re.S)
    assert blocks[0::2] == list(REQUEST_EXAMPLES.values())
    assert blocks[1::2] == list(REPLY_EXAMPLES.values())


@pytest.mark.parametrize("topic", ["sd_format", "bind_status", "intercom"])
def test_three_examples_carry_a_trailing_comma_that_strict_json_rejects(topic: str) -> None:
    text = REQUEST_EXAMPLES[topic]
    assert re.search(r",\s*\}", text)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(text)


def test_the_upgrade_example_carries_a_redacted_md5() -> None:
    assert "*" in example_object(REQUEST_EXAMPLES["upgrade"])["data"]["md5"]


class _NoOta(SimulatedHardware):
    """A simulated camera that cannot install firmware, so no test ever downloads anything."""

    install_firmware = Hardware.install_firmware


def _cmd_first(text: str) -> bytes:
    return b"cmd=" + text.encode() + b"&action=user_define&channel=0"


def _percent_encoded(text: str) -> bytes:
    return (PANEL_PREFIX + urllib.parse.quote(text, safe="")).encode()


FORMS: dict[str, Callable[[str], bytes]] = {
    "panel": panel,
    "bare": bare,
    "panel+NUL": lambda text: panel(text) + b"\0",
    "bare+NUL": lambda text: bare(text) + b"\0",
    "cmd-first": _cmd_first,
    "no-channel": lambda text: b"action=user_define&cmd=" + text.encode(),
    "percent-encoded": _percent_encoded,
}
#: The two forms the issue names; the others are the wild variants of docs/protocol.md §1.
REQUIRED_FORMS = ("panel", "bare")


def _expected_reply(topic: str) -> dict[str, Any]:
    """The original's reply example in the key order of §4, with ``result "0"``."""
    original = example_object(REPLY_EXAMPLES[topic])
    fields = {k: v for k, v in original.items() if k not in ("confirmation_topic", "result", "message_id")}
    return {"confirmation_topic": topic, "result": "0", **fields, "message_id": original["message_id"]}


@pytest.fixture
def example_device(tmp_path: Path) -> Iterator[Device]:
    """A camera set up so that the original's reply examples hold value for value."""
    state_dir = tmp_path / "cam"
    state_dir.mkdir()
    (state_dir / "state.json").write_bytes(orjson.dumps({"version": "V1.04.11"}))
    config = DeviceConfig(download_dir=str(tmp_path / "ota"))  # nothing left in the system's temp dir
    with Device(SimulatedHardware(state_dir, signal_strength=50), config=config) as device:
        device.start_intercom("another-visitor")  # the intercom example says "using"
        yield device


def _example_cases() -> Iterator[Any]:
    for topic in TOPICS:
        for form in FORMS:
            yield pytest.param(topic, form, id=f"{topic}-{form}")


@pytest.mark.parametrize(("topic", "form"), list(_example_cases()))
def test_original_request_example_gets_the_original_reply(example_device: Device, topic: str, form: str) -> None:
    raw = FORMS[form](REQUEST_EXAMPLES[topic])
    got = send(example_device, raw)
    if topic == "upgrade":
        # The example's MD5 is redacted with '*': not 32 hex digits, so the request is invalid.
        assert got["result"] == "4", got
        assert list(got) == ["confirmation_topic", "result", "reason", "message_id"]
        assert got["confirmation_topic"] == "upgrade"
        assert got["message_id"] == 0
        return
    expected = _expected_reply(topic)
    if topic == "ptz":  # the original's positions are placeholders: compare keys and types
        assert got["result"] == "0", got
        assert list(got) == list(expected)
        assert {k: type(v) for k, v in got.items()} == {k: type(v) for k, v in expected.items()}
        assert got["apex"] in ("yes", "no")
        assert got["message_id"] == 0
        return
    assert list(got.items()) == list(expected.items())


@pytest.mark.parametrize("topic", TOPICS)
@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview, str])
def test_examples_in_every_buffer_type(example_device: Device, topic: str, kind: type) -> None:
    raw = panel(REQUEST_EXAMPLES[topic])
    given_raw: Any = raw.decode() if kind is str else kind(raw)
    got = check_reply(example_device.handle(given_raw), raw)
    assert got["result"] == ("4" if topic == "upgrade" else "0")  # the example's MD5 is redacted with '*'
    assert got["confirmation_topic"] == topic


# -- the envelope: message_id ----------------------------------------------------------------

#: A minimal valid request for each topic that needs no hardware beyond the simulator.
VALID: dict[str, dict[str, Any]] = {
    "get_status": {"topic": "get_status"},
    "version": {"topic": "version"},
    "Mirror_flip": {"topic": "Mirror_flip", "data": {"mode": "flip"}},
    "set_status": {"topic": "set_status", "data": {"status": "working"}},
    "sd_format": {"topic": "sd_format"},
    "bind_status": {"topic": "bind_status", "status": "success"},
    "intercom": {"topic": "intercom"},
}
#: The reply fields of each topic's success, in order (§4).
REPLY_FIELDS: dict[str, list[str]] = {
    "get_status": ["status", "user_num", "signal_strength"],
    "version": ["info"],
    "Mirror_flip": [],
    "set_status": [],
    "sd_format": [],
    "bind_status": [],
    "intercom": ["status"],
}


GOOD_IDS: list[Any] = [
    0,
    1,
    -1,
    42,
    2**53 - 1,
    -(2**53 - 1),
    "",
    "0",
    "abc",
    "x" * 128,
    "消息-1",
    "😀" * 128,
    'quote " and \\ backslash',
    "1.5",
    "null",
]


@pytest.mark.parametrize("topic", list(VALID))
@pytest.mark.parametrize("message_id", GOOD_IDS, ids=repr)
def test_message_id_is_echoed_with_the_same_type_and_value(device: Device, topic: str, message_id: Any) -> None:
    got = ask(device, {**VALID[topic], "message_id": message_id})
    assert got["result"] == "0", got
    assert type(got["message_id"]) is type(message_id)
    assert got["message_id"] == message_id
    assert list(got)[-1] == "message_id"


@pytest.mark.parametrize("topic", list(VALID))
def test_message_id_missing_means_none_in_the_reply(device: Device, topic: str) -> None:
    got = ask(device, VALID[topic])
    assert got["result"] == "0", got
    assert "message_id" not in got


BAD_IDS: list[Any] = [
    1.5,
    1.0,
    -0.5,
    1e2,
    True,
    False,
    None,
    {},
    {"id": 1},
    [],
    [1],
    "x" * 129,
    "😀" * 129,
    2**53,
    -(2**53),
    2**63,
    2**64,
    10**30,
]


@pytest.mark.parametrize("topic", list(VALID))
@pytest.mark.parametrize("message_id", BAD_IDS, ids=lambda v: repr(v)[:20])
def test_bad_message_id_is_error_4_without_message_id(device: Device, topic: str, message_id: Any) -> None:
    got = ask(device, {**VALID[topic], "message_id": message_id})
    assert got["result"] == "4", got
    assert "message_id" not in got
    assert got["confirmation_topic"] == topic
    assert "message_id" in got["reason"]


@pytest.mark.parametrize("text", ["1.0", "-0.0", "1e2", "1E+2", "123456789012345678901234567890", "true", "null"])
def test_bad_message_id_literals(device: Device, text: str) -> None:
    got = send(device, panel('{"topic":"version","message_id":' + text + "}"))
    assert got["result"] == "4", got
    assert "message_id" not in got


def test_message_id_of_a_bad_id_is_not_echoed_even_when_topic_is_unknown(device: Device) -> None:
    got = ask(device, {"topic": "zoom", "message_id": 1.5})
    assert got["result"] == "4"
    assert "message_id" not in got


def test_message_id_is_echoed_on_an_unknown_topic(device: Device) -> None:
    got = ask(device, {"topic": "zoom", "message_id": "m-7"})
    assert got == {
        "confirmation_topic": "zoom",
        "result": "3",
        "reason": got["reason"],
        "message_id": "m-7",
    }
    assert "zoom" in got["reason"]


def test_message_id_is_echoed_on_a_parameter_error(device: Device) -> None:
    got = ask(device, {"topic": "Mirror_flip", "message_id": 9, "data": {"mode": "upside-down"}})
    assert list(got.items()) == [
        ("confirmation_topic", "Mirror_flip"),
        ("result", "4"),
        ("reason", got["reason"]),
        ("message_id", 9),
    ]


def test_message_id_is_echoed_when_data_is_not_an_object(device: Device) -> None:
    got = ask(device, {"topic": "Mirror_flip", "message_id": "d", "data": "flip"})
    assert got["result"] == "4"
    assert got["message_id"] == "d"


def test_message_id_is_echoed_when_topic_is_missing(device: Device) -> None:
    got = ask(device, {"message_id": 7})
    assert got["result"] == "4"
    assert got["message_id"] == 7


# -- the envelope: topic, payload type, data -------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [b"[]", b"[1,2]", b'[{"topic":"version"}]', b'["topic","version"]', b"[null]", b"[ ]"],
)
def test_payload_that_is_not_an_object_is_error_4(device: Device, payload: bytes) -> None:
    got = send(device, panel(payload))
    assert got["result"] == "4", got
    assert got["confirmation_topic"] == ""
    assert "message_id" not in got


@pytest.mark.parametrize("topic", [None, 1, 0, True, [], ["version"], {}, ""], ids=repr)
def test_topic_that_is_not_a_non_empty_string_is_error_4(device: Device, topic: Any) -> None:
    got = ask(device, {"topic": topic})
    assert got["result"] == "4", got
    assert got["confirmation_topic"] == ""
    assert "topic" in got["reason"]


@pytest.mark.parametrize("token", ['"version"', "1", "null", "true"])
def test_a_cmd_that_is_json_but_not_an_object_or_array_is_a_token(device: Device, token: str) -> None:
    """Only ``{`` or ``[`` starts a JSON payload (docs/protocol.md §2); anything else is a token."""
    got = send(device, panel(token))
    assert got["result"] == "3", got
    assert got["confirmation_topic"] == ""


def test_topic_missing_is_error_4(device: Device) -> None:
    got = send(device, panel(b"{}"))
    assert got["result"] == "4"
    assert got["confirmation_topic"] == ""


@pytest.mark.parametrize("topic", ["zoom", "mirror_flip", "MIRROR_FLIP", "Get_status", "get_status ", " version"])
def test_topic_match_is_exact_and_case_sensitive(device: Device, topic: str) -> None:
    got = ask(device, {"topic": topic, "message_id": 1})
    assert got["result"] == "3", got
    assert got["confirmation_topic"] == topic
    assert got["message_id"] == 1


@pytest.mark.parametrize("data", [[], [{"mode": "flip"}], "flip", "", 0, 1.5, None, True, False], ids=repr)
def test_data_that_is_not_an_object_is_error_4(device: Device, hw: SimulatedHardware, data: Any) -> None:
    got = ask(device, {"topic": "Mirror_flip", "mode": "flip", "message_id": 3, "data": data})
    assert got["result"] == "4", got
    assert got["confirmation_topic"] == "Mirror_flip"
    assert "data" in got["reason"]
    assert got["message_id"] == 3
    assert hw.flip == "normal"


@pytest.mark.parametrize("topic", list(VALID))
def test_every_topic_accepts_an_extra_data_object_and_extra_keys(device: Device, topic: str) -> None:
    request = dict(VALID[topic])
    request["data"] = {**request.get("data", {}), "unrelated": [1, {"x": None}]}
    request["extra"] = "ignored"
    assert ask(device, request)["result"] == "0"


@pytest.mark.parametrize("data", [{}, {"unrelated": 1}, {"nested": {"deep": [1, 2]}}])
def test_version_accepts_any_data_object(device: Device, data: Any) -> None:
    got = ask(device, {"topic": "version", "message_id": 0, "data": data})
    assert got["result"] == "0"
    assert got["info"] == "V1.0.0"


# -- fields in data and at top level -----------------------------------------------------------


@pytest.mark.parametrize("where", ["data", "top"])
@pytest.mark.parametrize("mode", ["flip", "normal"])
def test_mirror_flip_mode_in_data_or_at_top_level(
    device: Device, hw: SimulatedHardware, where: str, mode: str
) -> None:
    if mode == "normal":
        hw.set_flip("flip")
    request: dict[str, Any] = {"topic": "Mirror_flip", "message_id": 1}
    if where == "data":
        request["data"] = {"mode": mode}
    else:
        request["mode"] = mode
    assert ask(device, request)["result"] == "0"
    assert hw.flip == mode


@pytest.mark.parametrize("where", ["data", "top"])
@pytest.mark.parametrize("status", ["standby", "working"])
def test_set_status_in_data_or_at_top_level(device: Device, hw: SimulatedHardware, where: str, status: str) -> None:
    if status == "working":
        hw.set_power("standby")
    request: dict[str, Any] = {"topic": "set_status"}
    if where == "data":
        request["data"] = {"status": status}
    else:
        request["status"] = status
    assert ask(device, request)["result"] == "0"
    assert hw.get_power() == status
    assert ask(device, {"topic": "get_status"})["status"] == status


@pytest.mark.parametrize("where", ["data", "top"])
def test_bind_status_in_data_or_at_top_level(device: Device, where: str) -> None:
    request: dict[str, Any] = {"topic": "bind_status"}
    if where == "data":
        request["data"] = {"status": "success"}
    else:
        request["status"] = "success"
    assert ask(device, request)["result"] == "0"


@pytest.mark.parametrize("where", ["data", "top"])
@pytest.mark.parametrize("user", ["owner", "sharer"])
def test_get_status_user_in_data_or_at_top_level(device: Device, where: str, user: str) -> None:
    request: dict[str, Any] = {"topic": "get_status", "message_id": 0}
    if where == "data":
        request["data"] = {"user": user}
    else:
        request["user"] = user
    got = ask(device, request)
    assert got["result"] == "0"
    assert list(got) == ["confirmation_topic", "result", "status", "user_num", "signal_strength", "message_id"]


def test_data_is_read_before_the_top_level(device: Device, hw: SimulatedHardware) -> None:
    assert ask(device, {"topic": "Mirror_flip", "mode": "normal", "data": {"mode": "flip"}})["result"] == "0"
    assert hw.flip == "flip"
    assert ask(device, {"topic": "Mirror_flip", "mode": "flip", "data": {"mode": "normal"}})["result"] == "0"
    assert hw.flip == "normal"


def test_an_invalid_value_in_data_is_not_rescued_by_the_top_level(device: Device, hw: SimulatedHardware) -> None:
    got = ask(device, {"topic": "Mirror_flip", "mode": "flip", "data": {"mode": "sideways"}})
    assert got["result"] == "4"
    assert hw.flip == "normal"
    got = ask(device, {"topic": "Mirror_flip", "mode": "flip", "data": {"mode": None}})
    assert got["result"] == "4"
    assert hw.flip == "normal"


def test_top_level_is_used_when_data_lacks_the_field(device: Device, hw: SimulatedHardware) -> None:
    assert ask(device, {"topic": "Mirror_flip", "mode": "flip", "data": {"other": "normal"}})["result"] == "0"
    assert hw.flip == "flip"


# -- validation failures, topic by topic ----------------------------------------------------------

_BAD_VALUES: list[Any] = ["", "x", 0, 1, True, None, [], {}, 1.5]
INVALID: list[tuple[str, dict[str, Any]]] = [
    *[("get_status", {"topic": "get_status", "user": v}) for v in ["admin", "Owner", "OWNER", "owner "]],
    *[("get_status", {"topic": "get_status", "user": v}) for v in _BAD_VALUES],
    *[("get_status", {"topic": "get_status", "data": {"user": v}}) for v in ["guest", 1]],
    ("Mirror_flip", {"topic": "Mirror_flip"}),
    ("Mirror_flip", {"topic": "Mirror_flip", "data": {}}),
    *[("Mirror_flip", {"topic": "Mirror_flip", "data": {"mode": v}}) for v in ["Flip", "FLIP", "mirror", "flip "]],
    *[("Mirror_flip", {"topic": "Mirror_flip", "mode": v}) for v in _BAD_VALUES],
    *[("Mirror_flip", {"topic": "Mirror_flip", "data": {"mode": v}}) for v in [["flip"], {"mode": "flip"}]],
    ("set_status", {"topic": "set_status"}),
    ("set_status", {"topic": "set_status", "data": {}}),
    *[("set_status", {"topic": "set_status", "data": {"status": v}}) for v in ["on", "off", "Working", "STANDBY"]],
    *[("set_status", {"topic": "set_status", "status": v}) for v in _BAD_VALUES],
    ("bind_status", {"topic": "bind_status"}),
    *[("bind_status", {"topic": "bind_status", "status": v}) for v in ["fail", "SUCCESS", "successful"]],
    *[("bind_status", {"topic": "bind_status", "data": {"status": v}}) for v in _BAD_VALUES],
]


@pytest.mark.parametrize(("topic", "request_"), INVALID, ids=lambda v: orjson.dumps(v).decode()[:60])
def test_invalid_field_is_error_4(device: Device, hw: SimulatedHardware, topic: str, request_: dict[str, Any]) -> None:
    before = hw.snapshot()
    got = ask(device, {**request_, "message_id": "v"})
    assert got["result"] == "4", got
    assert got["confirmation_topic"] == topic
    assert got["message_id"] == "v"
    assert list(got) == ["confirmation_topic", "result", "reason", "message_id"]
    assert hw.snapshot() == before
    device.close()
    assert hw.tones() == []


@pytest.mark.parametrize(
    ("request_", "needle"),
    [
        ({"topic": "Mirror_flip"}, "mode"),
        ({"topic": "Mirror_flip", "mode": "x"}, "mode"),
        ({"topic": "set_status", "status": "x"}, "status"),
        ({"topic": "bind_status"}, "status"),
        ({"topic": "get_status", "user": "x"}, "user"),
    ],
)
def test_reason_names_the_bad_field(device: Device, request_: dict[str, Any], needle: str) -> None:
    assert needle in ask(device, request_)["reason"]


# -- key order -----------------------------------------------------------------------------


@pytest.mark.parametrize("topic", list(VALID))
def test_success_reply_key_order(device: Device, topic: str) -> None:
    raw_reply = device.handle(panel(orjson.dumps({**VALID[topic], "message_id": 5})))
    assert raw_reply.startswith(b'{"confirmation_topic":"' + topic.encode() + b'","result":"0"')
    assert raw_reply.endswith(b',"message_id":5}')
    got = check_reply(raw_reply)
    assert list(got) == ["confirmation_topic", "result", *REPLY_FIELDS[topic], "message_id"]


@pytest.mark.parametrize("topic", list(VALID))
def test_success_reply_key_order_without_message_id(device: Device, topic: str) -> None:
    got = ask(device, VALID[topic])
    assert list(got) == ["confirmation_topic", "result", *REPLY_FIELDS[topic]]


def test_error_reply_key_order(device: Device) -> None:
    raw_reply = device.handle(panel(b'{"topic":"zoom","message_id":"z"}'))
    assert raw_reply.startswith(b'{"confirmation_topic":"zoom","result":"3","reason":"')
    assert raw_reply.endswith(b'","message_id":"z"}')


def test_field_values_have_the_documented_types(device: Device) -> None:
    got = ask(device, {"topic": "get_status"})
    assert got["status"] in ("working", "standby")
    assert type(got["user_num"]) is int
    assert got["user_num"] >= 1
    assert type(got["signal_strength"]) is int
    assert 0 <= got["signal_strength"] <= 100
    assert type(ask(device, {"topic": "version"})["info"]) is str
    assert ask(device, {"topic": "intercom"})["status"] in ("using", "unused")


# -- wire errors ----------------------------------------------------------------------------

WIRE_ERRORS: list[tuple[bytes, str]] = [
    (b"", "1"),
    (b"\0", "1"),
    (b"\r\n\0", "1"),
    (b"hello", "1"),
    (b"topic=version", "1"),
    (b"action=user_define", "1"),
    (b"action=user_define&channel=0", "1"),
    (b"action=user_define&cmd=", "1"),
    (b"action=play&cmd=x", "1"),
    (b"action=USER_DEFINE&cmd=x", "1"),
    (b"action=user_define&action=user_define&cmd=x", "1"),
    (b"action=user_define&channel=0&channel=0&cmd=x", "1"),
    (b"action=user_define&cmd=x&cmd=y", "1"),
    (b'action=user_define&cmd={"topic":"version"}&cmd={"topic":"version"}', "1"),
    (b"action=user_define&channel=abc&cmd=x", "1"),
    (b"action=user_define&channel=-1&cmd=x", "1"),
    (b"action=user_define&channel=4294967296&cmd=x", "1"),
    (b'action=user_define&cmd={"topic":"version"}x', "1"),
    (b'action=user_define&cmd={"topic":"version"} ,', "1"),
    (b"[1]", "1"),
    (b' {"topic":"version"}', "1"),
    (b'{"topic":', "2"),
    (b'{"topic":"version"}}', "2"),
    (b'{"topic":"version"} x', "2"),
    (b"{nope}", "2"),
    (b"{'topic':'version'}", "2"),
    (b'{"topic":"version",,}', "2"),
    (b'{"topic":"version",]', "2"),
    (b'{"topic":"version" /* c */}', "2"),
    (b'{"topic":"version","message_id":NaN}', "2"),
    (b'{"topic":"version","message_id":01}', "2"),
    (b'{"topic":"vers\xffion"}', "2"),
    (b'{"topic":"\\ud800"}', "2"),
    (b'action=user_define&cmd={"topic":', "2"),
    (b'action=user_define&cmd={"topic":"version",,}', "2"),
    (b"action=user_define&cmd=%7B%22topic%22%3A", "2"),
    (b"action=user_define&cmd=" + b"[" * 2000 + b"]" * 2000, "2"),
    (b"{" + b'"a":{' * 1100 + b"}" * 1101, "2"),
]


@pytest.mark.parametrize(("raw", "code"), WIRE_ERRORS, ids=lambda v: repr(v)[:40])
def test_wire_error_is_result_1_or_2_with_empty_topic(device: Device, raw: bytes, code: str) -> None:
    got = send(device, raw)
    assert got["result"] == code, got
    assert got["confirmation_topic"] == ""
    assert "message_id" not in got
    assert list(got) == ["confirmation_topic", "result", "reason"]


def test_oversized_command_is_result_1(device: Device) -> None:
    filler = "x" * 20000
    got = ask(device, {"topic": "version", "pad": filler, "message_id": 1})
    assert got["result"] == "1"
    assert got["confirmation_topic"] == ""
    assert "message_id" not in got


def test_max_message_size_is_configurable(tmp_path: Path) -> None:
    raw = panel(b'{"topic":"version"}')
    with Device(SimulatedHardware(tmp_path), config=DeviceConfig(max_message_size=len(raw))) as dev:
        assert send(dev, raw)["result"] == "0"
        assert send(dev, raw + b" ")["result"] == "1"


@pytest.mark.parametrize("value", [None, 123, 1.5, ["x"], object()], ids=lambda v: type(v).__name__)
def test_a_non_buffer_is_result_1(device: Device, value: object) -> None:
    got = check_reply(device.handle(cast(Any, value)))
    assert got["result"] == "1"
    assert got["confirmation_topic"] == ""


def test_trailing_nul_cr_lf_are_accepted(device: Device) -> None:
    for tail in (b"\0", b"\r\n", b"\n\0", b"\0\0\0"):
        assert send(device, panel(b'{"topic":"version","message_id":1}') + tail)["result"] == "0"


def test_lenient_json_repairs_only_trailing_commas(device: Device) -> None:
    assert send(device, b'{"topic":"version","data":{"a":[1,2,],},"message_id":1,}')["result"] == "0"
    # A comma inside a string is data, not a trailing comma.
    got = send(device, b'{"topic":"zoom,}","message_id":1,}')
    assert got["confirmation_topic"] == "zoom,}"
    assert got["result"] == "3"


# -- reasons: short, and never much of the input --------------------------------------------

_HUGE = "A" * 10240


def _assert_small_error(got: Mapping[str, Any], raw: bytes, code: str) -> None:
    assert got["result"] == code, got
    assert len(got["reason"]) <= MAX_REASON
    assert not echoes_more_than(64, got["reason"], raw)
    assert len(orjson.dumps(got)) < 512
    assert len(got["confirmation_topic"].encode()) <= 256


@pytest.mark.parametrize("wrap", [panel, bare], ids=["panel", "bare"])
def test_a_10k_topic_name_is_not_echoed(device: Device, wrap: Callable[[bytes], bytes]) -> None:
    raw = wrap(orjson.dumps({"topic": _HUGE, "message_id": 1}))
    got = send(device, raw)
    _assert_small_error(got, raw, "3")
    assert got["message_id"] == 1


def test_a_10k_topic_name_with_a_bad_message_id(device: Device) -> None:
    raw = panel(orjson.dumps({"topic": _HUGE, "message_id": 1.5}))
    _assert_small_error(send(device, raw), raw, "4")


def test_a_10k_token_is_not_echoed(device: Device) -> None:
    raw = (PANEL_PREFIX + _HUGE).encode()
    got = send(device, raw)
    _assert_small_error(got, raw, "3")


@pytest.mark.parametrize(
    "request_",
    [
        {"topic": "Mirror_flip", "data": {"mode": _HUGE}},
        {"topic": "set_status", "status": _HUGE},
        {"topic": "get_status", "user": _HUGE},
        {"topic": "bind_status", "status": _HUGE},
        {"topic": "version", "message_id": _HUGE},
        {"topic": "Mirror_flip", "data": {_HUGE: "flip"}},
        {"topic": "version", "data": _HUGE},
    ],
    ids=["mode", "status", "user", "bind", "message_id", "key", "data"],
)
def test_a_10k_value_is_not_echoed(device: Device, request_: dict[str, Any]) -> None:
    raw = panel(orjson.dumps(request_))
    got = send(device, raw)
    _assert_small_error(got, raw, "4")


@pytest.mark.parametrize("char", ["A", "é", "消", "😀"])
def test_a_64_character_topic_in_any_script_quotes_at_most_64_bytes(device: Device, char: str) -> None:
    topic = char * 64
    raw = panel(orjson.dumps({"topic": topic}))
    got = send(device, raw)
    assert got["result"] == "3"
    assert not echoes_more_than(64, got["reason"], raw)


def test_a_10k_invalid_json_payload_is_not_echoed(device: Device) -> None:
    raw = panel(b'{"topic":"' + _HUGE.encode() + b"")
    got = send(device, raw)
    _assert_small_error(got, raw, "2")


def test_a_custom_handler_reason_is_cut_to_200_characters(device: Device) -> None:
    @device.topic("chatty")
    def chatty(request: Request, visitor: Optional[str]) -> None:
        raise RequestError("r" * 1000, code=ResultCode.BUSY)

    got = ask(device, {"topic": "chatty", "message_id": 1})
    assert got["result"] == "5"
    assert len(got["reason"]) == MAX_REASON


# -- protocol.py on its own -------------------------------------------------------------------


def test_parse_request_reads_the_envelope() -> None:
    body = {"topic": "Mirror_flip", "message_id": "7", "data": {"mode": "flip"}, "mode": "normal"}
    request = parse_request(body)
    assert request.topic == "Mirror_flip"
    assert request.message_id == "7"
    assert request.body is body
    assert request.data == {"mode": "flip"}
    assert request.get("mode") == "flip"
    assert request.get("absent") is MISSING


def test_parse_request_without_data_or_message_id() -> None:
    request = parse_request({"topic": "version", "mode": "x"})
    assert request.message_id is MISSING
    assert dict(request.data) == {}
    assert request.get("mode") == "x"


@pytest.mark.parametrize(
    ("value", "topic", "needle"),
    [
        ([], "", "object"),
        ("x", "", "object"),
        ({}, "", "topic"),
        ({"topic": 1}, "", "topic"),
        ({"topic": "t", "message_id": 1.5}, "t", "message_id"),
        ({"topic": "t", "message_id": "x" * 129}, "t", "message_id"),
        ({"topic": "t", "message_id": 2**53}, "t", "message_id"),
        ({"topic": "t", "data": []}, "t", "data"),
        ({"topic": "t" * 65, "data": []}, "", "data"),
    ],
)
def test_parse_request_errors(value: Any, topic: str, needle: str) -> None:
    from iotvideo_signaling.protocol import EnvelopeError

    with pytest.raises(EnvelopeError) as info:
        parse_request(value)
    assert info.value.code is ResultCode.INVALID_PARAMETER
    assert info.value.topic == topic
    assert needle in info.value.reason


def test_missing_is_falsy_and_named() -> None:
    assert not MISSING
    assert repr(MISSING) == "MISSING"


def test_field_with_choices() -> None:
    mode = Field("mode", choices=("normal", "flip"))
    assert mode.check("flip") == "flip"
    for bad in ("Flip", 1, None, ["flip"]):
        with pytest.raises(RequestError) as info:
            mode.check(bad)
        assert info.value.code is ResultCode.INVALID_PARAMETER
        assert info.value.reason == "'mode' must be 'normal' or 'flip'"
    with pytest.raises(RequestError, match="missing 'mode'"):
        mode.check(MISSING)


def test_optional_field_reads_as_none() -> None:
    assert Field("user", choices=("owner",), required=False).check(MISSING) is None


def test_int_field_rejects_bools_floats_and_small_values() -> None:
    size = Field("fileSize", int, minimum=1)
    assert size.check(1) == 1
    for bad in (True, False, 1.0, "1", 0, -5):
        with pytest.raises(RequestError):
            size.check(bad)


def test_str_field_length_limit() -> None:
    url = Field("url", max_len=4)
    assert url.check("abcd") == "abcd"
    with pytest.raises(RequestError, match="longer than 4"):
        url.check("abcde")
    with pytest.raises(RequestError, match="a string"):
        url.check(5)


def test_field_read_looks_in_data_first() -> None:
    request = parse_request({"topic": "t", "mode": "normal", "data": {"mode": "flip"}})
    assert Field("mode", choices=("normal", "flip")).read(request) == "flip"
    request = parse_request({"topic": "t", "mode": "normal", "data": {}})
    assert Field("mode", choices=("normal", "flip")).read(request) == "normal"


def test_request_fields_validates_a_spec() -> None:
    request = parse_request({"topic": "upgrade", "data": {"url": "https://a/b", "md5": "0" * 32, "fileSize": 10}})
    assert request.fields(FIELDS["upgrade"]) == {"url": "https://a/b", "md5": "0" * 32, "fileSize": 10}


def test_the_field_table_covers_every_documented_topic() -> None:
    assert set(FIELDS) == set(TOPICS)


def test_reply_builder_key_order() -> None:
    assert reply("t", MISSING) == b'{"confirmation_topic":"t","result":"0"}'
    assert reply("t", 0, {"b": 1, "a": 2}) == b'{"confirmation_topic":"t","result":"0","b":1,"a":2,"message_id":0}'
    assert reply("t", "", None) == b'{"confirmation_topic":"t","result":"0","message_id":""}'


def test_error_reply_builder() -> None:
    assert error_reply("", ResultCode.UNKNOWN, "nope") == b'{"confirmation_topic":"","result":"3","reason":"nope"}'
    built = orjson.loads(error_reply("t", ResultCode.BUSY, "z" * 500, 1))
    assert list(built) == ["confirmation_topic", "result", "reason", "message_id"]
    assert len(built["reason"]) == MAX_REASON
    assert built["result"] == "5"


@pytest.mark.parametrize(
    "value", ["", "abc", "x" * 32, "x" * 33, "x" * 10000, "😀" * 100, "é" * 50, 12345, None, b"xy"]
)
def test_short_quotes_at_most_64_bytes(value: object) -> None:
    quoted = short(value)
    assert quoted.startswith("'")
    assert quoted.endswith("'")
    assert len(quoted.encode()) <= 64
    assert len(quoted) <= 34
    if isinstance(value, str) and len(value) <= 32 and len(value.encode()) <= 60:
        assert quoted == f"'{value}'"


# -- properties ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_device(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Device]:
    """One device for the property tests (Hypothesis does not reset function fixtures)."""
    with Device(_NoOta(tmp_path_factory.mktemp("property-cam"))) as dev:
        dev.open_session("sharer", role="sharer")
        dev.start_stream("viewer")
        yield dev


def _check_never_raises(device: Device, raw: Any, visitor: str | None = None) -> None:
    reply_bytes = device.handle(raw, visitor=visitor)
    check_reply(reply_bytes, bytes(raw) if not isinstance(raw, str) else raw)


@given(st.binary(max_size=600))
def test_property_arbitrary_bytes(shared_device: Device, raw: bytes) -> None:
    _check_never_raises(shared_device, raw)


@given(st.sampled_from([b"{", PANEL_PREFIX.encode(), b"action=inner_define&cmd=", b"cmd={"]), st.binary(max_size=400))
def test_property_arbitrary_bytes_after_a_prefix(shared_device: Device, prefix: bytes, tail: bytes) -> None:
    _check_never_raises(shared_device, prefix + tail)


@given(st.text(max_size=300))
def test_property_arbitrary_text(shared_device: Device, raw: str) -> None:
    _check_never_raises(shared_device, raw)


@given(st.text(alphabet=st.one_of(st.characters(), st.characters(categories=["Cs"])), max_size=200))
def test_property_text_with_surrogates(shared_device: Device, raw: str) -> None:
    _check_never_raises(shared_device, "{" + raw)
    _check_never_raises(shared_device, PANEL_PREFIX + raw)


_EXAMPLES = [text.encode() for text in REQUEST_EXAMPLES.values()]
#: Bytes that matter to the scanner and the decoder, to insert more often than chance would.
_TOKENS = [b",", b"}", b"]", b'"', b"\\", b"&", b"=", b"%", b"\0", b"{", b"[", b"-1", b"1e999", b"\n"]
_WRAPS: list[Callable[[bytes], bytes]] = [panel, bare, lambda b: panel(b) + b"\0"]


@st.composite
def mutated_examples(draw: st.DrawFn) -> bytes:
    """A verbatim example, wrapped as a command, with a few byte-level mutations."""
    data = bytearray(draw(st.sampled_from(_WRAPS))(draw(st.sampled_from(_EXAMPLES))))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "duplicate", "swap"]))
        if not data:
            data += draw(st.binary(min_size=1, max_size=4))
            continue
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] = draw(st.integers(0, 255))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif kind == "insert":
            chunk = draw(st.one_of(st.binary(min_size=1, max_size=8), st.sampled_from(_TOKENS)))
            data[at:at] = chunk
        elif kind == "truncate":
            del data[at:]
        elif kind == "duplicate":
            end = draw(st.integers(at, len(data)))
            data[at:at] = data[at:end]
        else:
            other = draw(st.integers(0, len(data) - 1))
            data[at], data[other] = data[other], data[at]
    return bytes(data)


@given(mutated_examples(), st.sampled_from([None, "sharer", "viewer", "stranger"]))
def test_property_mutated_examples(shared_device: Device, raw: bytes, visitor: Optional[str]) -> None:
    _check_never_raises(shared_device, raw, visitor)


_KEYS = ["topic", "message_id", "data", "mode", "status", "user", "cmd", "url", "md5", "fileSize", "x"]
_WORDS = [
    *TOPICS,
    "normal",
    "flip",
    "working",
    "standby",
    "success",
    "owner",
    "sharer",
    "ptz_up_press",
    "ptz_release_pre",
    "zoom",
    "",
    "http://example.invalid/fw.bin",
    "not-an-md5",
]
_json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**64), 2**64),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from(_WORDS),
        st.text(max_size=20),
        st.text(min_size=120, max_size=140),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.sampled_from(_KEYS), children, max_size=3),
    ),
    max_leaves=8,
)


@st.composite
def restructured_examples(draw: st.DrawFn) -> bytes:
    """An example object with fields replaced, added or removed, serialised as the panel would."""
    body: dict[str, Any] = example_object(draw(st.sampled_from(list(REQUEST_EXAMPLES.values()))))
    for _ in range(draw(st.integers(1, 3))):
        target = body
        if isinstance(body.get("data"), dict) and draw(st.booleans()):
            target = body["data"]
        key = draw(st.sampled_from(_KEYS))
        if draw(st.integers(0, 3)) == 0:
            target.pop(key, None)
        else:
            target[key] = draw(_json_values)
    encoded = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    if draw(st.booleans()):
        encoded = encoded[:-1] + b",}"  # a trailing comma, as pasted from the document
    return draw(st.sampled_from(_WRAPS))(encoded)


@given(restructured_examples(), st.sampled_from([None, "sharer", "viewer"]))
def test_property_restructured_examples(shared_device: Device, raw: bytes, visitor: Optional[str]) -> None:
    _check_never_raises(shared_device, raw, visitor)


_PARAM_NAMES = ["type", "quality", "start_time", "end_time", "time", "file_type", "progress", "x", "cmd", "channel"]
_PARAM_VALUES = st.one_of(
    st.sampled_from(
        ["live", "voice", "playback", "standard", "high", "super", "0", "1", "202402", "-1", "", "%", "%zz"]
    ),
    st.integers(0, 2**45).map(str),
    st.text(string.printable, max_size=12),
)


@st.composite
def inner_commands(draw: st.DrawFn) -> bytes:
    cmd = draw(
        st.sampled_from(
            [
                "get_device_st",
                "get_record_index",
                "get_month_record",
                "get_file_list",
                "playback_pause",
                "playback_resume",
                "playback_seek",
                "playback_progress",
                "get_nvr_list",
                "x",
            ]
        )
    )
    params = draw(st.lists(st.tuples(st.sampled_from(_PARAM_NAMES), _PARAM_VALUES), max_size=5))
    text = "action=inner_define&channel=0&cmd=" + cmd
    for name, value in params:
        encoded = urllib.parse.quote(value) if draw(st.booleans()) else value
        text += f"&{name}={encoded}"
    return text.encode()


@given(inner_commands(), st.sampled_from([None, "viewer", "stranger"]))
@settings(max_examples=200)
def test_property_inner_commands(shared_device: Device, raw: bytes, visitor: Optional[str]) -> None:
    _check_never_raises(shared_device, raw, visitor)


@given(st.sampled_from(list(VALID)), st.one_of(st.integers(-(2**53) + 1, 2**53 - 1), st.text(max_size=128)))
def test_property_valid_message_ids_round_trip(shared_device: Device, topic: str, message_id: Any) -> None:
    request = {**VALID[topic], "message_id": message_id}
    if topic in ("Mirror_flip", "set_status"):
        request = {"topic": "intercom", "message_id": message_id}  # keep the shared device's state
    got = ask(shared_device, request)
    assert got["message_id"] == message_id
    assert type(got["message_id"]) is type(message_id)


def test_exceptions_carry_their_reason_once() -> None:
    """Refusals skip the base __init__ on the hot path; what they carry must not change."""
    long = RequestError("x" * 300, code=ResultCode.BUSY)
    assert long.reason == "x" * MAX_REASON and long.args == (long.reason,) and str(long) == long.reason
    assert long.code is ResultCode.BUSY and RequestError("r").code is ResultCode.INVALID_PARAMETER
    wire = WireError("bad byte", 7, code=ResultCode.MALFORMED_JSON)
    assert (wire.args, str(wire), wire.offset) == (("bad byte",), "bad byte", 7)
    assert pickle.loads(pickle.dumps(wire)) == wire
    envelope_error = EnvelopeError("missing 'topic'", message_id=3)
    assert (str(envelope_error), envelope_error.message_id, envelope_error.code) == (
        "missing 'topic'", 3, ResultCode.INVALID_PARAMETER,
    )


def test_a_topic_without_its_hook_is_unsupported_whatever_its_fields() -> None:
    """sd_format, bind_status and upgrade answer 3 on a camera without the hook, before any field check."""
    with Device(Hardware()) as device:
        for body in (
            {"topic": "bind_status", "status": "nonsense", "message_id": 1},
            {"topic": "upgrade", "data": {"url": "ftp://x", "md5": "*", "fileSize": 0}, "message_id": 1},
            {"topic": "sd_format", "message_id": 1},
        ):
            got = orjson.loads(device.handle(orjson.dumps(body)))
            assert (got["result"], got["message_id"]) == ("3", 1), got
