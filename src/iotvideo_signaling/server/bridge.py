"""The ``bridge://`` listener: where the C shim in the camera application hands over the device SDK's calls.

The frames are specified in docs/bridge-protocol.md; this module is the daemon's half. Two parts:

* :class:`BridgePeer` is sans-I/O: it is fed the bytes of one connection and returns the bytes to
  send back. It keeps that connection's sessions, one per ``(visitor, channel)``, and maps the
  SDK's events onto the channel's Device: viewers to ``start_stream``/``stop_stream`` (counted per
  video resolution), talk-back to the intercom, a lost peer or the end of the connection to
  ``close_session`` (which stops the visitor's PTZ move). A ``COMMAND`` body reaches
  ``Device.handle`` as a view into the receive buffer, without a copy.
* :class:`BridgeListener` owns the socket: a Unix socket with mode 0660, an accept thread and a
  thread per connection (the camera application keeps one connection open; a restart of it makes
  a second for a moment). No asyncio: a daemon that serves only the bridge never imports it.
  Each thread reads what has arrived, answers every complete frame and sends the answers in one
  call, so the many SDK threads' requests in flight share system calls.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import struct
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from .. import __version__
from .._wire import decode_command
from ..device import Device
from ..errors import ResultCode
from ..protocol import MISSING, EnvelopeError, error_reply, parse_request
from ..sessions import ROLES
from .listen import ListenAddress
from .throttle import REFUSAL_LOG_INTERVAL, ThrottledLog
from .unixsock import bind_unix, claim_unix_path

__all__ = [
    "HEADER",
    "MAX_BODY",
    "MAX_BRIDGE_CONNECTIONS",
    "VERSION",
    "BridgeListener",
    "BridgePeer",
    "FrameType",
]

log = logging.getLogger(__name__)

#: length, type, arg, reserved, id, visitor, channel (docs/bridge-protocol.md)
HEADER = struct.Struct("!IBBHIII")
#: The largest body of a frame, either way.
MAX_BODY = 65536
#: The bridge protocol version this daemon speaks.
VERSION = 1
#: Connections the listener serves at once (one camera application; its restart overlaps).
MAX_BRIDGE_CONNECTIONS = 4
#: Protocol errors logged per connection; the rest are counted and logged when it closes.
MAX_LOGGED_ERRORS = 5


class FrameType:
    """The frame types (docs/bridge-protocol.md)."""

    HELLO = 1
    COMMAND = 2
    STREAM_REQUEST = 3
    VIEWER_START = 4
    VIEWER_STOP = 5
    TALK_START = 6
    TALK_STOP = 7
    PEER_LOST = 8
    SET_ROLE = 9
    RESYNC = 10
    WELCOME = 129
    REPLY = 130
    STREAM_ANSWER = 131
    ERROR = 132


_EVENTS = frozenset(range(FrameType.VIEWER_START, FrameType.RESYNC + 1))
_STREAM_KINDS = ("live", "voice")  # the SDK's request_type: 0 send a stream, 1 receive one (talk-back)


def frame(kind: int, body: bytes = b"", *, arg: int = 0, ident: int = 0, visitor: int = 0, channel: int = 0) -> bytes:
    """One frame's bytes."""
    return HEADER.pack(len(body), kind, arg, 0, ident, visitor, channel) + body


class _Session:
    """One ``(visitor, channel)`` of one connection, as the channel's Device knows it."""

    __slots__ = ("device", "name", "streams")

    def __init__(self, device: Device, name: str) -> None:
        self.device = device
        self.name = name
        self.streams: set[int] = set()  # the video_res_types it watches


class Feed(NamedTuple):
    """What :meth:`BridgePeer.feed` made of the bytes it was given.

    Attributes:
        consumed: bytes of complete frames read (the caller drops them from its buffer).
        out: the frames to send back, in order.
        close: True when the connection must be closed once ``out`` is sent.
    """

    consumed: int
    out: list[bytes]
    close: bool


class BridgePeer:
    """The daemon's side of one bridge connection, without the socket.

    Args:
        devices: the Device of each channel (a single camera: ``{0: device}``).
        name: this connection's name in session names and logs (``bridge-1``).
    """

    def __init__(self, devices: Mapping[int, Device], name: str) -> None:
        self._devices = devices
        self.name = name
        self._greeted = False
        self._sessions: dict[tuple[int, int], _Session] = {}
        self._errors = 0
        self._unknown_channels: set[int] = set()

    # -- frames in, frames out ----------------------------------------------------------------

    def feed(self, data: memoryview) -> Feed:
        """Answer every complete frame at the start of ``data``; a partial frame is left for later."""
        out: list[bytes] = []
        pos = 0
        end = len(data)
        while end - pos >= HEADER.size:
            length, kind, arg, reserved, ident, visitor, channel = HEADER.unpack_from(data, pos)
            if length > MAX_BODY:
                out.append(self._error(ident, "frame too large", fatal=True))
                return Feed(pos, out, True)
            if end - pos - HEADER.size < length:
                break
            start = pos + HEADER.size
            pos = start + length
            if not self._greeted:
                answer = self._hello(kind, arg, length)
                out.append(answer)
                if not self._greeted:
                    return Feed(pos, out, True)
                continue
            if reserved:
                out.append(self._error(ident, "reserved bits set"))
            elif kind == FrameType.COMMAND:
                if not ident:
                    out.append(self._error(ident, "a request needs a non-zero id"))
                    continue
                body = data[start:pos]
                try:
                    answer = self._command(body, visitor, channel)
                finally:
                    body.release()
                out.append(HEADER.pack(len(answer), FrameType.REPLY, 0, 0, ident, 0, 0) + answer)
            elif kind == FrameType.STREAM_REQUEST:
                out.append(self._stream_request(ident, arg, visitor, channel, length))
            elif kind in _EVENTS:
                problem = self._event(kind, arg, visitor, channel, length)
                if problem:
                    out.append(self._error(ident, problem))
            elif kind == FrameType.HELLO:
                out.append(self._error(ident, "HELLO already received"))
            else:
                out.append(self._error(ident, f"unknown frame type {kind}"))
        return Feed(pos, out, False)

    def _hello(self, kind: int, arg: int, length: int) -> bytes:
        if kind != FrameType.HELLO:
            return self._error(0, "expected HELLO", fatal=True)
        if arg != VERSION:
            return self._error(
                0, f"unsupported bridge protocol version {arg} (this daemon speaks {VERSION})", fatal=True
            )
        if length > 64:
            return self._error(0, "HELLO body longer than 64 bytes", fatal=True)
        self._greeted = True
        return frame(FrameType.WELCOME, f"iotvideo-signaling {__version__}".encode(), arg=VERSION)

    def _error(self, ident: int, reason: str, *, fatal: bool = False) -> bytes:
        self._errors += 1
        if self._errors <= MAX_LOGGED_ERRORS:
            log.warning("%s: %s%s", self.name, reason, "; closing the connection" if fatal else "")
        return frame(FrameType.ERROR, reason.encode(), arg=int(fatal), ident=ident)

    # -- requests ----------------------------------------------------------------------------

    def _command(self, body: memoryview, visitor: int, channel: int) -> bytes:
        session = self._session(visitor, channel)
        if session is None:
            return _no_camera_reply(body, channel)
        answer = session.device.handle(body, visitor=session.name)
        if len(answer) > MAX_BODY:  # only with a max_message_size over 64 KiB
            return error_reply("", ResultCode.DEVICE_ERROR, "reply too large for the bridge")
        return answer

    def _stream_request(self, ident: int, arg: int, visitor: int, channel: int, length: int) -> bytes:
        if not ident:
            return self._error(ident, "a request needs a non-zero id")
        if length:
            return self._error(ident, "unexpected body")
        if arg >= len(_STREAM_KINDS):
            return self._error(ident, f"bad arg {arg}")
        session = self._session(visitor, channel)
        status = "404" if session is None else session.device.admit_stream(session.name, _STREAM_KINDS[arg]).status
        return frame(FrameType.STREAM_ANSWER, status.encode(), arg=int(status != "0"), ident=ident)

    # -- events ------------------------------------------------------------------------------

    def _event(self, kind: int, arg: int, visitor: int, channel: int, length: int) -> str | None:
        """Apply one event frame; returns what is wrong with it, or None."""
        if length:
            return "unexpected body"
        if kind == FrameType.RESYNC:
            self.close_all("resync")
            return None
        if kind == FrameType.SET_ROLE and arg >= len(ROLES):
            return f"bad arg {arg}"
        key = (visitor, channel)
        if kind == FrameType.PEER_LOST:
            gone = self._sessions.pop(key, None)
            if gone is not None:
                gone.device.close_session(gone.name)
            return None
        session = self._session(visitor, channel, role=ROLES[arg] if kind == FrameType.SET_ROLE else None)
        if session is None:
            return None
        device, name = session.device, session.name
        if kind == FrameType.VIEWER_START:
            if not session.streams:
                device.start_stream(name)
            session.streams.add(arg)
        elif kind == FrameType.VIEWER_STOP:
            session.streams.discard(arg)
            if not session.streams:
                device.stop_stream(name)
        elif kind == FrameType.TALK_START:
            if not device.start_intercom(name):
                log.info("%s: talk-back started while another visitor holds the intercom", name)
        elif kind == FrameType.TALK_STOP:
            device.stop_intercom(name)
        return None

    # -- sessions ----------------------------------------------------------------------------

    def _session(self, visitor: int, channel: int, *, role: str | None = None) -> _Session | None:
        """The session of ``(visitor, channel)``, opened on first use; None for a channel without a camera."""
        key = (visitor, channel)
        session = self._sessions.get(key)
        if session is None:
            device = self._devices.get(channel)
            if device is None:
                if channel not in self._unknown_channels:
                    self._unknown_channels.add(channel)
                    log.warning("%s: no camera on channel %d; its commands are refused", self.name, channel)
                return None
            session = self._sessions[key] = _Session(device, f"{self.name}:{channel}:{visitor}")
            device.open_session(session.name, role)  # None: the Device's default_role
        elif role is not None:
            session.device.open_session(session.name, role)
        return session

    def close_all(self, why: str) -> None:
        """Close every session of this connection (it ended, or the shim asked for a resync)."""
        sessions = list(self._sessions.values())
        self._sessions.clear()
        for session in sessions:
            try:
                session.device.close_session(session.name)
            except Exception:
                log.exception("%s: closing the session failed", session.name)
        if sessions:
            log.info("%s: %d session(s) closed (%s)", self.name, len(sessions), why)

    @property
    def errors(self) -> int:
        """Protocol errors answered on this connection."""
        return self._errors


def _no_camera_reply(body: memoryview, channel: int) -> bytes:
    """Error 3 for a command to a channel without a camera, with its ``message_id`` when readable."""
    message_id = MISSING
    try:
        _, value = decode_command(body)
        if value is not None:
            message_id = parse_request(value).message_id
    except EnvelopeError as exc:
        message_id = exc.message_id
    except Exception:  # noqa: BLE001, S110 - an unreadable command has no message_id to echo
        pass
    return error_reply("", ResultCode.UNKNOWN, f"no camera on channel {channel}", message_id)


# -- the socket side -------------------------------------------------------------------------------

#: Receive buffer per connection: room for two largest frames, so one always fits after compaction.
_BUFFER = 2 * (HEADER.size + MAX_BODY)
#: How often a blocked accept or read looks at the stop flag, in s.
_POLL = 0.5


class BridgeListener:
    """A ``bridge://`` listener: threads, sockets, and a :class:`BridgePeer` per connection.

    Args:
        address: the ``bridge://`` address (an absolute socket path).
        devices: the Device of each channel.
        write_timeout: seconds the shim may leave answers unread before it is dropped.

    :meth:`start` binds and starts the accept thread; :meth:`stop` closes everything. The
    constructor does no I/O.
    """

    def __init__(self, address: ListenAddress, devices: Mapping[int, Device], *, write_timeout: float = 10.0) -> None:
        self.address = address
        self._devices = devices
        self._write_timeout = write_timeout
        self._path = Path(address.path)
        self._sock: socket.socket | None = None
        self._inode = 0
        self._accepter: threading.Thread | None = None
        self._lock = threading.Lock()
        self._connections: dict[str, tuple[socket.socket, threading.Thread]] = {}
        self._serial = itertools.count(1)
        self._stopping = threading.Event()
        self._refusals = ThrottledLog(log, logging.WARNING, interval=REFUSAL_LOG_INTERVAL, keys=1)  # accept thread

    def start(self) -> None:
        """Bind the socket (mode 0660) and start accepting.

        Raises:
            ConfigError: the path is taken by a live server or a file, or its directory is missing.
            OSError: the socket cannot be bound.
        """
        path = claim_unix_path(self._path, str(self.address))
        sock = bind_unix(path)
        sock.setblocking(True)
        sock.settimeout(_POLL)
        sock.listen(MAX_BRIDGE_CONNECTIONS)
        self._sock = sock
        self._inode = path.stat().st_ino
        self._accepter = threading.Thread(target=self._accept, name=f"{self.address}", daemon=True)
        self._accepter.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop accepting, end every connection (closing its sessions), remove the socket file."""
        self._stopping.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)  # wakes accept() at once on Linux
        if self._accepter is not None:
            self._accepter.join(timeout)
        with self._lock:
            connections = list(self._connections.values())
        for conn, _ in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for _, thread in connections:
            thread.join(timeout)
        if self._sock is not None:
            self._sock.close()
            with contextlib.suppress(OSError):
                if self._path.stat().st_ino == self._inode:
                    self._path.unlink()
            self._sock = None

    def _accept(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                log.exception("%s: accept failed", self.address)
                self._stopping.wait(_POLL)
                continue
            name = f"bridge-{next(self._serial)}"
            with self._lock:
                full = len(self._connections) >= MAX_BRIDGE_CONNECTIONS
                if not full:
                    thread = threading.Thread(target=self._serve, args=(conn, name), name=name, daemon=True)
                    self._connections[name] = (conn, thread)
            if full:
                open_now = MAX_BRIDGE_CONNECTIONS
                self._refusals.log("full", "%s: refusing a connection: %d are open", self.address, open_now)
                with contextlib.suppress(OSError):
                    conn.sendall(frame(FrameType.ERROR, b"too many bridge connections", arg=1))
                conn.close()
                continue
            thread.start()

    def _serve(self, conn: socket.socket, name: str) -> None:
        peer = BridgePeer(self._devices, name)
        log.info("%s connected on %s", name, self.address)
        why = "closed by the shim"
        try:
            why = self._exchange(conn, peer)
        except OSError as exc:
            why = f"connection error: {exc.strerror or exc}"
        except Exception:
            log.exception("%s failed", name)
            why = "internal error"
        finally:
            peer.close_all(why)
            conn.close()
            with self._lock:
                self._connections.pop(name, None)
            suffix = f"; {peer.errors} protocol error(s)" if peer.errors > MAX_LOGGED_ERRORS else ""
            log.info("%s %s%s", name, why, suffix)

    def _exchange(self, conn: socket.socket, peer: BridgePeer) -> str:
        """Read, answer, send, until the connection ends; returns why it ended."""
        conn.settimeout(_POLL)
        buffer = bytearray(_BUFFER)
        view = memoryview(buffer)
        start = end = 0
        while not self._stopping.is_set():
            if end == len(buffer):  # make room: move the partial frame to the front
                buffer[: end - start] = bytes(view[start:end])  # (overlapping: copied first)
                end -= start
                start = 0
            try:
                received = conn.recv_into(view[end:])
            except socket.timeout:
                continue
            if not received:
                return "closed by the shim"
            end += received
            with view[start:end] as pending:
                result = peer.feed(pending)
            start += result.consumed
            if start == end:
                start = end = 0
            if result.out:
                self._send(conn, result.out)
            if result.close:
                return "closed after a protocol error"
        return "closed at shutdown"

    def _send(self, conn: socket.socket, frames: list[bytes]) -> None:
        conn.settimeout(self._write_timeout)
        try:
            conn.sendall(b"".join(frames) if len(frames) > 1 else frames[0])
        except socket.timeout:
            raise OSError(f"the shim left its answers unread for {self._write_timeout:g} s") from None
        finally:
            conn.settimeout(_POLL)
