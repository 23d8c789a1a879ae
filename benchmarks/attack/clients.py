"""The clients of the attacks: the attackers, and the well-behaved clients they must not hurt.

Every client talks to loopback addresses or Unix sockets only (the runner checks the URLs) and
stops by itself: each wait has a deadline. Only the standard library and orjson are used, except
for the WebSocket clients, which are the ``websockets`` library's (imported when one is opened).

* :class:`Wire`: a line-transport connection that sees every byte the daemon sends, so a reply
  cut short by a close is seen as such (:attr:`Wire.leftover`).
* :class:`Panel`: one connection, one command at a time, each reply checked; :class:`Newcomers`:
  a new connection for each command.
* :class:`Dribblers`: the slowloris, connections that never finish a line.
* :class:`Pipeliner`: commands pipelined within a window, every reply checked in order;
  :class:`LaggingPipeliner`, one that reads late.
* :func:`connect_blocking` and :func:`read_waiting`: plain sockets, for bursts of connections.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import statistics
import time
from typing import TYPE_CHECKING, Any, Callable

import orjson

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

__all__ = [
    "PREFIX",
    "REPLY_TIMEOUT",
    "Dribblers",
    "LaggingPipeliner",
    "Newcomers",
    "Panel",
    "Pipeliner",
    "Wire",
    "command",
    "connect_blocking",
    "latency_ms",
    "open_websocket",
    "open_wire",
    "read_waiting",
    "sleep_or_stop",
    "stream_socket",
]

PREFIX = b"action=user_define&channel=0&cmd="
#: Seconds to wait for any one reply or connection: only a failed defence (or a machine at a
#: standstill) waits that long, so it costs nothing when all is well.
REPLY_TIMEOUT = 30.0


def command(topic: str, message_id: int, **data: str) -> bytes:
    """A command as the panel sends it, without its newline."""
    body: dict[str, Any] = {"topic": topic, "message_id": message_id}
    if data:
        body["data"] = data
    return PREFIX + orjson.dumps(body)


def latency_ms(latencies: list[float]) -> str:
    """``p50/max`` of ``latencies`` (seconds) in ms, or ``-`` without any."""
    if not latencies:
        return "-"
    return f"{statistics.median(latencies) * 1000:.1f}/{max(latencies) * 1000:.0f}"


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less when ``stop`` is set."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def stream_socket(url: str, *, rcvbuf: int | None = None) -> tuple[socket.socket, Any]:
    """A new non-blocking socket for ``url`` (``tcp://``, ``ws://`` or ``unix://``) and the address to connect it to."""
    if url.startswith("unix://"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        address: Any = url[len("unix://") :]
    else:
        host, _, port = url.partition("://")[2].rpartition(":")
        host = host.strip("[]")
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        address = (host, int(port))
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    return sock, address


def connect_blocking(url: str) -> socket.socket:
    """A plain blocking socket connected to ``url`` (timeout :data:`REPLY_TIMEOUT`)."""
    sock, address = stream_socket(url)
    sock.setblocking(True)
    sock.settimeout(REPLY_TIMEOUT)
    try:
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock


def read_waiting(sock: socket.socket) -> bytes:
    """What the daemon has sent on ``sock`` so far, without waiting."""
    sock.setblocking(False)
    chunks = []
    with contextlib.suppress(OSError):
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks)


class Wire(asyncio.Protocol):
    """A connection to a line transport that sees every byte the daemon sends.

    Complete lines go to ``on_line`` (default: the :attr:`lines` queue, which gets None after the
    last one). What is left of a line when the connection closes is kept in :attr:`leftover`: a
    reply cut short.
    """

    def __init__(self, *, on_line: Callable[[bytes], None] | None = None) -> None:
        self.lines: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._on_line = on_line if on_line is not None else self.lines.put_nowait
        self._buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()
        self.leftover = b""
        self.error: Exception | None = None
        self.received = 0
        self._writable = asyncio.Event()
        self._writable.set()

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        self._buffer += data
        start = 0
        while (end := self._buffer.find(b"\n", start)) >= 0:
            self._on_line(bytes(self._buffer[start:end]))
            start = end + 1
        del self._buffer[:start]

    def connection_lost(self, exc: Exception | None) -> None:
        self.leftover = bytes(self._buffer)
        self.error = exc
        self._writable.set()
        self.lines.put_nowait(None)
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # -- use -------------------------------------------------------------------------------------

    @property
    def is_closed(self) -> bool:
        return self.closed.done()

    def write(self, data: bytes) -> None:
        """Write ``data`` unless the connection is closed or closing."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def send(self, data: bytes) -> None:
        """Write ``data`` and wait until the transport's buffer has room again (or the connection closed)."""
        self.write(data)
        await self._writable.wait()

    async def line(self, timeout: float = REPLY_TIMEOUT) -> bytes | None:
        """The next line; None when the connection closed first.

        Raises:
            asyncio.TimeoutError: nothing came within ``timeout`` seconds.
        """
        if self.lines.empty() and self.is_closed:
            return None
        return await asyncio.wait_for(self.lines.get(), timeout)

    async def request(self, raw: bytes, timeout: float = REPLY_TIMEOUT) -> bytes | None:
        """Send one command and return its reply line (None: closed without one)."""
        self.write(raw + b"\n")
        return await self.line(timeout)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def reset(self) -> None:
        """Close with a reset (the kernel drops what was unsent)."""
        if self.transport is not None:
            self.transport.abort()


async def open_wire(
    url: str, *, deaf: bool = False, rcvbuf: int | None = None, on_line: Callable[[bytes], None] | None = None
) -> Wire:
    """Connect a :class:`Wire` to a ``tcp://`` or ``unix://`` URL; a ``deaf`` one never reads.

    Raises:
        OSError: the connection failed.
        asyncio.TimeoutError: it took over :data:`REPLY_TIMEOUT` seconds.
    """
    loop = asyncio.get_running_loop()
    sock, address = stream_socket(url, rcvbuf=rcvbuf)
    try:
        await asyncio.wait_for(loop.sock_connect(sock, address), REPLY_TIMEOUT)
        if sock.family == socket.AF_UNIX:
            transport, wire = await loop.create_unix_connection(lambda: Wire(on_line=on_line), sock=sock)
        else:
            transport, wire = await loop.create_connection(lambda: Wire(on_line=on_line), sock=sock)
    except BaseException:
        sock.close()
        raise
    if deaf:  # not in connection_made: Python 3.9's transport starts reading after it
        transport.pause_reading()
    return wire


async def open_websocket(url: str, *, rcvbuf: int | None = None, max_queue: int = 16) -> ClientConnection:
    """A ``websockets`` client connection to a ``ws://`` URL (no compression, no proxy).

    Raises:
        ImportError: the ``websockets`` package is not installed.
        OSError: the connection failed.
    """
    from websockets.asyncio.client import connect

    loop = asyncio.get_running_loop()
    sock, address = stream_socket(url, rcvbuf=rcvbuf)
    try:
        await asyncio.wait_for(loop.sock_connect(sock, address), REPLY_TIMEOUT)
        return await connect(
            url, sock=sock, compression=None, max_queue=max_queue, open_timeout=REPLY_TIMEOUT, close_timeout=5
        )
    except BaseException:
        sock.close()
        raise


def _reply_of(line: bytes | None, message_id: int) -> str:
    """``"ok"`` when ``line`` is the successful reply to ``message_id``; else what it is."""
    if line is None:
        return "closed"
    try:
        reply = orjson.loads(line)
    except orjson.JSONDecodeError:
        return "not JSON"
    if not isinstance(reply, dict):
        return "not an object"
    if reply.get("result") == "5":
        return "turned away"
    if reply.get("result") != "0" or reply.get("message_id") != message_id:
        return "wrong reply"
    return "ok"


class Panel:
    """A well-behaved client: connected before the attack, one ``version`` command every
    ``interval`` seconds on the same connection, each reply checked. It stops at its first
    failure (a panel whose connection is lost has lost)."""

    def __init__(self, url: str, interval: float = 0.1) -> None:
        self.url = url
        self.interval = interval
        self.ok = 0
        self.failures: list[str] = []
        self.latencies: list[float] = []
        self._wire: Wire | None = None

    async def connect(self) -> None:
        """Connect and be answered once (before the attack starts).

        Raises:
            RuntimeError: the first command was not answered.
        """
        self._wire = await open_wire(self.url)
        if _reply_of(await self._wire.request(command("version", 0)), 0) != "ok":
            raise RuntimeError(f"the panel on {self.url} was not answered before the attack")

    async def run(self, stop: asyncio.Event) -> None:
        """Send commands until ``stop`` is set."""
        wire = self._wire
        assert wire is not None, "connect() first"
        message_id = 1
        try:
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    verdict = _reply_of(await wire.request(command("version", message_id)), message_id)
                except asyncio.TimeoutError:
                    verdict = f"no reply within {REPLY_TIMEOUT:.0f} s"
                if verdict != "ok":
                    self.failures.append(f"command {message_id}: {verdict}")
                    return
                self.latencies.append(time.perf_counter() - started)
                self.ok += 1
                message_id += 1
                await sleep_or_stop(stop, self.interval)
        finally:
            wire.close()

    def figure(self) -> str:
        """``answered/sent``, p50/max latency."""
        sent = self.ok + len(self.failures)
        return f"{self.ok}/{sent}, {latency_ms(self.latencies)} ms"


class Newcomers:
    """Well-behaved clients that each connect, send one command, read its reply and hang up,
    one after the other every ``interval`` seconds; counted by what they got."""

    def __init__(self, url: str, interval: float = 0.1) -> None:
        self.url = url
        self.interval = interval
        self.got: collections.Counter[str] = collections.Counter()
        self.latencies: list[float] = []
        self.served_at: list[float] = []  # time.monotonic() of each one served

    async def run(self, stop: asyncio.Event) -> None:
        message_id = 0
        while not stop.is_set():
            got = await self.once(message_id)
            self.got[got] += 1
            if got == "ok":
                self.served_at.append(time.monotonic())
            message_id += 1
            await sleep_or_stop(stop, self.interval)

    async def once(self, message_id: int) -> str:
        """One newcomer: ``"ok"``, ``"turned away"`` (result 5), ``"closed"`` or what went wrong."""
        started = time.perf_counter()
        try:
            wire = await open_wire(self.url)
        except (OSError, asyncio.TimeoutError) as exc:
            return f"cannot connect ({type(exc).__name__})"
        try:
            verdict = _reply_of(await wire.request(command("version", message_id)), message_id)
        except asyncio.TimeoutError:
            verdict = "no reply"
        finally:
            wire.close()
        if verdict == "ok":
            self.latencies.append(time.perf_counter() - started)
        return verdict


class Dribblers:
    """The slowloris: ``count`` connections, each sending a byte of a line every ``drip``
    seconds and never its end; each one the daemon closes reconnects, after what the daemon
    told it is noted (:attr:`told`).

    Plain non-blocking sockets rather than asyncio transports: a transport whose write fails
    (the daemon closed the connection, with a reset when a dribbled byte was still unread) is
    closed without reading what the daemon said before; here each tick reads first, and a failed
    write is followed by a read of what came before the reset.
    """

    #: The line dribbled: the start of a real command, then spaces (it never ends).
    LINE = PREFIX + b'{"topic":"version","message_id":1'

    def __init__(self, url: str, count: int, drip: float = 0.1) -> None:
        self.url = url
        self.count = count
        self.drip = drip
        self.connects = 0
        self.closed_by_daemon = 0
        self.connect_errors = 0
        self.told: collections.Counter[bytes] = collections.Counter()

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(self._one(stop) for _ in range(self.count)))

    async def _one(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            sock, address = stream_socket(self.url)
            try:
                await asyncio.wait_for(loop.sock_connect(sock, address), REPLY_TIMEOUT)
            except (OSError, asyncio.TimeoutError):
                sock.close()
                self.connect_errors += 1
                await sleep_or_stop(stop, self.drip)
                continue
            self.connects += 1
            try:
                told = await self._dribble(sock, stop)
            finally:
                sock.close()
            if told is not None:
                self.closed_by_daemon += 1
                self.told[told] += 1

    async def _dribble(self, sock: socket.socket, stop: asyncio.Event) -> bytes | None:
        """Dribble until the daemon closes ``sock`` (returns what it said) or ``stop`` (None)."""
        said = bytearray()
        sent = 0
        while not stop.is_set():
            if _read_to_close(sock, said):
                return bytes(said) or b"(closed without a word)"
            try:
                sock.send(self.LINE[sent : sent + 1] or b" ")
            except BlockingIOError:
                pass
            except OSError:
                _read_to_close(sock, said)
                return bytes(said) or b"(reset without a word)"
            sent += 1
            await sleep_or_stop(stop, self.drip)
        return None


def _read_to_close(sock: socket.socket, said: bytearray) -> bool:
    """Add what ``sock`` holds to ``said``; True once the daemon has closed (or reset) it."""
    while True:
        try:
            chunk = sock.recv(4096)
        except BlockingIOError:
            return False
        except OSError:
            return True
        if not chunk:
            return True
        said += chunk


class Pipeliner:
    """Commands pipelined on one connection, up to ``window`` in flight, every reply checked:
    complete JSON, ``result "0"``, and the ``message_id`` of the command it answers, in order.

    ``make(i)`` is the ``i``-th command's topic and data. It runs until the daemon closes the
    connection; a line cut short by the close is an error too.
    """

    def __init__(
        self,
        url: str,
        make: Callable[[int], tuple[str, dict[str, str]]],
        *,
        base: int,
        window: int,
        rcvbuf: int | None = None,
    ) -> None:
        self.url = url
        self.make = make
        self.base = base
        self.window = window
        self.rcvbuf = rcvbuf
        self.sent = 0
        self.answered = 0
        self.errors: list[str] = []
        self.last_answered: tuple[str, dict[str, str]] | None = None
        self.wire: Wire | None = None
        self._progress = asyncio.Event()

    async def run(self) -> None:
        self.wire = wire = await open_wire(self.url, rcvbuf=self.rcvbuf, on_line=self._line)
        while not wire.is_closed:
            room = self.window - (self.sent - self.answered)
            if room <= self.window // 2:
                self._progress.clear()
                waiter = asyncio.ensure_future(self._progress.wait())
                await asyncio.wait([waiter, wire.closed], timeout=REPLY_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                continue
            batch = []
            for i in range(self.sent, self.sent + room):
                topic, data = self.make(i)
                batch.append(command(topic, self.base + i, **data) + b"\n")
            self.sent += room
            await wire.send(b"".join(batch))
        if wire.leftover:
            self.errors.append(f"a reply cut short at the close: {wire.leftover[:80]!r}")

    def _line(self, line: bytes) -> None:
        index = self.answered
        self.answered += 1
        self._progress.set()
        try:
            reply = orjson.loads(line)
        except orjson.JSONDecodeError:
            self.errors.append(f"reply {index} is not JSON: {line[:80]!r}")
            return
        expected = self.base + index
        if not isinstance(reply, dict) or reply.get("message_id") != expected or reply.get("result") != "0":
            self.errors.append(f"reply {index} is not the success of command {expected}: {line[:120]!r}")
            return
        self.last_answered = self.make(index)


class LaggingPipeliner(Pipeliner):
    """A :class:`Pipeliner` that lags behind: a small receive buffer, and reading only 10 ms in
    every 100 ms, so that the daemon holds replies it could not send yet (cut anywhere, mid-line
    too); from :meth:`hurry` on, it reads everything at once."""

    def __init__(self, url: str, make: Callable[[int], tuple[str, dict[str, str]]], *, base: int, window: int) -> None:
        super().__init__(url, make, base=base, window=window, rcvbuf=4096)
        self._hurry = asyncio.Event()

    def hurry(self) -> None:
        self._hurry.set()

    async def run(self) -> None:
        lagging = asyncio.ensure_future(self._lag())
        try:
            await super().run()
        finally:
            lagging.cancel()

    async def _lag(self) -> None:
        while self.wire is None or self.wire.transport is None:
            await asyncio.sleep(0.01)
        transport = self.wire.transport
        while not self._hurry.is_set():
            transport.pause_reading()
            await sleep_or_stop(self._hurry, 0.09)
            transport.resume_reading()
            await sleep_or_stop(self._hurry, 0.01)
