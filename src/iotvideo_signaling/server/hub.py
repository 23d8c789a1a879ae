"""What every transport shares: the connection limit, visitor ids, tokens, sessions, events.

A connection is one visitor of the Device. The hub admits it (or refuses it past
``max_connections``), names it (``tcp-1``, ``unix-2``, ``ws-3``: one counter for the daemon, so a
name is unique in the logs), checks its ``AUTH <token>`` line when tokens are configured, opens its
session with the token's role and counts it as a viewer (``start_stream``: our transports carry
no video, so a connected panel stands for a watching one and ``user_num`` counts connections), and
closes the session when the connection goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import logging
import threading
from typing import TYPE_CHECKING, Callable, Protocol

import orjson

from ..device import Device
from ..events import Event
from .config import Settings

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["AUTH_PREFIX", "AUTH_REFUSED", "AUTH_REQUIRED", "TOO_MANY_CONNECTIONS", "Connection", "Hub"]

log = logging.getLogger(__name__)

AUTH_PREFIX = b"AUTH "
#: The one reply an extra connection gets before it is closed.
TOO_MANY_CONNECTIONS = b'{"confirmation_topic":"","result":"5","reason":"too many connections"}'
AUTH_REQUIRED = b'{"confirmation_topic":"auth","result":"6","reason":"authentication required: send AUTH <token>"}'
AUTH_REFUSED = b'{"confirmation_topic":"auth","result":"6","reason":"invalid token"}'


class Connection(Protocol):
    """What the hub needs of a transport's connection to shut it down."""

    visitor: str

    def shutdown(self) -> None:
        """Stop reading, send what is already answered, then close."""

    def abort(self) -> None:
        """Close at once, dropping unsent replies."""


class Hub:
    """Connection bookkeeping shared by every listener of one daemon.

    Args:
        device: the Device every connection talks to.
        settings: limits, timeouts and tokens.
    """

    def __init__(self, device: Device, settings: Settings) -> None:
        self.device = device
        self.settings = settings
        self.max_connections = settings.device.max_connections
        self.max_message_size = settings.device.max_message_size
        self._tokens = [(token.encode(), role) for token, role in settings.tokens.items()]
        self.auth_required = bool(self._tokens)
        self._serial = itertools.count(1)
        self._connections: dict[str, Connection] = {}
        self._sessions: set[str] = set()
        self._empty = asyncio.Event()
        self._empty.set()
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._event_sinks: dict[str, Callable[[bytes], None]] = {}
        self._unsubscribe = device.subscribe(self._on_event)
        self.accepting = True

    # -- admission ---------------------------------------------------------------------------

    def admit(self, kind: str, connection: Connection, peer: object) -> str | None:
        """A visitor id for a new connection, or None when it must be refused."""
        if not self.accepting or len(self._connections) >= self.max_connections:
            why = "too many connections" if self.accepting else "shutting down"
            log.warning("refusing a %s connection from %s: %s", kind, _peer(peer), why)
            return None
        visitor = f"{kind}-{next(self._serial)}"
        connection.visitor = visitor
        self._connections[visitor] = connection
        self._empty.clear()
        log.info("%s connected from %s", visitor, _peer(peer))
        return visitor

    def release(self, visitor: str, reason: str = "closed") -> None:
        """The connection is gone: close its session and free its slot."""
        if self._connections.pop(visitor, None) is None:
            return
        self._event_sinks.pop(visitor, None)
        if visitor in self._sessions:
            self._sessions.discard(visitor)
            self.device.close_session(visitor)
        log.info("%s %s", visitor, reason)
        if not self._connections:
            self._empty.set()

    def __iter__(self) -> Iterator[Connection]:
        return iter(list(self._connections.values()))

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

    def open_session(self, visitor: str, role: str) -> None:
        """Open the Device session of an admitted (and authenticated) connection."""
        if visitor not in self._connections:
            return
        self.device.open_session(visitor, role)
        self.device.start_stream(visitor)
        self._sessions.add(visitor)
        log.debug("%s session open as %s", visitor, role)

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


def _auth_ok(role: str) -> bytes:
    return orjson.dumps({"confirmation_topic": "auth", "result": "0", "role": role})


def _peer(peer: object) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = peer[0], peer[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peer) if peer else "a local socket"
