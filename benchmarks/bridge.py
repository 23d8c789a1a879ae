"""The SDK bridge, measured end to end: ``python -m benchmarks.report --bridge``.

The C shim (``bridge/``) and the fake SDK of the tests (``tests/c/fake_sdk.c``) are compiled with
the system ``cc`` (``-O2``); a daemon serving only ``bridge://`` runs as ``iotvideo-signaling
serve`` on the simulated camera (the embedded default), in a temporary directory. Then:

* **round trip**: the fake SDK's ``bench`` mode, ``--threads`` threads as visitors, each sending
  ``get_status`` through ``iv_avt_recv_command_cb`` (USR_DATA) and waiting for its reply:
  commands per second over the whole run, and the median (p50) and 99th percentile (p99) of the
  calls' durations, as the SDK thread sees them (shim, socket, daemon, Device, and back);
* **memory**: the resident set (``VmRSS``) of that daemon after ``--commands`` commands, against a
  bare ``python -c pass``, ``python -c "import orjson"``, and the same daemon with a ``tcp://``
  listener beside the bridge (which brings asyncio in).

Absolute figures of one machine, so they are reported, not checked (``--check`` checks ratios);
run it on a quiet machine. The README's table comes from it.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .load import served

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [ROOT / "bridge" / "ivs_bridge.c", ROOT / "bridge" / "ivs_bridge_iv.c", ROOT / "tests" / "c" / "fake_sdk.c"]
INCLUDES = [ROOT / "bridge", ROOT / "tests" / "c" / "iv_stub"]


def compile_harness(out: Path) -> Path:
    """Build the fake SDK with the shim; returns the executable.

    Raises:
        RuntimeError: no C compiler, or the build failed.
    """
    cc = os.environ.get("CC") or shutil.which("cc")
    if cc is None:
        raise RuntimeError("no C compiler (cc) on PATH")
    binary = out / "fake_sdk"
    includes = [f"-I{path}" for path in INCLUDES]
    argv = [cc, "-std=c99", "-O2", "-pthread", *includes, *map(str, SOURCES), "-o", str(binary)]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"building the fake SDK failed:\n{result.stderr}")
    return binary


@contextlib.contextmanager
def daemon(work: Path, *listen: str) -> Iterator[int]:
    """A ``serve`` subprocess on the simulated camera; yields its pid once it listens."""
    args = ["--state-dir", str(work / "state"), "--log-level", "warning"]
    for url in listen:
        args += ["--listen", url]
    with served(work, *args) as (pid, _):
        yield pid


def rss_kib(pid: int) -> int:
    """The resident set of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def python_rss_kib(code: str) -> int:
    """The resident set of ``python -c CODE`` at its end, in KiB."""
    probe = f"{code}\nfor l in open('/proc/self/status'):\n    l.startswith('VmRSS:') and print(l.split()[1])"
    return int(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout)


def fake_sdk(binary: Path, socket_path: Path, mode: str, **options: Any) -> dict[str, Any]:
    argv = [str(binary), str(socket_path), mode, *(f"{key}={value}" for key, value in options.items())]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"fake_sdk {mode} failed ({result.returncode}): {result.stdout}{result.stderr}")
    summary: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return summary


def measure(threads: int = 16, commands: int = 100_000) -> dict[str, Any]:
    """Round trip and memory figures (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="ivs-bench-") as directory:
        work = Path(directory)
        binary = compile_harness(work)
        sock = work / "bridge.sock"
        figures: dict[str, Any] = {"threads": threads, "commands": commands}
        with daemon(work, f"bridge://{sock}") as pid:
            figures["rss_bridge_start"] = rss_kib(pid)
            fake_sdk(binary, sock, "bench", threads=threads, count=200)  # warm-up
            bench = fake_sdk(binary, sock, "bench", threads=threads, count=max(1, commands // threads))
            figures["per_s"], figures["p50_us"], figures["p99_us"] = bench["per_s"], bench["p50_us"], bench["p99_us"]
            figures["rss_bridge"] = rss_kib(pid)
        with daemon(work, f"bridge://{sock}", "tcp://127.0.0.1:0") as pid:
            fake_sdk(binary, sock, "bench", threads=threads, count=max(1, commands // threads))
            figures["rss_asyncio"] = rss_kib(pid)
        figures["rss_python"] = python_rss_kib("pass")
        figures["rss_orjson"] = python_rss_kib("import orjson")
        return figures


def render(figures: dict[str, Any]) -> str:
    def mib(kib: int) -> str:
        return f"{kib / 1024:.1f} MiB"

    return "\n".join(
        [
            "| SDK bridge round trip | figure |",
            "|---|--:|",
            f"| commands/s, {figures['threads']} SDK threads | {figures['per_s']:,.0f} |",
            f"| p50 per call | {figures['p50_us'] / 1000:.2f} ms |",
            f"| p99 per call | {figures['p99_us'] / 1000:.2f} ms |",
            "",
            "| resident memory (VmRSS) | |",
            "|---|--:|",
            f"| `python -c pass` | {mib(figures['rss_python'])} |",
            f"| `python -c 'import orjson'` | {mib(figures['rss_orjson'])} |",
            f"| bridge-only daemon, at start | {mib(figures['rss_bridge_start'])} |",
            f"| bridge-only daemon, after {figures['commands']:,} commands | {mib(figures['rss_bridge'])} |",
            f"| the same with a `tcp://` listener too (asyncio) | {mib(figures['rss_asyncio'])} |",
            "",
            f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs; "
            "simulated camera; the fake SDK and the shim built with `cc -O2`.",
        ]
    )
