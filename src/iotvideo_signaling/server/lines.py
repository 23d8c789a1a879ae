"""The line transport (``tcp://`` and ``unix://``): one command per line, one reply per line.

Theory of operation. A connection is an :class:`asyncio.Protocol`, fed chunks by the event loop:

* Each complete line (without its ``\\n``) goes to ``Device.handle`` at once, on the event loop
  thread, and its reply is queued for writing; so replies come out in the order of the lines,
  however many a client pipelines. ``handle`` is called inline rather than through a thread pool
  because it never blocks on slow work by contract (slow jobs run on the Device's own workers),
  and a hop through an executor would cost more than the call and need a sequencer to keep
  replies in order.
* A line longer than ``max_message_size`` is answered with error 1 as soon as it is known to be too
  long; the rest of it is discarded as it arrives, up to the next ``\\n``. At most
  ``max_message_size`` bytes of a partial line are ever kept.
* Flow control: when unsent replies pass ``write_buffer_size``, the transport calls
  :meth:`pause_writing`; the connection stops reading (and stops answering the lines of the chunk
  it holds, which wait in ``_pending``), and starts a ``write_timeout`` timer. A client that reads
  its replies resumes everything; one that does not is aborted when the timer fires. Nothing else
  waits on it, and its memory is bounded by one read chunk plus the write buffer.
* ``idle_timeout`` counts from the last complete line (or the connection's start), so a client
  that dribbles a line byte by byte is closed like an idle one. When tokens are configured the
  first line must be ``AUTH <token>``, within ``auth_timeout``; until then the connection holds
  a place in the hub's pending pool, not one of the ``max_connections`` slots (see hub.py), and
  an accepted ``AUTH`` line is answered :data:`~.hub.TOO_MANY_CONNECTIONS` when they are all taken.
  Without tokens, a connection that has sent no complete line yet, or none for a while, may be
  evicted to make room for a new one when every slot is taken (see hub.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

from ..errors import ResultCode
from ..protocol import error_reply
from .hub import AUTH_REQUIRED, TOO_MANY_CONNECTIONS, Hub, peer_gone

__all__ = ["LineConnection"]

log = logging.getLogger(__name__)

_FLUSH_AT = 64 * 1024  # bytes of replies gathered before they are handed to the transport


class LineConnection(asyncio.Protocol):
    """One client of a ``tcp://`` or ``unix://`` listener.

    Args:
        hub: the daemon's connection bookkeeping.
        kind: ``"tcp"`` or ``"unix"``, the prefix of the visitor id.
    """

    def __init__(self, hub: Hub, kind: str) -> None:
        self.hub = hub
        self.kind = kind
        self.visitor = ""
        self._handle = hub.device.handle
        self._limit = hub.max_message_size
        self._oversize = error_reply("", ResultCode.MALFORMED_COMMAND, f"command exceeds {self._limit} bytes")
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._partial = bytearray()  # the start of a line whose end has not arrived
        self._discarding = False  # inside an oversized line: drop bytes up to the next newline
        self._pending = b""  # received but unanswered while writing is paused
        self._authenticated = not hub.auth_required
        self._first = True
        self._closing = False
        self._write_paused = False
        self._lingering = False  # shut down: its replies written, what it sends dropped until it closes
        self._last_line = self._loop.time()
        self._timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None
        self._close_reason = "closed by the client"

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if self.hub.admit(self.kind, self, peer) is None:
            self._closing = True
            transport.write(TOO_MANY_CONNECTIONS + b"\n")
            transport.close()
            return
        size = self.hub.settings.write_buffer_size
        transport.set_write_buffer_limits(high=size, low=size // 4)
        if self._authenticated:
            self.hub.open_session(self.visitor, "owner")
        self._arm_timer()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        if self._write_paused:  # a chunk read before pause_reading took effect
            self._pending += data
            return
        self._feed(data)

    def eof_received(self) -> bool:
        if self._partial and not self._closing and not self._write_paused:
            self._feed(b"\n")  # a last line without its newline is still a line
        return False  # close our side too, once the replies are written

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._cancel_timers()
        if self.visitor:
            reason = self._close_reason if exc is None else f"lost ({exc})"
            self.hub.release(self.visitor, reason)

    def pause_writing(self) -> None:
        self._write_paused = True
        if self._transport is not None:
            self._transport.pause_reading()
        timeout = self.hub.settings.write_timeout
        self._write_timer = self._loop.call_later(timeout, self._drop_slow_client)

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        if self._transport is None:
            return
        if self._closing:
            if self._lingering:  # it reads again: drop what it sends until it closes
                self._transport.resume_reading()
            return
        pending, self._pending = self._pending, b""
        if pending:
            self._feed(pending)
        if not self._write_paused and not self._closing:
            self._transport.resume_reading()

    # -- Connection (for the hub) ----------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop answering; end the stream (FIN) once the replies already answered are written.

        What the client still sends is read and dropped until it closes its side: closing a
        socket while input arrives makes the kernel reset the connection and drop the replies
        still in its buffers, and a client pipelining commands always has some on the way. The
        hub aborts the connections still open after its drain time.
        """
        if self._closing:
            return
        self._closing = True  # data_received drops from now on
        self._close_reason = "closed at shutdown"
        self._lingering = True
        if self._transport is not None:
            try:
                self._transport.write_eof()
            except OSError:  # the client has gone already (a reset): nothing to end
                self._transport.close()

    def abort(self) -> None:
        """Close at once."""
        self._closing = True
        if self._transport is not None:
            self._transport.abort()

    @property
    def last_command(self) -> float | None:
        """Event-loop time of its last complete line; None before the first."""
        return None if self._first else self._last_line

    def evict(self, reply: bytes, reason: str) -> None:
        """Say that a new connection took this one's place (``reply``), and close."""
        if self._closing or self._transport is None:
            return
        self._transport.write(reply + b"\n")
        self._close_on(f"evicted: {reason}")

    def gone(self) -> bool:
        """True when the client has closed or reset the connection before it was read."""
        return self._transport is not None and peer_gone(self._transport)

    # -- the line loop ---------------------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        """Answer every complete line of ``data``; keep a partial line; stop when writing pauses."""
        replies: list[bytes] = []
        size = 0
        pos = 0
        end = len(data)
        handle = self._handle
        visitor = self.visitor
        limit = self._limit
        while pos < end and not self._closing:
            newline = data.find(b"\n", pos)
            if newline < 0:  # no complete line left in this chunk
                if not self._discarding:
                    if len(self._partial) + end - pos > limit:
                        self._partial.clear()
                        self._discarding = True
                        replies.append(self._too_long())
                    else:
                        self._partial += data[pos:]
                break
            if self._discarding:
                self._discarding = False
                pos = newline + 1
                continue
            if self._partial:
                if len(self._partial) + newline - pos > limit:
                    line = None
                else:
                    self._partial += data[pos:newline]
                    line = bytes(self._partial)
                self._partial.clear()
            else:
                line = data[pos:newline] if newline - pos <= limit else None
            pos = newline + 1
            if line is None:
                reply = self._too_long()
            elif self._first:
                reply = self._first_line(line)
            else:
                reply = handle(line, visitor=visitor)
            replies.append(reply)
            size += len(reply) + 1
            if size >= _FLUSH_AT:
                self._write(replies)
                replies.clear()
                size = 0
                if self._write_paused:  # the client is behind: keep the rest for resume_writing
                    self._pending = data[pos:]
                    self._last_line = self._loop.time()
                    return
        if pos > 0:
            self._last_line = self._loop.time()
        if replies:
            self._write(replies)
        if self._closing and self._transport is not None:
            self._transport.close()

    def _too_long(self) -> bytes:
        """The reply to an oversized line; before authentication it also ends the connection."""
        if not self._authenticated:
            self._refuse("closed: oversized line before AUTH")
            return AUTH_REQUIRED
        return self._oversize

    def _first_line(self, line: bytes) -> bytes:
        """The AUTH line (or, without tokens, an ordinary command that may also be AUTH)."""
        self._first = False
        if self._authenticated and not self.hub.is_auth(line):
            return self._handle(line, visitor=self.visitor)
        role, reply = self.hub.authenticate(line)
        if role is None:
            log.warning("%s refused: %s", self.visitor, "bad token" if self.hub.is_auth(line) else "no AUTH line")
            self._refuse("closed: authentication failed")
        elif not self._authenticated:
            if not self.hub.open_session(self.visitor, role):
                self._refuse("closed: too many connections")
                return TOO_MANY_CONNECTIONS
            self._authenticated = True
            self._arm_timer()
        return reply

    def _refuse(self, reason: str) -> None:
        """Stop answering; the transport closes after the reply that says why."""
        self._closing = True
        self._close_reason = reason

    def _write(self, replies: list[bytes]) -> None:
        if self._transport is not None:
            replies.append(b"")
            self._transport.write(b"\n".join(replies))

    # -- timers ----------------------------------------------------------------------------------

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        settings = self.hub.settings
        if self._authenticated:
            self._timer = self._loop.call_at(self._last_line + settings.idle_timeout, self._check_idle)
        else:
            self._timer = self._loop.call_later(settings.auth_timeout, self._close_on, "closed: no AUTH in time")

    def _check_idle(self) -> None:
        """Close when no line came for ``idle_timeout``; else wait for the rest of it."""
        deadline = self._last_line + self.hub.settings.idle_timeout
        if self._loop.time() >= deadline:
            self._close_on("closed: idle timeout")
        else:
            self._timer = self._loop.call_at(deadline, self._check_idle)

    def _drop_slow_client(self) -> None:
        self._write_timer = None
        self._close_reason = "dropped: it did not read its replies"
        log.warning("%s does not read its replies; dropping it", self.visitor)
        self.abort()

    def _close_on(self, reason: str) -> None:
        if self._closing:
            return
        self._closing = True
        self._close_reason = reason
        if self._transport is not None:
            self._transport.pause_reading()
            self._transport.close()

    def _cancel_timers(self) -> None:
        for timer in (self._timer, self._write_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._write_timer = None
