"""pytest-benchmark suite of request handling: ``pytest benchmarks --benchmark-only``.

One benchmark call is one pass over a subset of the seed corpus (the panel's nine requests,
:data:`benchmarks.device_contenders.DEVICE_CORPUS`) on a do-nothing camera. Groups are named
``handle: <subset> (<n> msg)``, so each table compares on the same messages:

* ``handle``: ``Device.handle``;
* ``floor``: C fused decode + dict dispatch + ``orjson.dumps``, no validation;
* ``stdlib``: the stdlib reference (``urllib.parse`` + ``json``).

Subsets: the whole corpus, each message alone, and the corpus without the two topics that start
background work (``sd_format``, ``bind_status``), whose jobs run inline at submission for every
contender (see :mod:`benchmarks.device_contenders`).

Without ``--benchmark-only`` (or another option that asks for results, see ``conftest.py``) each
benchmark runs its pass once, as a smoke test.
"""

from __future__ import annotations

from typing import Callable, Sequence

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from .corpus import Entry
from .device_contenders import BACKGROUND_TOPICS, DEVICE_CORPUS

SUBSETS: dict[str, tuple[Entry, ...]] = {
    "seed corpus": DEVICE_CORPUS,
    "without background jobs": tuple(entry for entry in DEVICE_CORPUS if entry.name not in BACKGROUND_TOPICS),
    **{entry.name: (entry,) for entry in DEVICE_CORPUS},
}
KEYS = ("handle", "floor", "stdlib")


def _one_pass(func: Callable[[bytes], object], raws: Sequence[bytes]) -> None:
    for raw in raws:
        func(raw)


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("subset", SUBSETS)
def test_handle(
    benchmark: BenchmarkFixture, device_funcs: dict[str, Callable[[bytes], object]], subset: str, key: str
) -> None:
    entries = SUBSETS[subset]
    benchmark.group = f"handle: {subset} ({len(entries)} msg)"
    benchmark.extra_info["messages"] = len(entries)
    benchmark(_one_pass, device_funcs[key], [entry.raw for entry in entries])
