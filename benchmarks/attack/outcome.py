"""What an attack is run against, how big it is, and what it found: :class:`Target`, :class:`Scale`, :class:`Outcome`.

Also the helpers the scenarios share: the daemon's log and memory as figures, and running
attackers together under a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import subprocess
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

__all__ = [
    "FULL",
    "LOG_WARNINGS",
    "MAX_MESSAGE_SIZE",
    "MIB",
    "SHORT",
    "Outcome",
    "Scale",
    "Target",
    "gather_within",
    "hang_up",
    "has_websockets",
    "log_figures",
    "peak_rss_figure",
]

MIB = 1024 * 1024
#: The daemons started here set it explicitly (it is the default); with ``--to``, the daemon must have it.
MAX_MESSAGE_SIZE = 16384
#: WARNING (or worse) log lines an attack may cost, whatever its size: refusals and evictions are
#: logged once a minute per reason, and a drop once per client.
LOG_WARNINGS = 6


@dataclass(frozen=True)
class Scale:
    """How big each attack is."""

    slowloris: int  # dribbling connections (the daemon has max_connections 32)
    slowloris_seconds: float
    burst: int  # connections per burst
    silent: int  # silent connections held on the ws:// port (the daemon may open 1024 files)
    oversize: int  # bytes of each huge line or message
    oversize_clients: int  # huge lines sent at once
    non_readers: int  # per transport
    write_timeout: float
    flips: int  # image flips pipelined in one write, each an event for every WebSocket client
    load_clients: int  # pipelining clients before the SIGTERM
    load_seconds: float


FULL = Scale(
    slowloris=256,
    slowloris_seconds=15.0,
    burst=2000,
    silent=1100,
    oversize=10 * MIB,
    oversize_clients=4,
    non_readers=8,
    write_timeout=3.0,
    flips=500,
    load_clients=16,
    load_seconds=3.0,
)
SHORT = Scale(
    slowloris=64,
    slowloris_seconds=3.0,
    burst=300,
    silent=1100,
    oversize=10 * MIB,
    oversize_clients=2,
    non_readers=2,
    write_timeout=2.0,
    flips=100,
    load_clients=4,
    load_seconds=1.0,
)


@dataclass
class Outcome:
    """A scenario's verdict and figures: it passed when nothing failed."""

    scenario: str
    done: str = ""  # what was done, in a line
    figures: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    skipped: str | None = None

    @property
    def passed(self) -> bool:
        return not self.failures

    def expect(self, condition: bool, failure: str) -> None:
        """Note ``failure`` unless ``condition`` holds."""
        if not condition:
            self.failures.append(failure)

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "passed": self.passed}


@dataclass
class Target:
    """The daemon under attack: its URLs and, when the runner started it, its process, log and directory."""

    urls: list[str]
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    work: Path | None = None  # its ready file, and its state directory "state"
    write_timeout: float = 10.0
    max_files: int | None = None  # its limit of open files, when the runner set one

    def url(self, scheme: str) -> str | None:
        """The first URL of ``scheme``, if the daemon has one."""
        return next((url for url in self.urls if url.startswith(scheme + "://")), None)

    def need(self, scheme: str) -> str:
        """The first URL of ``scheme``.

        Raises:
            LookupError: the daemon has none (the scenario is skipped).
        """
        url = self.url(scheme)
        if url is None:
            raise LookupError(f"needs a {scheme}:// URL")
        return url

    def peak_rss_kib(self) -> int | None:
        """The daemon's peak resident memory (VmHWM), when the runner started it on Linux."""
        return self._status("VmHWM:")

    def open_files(self) -> int | None:
        """How many files the daemon has open now, when the runner started it on Linux."""
        if self.process is None:
            return None
        with contextlib.suppress(OSError):
            return len(list(Path(f"/proc/{self.process.pid}/fd").iterdir()))
        return None

    def _status(self, key: str) -> int | None:
        if self.process is None:
            return None
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith(key):
                    return int(line.split()[1])
        return None

    def log_size(self) -> int:
        return self.log.stat().st_size if self.log is not None else 0

    def log_since(self, offset: int) -> tuple[int, list[str]]:
        """Bytes logged since ``offset``, and the WARNING (or worse) records among them."""
        if self.log is None:
            return 0, []
        data = self.log.read_bytes()[offset:]
        warnings = [line for line in data.decode(errors="replace").splitlines() if _SERIOUS.search(line[:60])]
        return len(data), warnings


_SERIOUS = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b")


def log_figures(outcome: Outcome, target: Target, offset: int, *, bound: bool) -> None:
    """The log's size since ``offset`` as a figure; with ``bound``, the verdict that it stayed small."""
    if target.log is None:
        return
    size, warnings = target.log_since(offset)
    outcome.figures["log"] = f"{size / 1024:.1f} KiB, {len(warnings)} WARNING+ lines"
    if bound:
        shown = [line[:160] for line in warnings[:2]]
        outcome.expect(
            len(warnings) <= LOG_WARNINGS, f"{len(warnings)} WARNING+ log lines (at most {LOG_WARNINGS}): {shown}"
        )


def peak_rss_figure(outcome: Outcome, target: Target) -> None:
    peak = target.peak_rss_kib()
    if peak is not None:
        outcome.figures["daemon peak RSS"] = f"{peak / 1024:.1f} MiB"


async def gather_within(seconds: float, *awaitables: Awaitable[Any]) -> bool:
    """Run ``awaitables`` together; False (and they are cancelled) when they take over ``seconds``.

    An exception raised by one of them (an attacker's own bug) is raised, not taken for a verdict.
    """
    tasks = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    done, pending = await asyncio.wait(tasks, timeout=seconds)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        task.result()
    return not pending


def has_websockets() -> bool:
    try:
        import websockets  # noqa: F401
    except ImportError:
        return False
    return True


async def hang_up(ws: ClientConnection) -> None:
    """Close ``ws``, unless it is closed already (websockets' close() on a transport that closed
    with unsent data trips over asyncio's bookkeeping on some Pythons)."""
    if not ws.transport.is_closing():
        await ws.close()
