"""Attacks with messages: oversize lines, clients that do not read, a flood of events."""

from __future__ import annotations

import asyncio
import contextlib
import time

import orjson

from iotvideo_signaling.server.websocket import EVENT_QUEUE

from .clients import PREFIX, REPLY_TIMEOUT, Panel, command, open_websocket, open_wire
from .outcome import (
    MAX_MESSAGE_SIZE,
    MIB,
    Outcome,
    Scale,
    Target,
    gather_within,
    hang_up,
    has_websockets,
    log_figures,
    peak_rss_figure,
)

__all__ = ["GREEDY", "OVERSIZE", "RSS_GROWTH_MIB", "events", "non_readers", "oversize"]

#: The answer to a line or message over ``max_message_size``.
OVERSIZE = b'{"confirmation_topic":"","result":"1","reason":"command exceeds %d bytes"}' % MAX_MESSAGE_SIZE
#: MiB the daemon's peak resident memory may grow by while it is sent oversize lines.
RSS_GROWTH_MIB = 8


# -- oversize lines --------------------------------------------------------------------------------


async def _huge_line(url: str, size: int, message_id: int) -> list[str]:
    """A ``size``-byte line then a command; returns what went wrong (nothing: [])."""
    wire = await open_wire(url)
    try:
        await wire.send(b"x" * size + b"\n" + command("version", message_id) + b"\n")
        first, second = await wire.line(), await wire.line()
    except asyncio.TimeoutError:
        return [f"{url}: no reply to a {size}-byte line within {REPLY_TIMEOUT:.0f} s"]
    finally:
        wire.close()
    problems = []
    if first != OVERSIZE:
        problems.append(f"{url}: a {size}-byte line was answered {first!r}")
    if second is None or orjson.loads(second).get("message_id") != message_id:
        problems.append(f"{url}: the command after a {size}-byte line was answered {second!r}")
    return problems


async def _edges(url: str) -> list[str]:
    """A line one byte over the limit (error 1), then one of exactly the limit (not that error)."""
    wire = await open_wire(url)
    try:
        over = await wire.request(b"z" * (MAX_MESSAGE_SIZE + 1))
        exact = await wire.request(b"z" * MAX_MESSAGE_SIZE)
        after = await wire.request(command("version", 7))
    finally:
        wire.close()
    problems = []
    if over != OVERSIZE:
        problems.append(f"{url}: a line one byte over the limit was answered {over!r}")
    if exact is None or exact == OVERSIZE:
        problems.append(f"{url}: a line of exactly the limit was answered {exact!r}")
    if after is None or orjson.loads(after).get("message_id") != 7:
        problems.append(f"{url}: the command after them was answered {after!r}")
    return problems


async def _ws_oversize(url: str, size: int) -> list[str]:
    """One byte over the limit (error 1), a command, then ``size`` bytes (close 1009)."""
    from websockets.exceptions import ConnectionClosed

    ws = await open_websocket(url)
    problems = []
    try:
        await ws.send("z" * (MAX_MESSAGE_SIZE + 1))
        reply = await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT)
        if reply != OVERSIZE.decode():
            problems.append(f"{url}: a message one byte over the limit was answered {reply!r}")
        await ws.send(command("version", 3))
        reply = await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT)
        if orjson.loads(reply).get("message_id") != 3:
            problems.append(f"{url}: the command after it was answered {reply!r}")
        with contextlib.suppress(ConnectionClosed):
            await ws.send(b"x" * size)
            reply = await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT)
            problems.append(f"{url}: a {size}-byte message was answered {reply!r}")
        code = ws.close_code
        if code != 1009:
            problems.append(f"{url}: a {size}-byte message closed the connection with {code}, not 1009")
    except asyncio.TimeoutError:
        problems.append(f"{url}: no reply within {REPLY_TIMEOUT:.0f} s")
    finally:
        await hang_up(ws)
    return problems


def _line_urls(target: Target) -> list[str]:
    """The daemon's ``tcp://`` and ``unix://`` URLs.

    Raises:
        LookupError: it has neither (the scenario is skipped).
    """
    urls = [url for url in (target.url("tcp"), target.url("unix")) if url is not None]
    if not urls:
        raise LookupError("needs a tcp:// or unix:// URL")
    return urls


async def oversize(target: Target, scale: Scale) -> Outcome:
    """Huge lines at once, lines around the limit, and WebSocket messages over it; a panel meanwhile."""
    lines = _line_urls(target)
    ws = target.url("ws")
    outcome = Outcome("oversize")
    size = scale.oversize
    outcome.done = (
        f"{scale.oversize_clients} lines of {size / MIB:.0f} MiB at once, lines of limit+1 and limit bytes "
        f"on {' and '.join(url.partition(':')[0] for url in lines)}"
        + (f"; ws: limit+1 bytes, then {size / MIB:.0f} MiB" if ws else "")
        + "; a panel meanwhile"
    )
    before = target.peak_rss_kib()
    panel = Panel(lines[0])
    await panel.connect()
    stop = asyncio.Event()
    problems: list[str] = []

    async def attack() -> None:
        try:
            huge = [_huge_line(lines[i % len(lines)], size, 100 + i) for i in range(scale.oversize_clients)]
            for found in await asyncio.gather(*huge, *(_edges(url) for url in lines)):
                problems.extend(found)
            if ws is not None and has_websockets():
                problems.extend(await _ws_oversize(ws, size))
        finally:
            stop.set()

    finished = await gather_within(4 * REPLY_TIMEOUT, attack(), panel.run(stop))
    outcome.expect(finished, "the attack did not stop in time")
    outcome.failures.extend(problems)
    outcome.expect(not panel.failures, f"the panel was not served: {panel.failures}")
    outcome.figures["panel answered, p50/max"] = panel.figure()
    after = target.peak_rss_kib()
    if before is not None and after is not None:
        growth = (after - before) / 1024
        outcome.figures["peak RSS growth"] = f"{growth:.1f} MiB (to {after / 1024:.1f})"
        outcome.expect(growth <= RSS_GROWTH_MIB, f"the daemon's peak RSS grew by {growth:.1f} MiB")
    if ws is not None and not has_websockets():
        outcome.figures["ws"] = "not tried: no websockets package"
    return outcome


# -- clients that do not read ----------------------------------------------------------------------


#: A command with a big reply: get_status with the longest message_id the daemon echoes (128
#: characters), so that a client that does not read fills the socket buffers in fewer commands.
GREEDY = PREFIX + orjson.dumps({"topic": "get_status", "message_id": "n" * 128})


async def _deaf_line(url: str, deadline: float) -> float | None:
    """Send commands and never read; returns the seconds until the daemon dropped it (None: it did not)."""
    wire = await open_wire(url, deaf=True, rcvbuf=4096)
    batch = (GREEDY + b"\n") * 100
    started = time.monotonic()
    try:
        while not wire.is_closed and time.monotonic() < deadline:
            send = asyncio.ensure_future(wire.send(batch))
            await asyncio.wait([send, wire.closed], timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
            send.cancel()
    finally:
        wire.reset()
    return time.monotonic() - started if wire.is_closed else None


async def _deaf_websocket(url: str, deadline: float) -> float | None:
    """The same with the ``websockets`` client, which stops reading once 4 messages wait."""
    from websockets.exceptions import ConnectionClosed

    ws = await open_websocket(url, rcvbuf=4096, max_queue=4)
    started = time.monotonic()
    try:
        while time.monotonic() < deadline:
            try:
                await asyncio.wait_for(ws.send(GREEDY), max(0.1, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                break
        return None
    except ConnectionClosed:
        return time.monotonic() - started
    finally:
        ws.transport.abort()


async def non_readers(target: Target, scale: Scale) -> Outcome:
    """Clients that send and never read, on every transport; a panel meanwhile."""
    outcome = Outcome("non-readers")
    wait = target.write_timeout
    urls = _line_urls(target)
    ws = target.url("ws") if has_websockets() else None
    schemes = [url.partition(":")[0] for url in [*urls, *([ws] if ws else [])]]
    outcome.done = (
        f"{scale.non_readers} clients per transport ({', '.join(schemes)}) send commands and never read, "
        f"write_timeout {wait:g} s; a panel meanwhile"
    )
    offset = target.log_size()
    panel = Panel(urls[0])
    await panel.connect()
    stop = asyncio.Event()
    deadline = time.monotonic() + wait + 4 * REPLY_TIMEOUT  # filling the socket buffers may take a while
    deaf = [(url, _deaf_line(url, deadline)) for url in urls for _ in range(scale.non_readers)]
    if ws is not None:
        deaf += [(ws, _deaf_websocket(ws, deadline)) for _ in range(scale.non_readers)]
    dropped: list[float | None] = []

    async def attack() -> None:
        try:
            dropped.extend(await asyncio.gather(*(client for _, client in deaf)))
        finally:
            stop.set()

    finished = await gather_within(wait + 5 * REPLY_TIMEOUT, attack(), panel.run(stop))
    outcome.expect(finished, "the attack did not stop in time")
    for scheme in dict.fromkeys(schemes):
        seconds = [s for (url, _), s in zip(deaf, dropped) if url.startswith(scheme + ":")]
        kept = [s for s in seconds if s is None]
        outcome.expect(not kept, f"{len(kept)} {scheme} non-readers were never dropped")
        early = [round(s, 2) for s in seconds if s is not None and s < wait]
        outcome.expect(not early, f"{scheme} non-readers dropped before write_timeout, after {early} s")
        times = [s for s in seconds if s is not None]
        outcome.figures[f"{scheme} dropped after"] = f"{min(times):.1f}-{max(times):.1f} s" if times else "never"
    outcome.expect(not panel.failures, f"the panel was not served: {panel.failures}")
    outcome.figures["panel answered, p50/max"] = panel.figure()
    log_figures(outcome, target, offset, bound=False)
    peak_rss_figure(outcome, target)
    return outcome


# -- a flood of events -----------------------------------------------------------------------------


async def events(target: Target, scale: Scale) -> Outcome:
    """Image flips pipelined in one write, each an event for a WebSocket client that reads everything.

    The flips are handled before the daemon's sender runs, so past its queue (``EVENT_QUEUE``) the
    oldest events give way: the reader must stay connected and end with the newest state. A bind
    tone after the flips marks the end: its event is queued behind every flip's.
    """
    url, ws_url = target.need("tcp"), target.need("ws")
    outcome = Outcome("events")
    count = scale.flips
    outcome.done = f"a client pipelines {count} image flips in one write; a WebSocket client reads every message"
    if not has_websockets():
        outcome.skipped = "no websockets package"
        return outcome
    from websockets.exceptions import ConnectionClosed

    offset = target.log_size()
    ws = await open_websocket(ws_url)
    flips, replies, last_mode, marked = 0, [], None, False

    async def read() -> None:
        nonlocal flips, last_mode, marked
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                body = orjson.loads(message)
                if "event" not in body:
                    replies.append(body)
                elif body["event"].get("kind") == "flip":
                    flips += 1
                    last_mode = body["event"]["data"].get("mode")
                elif body["event"].get("kind") == "tone":
                    marked = True

    reading = asyncio.ensure_future(read())
    wire = await open_wire(url)
    try:
        modes = ["flip" if i % 2 == 0 else "normal" for i in range(count)]
        started = time.perf_counter()
        await wire.send(b"".join(command("Mirror_flip", i, mode=mode) + b"\n" for i, mode in enumerate(modes)))
        answered = 0
        for i in range(count):
            line = await wire.line()
            if line is None or orjson.loads(line).get("message_id") != i:
                outcome.failures.append(f"flip {i} was answered {line!r}")
                break
            answered += 1
        outcome.figures["flips answered"] = f"{answered} in {time.perf_counter() - started:.2f} s"
        await wire.send(command("bind_status", count, status="success") + b"\n")
        await wire.line()
        deadline = time.monotonic() + REPLY_TIMEOUT
        while not marked and not reading.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if not reading.done():
            await ws.send(command("version", 1))
            while not replies and not reading.done() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        outcome.figures["events received"] = f"{flips}/{count}"
        outcome.expect(not reading.done(), f"the WebSocket client was dropped after {flips} of {count} events")
        outcome.expect(marked, "the bind tone's event after the flips never came")
        least = min(count, EVENT_QUEUE - 1)  # the tone's event may take a full queue's last place
        outcome.expect(flips >= least, f"the WebSocket client got {flips} of {count} events (at least {least})")
        outcome.expect(last_mode == modes[-1], f"the last event said {last_mode!r}, the last flip {modes[-1]!r}")
    finally:
        wire.close()
        reading.cancel()
        await hang_up(ws)
    log_figures(outcome, target, offset, bound=True)
    return outcome
