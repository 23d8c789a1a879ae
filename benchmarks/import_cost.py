"""What ``import iotvideo_signaling`` costs on top of ``import orjson``, measured in a fresh interpreter.

:func:`probe` starts ``python -c`` with :data:`PROBE`: it imports orjson (the one dependency, which
any user of the package loads anyway), then the package, and reports the time the second import
took, the growth of the peak RSS it caused, and the modules it loaded (beyond those orjson had). The test suite
checks the deterministic facts (which modules, how much memory: ``tests/test_import.py``); the
check mode of the report checks the time (``python -m benchmarks.report --check``).

The bytecode caches must exist for a fair time (a camera imports from them too): the first probe
of a fresh checkout writes them, so callers that time take one probe first and throw it away.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import NamedTuple

__all__ = ["PROBE", "ImportCost", "probe"]

PROBE = """
import json, resource, sys, time
import orjson
loaded = set(sys.modules)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
import iotvideo_signaling
elapsed = time.perf_counter() - start
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"ms": elapsed * 1000, "kib": after - before, "modules": sorted(set(sys.modules) - loaded)}))
"""


class ImportCost(NamedTuple):
    """One fresh interpreter's ``import iotvideo_signaling`` after ``import orjson``.

    Attributes:
        ms: how long it took, in milliseconds.
        kib: how much it raised the peak RSS, in KiB (``ru_maxrss`` on Linux).
        modules: the modules the import added to those orjson had loaded, sorted.
    """

    ms: float
    kib: int
    modules: tuple[str, ...]


def probe() -> ImportCost:
    """Measure once, in a new interpreter (this one's ``sys.executable``, with bytecode writing allowed)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    return ImportCost(float(result["ms"]), int(result["kib"]), tuple(result["modules"]))
