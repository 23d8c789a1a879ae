"""The WebSocket transport (``ws://``): one command per message, one reply per message, events.

A text or binary message is one command; its reply is one text message, in order. Device events
are pushed to every connected client as ``{"event": {"kind": ..., "data": {...}, "time": ...}}``
text messages, which a client tells from replies by their ``event`` key. When tokens are
configured the first message must be ``AUTH <token>``; until then the connection waits in the
hub's pending pool, not in one of the ``max_connections`` slots (see hub.py). An accepted
``AUTH`` message when every slot is taken is answered ``TOO_MANY_CONNECTIONS`` and the connection
is closed with 1013 (try again later); so is an unauthenticated connection evicted from a full
pending pool, after an ``AUTH_EVICTED`` message, and (without tokens) an idle connection evicted
to make room for a new one, after an ``IDLE_EVICTED`` message (see hub.py).

Limits: a message over ``max_message_size`` is answered with error 1 by the Device as long as it
is at most twice that size; a frame that announces more is refused from its header, before its
payload is read, and the connection is closed with 1009 (message too big), as RFC 6455 has it.
Compression is off (replies are small, and each deflate context costs memory). A client that
leaves replies or events unread for ``write_timeout`` is dropped; for events, which the socket
buffers would absorb for minutes, a ping follows them and its pong is the proof they were read.

Origins: a browser lets a page from any site open a WebSocket to a loopback address, and
without tokens every client is an owner; so the handshake's ``Origin`` header is checked (by
the ``websockets`` library's ``origins``). A request without one (a non-browser client such as
``send``) is accepted; one from a web page is refused with HTTP 403 unless its origin is in
``[server] allowed_origins``, before the connection reaches the hub. Refusals are logged at
INFO, the first of each origin at once and later ones as a count at most every
:data:`REFUSAL_LOG_INTERVAL` seconds, so that a page retrying in a loop cannot flood the log.

With ``serve --panel`` the listener also answers plain HTTP requests (no WebSocket upgrade) with
the panel simulator's page (panel.py), and admits the page's own origin.

The ``websockets`` package (the ``server`` extra) is imported only when a ``ws://`` listener is
started, so ``tcp://`` and ``unix://`` work without it.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import socket
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Union

from .hub import TOO_MANY_CONNECTIONS, Hub, peer_gone
from .listen import ConfigError, ListenAddress
from .panel import PanelPage, page_origins
from .settings import parse_origins
from .throttle import REFUSAL_LOG_INTERVAL, ThrottledLog

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from websockets.asyncio.server import Server, ServerConnection
    from websockets.http11 import Request, Response

__all__ = ["start_websocket_listener"]

log = logging.getLogger(__name__)

EVENT_QUEUE = 64  # events waiting for a client's sender; past it the oldest gives way
REFUSE_SECONDS = 5.0  # longest wait to tell a refused or evicted client why, before aborting it
REFUSAL_LOG_ORIGINS = 256  # refused origins remembered; the least recently refused is forgotten first
_Message = Union[str, bytes]


def _import_websockets() -> Any:
    try:
        import websockets.asyncio.server  # noqa: PLC0415 - optional dependency, only for ws://
    except ImportError:
        raise ConfigError(
            "ws:// listeners need the 'websockets' package: pip install 'iotvideo-signaling[server]'"
        ) from None
    return websockets.asyncio.server


async def start_websocket_listener(
    hub: Hub, address: ListenAddress, *, page: PanelPage | None = None
) -> tuple[Server, list[ListenAddress]]:
    """Start listening on ``address``; returns the server and the addresses it is bound to.

    With ``page``, plain HTTP requests get the panel simulator's page, and the page's own origin
    may open the WebSocket.
    """
    module = _import_websockets()
    from websockets.exceptions import InvalidOrigin  # noqa: PLC0415 - optional dependency

    settings = hub.settings
    refusals = OriginRefusals()
    origins: list[str | None] = [None, *parse_origins(settings.allowed_origins)]  # None: no Origin header
    where: dict[str, Any] = {"host": address.host, "port": address.port}
    if page is not None:  # the page's origin names the port: bind first to know it
        sock = _bind(address)
        where = {"sock": sock}
        origins += page_origins([address.with_port(sock.getsockname()[1])])

    handshakes = Handshakes(hub.max_connections)

    async def handler(ws: ServerConnection) -> None:
        handshakes.finished(ws)
        await WebSocketConnection(hub, ws).run()

    def process_request(ws: ServerConnection, request: Request) -> Response | None:
        if page is None or request.headers.get("Upgrade", "").lower() == "websocket":
            return None  # the WebSocket handshake, its Origin checked by the library
        return _http_response(page, request.path)

    def process_response(ws: ServerConnection, request: Request, response: Response) -> None:
        refused = ws.protocol.handshake_exc
        if isinstance(refused, InvalidOrigin):
            refusals.refused(refused.value, ws.remote_address, ws.local_address)

    server: Server = await module.serve(
        handler,
        **where,
        origins=origins,
        process_request=process_request,
        process_response=process_response,
        compression=None,
        max_size=2 * hub.max_message_size,
        write_limit=settings.write_buffer_size,
        close_timeout=2,
        server_header="iotvideo-signaling",
        logger=_QuietLogger(logging.getLogger("iotvideo_signaling.server.websockets"), {}),
        create_connection=_counted_connection(module.ServerConnection, handshakes),
    )
    bound = [address.with_port(sock.getsockname()[1]) for sock in server.sockets]
    return server, bound


class Handshakes:
    """One listener's connections still in their opening handshake, oldest first.

    A connection that never sends its handshake holds a file until websockets' ``open_timeout``,
    and the hub counts a WebSocket only once it is open: enough silent connections exhaust the
    daemon's files, and then no listener accepts anyone. So at most ``limit`` may be in their
    handshake; a newcomer beyond aborts the oldest (a real client's handshake takes one round trip).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[ServerConnection, None] = {}  # insertion order: oldest first
        self._evictions = ThrottledLog(log, logging.WARNING, interval=REFUSAL_LOG_INTERVAL, keys=1)

    def started(self, connection: ServerConnection) -> None:
        """``connection`` was accepted; abort the oldest one still in its handshake past the limit."""
        self._open[connection] = None
        if len(self._open) > self.limit:
            oldest = next(iter(self._open))
            del self._open[oldest]
            self._evictions.log(
                "handshake", "aborted a connection silent in its WebSocket handshake: %d may wait at once", self.limit
            )
            oldest.transport.abort()

    def finished(self, connection: ServerConnection) -> None:
        """``connection`` is open, or gone."""
        self._open.pop(connection, None)


def _counted_connection(base: type[ServerConnection], handshakes: Handshakes) -> type[ServerConnection]:
    """websockets' connection class, telling ``handshakes`` when a connection starts and ends."""

    class CountedConnection(base):  # type: ignore[valid-type,misc]  # a class known at run time
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            handshakes.started(self)

        def connection_lost(self, exc: Exception | None) -> None:
            handshakes.finished(self)
            super().connection_lost(exc)

    return CountedConnection


def _bind(address: ListenAddress) -> socket.socket:
    """A listening TCP socket for ``address`` (its first address, when the host is a name)."""
    family, _, _, _, sockaddr = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)[0]
    return socket.create_server(sockaddr[:2], family=family)


def _http_response(page: PanelPage, path: str) -> Response:
    from websockets.datastructures import Headers  # noqa: PLC0415 - optional dependency
    from websockets.http11 import Response  # noqa: PLC0415

    status, headers, body = page.response(path)
    common = [("Date", email.utils.formatdate(usegmt=True)), ("Connection", "close")]
    common.append(("Content-Length", str(len(body))))
    return Response(status, "OK" if status == 200 else "Not Found", Headers(common + headers), body)


class OriginRefusals(ThrottledLog):
    """The log lines about handshakes refused for their ``Origin``, at most one per origin a while.

    The first refusal of an origin is logged at INFO at once; the next ones within
    :data:`REFUSAL_LOG_INTERVAL` seconds are only counted, and the count goes with the origin's
    next line. At most :data:`REFUSAL_LOG_ORIGINS` origins are remembered (one page retrying
    in a loop stays remembered, as the most recent).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(log, logging.INFO, interval=REFUSAL_LOG_INTERVAL, keys=REFUSAL_LOG_ORIGINS, clock=clock)

    def refused(self, origin: str | None, peer: Any, local: Any) -> None:
        """Note that a handshake from ``peer`` to ``local`` was refused for its ``origin``; log it if due."""
        name = repr(origin[:200]) if origin is not None else "(none)"
        self.log(
            name,
            "refused a WebSocket from %s to %s (HTTP 403): Origin %s is not in [server] allowed_origins",
            _host(peer),
            _address(local),
            name,
        )


def _host(peer: Any) -> str:
    return str(peer[0]) if isinstance(peer, tuple) and peer else "?"


def _address(local: Any) -> str:
    if isinstance(local, tuple) and len(local) >= 2:
        host = str(local[0])
        return f"ws://[{host}]:{local[1]}" if ":" in host else f"ws://{host}:{local[1]}"
    return "ws://?"


class _QuietLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The websockets library's logger: warnings and errors only, and none that are the peer's fault.

    At debug level the library logs the frames it sends and receives, and a frame can hold an
    upgrade URL's signed query string; its info lines repeat the hub's own connection lines.

    websockets 14 and 15 log an ERROR with a traceback, "opening handshake failed", for every
    connection that closes before its request is whole (a port scanner, a client gone, a silent
    connection :class:`Handshakes` aborted) or before the response goes out, that sends something
    other than a WebSocket handshake, or that is refused for its ``Origin`` (which
    :class:`OriginRefusals` logs already). That is the peer's doing, not the daemon's error, and
    other versions log it below WARNING; so here it is not logged, whatever the version. An
    exception raised by this module's own ``process_request``/``process_response`` still is.
    """

    def isEnabledFor(self, level: int) -> bool:
        return level >= logging.WARNING and self.logger.isEnabledFor(level)

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("exc_info") is True and _peer_at_fault(sys.exc_info()[1]):
            return
        super().log(level, msg, *args, **kwargs)


def _peer_at_fault(exc: BaseException | None) -> bool:
    """Whether ``exc`` is websockets' complaint about the peer's opening request."""
    from websockets.exceptions import ConnectionClosed, InvalidHandshake  # noqa: PLC0415 - optional dependency

    # 15: InvalidMessage; both: InvalidUpgrade, InvalidOrigin, ...; and closed before the response went
    if isinstance(exc, (InvalidHandshake, ConnectionClosed)):
        return True
    # 14: its HTTP parser's own EOFError (gone before a whole request) or ValueError (not HTTP)
    if isinstance(exc, (EOFError, ValueError)) and exc.__traceback__ is not None:
        innermost = exc.__traceback__
        while innermost.tb_next is not None:
            innermost = innermost.tb_next
        return str(innermost.tb_frame.f_globals.get("__name__", "")).startswith("websockets.")
    return False


class WebSocketConnection:
    """One WebSocket client: authentication, the command loop and its event queue."""

    def __init__(self, hub: Hub, ws: ServerConnection) -> None:
        self.hub = hub
        self.ws = ws
        self.visitor = ""
        self._events: asyncio.Queue[bytes] = asyncio.Queue(EVENT_QUEUE)
        self._tasks: set[asyncio.Task[None]] = set()
        self._reason = "closed by the client"
        self._last_command: float | None = None
        self._dropped = False
        self._lost_events = 0  # events that gave way to newer ones in a full queue
        self._closing = False  # we have begun to close it: its messages are no longer answered

    @property
    def last_command(self) -> float | None:
        """Event-loop time of its last message; None before the first."""
        return self._last_command

    async def run(self) -> None:
        """Serve the connection until it closes."""
        from websockets.exceptions import ConnectionClosed  # noqa: PLC0415 - optional dependency

        if self.hub.admit("ws", self, self.ws.remote_address) is None:
            await self._turn_away(TOO_MANY_CONNECTIONS, "too many connections")
            return
        sender: asyncio.Task[None] | None = None
        try:
            if await self._authenticate():
                self.hub.add_event_sink(self.visitor, self._queue_event)
                sender = asyncio.ensure_future(self._send_events())
                await self._serve()
        except ConnectionClosed:
            pass
        except asyncio.TimeoutError:
            self._drop("replies")
        finally:
            if sender is not None:
                sender.cancel()
            if self._lost_events:
                log.info("%s: %d events gave way to newer ones (more came at once than its queue holds)",
                         self.visitor, self._lost_events)
            self.hub.release(self.visitor, self._reason)

    async def _authenticate(self) -> bool:
        """Authenticate and open the session; False when the connection was refused (and told so)."""
        if not self.hub.auth_required:
            return self.hub.open_session(self.visitor, "owner")
        try:
            message = await asyncio.wait_for(self.ws.recv(), self.hub.settings.auth_timeout)
        except asyncio.TimeoutError:
            self._reason = "closed: no AUTH in time"
            await self.ws.close(1008, "authentication required")
            return False
        data = _as_bytes(message)
        role, reply = self.hub.authenticate(data)
        if role is None:
            log.warning("%s refused: %s", self.visitor, "bad token" if self.hub.is_auth(data) else "no AUTH line")
            self._reason = "closed: authentication failed"
            await self._refuse(1008, reply, "authentication failed")
            return False
        if not self.hub.open_session(self.visitor, role):
            self._reason = "closed: too many connections"
            await self._turn_away(TOO_MANY_CONNECTIONS, "too many connections")
            return False
        self._last_command = asyncio.get_running_loop().time()
        await self._send(reply)
        return True

    async def _serve(self) -> None:
        ws, hub = self.ws, self.hub
        handle = hub.device.handle
        visitor = self.visitor
        idle = hub.settings.idle_timeout
        first = not hub.auth_required
        clock = asyncio.get_running_loop().time
        while True:
            try:
                message = await asyncio.wait_for(ws.recv(), idle)
            except asyncio.TimeoutError:
                self._reason = "closed: idle timeout"
                await ws.close(1000, "idle timeout")
                return
            if self._closing:  # after our close frame: read on (and drop) until the client's
                continue
            self._last_command = clock()
            if first:  # without tokens a client may still send AUTH first; it is an owner anyway
                first = False
                if hub.is_auth(_as_bytes(message)):
                    await self._send(hub.authenticate(_as_bytes(message))[1])
                    continue
            # Called inline, as in the line transport (see lines.py for the measurements).
            await self._send(handle(message, visitor=visitor))

    async def _send(self, reply: bytes) -> None:
        """Send one reply or event; asyncio.TimeoutError when the client does not read."""
        await asyncio.wait_for(self.ws.send(reply.decode()), self.hub.settings.write_timeout)

    async def _refuse(self, code: int, reply: bytes, reason: str) -> None:
        await self.ws.send(reply.decode())
        await self.ws.close(code, reason)

    # -- events ----------------------------------------------------------------------------------

    def _queue_event(self, message: bytes) -> None:
        """Queue an event for the sender. A full queue says nothing about the client: commands
        pipelined in one write are all handled before the sender runs. So the oldest event gives
        way (a reader ends with the newest state); a client that does not read is caught by the
        sender (``_send_events``), whose writes and pings time out."""
        if self._dropped:  # the events that keep coming until the hub hears of the drop
            return
        events = self._events
        if events.full():
            events.get_nowait()
            self._lost_events += 1
        events.put_nowait(message)

    async def _send_events(self) -> None:
        """Send the events; drop the client when it leaves them unread for ``write_timeout``.

        A sent event may only be in the socket buffers, which hold megabytes on a fast link, so
        a client that reads nothing would be "sent" events for minutes. So after an event, a
        ping goes with it (unless one is still unanswered): a client reads in order, and its
        pong says it has read every event before the ping. One still unanswered when an event
        comes ``write_timeout`` after it was sent means the client does not read.
        """
        from websockets.exceptions import ConnectionClosed  # noqa: PLC0415 - optional dependency

        timeout = self.hub.settings.write_timeout
        clock = asyncio.get_running_loop().time
        pong: asyncio.Future[float] | None = None
        pinged = 0.0
        try:
            while True:
                await self._send(await self._events.get())
                if pong is None or pong.done():
                    pong = asyncio.ensure_future(await asyncio.wait_for(self.ws.ping(), timeout))
                    pinged = clock()
                elif clock() - pinged >= timeout:
                    raise asyncio.TimeoutError
        except ConnectionClosed:
            pass
        except asyncio.TimeoutError:
            self._drop("events")

    # -- Connection (for the hub) ----------------------------------------------------------------

    def shutdown(self) -> None:
        """Close with 1001 (going away) after the reply being sent, if any.

        The messages that still come are read and dropped until the client's close frame: left
        unread, they would stop the library reading (``max_queue``) before that frame, and the
        close would wait for its timeout.
        """
        self._reason = "closed at shutdown"
        self._closing = True
        self._spawn(self.ws.close(1001, "server shutting down"))

    def abort(self) -> None:
        """Close the TCP connection at once."""
        self.ws.transport.abort()

    def _drop(self, unread: str) -> None:
        """Drop a client that leaves its ``unread`` (replies, events) unread: log it once, abort."""
        if self._dropped:
            return
        self._dropped = True
        self._reason = f"dropped: it did not read its {unread}"
        log.warning("%s does not read its %s; dropping it", self.visitor, unread)
        self.abort()

    def evict(self, reply: bytes, reason: str) -> None:
        """Say that a new connection took this one's place (``reply``), and close (1013)."""
        self._reason = f"evicted: {reason}"
        self._closing = True
        self._spawn(self._turn_away(reply, reason))

    def gone(self) -> bool:
        """True when the client has closed or reset the connection before it was read."""
        return peer_gone(self.ws.transport)

    async def _turn_away(self, reply: bytes, reason: str) -> None:
        """Send ``reply`` and close with 1013 (try again later); abort after :data:`REFUSE_SECONDS`."""
        from websockets.exceptions import ConnectionClosed  # noqa: PLC0415 - optional dependency

        try:
            await asyncio.wait_for(self._refuse(1013, reply, reason), REFUSE_SECONDS)
        except ConnectionClosed:
            pass
        except asyncio.TimeoutError:
            self.abort()

    def _spawn(self, awaitable: Awaitable[None]) -> None:
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _as_bytes(message: _Message) -> bytes:
    return message.encode() if isinstance(message, str) else message
