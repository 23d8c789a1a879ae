"""Fixtures of the benchmark suite, and when pytest-benchmark really times.

``pytest benchmarks --benchmark-only`` prints the tables. In a plain ``python -m pytest`` run the
benchmark tests only call each function once (pytest-benchmark's ``--benchmark-disable``), so the
normal suite stays fast; timing is on whenever an option asks for results: ``--benchmark-only``,
``--benchmark-enable``, ``--benchmark-json``, ``--benchmark-save``, ``--benchmark-autosave``,
``--benchmark-compare``, ``--benchmark-histogram`` or ``--benchmark-cprofile``.
Those tables are for reading: no test here asserts a time or a ratio (``python -m
benchmarks.report --check`` does, in its own CI step).
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Callable

import pytest

from .contenders import c_backend_or_skip
from .device_contenders import device_contenders

_ASKS_FOR_TIMING = (
    "benchmark_only",
    "benchmark_enable",
    "benchmark_json",
    "benchmark_save",
    "benchmark_autosave",
    "benchmark_compare",
    "benchmark_histogram",
    "benchmark_cprofile",
)


def pytest_configure(config: pytest.Config) -> None:
    option = config.option
    if not hasattr(option, "benchmark_disable"):
        return  # pytest-benchmark is not loaded
    if not option.benchmark_skip and not any(getattr(option, name, None) for name in _ASKS_FOR_TIMING):
        option.benchmark_disable = True


@pytest.fixture(scope="session")
def wire_c() -> ModuleType:
    """The compiled wire backend; skips without it, fails if extensions are required."""
    return c_backend_or_skip()


@pytest.fixture(scope="session")
def device_funcs(wire_c: ModuleType) -> Iterator[dict[str, Callable[[bytes], object]]]:
    """``handle``, ``floor`` and ``stdlib`` on one do-nothing camera, jobs inline; closed after the session."""
    with device_contenders(wire_c) as found:
        yield {c.key: c.func for c in found}
