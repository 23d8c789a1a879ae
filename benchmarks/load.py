"""Load test of the daemon's line transport: many connections, pipelined commands, every reply checked.

Each of ``--connections`` clients sends ``--commands`` ``get_status`` commands with unique
``message_id`` values over its own connection, keeping up to ``--window`` of them in flight
(pipelined: the writer sends a batch whenever the window is half empty, the reader takes replies as
they come). Every reply must arrive, in order, with ``result "0"`` and its command's
``message_id``. Latency is from the write of a command's batch to the read of its reply; so with a
full window it includes queueing behind the commands sent before it, as a pipelining client sees it.

Run it against a daemon it starts itself (a subprocess on a free loopback port, stopped at the end)::

    python benchmarks/load.py
    python benchmarks/load.py --connections 16 --commands 1000 --json load.json

or against a running one (loopback only: this is a load generator)::

    python benchmarks/load.py --to tcp://127.0.0.1:7130

It prints a markdown table. Only the standard library and orjson are used, so it also runs
from a checkout (``tests/test_server.py`` loads this file to run the same load in the test suite).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

__all__ = ["check_loopback", "main", "markdown", "run_load", "served", "spawned", "spawned_server"]

PREFIX = b"action=user_define&channel=0&cmd="


class LoadError(Exception):
    """A reply was missing, out of order, or not a success."""


def check_loopback(url: str) -> None:
    """Refuse to load anything but this machine."""
    if url.startswith("unix://"):
        return
    host = url.partition("://")[2].rpartition(":")[0].strip("[]")
    if not (host in ("localhost", "::1") or host.startswith("127.")):
        raise SystemExit(f"refusing to load {url}: loopback addresses only")


async def _open(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if url.startswith("unix://"):
        return await asyncio.open_unix_connection(url[len("unix://") :])
    if not url.startswith("tcp://"):
        raise SystemExit(f"{url}: use tcp://HOST:PORT or unix:///PATH")
    host, _, port = url[len("tcp://") :].rpartition(":")
    return await asyncio.open_connection(host.strip("[]"), int(port))


async def _one_connection(url: str, index: int, commands: int, window: int, timeout: float) -> list[float]:
    """Run one client; returns the latency of each command in seconds."""
    reader, writer = await _open(url)
    base = index * 1_000_000
    sent_at = [0.0] * commands
    latencies: list[float] = []
    room = asyncio.Event()
    room.set()
    sent = 0

    async def write() -> None:
        nonlocal sent
        while sent < commands:
            await room.wait()
            count = min(window - (sent - len(latencies)), commands - sent)
            if count <= 0:
                room.clear()
                continue
            now = time.perf_counter()
            batch = []
            for i in range(sent, sent + count):
                sent_at[i] = now
                batch.append(PREFIX + b'{"topic":"get_status","message_id":%d}\n' % (base + i))
            sent += count
            writer.write(b"".join(batch))
            room.clear()
            await writer.drain()

    writing = asyncio.ensure_future(write())
    try:
        for i in range(commands):
            line = await asyncio.wait_for(reader.readline(), timeout)
            received = time.perf_counter()
            if not line:
                raise LoadError(f"connection {index}: closed after {i} of {commands} replies")
            reply = orjson.loads(line)
            if reply.get("message_id") != base + i or reply.get("result") != "0":
                raise LoadError(f"connection {index}: reply {i} is {line[:120]!r}")
            latencies.append(received - sent_at[i])
            if sent - len(latencies) <= window // 2:
                room.set()
        await writing
    finally:
        writing.cancel()
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return latencies


async def run_load(
    url: str, *, connections: int = 16, commands: int = 1000, window: int = 100, timeout: float = 30.0
) -> dict[str, Any]:
    """Run the load against ``url``; returns the measurements.

    Raises:
        LoadError: a reply was missing, out of order or not a success.
    """
    check_loopback(url)
    start = time.perf_counter()
    results = await asyncio.gather(
        *(_one_connection(url, index, commands, window, timeout) for index in range(connections))
    )
    wall = time.perf_counter() - start
    latencies = sorted(latency for result in results for latency in result)
    total = len(latencies)
    quantiles = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "connections": connections,
        "commands_per_connection": commands,
        "window": window,
        "replies": total,
        "wall_s": round(wall, 4),
        "replies_per_s": round(total / wall),
        "p50_ms": round(quantiles[49] * 1000, 3),
        "p99_ms": round(quantiles[98] * 1000, 3),
        "max_ms": round(latencies[-1] * 1000, 3),
    }


def markdown(result: dict[str, Any]) -> str:
    """The result as a small markdown table."""
    columns = [
        ("connections", "connections"),
        ("commands/conn", "commands_per_connection"),
        ("window", "window"),
        ("replies", "replies"),
        ("wall s", "wall_s"),
        ("replies/s", "replies_per_s"),
        ("p50 ms", "p50_ms"),
        ("p99 ms", "p99_ms"),
        ("max ms", "max_ms"),
    ]
    head = "| " + " | ".join(title for title, _ in columns) + " |"
    rule = "|" + "|".join("---:" for _ in columns) + "|"
    row = "| " + " | ".join(str(result[key]) for _, key in columns) + " |"
    return "\n".join([head, rule, row])


@contextlib.contextmanager
def spawned(work: Path, *args: str, log: Path | None = None) -> Iterator[tuple[subprocess.Popen[bytes], list[str]]]:
    """``iotvideo-signaling serve ARGS`` as a subprocess with its ready file in ``work`` and its log
    (stderr) in ``log`` when given; yields the process and its bound URLs once it listens, and
    stops it (SIGTERM, unless it has exited already) at the end."""
    ready = work / "ready.json"
    with contextlib.suppress(FileNotFoundError):
        ready.unlink()
    command = [sys.executable, "-m", "iotvideo_signaling", "serve", *args, "--ready-file", str(ready)]
    with contextlib.ExitStack() as stack:
        stderr = stack.enter_context(open(log, "wb")) if log is not None else None
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            deadline = time.monotonic() + 30
            while not ready.exists():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the daemon did not start")
                time.sleep(0.02)
            yield process, list(json.loads(ready.read_text(encoding="utf-8"))["listen"])
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def served(work: Path, *args: str) -> Iterator[tuple[int, list[str]]]:
    """``iotvideo-signaling serve ARGS`` as a subprocess with its ready file in ``work``; yields its
    pid and bound URLs once it listens, and stops it (SIGTERM) at the end."""
    with spawned(work, *args) as (process, urls):
        yield process.pid, urls


@contextlib.contextmanager
def spawned_server(max_connections: int = 64) -> Iterator[str]:
    """A daemon on a free loopback port in a temporary state directory; yields its tcp:// URL."""
    with tempfile.TemporaryDirectory(prefix="iotvideo-load-") as tmp:
        config = Path(tmp, "config.toml")
        config.write_text(f"[device]\nmax_connections = {max_connections}\n", encoding="utf-8")
        args = ["--config", str(config), "--state-dir", str(Path(tmp, "state")), "--listen", "tcp://127.0.0.1:0"]
        with served(Path(tmp), *args, "--log-level", "warning") as (_, urls):
            yield urls[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--to", metavar="URL", help="a running daemon (default: start one)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--commands", type=int, default=1000, help="per connection")
    parser.add_argument("--window", type=int, default=100, help="commands in flight per connection")
    parser.add_argument("--json", metavar="FILE", help="also write the result here")
    args = parser.parse_args(argv)

    def load(url: str) -> dict[str, Any]:
        return asyncio.run(run_load(url, connections=args.connections, commands=args.commands, window=args.window))

    if args.to:
        result = load(args.to)
    else:
        with spawned_server(max(args.connections + 4, 32)) as url:
            result = load(url)
    result["python"] = sys.version.split()[0]
    result["cpus"] = os.cpu_count()
    print(markdown(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
