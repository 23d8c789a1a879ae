"""Independent vectors through both backends: JSONTestSuite documents and WHATWG urlencoded cases.

The data lives in ``tests/data`` (see its README for sources and licences).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest

from iotvideo_signaling import Command, ResultCode, WireError

DATA = Path(__file__).parent / "data"
SUITE = DATA / "jsontestsuite" / "test_parsing"
PREFIX = b"action=user_define&channel=0&cmd="
#: Large enough for the biggest document (250 KB), so every one reaches the scanner and the decoder.
BIG = 1 << 20
JSON_WHITESPACE = b" \t\r\n"


def _documents(kind: str) -> list[Path]:
    paths = sorted(SUITE.glob(f"{kind}_*.json"))
    assert paths, f"no {kind}_ documents in {SUITE}"
    return paths


def _is_container(path: Path) -> bool:
    return isinstance(orjson.loads(path.read_bytes()), (dict, list))


Y_DOCUMENTS = _documents("y")
N_DOCUMENTS = _documents("n")
Y_CONTAINERS = [path for path in Y_DOCUMENTS if _is_container(path)]

#: ``n_`` documents that the lenient retry of docs/protocol.md §3 (drop a comma directly before ``}`` or
#: ``]``) turns into valid JSON, with the value they decode to. No other ``n_`` document decodes.
N_ACCEPTED_BY_LENIENT_RETRY: dict[str, Any] = {
    "n_array_extra_comma.json": [""],
    "n_array_just_comma.json": [],
    "n_array_number_and_comma.json": [1],
    "n_object_trailing_comma.json": {"id": 0},
}

#: ``n_`` documents that do not start with ``{`` or ``[``: after ``cmd=`` they are a plain ``cmd``
#: token (docs/protocol.md §2, legacy tokens such as ``ptz_left``), never a JSON payload. The value is
#: the decoded token (trailing NUL stripped, invalid UTF-8 replaced by U+FFFD).
N_ACCEPTED_AS_TOKEN: dict[str, str] = {
    "n_multidigit_number_then_00.json": "123",
    "n_single_space.json": " ",
    "n_string_single_doublequote.json": '"',
    "n_string_single_string_no_double_quotes.json": "abc",
    "n_string_unicode_CapitalU.json": '"\\UA66D"',
    "n_string_with_trailing_garbage.json": '""x',
    "n_structure_UTF8_BOM_no_data.json": "\ufeff",
    "n_structure_angle_bracket_..json": "<.>",
    "n_structure_ascii-unicode-identifier.json": "a\u00e5",
    "n_structure_close_unopened_array.json": "1]",
    "n_structure_end_array.json": "]",
    "n_structure_incomplete_UTF8_BOM.json": "\ufffd{}",
    "n_structure_lone-invalid-utf-8.json": "\ufffd",
    "n_structure_number_with_trailing_garbage.json": "2@",
    "n_structure_single_eacute.json": "\ufffd",
    "n_structure_single_star.json": "*",
    "n_structure_unicode-identifier.json": "\u00e5",
}

URLENCODED_CASES = json.loads((DATA / "urlencoded.json").read_text("utf-8"))["cases"]
#: WHATWG semantics only: CPython cases with ``options`` test CPython-specific parse_qsl arguments.
WHATWG_CASES = [case for case in URLENCODED_CASES if "options" not in case]


def _ids(paths: list[Path]) -> list[str]:
    return [path.name for path in paths]


def test_vector_files_are_present() -> None:
    assert len(Y_DOCUMENTS) == 95
    assert len(N_DOCUMENTS) == 188
    assert len(Y_CONTAINERS) == 87
    assert len(WHATWG_CASES) == 73
    names = {path.name for path in N_DOCUMENTS}
    assert set(N_ACCEPTED_BY_LENIENT_RETRY) <= names
    assert set(N_ACCEPTED_AS_TOKEN) <= names


# --- JSONTestSuite -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", Y_CONTAINERS, ids=_ids(Y_CONTAINERS))
def test_y_document_after_cmd(backend: ModuleType, path: Path) -> None:
    document = path.read_bytes()
    expected = Command("user_define", 0, None, document.rstrip(JSON_WHITESPACE), ())
    assert backend.parse_command(PREFIX + document, max_size=BIG) == expected
    command, value = backend.decode_command(PREFIX + document, max_size=BIG)
    assert command == expected
    assert value == orjson.loads(document)


@pytest.mark.parametrize("path", Y_CONTAINERS, ids=_ids(Y_CONTAINERS))
def test_y_document_followed_by_more_params(backend: ModuleType, path: Path) -> None:
    document = path.read_bytes()
    command, value = backend.decode_command(PREFIX + document + b"&after=1", max_size=BIG)
    assert command == Command("user_define", 0, None, document.rstrip(JSON_WHITESPACE), (("after", "1"),))
    assert value == orjson.loads(document)


@pytest.mark.parametrize("path", Y_DOCUMENTS, ids=_ids(Y_DOCUMENTS))
def test_loads_accepts_every_y_document(backend: ModuleType, path: Path) -> None:
    document = path.read_bytes()
    assert backend.loads(document) == orjson.loads(document)


@pytest.mark.parametrize("path", N_DOCUMENTS, ids=_ids(N_DOCUMENTS))
def test_n_document_after_cmd(backend: ModuleType, path: Path) -> None:
    document = path.read_bytes()
    raw = PREFIX + document
    if path.name in N_ACCEPTED_BY_LENIENT_RETRY:
        command, value = backend.decode_command(raw, max_size=BIG)
        assert command == Command("user_define", 0, None, document, ())
        assert value == N_ACCEPTED_BY_LENIENT_RETRY[path.name]
    elif path.name in N_ACCEPTED_AS_TOKEN:
        token = N_ACCEPTED_AS_TOKEN[path.name]
        assert backend.decode_command(raw, max_size=BIG) == (Command("user_define", 0, token, None, ()), None)
    else:
        with pytest.raises(WireError) as info:
            backend.decode_command(raw, max_size=BIG)
        assert info.value.code in (ResultCode.MALFORMED_COMMAND, ResultCode.MALFORMED_JSON)
        # parse_command alone never decodes, so it can only fail on the command string.
        try:
            backend.parse_command(raw, max_size=BIG)
        except WireError as exc:
            assert exc == info.value
            assert exc.code is ResultCode.MALFORMED_COMMAND


@pytest.mark.parametrize("path", N_DOCUMENTS, ids=_ids(N_DOCUMENTS))
def test_loads_rejects_n_document(backend: ModuleType, path: Path) -> None:
    document = path.read_bytes()
    if path.name in N_ACCEPTED_BY_LENIENT_RETRY:
        assert backend.loads(document) == N_ACCEPTED_BY_LENIENT_RETRY[path.name]
        return
    with pytest.raises(WireError) as info:
        backend.loads(document, 100)
    assert info.value.code is ResultCode.MALFORMED_JSON
    assert info.value.offset >= 100


def test_n_documents_accepted_as_tokens_are_not_json() -> None:
    for name in N_ACCEPTED_AS_TOKEN:
        assert (SUITE / name).read_bytes().lstrip(JSON_WHITESPACE)[:1] not in (b"{", b"[")


# --- WHATWG application/x-www-form-urlencoded ----------------------------------------------------


def _query(case: dict[str, Any]) -> str:
    query: str = case["input"]
    if query.startswith("?"):
        # URLSearchParams strips one leading "?"; the bare urlencoded parser would not.
        assert case["source"].endswith("urlsearchparams-constructor.any.js")
        query = query[1:]
    assert not query.startswith("{")
    return query


def _pairs(case: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple((name, value) for name, value in case["output"])


@pytest.mark.parametrize("case", WHATWG_CASES, ids=[case["id"] for case in WHATWG_CASES])
def test_urlencoded_case_as_extra_params(backend: ModuleType, case: dict[str, Any]) -> None:
    query = _query(case)
    expected = Command("user_define", 0, "x", None, _pairs(case))
    for text in ("action=user_define&channel=0&cmd=x&" + query, query + "&action=user_define&channel=0&cmd=x"):
        assert backend.parse_command(text) == expected
        assert backend.parse_command(text.encode("utf-8")) == expected
