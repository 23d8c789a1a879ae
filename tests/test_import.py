"""Import cost: the package stays cheap to import on a low-power camera (DESIGN.md budget).

Only what does not depend on the machine's speed or load is asserted here: which modules
``import iotvideo_signaling`` loads, and how much memory it adds over ``import orjson``. The
import *time* is checked by ``python -m benchmarks.report --check``.
"""

from __future__ import annotations

import statistics

import pytest
from benchmarks.import_cost import ImportCost, probe

#: Modules the core must not load: networking, event loops, thread pools, subprocesses and the
#: logging machinery come with the transports, the OTA download or the first log message, never
#: with the package. Not an exact list: a new internal module does not break it.
FORBIDDEN = (
    "asyncio",
    "concurrent.futures",
    "email",
    "http",
    "http.client",
    "logging",
    "selectors",
    "socket",
    "ssl",
    "subprocess",
    "urllib.request",
    "websockets",
    "iotvideo_signaling.cli",
    "iotvideo_signaling.server",
)

#: Peak RSS that ``import iotvideo_signaling`` may add over ``import orjson``.
MAX_RSS_GROWTH_KIB = 2048


@pytest.fixture(scope="module")
def probes() -> list[ImportCost]:
    probe()  # the first run writes the bytecode caches; a camera imports from them too
    return [probe() for _ in range(3)]


def test_import_loads_the_package_and_its_wire_backend(probes: list[ImportCost]) -> None:
    modules = probes[0].modules
    assert "iotvideo_signaling" in modules
    assert "iotvideo_signaling._wire" in modules  # the probe measured the real import


def test_import_pulls_in_no_heavy_modules(probes: list[ImportCost]) -> None:
    assert [m for m in FORBIDDEN if m in probes[0].modules] == []


def test_logging_is_imported_on_the_first_message_only(probes: list[ImportCost]) -> None:
    """The package logs through lazy loggers (``_log.py``): a camera that logs nothing never
    imports :mod:`logging` and its dependencies, a third of the import budget."""
    assert not [m for m in probes[0].modules if m == "logging" or m.startswith("logging.")]


def test_import_memory_over_orjson(probes: list[ImportCost]) -> None:
    kib = statistics.median(p.kib for p in probes)
    assert kib <= MAX_RSS_GROWTH_KIB, f"import iotvideo_signaling added {kib} KiB of peak RSS over import orjson"
