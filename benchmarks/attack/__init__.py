"""Attacks on the daemon, bounded and on loopback only: ``python -m benchmarks.attack``.

Each scenario runs against a daemon of its own (``iotvideo-signaling serve`` as a subprocess on
free loopback ports, a temporary state directory, the default log level, info; ``max_connections
32`` and ``max_message_size 16384``, the defaults), stops by itself, and gives a verdict and figures:

* **slowloris**: connections dribble a line that never ends, a byte every 0.1 s, and reconnect
  whenever the daemon closes them; a panel connected before sends a command every 0.1 s, and
  newcomers connect, send one command and hang up. The panel must get every answer, a newcomer
  must be served now and then, every attacking connection closed must have been told it was
  evicted, and the log must get no more than a few WARNING lines.
* **burst**: connections opened and closed at once (FIN and reset alternately), then as many
  opened and held; a newcomer after each must be served, and the log get a few WARNING lines
  whatever the size of the burst (refusals and evictions are rate-limited).
* **ws-burst**: connections to ``ws://`` that never send their handshake, more than the daemon may
  open files (it is started with 1024, systemd's default); a newcomer on ``tcp://`` and one on
  ``ws://`` must be served, and the log get a few WARNING lines.
* **oversize**: lines of 10 MiB on ``tcp://`` and ``unix://`` at once, lines one byte over the
  limit and of exactly the limit, WebSocket messages one byte over it and of 10 MiB. Each oversize
  line is answered with error 1 and its connection stays usable, the 10 MiB message closes its
  WebSocket with 1009; the daemon's peak resident memory (VmHWM) may grow by 8 MiB at most, and a
  panel must be served meanwhile.
* **non-readers**: clients that send commands and never read, on ``tcp://``, ``unix://`` and
  ``ws://`` (the ``websockets`` library's client), ``write_timeout`` set short: each must be
  dropped, and not before ``write_timeout``, while a panel is served.
* **events**: a client pipelines image flips in one write while a WebSocket client reads every
  message: the reader must get every event and stay connected, and the log stay small.
* **sigterm**: clients pipelining commands on every transport and one flipping the image, then
  SIGTERM: the daemon must exit 0 within 20 s; every reply received must be a complete JSON reply
  with result ``"0"`` answering its command, in order; WebSocket clients must get close 1001; the
  state file must parse and hold the last flip acknowledged; no temporary file, socket file or
  ready file may be left.

Verdicts check behaviour, never speed: the only time limits are deadlines with wide margins that
stop a scenario whose defence failed. The figures (latencies, rates, log bytes, memory) are what
this machine measured, reported and not checked. Run::

    python -m benchmarks.attack                  # full size, a minute or two
    python -m benchmarks.attack --short          # the size tests/test_server_attack.py runs
    python -m benchmarks.attack slowloris burst --json attack.json
    python -m benchmarks.attack --to tcp://127.0.0.1:7130 --to ws://127.0.0.1:7131

With ``--to`` (loopback addresses and Unix sockets only) the scenarios attack a running daemon on
the transports given; the figures that need its process (memory, log) are left out, and so are the
verdicts on its log, and the sigterm scenario. Only the standard library and orjson are used, and
the ``websockets`` package for the WebSocket clients (their parts are skipped without it).
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import shutil
import tempfile
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..load import check_loopback, spawned
from .connections import burst, silent_websockets, slowloris
from .messages import events, non_readers, oversize
from .outcome import FULL, MAX_MESSAGE_SIZE, SHORT, Outcome, Scale, Target
from .shutdown import sigterm

__all__ = ["FULL", "SCENARIOS", "SHORT", "Outcome", "Scale", "Scenario", "markdown", "run_scenario"]

Attack = Callable[[Target, Scale], Coroutine[Any, Any, Outcome]]


@dataclass(frozen=True)
class Scenario:
    """An attack and the daemon it wants: its listeners, its config (``{write_timeout}`` filled
    in from the scale) and the number of files it may open (None: as many as the runner)."""

    attack: Attack
    listen: tuple[str, ...]
    config: str = ""
    max_files: int | None = None


_LINES = ("tcp://127.0.0.1:0", "unix://{sockets}/s.sock")
_DEVICE = f"[device]\nmax_connections = 32\nmax_message_size = {MAX_MESSAGE_SIZE}\n"
SCENARIOS: dict[str, Scenario] = {
    "slowloris": Scenario(slowloris, ("tcp://127.0.0.1:0",), _DEVICE),
    "burst": Scenario(burst, ("tcp://127.0.0.1:0",), _DEVICE),
    "ws-burst": Scenario(silent_websockets, ("tcp://127.0.0.1:0", "ws://127.0.0.1:0"), _DEVICE, max_files=1024),
    "oversize": Scenario(oversize, (*_LINES, "ws://127.0.0.1:0"), _DEVICE),
    "non-readers": Scenario(
        non_readers,
        (*_LINES, "ws://127.0.0.1:0"),
        _DEVICE + "[server]\nwrite_timeout = {write_timeout}\nwrite_buffer_size = 65536\n",
    ),
    "events": Scenario(events, ("tcp://127.0.0.1:0", "ws://127.0.0.1:0"), _DEVICE),
    "sigterm": Scenario(sigterm, (*_LINES, "ws://127.0.0.1:0"), _DEVICE),
}


def run_scenario(name: str, scale: Scale, *, work: Path | None = None, to: list[str] | None = None) -> Outcome:
    """Run the scenario ``name`` against a daemon of its own in ``work`` (default: a temporary
    directory), or against the running daemon at the URLs ``to``.

    Raises:
        SystemExit: a URL of ``to`` is not on this machine, or the daemon did not start.
    """
    scenario = SCENARIOS[name]
    if to:
        for url in to:
            check_loopback(url)
        return _run(name, scenario.attack, Target(list(to), write_timeout=scale.write_timeout), scale)
    with contextlib.ExitStack() as stack:
        if work is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ivs-attack-")))
        work.mkdir(parents=True, exist_ok=True)
        target = stack.enter_context(_daemon(scenario, scale, work))
        outcome = _run(name, scenario.attack, target, scale)
        status = target.process.poll() if target.process is not None else None
        if status not in (None, 0) and name != "sigterm":
            outcome.failures.append(f"the daemon died (exit status {status})")
        return outcome


def _run(name: str, attack: Attack, target: Target, scale: Scale) -> Outcome:
    try:
        return asyncio.run(attack(target, scale))
    except LookupError as exc:  # the target lacks a transport the scenario needs
        return Outcome(name, skipped=str(exc))


@contextlib.contextmanager
def _daemon(scenario: Scenario, scale: Scale, work: Path) -> Iterator[Target]:
    """The daemon ``scenario`` wants, in ``work``; its Unix sockets in a short temporary directory."""
    sockets = tempfile.mkdtemp(prefix="ivs-attack-")
    try:
        config = work / "config.toml"
        config.write_text(scenario.config.format(write_timeout=scale.write_timeout), encoding="utf-8")
        args = ["--config", str(config), "--state-dir", str(work / "state")]
        for url in scenario.listen:
            args += ["--listen", url.format(sockets=sockets)]
        log = work / "serve.log"
        with contextlib.ExitStack() as stack:
            with _files_limited(scenario.max_files):
                process, urls = stack.enter_context(spawned(work, *args, log=log))
            yield Target(urls, process, log, work, scale.write_timeout, scenario.max_files)
    finally:
        shutil.rmtree(sockets, ignore_errors=True)


@contextlib.contextmanager
def _files_limited(limit: int | None) -> Iterator[None]:
    """Lower this process's soft limit of open files to ``limit`` until the daemon is started
    (it inherits the limit, as from ``ulimit -n`` in a shell); then restore it."""
    if limit is None:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit, soft), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def markdown(outcomes: list[Outcome]) -> str:
    """The outcomes as a markdown table: scenario, what was done, verdict, figures."""
    rows = ["| scenario | what was done | verdict | figures |", "|---|---|---|---|"]
    for outcome in outcomes:
        if outcome.skipped:
            verdict = f"skipped: {outcome.skipped}"
        else:
            verdict = "pass" if outcome.passed else "**FAIL**: " + "; ".join(outcome.failures)
        figures = "; ".join(f"{key}: {value}" for key, value in outcome.figures.items())
        rows.append(f"| {outcome.scenario} | {outcome.done} | {verdict.replace('|', '/')} | {figures} |")
    return "\n".join(rows)
