"""The request layer's two checks, each written once in ``protocol.py``.

* The envelope (docs/protocol.md §3): ``parse_request`` returns a :class:`Request` exactly when the
  payload is well-formed, else raises :class:`EnvelopeError` (code 4) with the diagnosis of the
  first fault a reply must report: ``message_id``, then ``topic``, then ``data``. Generated
  payloads (Hypothesis) and one example of each diagnosis; payloads decoded by both wire backends
  give the same outcome.
* A field: ``Field.read`` (its inline fast path) agrees with ``Field.check`` on the value looked
  up with ``Request.get``, on generated fields and requests.
"""

from __future__ import annotations

from types import MappingProxyType, ModuleType
from typing import Any, Callable

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from iotvideo_signaling import Field, Request, RequestError, ResultCode, WireError
from iotvideo_signaling.protocol import (
    MAX_MESSAGE_ID_LEN,
    MAX_SAFE_INT,
    MAX_TOPIC_ECHO,
    MISSING,
    EnvelopeError,
    parse_request,
)

ABSENT: Any = object()  # a key left out of the generated payload

# --- the envelope -----------------------------------------------------------------------------

edge_ints = st.sampled_from(
    [0, 1, -1, MAX_SAFE_INT, MAX_SAFE_INT + 1, -MAX_SAFE_INT, -MAX_SAFE_INT - 1, 2**63 - 1, -(2**63), 2**64 - 1]
)
message_ids = st.one_of(
    st.just(ABSENT),
    edge_ints,
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.text(max_size=3),
    st.integers(min_value=MAX_MESSAGE_ID_LEN - 1, max_value=MAX_MESSAGE_ID_LEN + 1).map(lambda n: "i" * n),
    st.sampled_from([None, True, False, 1.0, -0.0, 1e300, [], {}, [1], {"a": 1}]),
)
topics: st.SearchStrategy[Any] = st.one_of(
    st.just(ABSENT),
    st.sampled_from(["version", "", "ptz", "x" * MAX_TOPIC_ECHO, "x" * (MAX_TOPIC_ECHO + 1)]),
    st.text(max_size=4),
    st.sampled_from([None, 1, [], {}]),
)
datas: st.SearchStrategy[Any] = st.one_of(
    st.just(ABSENT),
    st.just({}),
    st.dictionaries(st.text(max_size=3), edge_ints, max_size=2),
    st.sampled_from([None, [], "d", 0]),
)


@st.composite
def envelopes(draw: st.DrawFn) -> Any:
    """A payload value: mostly objects with edge-case envelope keys, sometimes not an object."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from([[], [1], "s", 0, None, True]))
    body: dict[str, Any] = {}
    for key, values in (("topic", topics), ("message_id", message_ids), ("data", datas)):
        value = draw(values)
        if value is not ABSENT:
            body[key] = value
    if draw(st.booleans()):
        body["mode"] = draw(st.sampled_from(["flip", 1]))
    return body


def _valid_message_id(message_id: Any) -> bool:
    if type(message_id) is int:
        return abs(message_id) <= MAX_SAFE_INT
    if type(message_id) is str:
        return len(message_id) <= MAX_MESSAGE_ID_LEN
    return message_id is MISSING


@given(envelopes())
@example({"topic": "t", "message_id": MAX_SAFE_INT})
@example({"topic": "t", "message_id": -MAX_SAFE_INT - 1})
@example({"topic": "t", "message_id": 2**64 - 1, "data": {}})
@example({"topic": "t", "message_id": "i" * MAX_MESSAGE_ID_LEN})
@example({"topic": "t", "message_id": True})
@example({"topic": "", "message_id": 1})
@example({"topic": "t", "data": []})
@example({"topic": "t", "data": None, "message_id": [1]})
def test_parse_request_accepts_exactly_the_well_formed_envelopes(value: Any) -> None:
    is_object = type(value) is dict
    topic = value.get("topic") if is_object else None
    message_id = value.get("message_id", MISSING) if is_object else MISSING
    data = value.get("data", {}) if is_object else None
    good_topic = type(topic) is str and topic != ""
    try:
        request = parse_request(value)
    except EnvelopeError as exc:
        assert exc.code is ResultCode.INVALID_PARAMETER
        assert not (is_object and good_topic and _valid_message_id(message_id) and type(data) is dict)
        if not is_object:
            assert (exc.reason, exc.topic, exc.message_id) == ("the payload must be a JSON object", "", MISSING)
            return
        # message_id first: every later error echoes it, so a bad one is reported before the rest
        if not _valid_message_id(message_id):
            assert "'message_id'" in exc.reason and exc.message_id is MISSING
        else:
            assert exc.message_id is message_id
            assert exc.reason == ("missing 'topic'" if not good_topic else "'data' must be an object")
        shown = type(topic) is str and len(topic) <= MAX_TOPIC_ECHO and exc.reason != "missing 'topic'"
        assert exc.topic == (topic if shown else "")
    else:
        assert is_object and good_topic and _valid_message_id(message_id) and type(data) is dict
        assert type(request) is Request
        assert request.body is value
        assert tuple(request) == (topic, message_id, value, data)


@pytest.mark.parametrize(
    ("value", "reason", "topic", "message_id"),
    [
        ([], "the payload must be a JSON object", "", MISSING),
        ("x", "the payload must be a JSON object", "", MISSING),
        ({}, "missing 'topic'", "", MISSING),
        ({"topic": 1, "message_id": 4}, "missing 'topic'", "", 4),
        ({"topic": "", "message_id": "m"}, "missing 'topic'", "", "m"),
        ({"topic": "t", "message_id": 1.5}, "'message_id' must be an integer or a string", "t", MISSING),
        ({"topic": "t", "message_id": True}, "'message_id' must be an integer or a string", "t", MISSING),
        ({"topic": "t", "message_id": None}, "'message_id' must be an integer or a string", "t", MISSING),
        ({"message_id": "x" * 129}, "'message_id' is longer than 128 characters", "", MISSING),
        ({"topic": "t", "message_id": 2**53}, "'message_id' is out of range", "t", MISSING),
        ({"topic": "t", "message_id": -(2**53), "data": []}, "'message_id' is out of range", "t", MISSING),
        ({"topic": "t", "data": []}, "'data' must be an object", "t", MISSING),
        ({"topic": "t", "data": None, "message_id": 0}, "'data' must be an object", "t", 0),
        ({"topic": "t" * 65, "data": []}, "'data' must be an object", "", MISSING),
    ],
)
def test_each_diagnosis(value: Any, reason: str, topic: str, message_id: Any) -> None:
    with pytest.raises(EnvelopeError) as info:
        parse_request(value)
    assert (info.value.reason, info.value.topic, info.value.message_id) == (reason, topic, message_id)
    assert info.value.code is ResultCode.INVALID_PARAMETER


def test_a_missing_data_is_a_fresh_dict_each_time() -> None:
    first = parse_request({"topic": "t"})
    second = parse_request({"topic": "t"})
    assert first.data == {} and first.data is not second.data


def _through(backend: ModuleType, raw: bytes) -> tuple[Any, ...]:
    """What the request path makes of ``raw``: decode_command, then parse_request on a payload."""
    try:
        command, value = backend.decode_command(raw)
    except WireError as exc:
        return ("WireError", exc.code, exc.reason, exc.offset)
    if value is None:
        return ("token", command)
    try:
        request = parse_request(value)
    except EnvelopeError as exc:
        return ("EnvelopeError", exc.reason, exc.topic, exc.message_id)
    return ("Request", request, repr(request))


@given(envelopes())
@example({"topic": "t", "message_id": 2**63})
def test_both_backends_feed_the_envelope_check_alike(py_backend: ModuleType, c_backend: ModuleType, value: Any) -> None:
    payload = orjson.dumps(value)
    for raw in (payload, b"action=user_define&channel=0&cmd=" + payload, b"cmd=" + payload + b"&action=user_define"):
        outcome = _through(py_backend, raw)
        assert _through(c_backend, raw) == outcome, raw
        # an object or array is a payload (bare, only an object); a JSON scalar after cmd= is a token
        if type(value) is dict or (type(value) is list and raw is not payload):
            assert outcome[0] in ("Request", "EnvelopeError"), outcome


# --- a field ----------------------------------------------------------------------------------

field_names = st.sampled_from(["mode", "url", "fileSize"])
choice_sets = st.one_of(
    st.none(), st.just(("normal", "flip")), st.just(("success",)), st.just((1, 2)), st.just(("1", True))
)


@st.composite
def fields(draw: st.DrawFn) -> Field:
    """A field as the table declares one: a length limit on a string, a minimum on an integer."""
    kind = draw(st.sampled_from([str, int]))
    limit = draw(st.one_of(st.none(), st.integers(0, 6) if kind is str else st.integers(-2, 2)))
    return Field(
        draw(field_names),
        kind,
        choices=draw(choice_sets),
        required=draw(st.booleans()),
        max_len=limit if kind is str else None,
        minimum=limit if kind is int else None,
    )


field_values = st.one_of(
    st.sampled_from(["normal", "flip", "success", "", "1", "abcdefg", 0, 1, 2, -3, True, False, None, 1.0]),
    st.text(max_size=8),
    st.integers(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)


@st.composite
def requests(draw: st.DrawFn) -> Request:
    body: dict[str, Any] = {"topic": "t"}
    data: dict[str, Any] = {}
    for name in ("mode", "url", "fileSize"):
        where = draw(st.sampled_from(["data", "body", "both", "absent"]))
        if where in ("data", "both"):
            data[name] = draw(field_values)
        if where in ("body", "both"):
            body[name] = draw(field_values)
    body["data"] = data
    return Request("t", MISSING, body, data)


def _read(call: Callable[[], Any]) -> tuple[Any, ...]:
    try:
        value = call()
    except RequestError as exc:
        return ("RequestError", exc.code, exc.reason)
    return ("ok", type(value), value)


@given(fields(), requests())
@example(Field("mode", choices=("normal", "flip")), Request("t", MISSING, {}, {"mode": "flip"}))
@example(Field("fileSize", int, minimum=1), Request("t", MISSING, {"fileSize": True}, {}))
@example(Field("fileSize", int, choices=(1, 2)), Request("t", MISSING, {}, {"fileSize": True}))
@example(Field("url", max_len=3), Request("t", MISSING, {"url": "abcd"}, {"url": [1]}))
@example(Field("url", max_len=3), Request("t", MISSING, {"url": "abc"}, {"url": "abcd"}))
@example(Field("fileSize", int, minimum=1), Request("t", MISSING, {"fileSize": 1}, {"fileSize": 0}))
@example(Field("mode", choices=("normal", "flip")), Request("t", MISSING, {"mode": "flip"}, {"mode": "Flip"}))
def test_field_read_is_check_of_the_looked_up_value(field: Field, request: Request) -> None:
    assert _read(lambda: field.read(request)) == _read(lambda: field.check(request.get(field.name)))


def test_field_read_with_other_mappings() -> None:
    mode = Field("mode", choices=("normal", "flip"))
    proxied = Request("t", MISSING, MappingProxyType({}), MappingProxyType({"mode": "flip"}))
    assert mode.read(proxied) == "flip"
    with pytest.raises(RequestError, match="'mode' must be"):
        mode.read(Request("t", MISSING, {}, {"mode": "sideways"}))
