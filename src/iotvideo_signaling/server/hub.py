"""What every transport shares: the connection limits, visitor ids, tokens, sessions, events.

A connection is one visitor of the Device. The hub admits it, names it (``tcp-1``, ``unix-2``,
``ws-3``: one counter for the daemon, so a name is unique in the logs), checks its
``AUTH <token>`` line when tokens are configured, opens its session with the token's role and
counts it as a viewer (``start_stream``: our transports carry no video, so a connected panel
stands for a watching one and ``user_num`` counts connections), and closes the session when the
connection goes.

Admission. Only a connection that may use the Device counts toward ``max_connections``:

* without tokens, every connection at once. When every slot is taken, a new connection
  **evicts an idle one** rather than being refused: one that has sent no complete command yet,
  or none for :data:`IDLE_EVICTABLE` seconds; of those, the one idle the longest of the source
  address holding the most (as for the pending pool below). It is answered :data:`IDLE_EVICTED`
  and closed. Only when every counted connection has sent a command within
  :data:`IDLE_EVICTABLE` seconds is the newcomer answered :data:`TOO_MANY_CONNECTIONS` and
  closed. So idle connections (a slowloris dribbling a line that never ends, a client that
  connects and waits) cannot lock a new client out until ``idle_timeout``, however often they
  reconnect, while a panel that sends a command now and then keeps its slot; a client that
  connects must send its first command within a round trip or so of a flood, as with tokens.
* with tokens, a connection first waits in the *pending* pool, which holds at most
  ``max_pending_auth`` connections, each for at most ``auth_timeout``. It moves to the counted
  pool when its ``AUTH`` line is accepted; when ``max_connections`` authenticated connections
  are already there, the answer to its ``AUTH`` line is :data:`TOO_MANY_CONNECTIONS` and it is
  closed. So connections that never authenticate cannot take the slots of those that do.
  Authenticated connections are not evicted for being idle: each holds a token, and the
  pending pool already keeps out those without one.
* When the pending pool is full, a new connection **evicts the oldest pending one of the source
  address holding the most places** (ties: the oldest of all), which is answered
  :data:`AUTH_EVICTED` and closed, rather than being refused. Refusing the newest would let
  anyone who keeps ``max_pending_auth`` idle connections open lock every client out; evicting
  from the most crowded source means a flood from one address evicts its own connections, and
  a legitimate client elsewhere keeps its place until it sends its ``AUTH`` line (as soon as it
  connects). An IPv6 source is its /64 (what one host usually holds). Only a flood from at least
  as many sources as the pool holds, or one sharing the client's source (a NAT, the same IPv6
  /64, which includes every link-local peer, the local sockets), can still push it out within a
  round trip.
* A connection counts only while its client is there. The event loop accepts queued connections
  in batches and admits each before it reads from any, so connections whose client already
  hung up (a burst of connect and close) would fill the table until the loop notices; when the
  table is full, the hub first looks at each counted socket (a peek, which reads nothing) and
  releases those whose client has closed or reset it, before it refuses anyone.

Refusals and evictions are logged at WARNING at most once per reason every :data:`REFUSAL_LOG_INTERVAL`
seconds, with the count of those left out since (see throttle.py): a client retrying in a loop
costs the daemon no log.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hmac
import ipaddress
import itertools
import logging
import socket
import threading
from typing import TYPE_CHECKING, Callable, Protocol

import orjson

from ..device import Device
from ..events import Event
from .settings import Settings
from .throttle import REFUSAL_LOG_INTERVAL, ThrottledLog

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "AUTH_EVICTED",
    "AUTH_PREFIX",
    "AUTH_REFUSED",
    "AUTH_REQUIRED",
    "TOO_MANY_CONNECTIONS",
    "Connection",
    "Hub",
]

log = logging.getLogger(__name__)

AUTH_PREFIX = b"AUTH "
#: The one reply an extra connection gets before it is closed.
TOO_MANY_CONNECTIONS = b'{"confirmation_topic":"","result":"5","reason":"too many connections"}'
AUTH_REQUIRED = b'{"confirmation_topic":"auth","result":"6","reason":"authentication required: send AUTH <token>"}'
AUTH_REFUSED = b'{"confirmation_topic":"auth","result":"6","reason":"invalid token"}'
#: What the oldest unauthenticated connection is told when a newer one takes its place.
AUTH_EVICTED = b'{"confirmation_topic":"auth","result":"5","reason":"too many connections waiting to authenticate"}'
#: What an idle connection is told when a new one takes its slot (without tokens).
IDLE_EVICTED = b'{"confirmation_topic":"","result":"5","reason":"closed: idle while every connection slot was taken"}'
IDLE_EVICTABLE = 10.0  # s without a complete command after which a connection may give its slot to a new one


class Connection(Protocol):
    """What the hub needs of a transport's connection to shut it down."""

    visitor: str

    def shutdown(self) -> None:
        """Stop reading, send what is already answered, then close."""

    def abort(self) -> None:
        """Close at once, dropping unsent replies."""

    @property
    def last_command(self) -> float | None:
        """Event-loop time of its last complete command (or ``AUTH`` line); None before the first."""

    def evict(self, reply: bytes, reason: str) -> None:
        """Close the connection to make room for a new one: send ``reply``, which says ``reason``, close."""

    def gone(self) -> bool:
        """True when the client has closed or reset the connection, though nothing read it yet."""


class Hub:
    """Connection bookkeeping shared by every listener of one daemon.

    Args:
        device: the Device every connection talks to.
        settings: limits, timeouts and tokens.

    ``_admitted`` holds the connections counted toward ``max_connections``; ``_pending`` the
    unauthenticated ones (only with tokens), oldest first. A connection is in one or the other
    until it is released.
    """

    def __init__(self, device: Device, settings: Settings) -> None:
        self.device = device
        self.settings = settings
        self.max_connections = settings.device.max_connections
        self.max_pending_auth = settings.max_pending_auth
        self.max_message_size = settings.device.max_message_size
        self._tokens = [(token.encode(), role) for token, role in settings.tokens.items()]
        self.auth_required = bool(self._tokens)
        self._serial = itertools.count(1)
        self._admitted: dict[str, Connection] = {}
        self._pending: dict[str, Connection] = {}  # insertion order: oldest first
        self._sources: dict[str, str] = {}  # visitor -> its source address (see _source)
        self._opened: dict[str, float] = {}  # visitor -> when it was admitted (event-loop time)
        self._sessions: set[str] = set()
        self._empty = asyncio.Event()
        self._empty.set()
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._event_sinks: dict[str, Callable[[bytes], None]] = {}
        self._unsubscribe = device.subscribe(self._on_event)
        self._refusals = ThrottledLog(log, logging.WARNING, interval=REFUSAL_LOG_INTERVAL, keys=8)
        self._evictions = ThrottledLog(log, logging.WARNING, interval=REFUSAL_LOG_INTERVAL, keys=8)
        self.accepting = True

    # -- admission ---------------------------------------------------------------------------

    def admit(self, kind: str, connection: Connection, peer: object) -> str | None:
        """A visitor id for a new connection, or None when it must be refused.

        Without tokens the connection counts toward ``max_connections`` at once (evicting an idle
        one when every slot is taken); with tokens it joins the pending pool (evicting the oldest
        pending connection when the pool is full) and counts only once :meth:`open_session`
        accepts it.
        """
        if not self.accepting:
            self._refused("shutting down", f"a {kind} connection from {_peer(peer)}")
            return None
        newcomer = f"a {kind} connection from {_peer(peer)}"
        if not self.auth_required and not self._room() and not self._evict_idle(newcomer):
            self._refused("too many connections", newcomer)
            return None
        visitor = f"{kind}-{next(self._serial)}"
        connection.visitor = visitor
        if self.auth_required:
            if len(self._pending) >= self.max_pending_auth:
                self._evict_pending(visitor)
            self._pending[visitor] = connection
        else:
            self._admitted[visitor] = connection
        self._sources[visitor] = _source(peer)
        self._opened[visitor] = self._loop.time()
        self._empty.clear()
        log.info("%s connected from %s", visitor, _peer(peer))
        return visitor

    def _room(self) -> bool:
        """True when a slot is free, once the connections whose client has gone are released."""
        if len(self._admitted) < self.max_connections:
            return True
        for visitor, connection in list(self._admitted.items()):
            if connection.gone():
                self.release(visitor, "closed by the client (before it was read)")
                connection.shutdown()
        return len(self._admitted) < self.max_connections

    def _refused(self, reason: str, what: str) -> None:
        self._refusals.log(reason, "refusing %s: %s", what, reason)

    def _evict_idle(self, newcomer: str) -> bool:
        """Make room without tokens: evict the idlest counted connection, if one is idle enough."""
        now = self._loop.time()
        idle: dict[str, float] = {}  # visitor -> since when it is idle
        for visitor, connection in self._admitted.items():
            last = connection.last_command
            if last is None:
                idle[visitor] = self._opened[visitor]
            elif now - last >= IDLE_EVICTABLE:
                idle[visitor] = last
        if not idle:
            return False
        victim, crowded = self._crowded_oldest(idle)
        self._evictions.log(
            "idle",
            "%s evicted to make room for %s: idle for %.0f s, one of %d idle connections from %s",
            victim,
            newcomer,
            now - idle[victim],
            crowded,
            self._sources[victim] or "local sockets",
        )
        self._evict(victim, self._admitted[victim], IDLE_EVICTED, "idle while every connection slot was taken")
        return True

    def _evict_pending(self, newcomer: str) -> None:
        """Make room: the oldest pending connection of the source holding the most places."""
        oldest, crowded = self._crowded_oldest({visitor: self._opened[visitor] for visitor in self._pending})
        self._evictions.log(
            "pending",
            "%s evicted to make room for %s: %d connections are waiting to authenticate, %d from %s",
            oldest,
            newcomer,
            len(self._pending),
            crowded,
            self._sources[oldest] or "local sockets",
        )
        self._evict(oldest, self._pending[oldest], AUTH_EVICTED, "too many connections waiting to authenticate")

    def _crowded_oldest(self, since: dict[str, float]) -> tuple[str, int]:
        """Of ``since`` (visitor -> a time), the earliest of the source holding the most; and that count.

        Ties between sources: the earliest of all of them.
        """
        counts = collections.Counter(self._sources[visitor] for visitor in since)
        crowded = max(counts.values())
        victim = min((visitor for visitor in since if counts[self._sources[visitor]] == crowded), key=since.__getitem__)
        return victim, crowded

    def _evict(self, visitor: str, connection: Connection, reply: bytes, reason: str) -> None:
        self.release(visitor, f"evicted: {reason}")
        connection.evict(reply, reason)

    def release(self, visitor: str, reason: str = "closed") -> None:
        """The connection is gone: close its session and free its slot (or its pending place)."""
        self._sources.pop(visitor, None)
        self._opened.pop(visitor, None)
        if self._admitted.pop(visitor, None) is None and self._pending.pop(visitor, None) is None:
            return
        self._event_sinks.pop(visitor, None)
        if visitor in self._sessions:
            self._sessions.discard(visitor)
            self.device.close_session(visitor)
        log.info("%s %s", visitor, reason)
        if not self._admitted and not self._pending:
            self._empty.set()

    def __iter__(self) -> Iterator[Connection]:
        return iter([*self._admitted.values(), *self._pending.values()])

    # -- authentication and sessions ---------------------------------------------------------

    @staticmethod
    def is_auth(message: bytes) -> bool:
        """True when ``message`` is an ``AUTH <token>`` line."""
        return message.startswith(AUTH_PREFIX)

    def authenticate(self, message: bytes) -> tuple[str | None, bytes]:
        """Check an ``AUTH <token>`` message: ``(role, reply)``; the role is None when refused.

        Without configured tokens any ``AUTH`` line is accepted as owner (there is nothing to
        check), so a client may always send its token.
        """
        if not message.startswith(AUTH_PREFIX):
            return None, AUTH_REQUIRED
        if not self._tokens:
            return "owner", _auth_ok("owner")
        presented = message[len(AUTH_PREFIX) :].strip(b" \t\r\0")
        role = None
        for token, token_role in self._tokens:
            # every token is compared, in constant time, so timing tells nothing
            if hmac.compare_digest(presented, token) and role is None:
                role = token_role
        return (role, _auth_ok(role)) if role is not None else (None, AUTH_REFUSED)

    def open_session(self, visitor: str, role: str) -> bool:
        """Count an authenticated connection toward ``max_connections`` and open its session.

        Returns False, opening nothing, when ``max_connections`` connections are already
        counted or the connection was released meanwhile (evicted); the transport then answers
        :data:`TOO_MANY_CONNECTIONS` instead of the ``AUTH`` reply and closes the connection,
        which stays pending (it holds no slot) until it is released.
        """
        if visitor in self._pending:
            if not self._room():
                self._refused("too many connections", f"{visitor} after AUTH")
                return False
            self._admitted[visitor] = self._pending.pop(visitor)
        elif visitor not in self._admitted:
            return False
        self.device.open_session(visitor, role)
        self.device.start_stream(visitor)
        self._sessions.add(visitor)
        log.debug("%s session open as %s", visitor, role)
        return True

    # -- events --------------------------------------------------------------------------------

    def add_event_sink(self, visitor: str, sink: Callable[[bytes], None]) -> None:
        """Call ``sink`` on the event loop with each device event as ``{"event": {...}}`` bytes."""
        self._event_sinks[visitor] = sink

    def _on_event(self, event: Event) -> None:
        if not self._event_sinks:
            return
        message = orjson.dumps(
            {"event": {"kind": event.kind, "data": dict(event.data), "time": event.time}}, default=str
        )
        if threading.get_ident() == self._loop_thread:
            self._deliver(message)
        else:  # from a Device worker thread
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is listening any more
                self._loop.call_soon_threadsafe(self._deliver, message)

    def _deliver(self, message: bytes) -> None:
        for sink in list(self._event_sinks.values()):
            sink(message)

    # -- shutdown ------------------------------------------------------------------------------

    async def shutdown(self, grace: float) -> None:
        """Stop admitting, let every connection flush its replies for ``grace`` s, abort the rest."""
        self.accepting = False
        for connection in self:
            connection.shutdown()
        try:
            await asyncio.wait_for(self._empty.wait(), grace)
        except asyncio.TimeoutError:
            for connection in self:
                log.warning("%s did not close in time; aborting it", connection.visitor)
                connection.abort()
                self.release(connection.visitor, "aborted at shutdown")
        self._unsubscribe()


def peer_gone(transport: asyncio.BaseTransport) -> bool:
    """True when the client closed or reset ``transport``'s socket and sent nothing left unread.

    A peek (``MSG_PEEK``): it reads nothing, so the transport still gets every byte.
    """
    sock = transport.get_extra_info("socket")
    if sock is None:
        return False
    fileno = sock.fileno()
    if fileno < 0:
        return True
    probe = socket.socket(fileno=fileno)  # the transport's own descriptor, detached below
    try:
        return probe.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:  # reset
        return True
    finally:
        probe.detach()


def _auth_ok(role: str) -> bytes:
    return orjson.dumps({"confirmation_topic": "auth", "result": "0", "role": role})


def _source(peer: object) -> str:
    """Where a connection comes from, for eviction: its IPv4 address, the /64 of its IPv6 address
    (one host usually holds a whole /64), or "" for local sockets."""
    if not (isinstance(peer, tuple) and peer):
        return ""
    host = str(peer[0])
    try:
        address = ipaddress.ip_address(host.partition("%")[0])  # (a zone index is not an address)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return host


def _peer(peer: object) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = peer[0], peer[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peer) if peer else "a local socket"
