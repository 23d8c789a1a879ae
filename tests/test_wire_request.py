"""The request layer's kernel entries: ``decode_request`` (decode + envelope) and ``read_field``.

Both wire backends are checked against the references they implement: ``_command.envelope`` and
``protocol.parse_request`` for the envelope, ``protocol.Field.read`` for a field; and the C
backend against the Python one on generated envelopes, fields and values (Hypothesis).
"""

from __future__ import annotations

from types import MappingProxyType, ModuleType
from typing import Any, Callable, Optional

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from iotvideo_signaling import Command, Field, Request, RequestError, WireError
from iotvideo_signaling._command import MAX_MESSAGE_ID_LEN, MAX_SAFE_INT, MISSING, envelope
from iotvideo_signaling.protocol import EnvelopeError, parse_request

ABSENT: Any = object()  # a key left out of the generated payload

# --- decode_request ---------------------------------------------------------------------------

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
    st.sampled_from(["version", "", "ptz", "x" * 70]),
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


def _framings(payload: bytes) -> list[bytes]:
    return [
        payload,
        b"action=user_define&channel=0&cmd=" + payload,
        b"cmd=" + payload + b"&action=user_define&x=1",
        b"action=inner_define&cmd=" + payload,
    ]


def _decoded(call: Callable[[bytes, int], Any], raw: bytes) -> tuple[Any, ...]:
    try:
        result = call(raw, 16384)
    except WireError as exc:
        return ("WireError", exc.code, exc.reason, exc.offset)
    return (type(result).__name__, result, repr(result))


def _expected(backend: ModuleType, raw: bytes) -> Any:
    """What decode_request must return, from decode_command and the envelope reference."""
    command, value = backend.decode_command(raw)
    if command.action == "user_define" and value is not None:
        request = envelope(value)
        if request is not None:
            return request
    return command, value


@given(envelopes())
@example({"topic": "t", "message_id": MAX_SAFE_INT})
@example({"topic": "t", "message_id": -MAX_SAFE_INT - 1})
@example({"topic": "t", "message_id": 2**64 - 1, "data": {}})
@example({"topic": "t", "message_id": "i" * MAX_MESSAGE_ID_LEN})
@example({"topic": "t", "message_id": True})
@example({"topic": "", "message_id": 1})
@example({"topic": "t", "data": []})
def test_decode_request_matches_its_references(py_backend: ModuleType, c_backend: ModuleType, value: Any) -> None:
    for raw in _framings(orjson.dumps(value)):
        got_c, got_py = _decoded(c_backend.decode_request, raw), _decoded(py_backend.decode_request, raw)
        assert got_c == got_py, raw
        if got_py[0] != "WireError":  # (a bare payload must be an object)
            expected = _expected(py_backend, raw)
            assert got_py[1] == expected and type(got_py[1]) is type(expected), raw


@given(envelopes())
def test_a_request_exactly_when_parse_request_accepts(backend: ModuleType, value: Any) -> None:
    result = backend.decode_request(b"action=user_define&cmd=" + orjson.dumps(value))
    try:
        parsed: Optional[Request] = parse_request(value)
    except EnvelopeError:
        parsed = None
    if parsed is None:
        assert type(result) is tuple and type(result[0]) is Command
    else:
        assert type(result) is Request and result == parsed
        assert result.data == value.get("data", {})


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b'{"topic":"version","message_id":7}', Request),
        (b'action=user_define&cmd={"topic":"version"}&extra=1', Request),
        (b'action=inner_define&cmd={"topic":"version"}', tuple),  # inner_define: never a request
        (b"action=user_define&cmd=ptz_left", tuple),  # a token
        (b'action=user_define&cmd=[{"topic":"version"}]', tuple),  # not an object
        (b'action=user_define&cmd={"topic":"version","message_id":1.5}', tuple),
        (b'action=user_define&cmd={"topic":"version","data":null}', tuple),
        (b"action=user_define&cmd=null", tuple),  # not JSON after cmd=: the token "null"
    ],
)
def test_decode_request_shapes(backend: ModuleType, raw: bytes, kind: type) -> None:
    result: Any = backend.decode_request(raw)
    shape = type(result)  # (asserted apart: mypy would narrow ``result`` to object)
    assert shape is kind
    if kind is Request:
        assert result.topic == "version" and isinstance(result.data, dict)
    else:
        command, value = result
        assert command == backend.parse_command(raw)
        assert value == backend.decode_command(raw)[1]


def test_decode_request_errors_are_decode_commands(backend: ModuleType) -> None:
    for raw in (b"", b"cmd=x", b'action=user_define&cmd={"a":', b"x" * 20):
        with pytest.raises(WireError) as got:
            backend.decode_request(raw, 16)
        with pytest.raises(WireError) as want:
            backend.decode_command(raw, max_size=16)
        assert got.value == want.value


def test_a_missing_data_is_a_fresh_dict_each_time(backend: ModuleType) -> None:
    first = backend.decode_request(b'{"topic":"t"}')
    second = backend.decode_request(b'{"topic":"t"}')
    assert first.data == {} and first.data is not second.data


# --- read_field -------------------------------------------------------------------------------

field_names = st.sampled_from(["mode", "url", "fileSize"])
choice_sets = st.one_of(
    st.none(), st.just(("normal", "flip")), st.just(("success",)), st.just((1, 2)), st.just(("1", True))
)
fields = st.builds(
    Field,
    name=field_names,
    kind=st.sampled_from([str, int]),
    choices=choice_sets,
    required=st.booleans(),
    max_len=st.one_of(st.none(), st.integers(0, 6)),
    minimum=st.one_of(st.none(), st.integers(-2, 2)),
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
    except Exception as exc:  # the same failure in both, or a bug
        return (type(exc).__name__, str(exc))
    return ("ok", type(value), value)


@given(fields, requests())
@example(Field("mode", choices=("normal", "flip")), Request("t", MISSING, {}, {"mode": "flip"}))
@example(Field("fileSize", int, minimum=1), Request("t", MISSING, {"fileSize": True}, {}))
@example(Field("fileSize", int, choices=(1, 2)), Request("t", MISSING, {}, {"fileSize": True}))
@example(Field("url", max_len=3), Request("t", MISSING, {"url": "abcd"}, {"url": [1]}))
def test_read_field_is_field_read(
    py_backend: ModuleType, c_backend: ModuleType, field: Field, request: Request
) -> None:
    expected = _read(lambda: field.read(request))
    assert _read(lambda: c_backend.read_field(field, request)) == expected
    assert _read(lambda: py_backend.read_field(field, request)) == expected


def test_read_field_with_other_mappings_and_tuples(backend: ModuleType) -> None:
    mode = Field("mode", choices=("normal", "flip"))
    proxied = Request("t", MISSING, MappingProxyType({}), MappingProxyType({"mode": "flip"}))
    assert backend.read_field(mode, proxied) == "flip"
    with pytest.raises(RequestError, match="'mode' must be"):
        backend.read_field(mode, Request("t", MISSING, {}, {"mode": "sideways"}))
    with pytest.raises(AttributeError):  # not a Field: no read() to fall back on
        backend.read_field(("mode",), Request("t", MISSING, {}, {}))
