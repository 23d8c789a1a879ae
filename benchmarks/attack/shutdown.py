"""SIGTERM under load: the daemon stops promptly and cleanly while clients pipeline commands."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from .clients import REPLY_TIMEOUT, LaggingPipeliner, Pipeliner, command, open_websocket
from .outcome import Outcome, Scale, Target, hang_up, has_websockets

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

__all__ = ["STOP_WITHIN", "sigterm"]

#: Seconds the daemon may take to exit after SIGTERM (it drains connections for at most 2 s).
STOP_WITHIN = 20.0


def _flip(i: int) -> tuple[str, dict[str, str]]:
    return "Mirror_flip", {"mode": "flip" if i % 2 == 0 else "normal"}


def _query(i: int) -> tuple[str, dict[str, str]]:
    return ("get_status", {}) if i % 2 == 0 else ("version", {})


class WebSocketLoad:
    """Commands pipelined on a WebSocket (up to ``window`` in flight) until the daemon closes it;
    every reply checked for its ``message_id`` and ``result "0"``, events skipped."""

    def __init__(self, url: str, window: int = 32) -> None:
        self.url = url
        self.window = window
        self.answered = 0
        self.problems: list[str] = []
        self.closed = "open"  # how the connection ended, as the client saw it
        self._progress = asyncio.Event()

    async def run(self) -> None:
        from websockets.exceptions import ConnectionClosed

        ws = await open_websocket(self.url)
        receiving = asyncio.ensure_future(self._receive(ws))
        sent = 0
        try:
            with contextlib.suppress(ConnectionClosed):
                while not receiving.done():
                    if sent - self.answered >= self.window:
                        self._progress.clear()
                        waiter = asyncio.ensure_future(self._progress.wait())
                        await asyncio.wait([waiter, receiving], timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
                        waiter.cancel()
                        continue
                    await ws.send(command("get_status", sent))
                    sent += 1
            await asyncio.wait_for(receiving, STOP_WITHIN + REPLY_TIMEOUT)
        except asyncio.TimeoutError:
            self.problems.append(f"{self.url}: the daemon did not close the connection")
        finally:
            receiving.cancel()
            await hang_up(ws)

    async def _receive(self, ws: ClientConnection) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            while True:
                message = await ws.recv()
                reply = orjson.loads(message)
                if "event" in reply:
                    continue
                if reply.get("message_id") != self.answered or reply.get("result") != "0":
                    self.problems.append(f"{self.url}: reply {self.answered} is {message[:120]!r}")
                self.answered += 1
                self._progress.set()
        except ConnectionClosed as exc:
            self.closed = f"close {exc.rcvd.code}" if exc.rcvd is not None else f"no close frame ({exc.__cause__!r})"
        except orjson.JSONDecodeError as exc:
            self.problems.append(f"{self.url}: reply {self.answered} is not JSON ({exc})")


async def sigterm(target: Target, scale: Scale) -> Outcome:
    """Pipelining clients on every transport, one flipping the image; SIGTERM; then what is left."""
    outcome = Outcome("sigterm")
    lines = [url for url in (target.url("tcp"), target.url("unix")) if url is not None]
    ws = target.url("ws") if has_websockets() else None
    outcome.done = (
        f"{scale.load_clients} clients pipelining (window 64) on {' and '.join(u.partition(':')[0] for u in lines)}"
        + (", 2 on ws" if ws else "")
        + f", one more lagging behind (window 1000), one flipping the image; SIGTERM after {scale.load_seconds:g} s"
    )
    process = target.process
    if process is None or target.work is None:
        outcome.skipped = "needs a daemon of its own (not with --to)"
        return outcome
    if not lines:
        outcome.skipped = "needs a tcp:// or unix:// URL"
        return outcome
    flipper = Pipeliner(lines[-1], _flip, base=0, window=1)  # one at a time, as a panel flips
    lagging = LaggingPipeliner(lines[0], _query, base=1_000_000, window=1000)  # a line cut short would show
    loaders = [flipper, lagging] + [
        Pipeliner(lines[i % len(lines)], _query, base=(i + 2) * 1_000_000, window=64) for i in range(scale.load_clients)
    ]
    websockets = [WebSocketLoad(ws) for _ in range(2)] if ws else []
    running = [asyncio.ensure_future(client.run()) for client in loaders]
    running += [asyncio.ensure_future(client.run()) for client in websockets]
    await asyncio.sleep(scale.load_seconds)

    def answered() -> int:
        return sum(client.answered for client in loaders) + sum(client.answered for client in websockets)

    before = answered()
    lagging.hurry()  # it reads what the daemon still holds for it, as the daemon flushes it
    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        status: int | None = await asyncio.to_thread(process.wait, STOP_WITHIN)
    except subprocess.TimeoutExpired:
        status = None
    took = time.monotonic() - signalled
    done, pending = await asyncio.wait(running, timeout=REPLY_TIMEOUT)
    for task in pending:
        task.cancel()
    outcome.expect(status == 0, f"the daemon exited with {status}" if status is not None else "the daemon did not exit")
    outcome.expect(not pending, f"{len(pending)} clients did not see the daemon close their connection")
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            outcome.failures.append(f"a client failed: {task.exception()!r}")
    for loader in loaders:
        outcome.failures.extend(loader.errors[:3])
    for client in websockets:
        outcome.failures.extend(client.problems[:3])
    closes = [client.closed for client in websockets]
    outcome.expect(all(closed == "close 1001" for closed in closes), f"WebSocket clients saw {closes}, not close 1001")
    outcome.expect(flipper.answered > 0, "no flip was answered before the SIGTERM")
    outcome.failures.extend(_left_behind(target, flipper))
    outcome.figures["exit"] = f"{status} after {took:.2f} s"
    outcome.figures["replies, all checked"] = f"{answered():,} ({answered() - before:,} after SIGTERM)"
    outcome.figures["flips answered"] = flipper.answered
    if target.log is not None:
        log = target.log.read_text(errors="replace")
        aborted = log.count("did not close in time; aborting it")
        outcome.figures["aborted at shutdown"] = aborted
        outcome.expect(aborted == 0, f"{aborted} clients that read were aborted instead of closed at shutdown")
        outcome.expect(log.rstrip().endswith("stopped"), "the log does not end with 'stopped'")
    return outcome


def _left_behind(target: Target, flipper: Pipeliner) -> list[str]:
    """What is wrong with the state file, and the files the daemon should have removed."""
    assert target.work is not None
    state_dir = target.work / "state"
    try:
        state = orjson.loads((state_dir / "state.json").read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        return [f"the state file cannot be read: {exc}"]
    problems = []
    last = flipper.last_answered[1]["mode"] if flipper.last_answered is not None else None
    if last is not None and state.get("flip") != last:
        problems.append(f"the state file says flip {state.get('flip')!r}, the last flip answered {last!r}")
    temporaries = [path.name for path in state_dir.rglob("*.tmp")]
    if temporaries:
        problems.append(f"temporary files left: {temporaries}")
    if (target.work / "ready.json").exists():
        problems.append("the ready file was left")
    sockets = [url[len("unix://") :] for url in target.urls if url.startswith("unix://")]
    problems += [f"the socket file {path} was left" for path in sockets if Path(path).exists()]
    return problems
