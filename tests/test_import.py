"""Import cost: the package must stay cheap to import on a low-power camera (DESIGN.md budget)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

import pytest

PROBE = """
import json, resource, sys, time
import orjson
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
import iotvideo_signaling
elapsed = time.perf_counter() - start
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"ms": elapsed * 1000, "kib": after - before, "modules": sorted(sys.modules)}))
"""

FORBIDDEN = ("asyncio", "ssl", "http", "urllib.request", "concurrent.futures", "websockets")


def _probe() -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(out.stdout)
    return result


@pytest.fixture(scope="module")
def probes() -> list[dict[str, object]]:
    _probe()  # the first run writes the bytecode caches; a camera imports from them too
    return [_probe() for _ in range(7)]


def test_import_pulls_in_no_heavy_modules(probes: list[dict[str, object]]) -> None:
    modules = probes[0]["modules"]
    assert isinstance(modules, list)
    assert [m for m in FORBIDDEN if m in modules] == []


def test_import_time_and_memory_over_orjson(probes: list[dict[str, object]]) -> None:
    ms = statistics.median(float(p["ms"]) for p in probes)  # type: ignore[arg-type]
    kib = statistics.median(int(p["kib"]) for p in probes)  # type: ignore[call-overload]
    assert ms <= 10.0, f"import iotvideo_signaling took {ms:.1f} ms (median of 7) over import orjson"
    assert kib <= 2048, f"import iotvideo_signaling added {kib} KiB of RSS over import orjson"


def test_logging_is_imported_on_the_first_message_only(probes: list[dict[str, object]]) -> None:
    """The package logs through lazy loggers (``_log.py``): a camera that logs nothing never
    imports :mod:`logging` and its dependencies, a third of the import budget."""
    modules = probes[0]["modules"]
    assert isinstance(modules, list) and "logging" not in modules
