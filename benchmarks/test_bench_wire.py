"""pytest-benchmark suite of the wire layer: ``pytest benchmarks --benchmark-only``.

One benchmark call is one pass over a subset of the corpus. Groups are named
``<job>: <subset> (<n> msg)``, so each table compares the contenders on the same messages:

* ``parse``: C ``parse_command`` against the Python twin's;
* ``decode``: C ``decode_command`` (scan and orjson fused in C) against the Python twin's
  ``parse_command`` followed by ``orjson.loads``, the twin's own ``decode_command``, and the
  stdlib reference (``urllib.parse`` + ``json``).

Without ``--benchmark-only`` (or another option that asks for results, see ``conftest.py``) each
benchmark runs its pass once, as a smoke test.
"""

from __future__ import annotations

from typing import Callable, Sequence

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from .contenders import contenders
from .corpus import CORPUS, PANEL_REQUEST_EXAMPLES, Entry

SUBSETS: dict[str, tuple[Entry, ...]] = {
    "corpus": CORPUS,
    "panel examples": tuple(entry for entry in CORPUS if entry.name in PANEL_REQUEST_EXAMPLES),
    **{entry.name: (entry,) for entry in CORPUS if entry.name not in PANEL_REQUEST_EXAMPLES},
}
PARSE = ("c", "py")
DECODE = ("c-fused", "py-split+orjson", "py-fused", "stdlib")


def _one_pass(func: Callable[[bytes], object], raws: Sequence[bytes]) -> None:
    for raw in raws:
        func(raw)


def _run(benchmark: BenchmarkFixture, request: pytest.FixtureRequest, job: str, subset: str, key: str) -> None:
    wire_c = request.getfixturevalue("wire_c") if key.startswith("c") else None
    func = {c.key: c.func for c in contenders(wire_c)}[key]
    entries = SUBSETS[subset]
    benchmark.group = f"{job}: {subset} ({len(entries)} msg)"
    benchmark.extra_info["messages"] = len(entries)
    benchmark(_one_pass, func, [entry.raw for entry in entries])


@pytest.mark.parametrize("key", PARSE)
@pytest.mark.parametrize("subset", SUBSETS)
def test_parse(benchmark: BenchmarkFixture, request: pytest.FixtureRequest, subset: str, key: str) -> None:
    _run(benchmark, request, "parse", subset, key)


@pytest.mark.parametrize("key", DECODE)
@pytest.mark.parametrize("subset", SUBSETS)
def test_decode(benchmark: BenchmarkFixture, request: pytest.FixtureRequest, subset: str, key: str) -> None:
    _run(benchmark, request, "decode", subset, key)
