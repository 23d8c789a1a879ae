"""Attacks on the connection slots and the daemon's files: slowloris, bursts, silent WebSockets."""

from __future__ import annotations

import asyncio
import resource
import socket
import struct
import time

import orjson

from .clients import (
    REPLY_TIMEOUT,
    Dribblers,
    Newcomers,
    Panel,
    command,
    connect_blocking,
    latency_ms,
    open_websocket,
    read_waiting,
)
from .outcome import Outcome, Scale, Target, gather_within, hang_up, has_websockets, log_figures, peak_rss_figure

__all__ = ["IDLE_EVICTED", "burst", "silent_websockets", "slowloris"]

#: What a connection is told when a newcomer takes its slot (without tokens).
IDLE_EVICTED = b'{"confirmation_topic":"","result":"5","reason":"closed: idle while every connection slot was taken"}'


async def slowloris(target: Target, scale: Scale) -> Outcome:
    """Dribblers reconnecting as they are evicted, a panel, newcomers (see the package's docstring)."""
    url = target.need("tcp")
    outcome = Outcome("slowloris")
    outcome.done = (
        f"{scale.slowloris} connections dribble a never-ending line for {scale.slowloris_seconds:.0f} s, "
        "reconnecting when closed; a panel sends a command every 0.1 s; newcomers connect, send one, hang up"
    )
    offset = target.log_size()
    panel = Panel(url)
    await panel.connect()
    attacker = Dribblers(url, scale.slowloris)
    newcomers = Newcomers(url)
    stop = asyncio.Event()

    halfway = time.monotonic() + scale.slowloris_seconds / 2

    async def clock() -> None:
        await asyncio.sleep(scale.slowloris_seconds)
        stop.set()

    finished = await gather_within(
        scale.slowloris_seconds + 2 * REPLY_TIMEOUT, clock(), attacker.run(stop), panel.run(stop), newcomers.run(stop)
    )
    outcome.expect(finished, "the attack did not stop in time")
    outcome.expect(not panel.failures, f"the panel was not served: {panel.failures}")
    late = sum(1 for when in newcomers.served_at if when > halfway)
    outcome.expect(late > 0, f"no newcomer was served in the second half of the attack: {dict(newcomers.got)}")
    outcome.expect(attacker.closed_by_daemon > 0, "no attacking connection was evicted")
    unexpected = {told: count for told, count in attacker.told.items() if told != IDLE_EVICTED + b"\n"}
    outcome.expect(not unexpected, f"attacking connections closed without being told they were evicted: {unexpected}")
    outcome.figures["panel answered, p50/max"] = panel.figure()
    outcome.figures["newcomers served"] = f"{newcomers.got['ok']}/{sum(newcomers.got.values())}"
    outcome.figures["newcomer p50/max ms"] = latency_ms(newcomers.latencies)
    outcome.figures["attacker connects / evicted"] = f"{attacker.connects} / {attacker.closed_by_daemon}"
    log_figures(outcome, target, offset, bound=True)
    peak_rss_figure(outcome, target)
    return outcome


# -- bursts of connections -------------------------------------------------------------------------


def _open_and_close(url: str, count: int) -> float:
    """Open and close ``count`` connections, every other one with a reset; returns the seconds it took."""
    started = time.perf_counter()
    for i in range(count):
        sock = connect_blocking(url)
        if i % 2:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    return time.perf_counter() - started


def _open_and_hold(url: str, count: int) -> tuple[list[socket.socket], float]:
    """Open ``count`` connections and send nothing; returns them and the seconds it took."""
    started = time.perf_counter()
    held: list[socket.socket] = []
    try:
        for _ in range(count):
            held.append(connect_blocking(url))
    except BaseException:
        for sock in held:
            sock.close()
        raise
    return held, time.perf_counter() - started


def _raise_file_limit(wanted: int) -> bool:
    """Let this process open ``wanted`` files, if the hard limit allows; False when it does not."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return True
    if hard != resource.RLIM_INFINITY and hard < wanted:
        return False
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return True


async def burst(target: Target, scale: Scale) -> Outcome:
    """Connections opened and closed, then opened and held; a newcomer after each."""
    url = target.need("tcp")
    count = scale.burst
    outcome = Outcome("burst")
    outcome.done = (
        f"{count} connections opened and closed (FIN, RST), then {count} opened and held; a newcomer after each"
    )
    if not _raise_file_limit(count + 256):
        outcome.skipped = f"this process may not open {count + 256} files"
        return outcome
    offset = target.log_size()
    newcomer = Newcomers(url)
    seconds = await asyncio.to_thread(_open_and_close, url, count)
    outcome.figures["open+close"] = f"{count / seconds:,.0f}/s"
    got = await newcomer.once(1)
    outcome.expect(got == "ok", f"the newcomer after the open+close burst: {got}")
    held, seconds = await asyncio.to_thread(_open_and_hold, url, count)
    try:
        outcome.figures["open+hold"] = f"{count / seconds:,.0f}/s"
        got = await newcomer.once(2)
        outcome.expect(got == "ok", f"the newcomer after the open+hold burst: {got}")
        evicted = sum(1 for sock in held if read_waiting(sock) == IDLE_EVICTED + b"\n")
        outcome.figures["held ones told they were evicted"] = evicted
    finally:
        for sock in held:
            sock.close()
    outcome.figures["newcomer ms"] = latency_ms(newcomer.latencies)
    if target.log is not None:
        size, _ = target.log_since(offset)
        outcome.figures["log per connection"] = f"{size / (2 * count):.0f} B"
    log_figures(outcome, target, offset, bound=True)
    peak_rss_figure(outcome, target)
    return outcome


async def _websocket_newcomer(url: str) -> str:
    """``"ok"`` when a WebSocket client is admitted and answered; else what happened."""
    from websockets.exceptions import WebSocketException

    try:
        ws = await open_websocket(url)
    except (OSError, asyncio.TimeoutError, WebSocketException) as exc:
        return f"cannot connect ({type(exc).__name__})"
    try:
        await ws.send(command("version", 1))
        while True:
            reply = orjson.loads(await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT))
            if "event" not in reply:
                return "ok" if reply.get("message_id") == 1 else f"answered {reply}"
    except (asyncio.TimeoutError, WebSocketException) as exc:
        return f"not answered ({type(exc).__name__})"
    finally:
        await hang_up(ws)


async def silent_websockets(target: Target, scale: Scale) -> Outcome:
    """Connections to ws:// that never send their handshake, past the daemon's limit of open files."""
    ws_url, url = target.need("ws"), target.need("tcp")
    outcome = Outcome("ws-burst")
    count = scale.silent
    limit = f"the daemon may open {target.max_files} files" if target.max_files else "the daemon's own file limit"
    outcome.done = f"{count} connections to ws:// held without a handshake ({limit}); a newcomer on tcp and on ws"
    if not has_websockets():
        outcome.skipped = "no websockets package"
        return outcome
    if not _raise_file_limit(count + 256):
        outcome.skipped = f"this process may not open {count + 256} files"
        return outcome
    offset = target.log_size()
    before = target.peak_rss_kib()
    held, seconds = await asyncio.to_thread(_open_and_hold, ws_url, count)
    try:
        outcome.figures["held"] = f"{count} in {seconds:.1f} s"
        outcome.figures["daemon open files"] = target.open_files()
        newcomer = Newcomers(url)
        got_line, got_ws = await asyncio.gather(newcomer.once(1), _websocket_newcomer(ws_url))
        outcome.expect(got_line == "ok", f"the newcomer on tcp: {got_line}")
        outcome.expect(got_ws == "ok", f"the newcomer on ws: {got_ws}")
        outcome.figures["tcp newcomer ms"] = latency_ms(newcomer.latencies)
    finally:
        for sock in held:
            sock.close()
    after = target.peak_rss_kib()
    if before is not None and after is not None:
        outcome.figures["peak RSS growth"] = f"{(after - before) / 1024:.1f} MiB"
    log_figures(outcome, target, offset, bound=True)
    return outcome
