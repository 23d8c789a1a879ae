"""What ``import iotvideo_signaling`` costs on top of ``import orjson``, measured in a fresh interpreter.

:func:`probe` starts ``python -c`` with :data:`PROBE`: it imports orjson (the one dependency, which
any user of the package loads anyway), then the modules it is given, one after the other, and
reports the time each import took, the growth of the peak RSS they caused, and the modules they
loaded (beyond those orjson had). The test suite checks the deterministic facts (which modules,
how much memory: ``tests/test_import.py``); the check mode of the report checks the time
(``python -m benchmarks.report --check``) as a ratio to :data:`REFERENCE` imported just before the
package in the same interpreter, so that a slower or busier machine, which slows both alike, does
not decide the verdict.

The bytecode caches must exist for a fair time (a camera imports from them too): the first probe
of a fresh checkout writes them, so callers that time take one probe first and throw it away.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import NamedTuple

__all__ = ["PACKAGE", "PROBE", "REFERENCE", "ImportCost", "probe"]

PACKAGE = "iotvideo_signaling"
#: The yardstick of the import target: a pure-Python standard module doing the same kind of work
#: (reading bytecode, running module and class bodies), alike for every user of a Python version.
REFERENCE = "typing"

#: ``sys.argv[1:]`` are the modules to import after orjson, in order.
PROBE = """
import json, resource, sys, time
import orjson
loaded = set(sys.modules)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
ms = []
for name in sys.argv[1:]:
    start = time.perf_counter()
    __import__(name)
    ms.append((time.perf_counter() - start) * 1000)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"ms": ms, "kib": after - before, "modules": sorted(set(sys.modules) - loaded)}))
"""


class ImportCost(NamedTuple):
    """One fresh interpreter's imports after ``import orjson``.

    Attributes:
        ms: how long each import took, in milliseconds, in the order they were asked for.
        kib: how much they raised the peak RSS, in KiB (``ru_maxrss`` on Linux).
        modules: the modules they added to those orjson had loaded, sorted.
    """

    ms: tuple[float, ...]
    kib: int
    modules: tuple[str, ...]


def probe(*modules: str) -> ImportCost:
    """Import ``modules`` (default: the package) once, in a new interpreter.

    The interpreter is this one's ``sys.executable``, with bytecode writing allowed.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    argv = [sys.executable, "-c", PROBE, *(modules or (PACKAGE,))]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    return ImportCost(tuple(float(ms) for ms in result["ms"]), int(result["kib"]), tuple(result["modules"]))
