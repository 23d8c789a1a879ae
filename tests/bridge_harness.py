"""Helpers for tests/test_bridge_shim.py: a fake bridge daemon and the C build of the fake SDK.

The fake daemon speaks docs/bridge-protocol.md with just enough of a device behind it (sessions,
viewers, the intercom, ``user_num``) for the shim's tests, records every frame it receives, and
misbehaves on request: it answers the first commands of its first connections with garbage, an
oversized frame, a fatal ERROR and so on, or stops reading (for a while after WELCOME, or after
some commands until the test resumes it) so that the shim's queue backs up. ``frames`` keeps
every frame in the order it was read. It is a test double, not a second implementation of the
daemon: the real one is ``python -m iotvideo_signaling serve --listen bridge://...``.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from iotvideo_signaling.server.bridge import HEADER, MAX_BODY, FrameType, frame

# the frame types by their short names (docs/bridge-protocol.md), for the test's frame lists
HELLO, COMMAND, STREAM_REQUEST = FrameType.HELLO, FrameType.COMMAND, FrameType.STREAM_REQUEST
VIEWER_START, VIEWER_STOP = FrameType.VIEWER_START, FrameType.VIEWER_STOP
TALK_START, TALK_STOP, PEER_LOST = FrameType.TALK_START, FrameType.TALK_STOP, FrameType.PEER_LOST
SET_ROLE, RESYNC = FrameType.SET_ROLE, FrameType.RESYNC
WELCOME, REPLY, STREAM_ANSWER, ERROR = FrameType.WELCOME, FrameType.REPLY, FrameType.STREAM_ANSWER, FrameType.ERROR

_MESSAGE_ID = re.compile(rb'"message_id"\s*:\s*(-?[0-9]{1,16}|"[A-Za-z0-9_.:-]{0,64}")')


# Answers that break the connection, by name: each replaces the REPLY to one COMMAND.
BAD_ANSWERS: dict[str, bytes] = {
    "unknown_type": frame(77, b"x"),
    "oversize": HEADER.pack(MAX_BODY + 1, REPLY, 0, 0, 1, 0, 0),
    "reserved_bits": HEADER.pack(2, REPLY, 0, 1, 1, 0, 0) + b"{}",
    "empty_reply": b"",  # built per request: a REPLY with the right id and no body
    "fatal_error": frame(ERROR, b"going away", arg=1),
    "random_bytes": bytes(range(7, 250, 3)),
}


@dataclass
class FakeState:
    """What the fake daemon knows, per connection; replaced by a new one on every connection."""

    viewers: dict[tuple[int, int], set[int]] = field(default_factory=dict)
    talker: tuple[int, int] | None = None
    roles: dict[tuple[int, int], int] = field(default_factory=dict)

    def user_num(self) -> int:
        return sum(1 for streams in self.viewers.values() if streams)

    def apply(self, kind: int, arg: int, visitor: int, channel: int) -> None:
        key = (visitor, channel)
        if kind == VIEWER_START:
            self.viewers.setdefault(key, set()).add(arg)
        elif kind == VIEWER_STOP:
            self.viewers.get(key, set()).discard(arg)
        elif kind == TALK_START and self.talker is None:
            self.talker = key
        elif kind == TALK_STOP and self.talker == key:
            self.talker = None
        elif kind == SET_ROLE:
            self.roles[key] = arg
        elif kind == PEER_LOST:
            self.viewers.pop(key, None)
            self.roles.pop(key, None)
            if self.talker == key:
                self.talker = None
        elif kind == RESYNC:
            self.viewers.clear()
            self.roles.clear()
            self.talker = None


class FakeDaemon:
    """A bridge:// daemon stand-in on a Unix socket (see the module docstring).

    Args:
        path: the socket path.
        bad_answer: a key of BAD_ANSWERS, answered to the first command of each of the first
            ``bad_connections`` connections (which the shim must then drop).
        stall_after_welcome: seconds to stop reading after WELCOME (the shim's queue fills).
        answer_delay: seconds to wait before every REPLY.
        pause_after_commands: stop reading after answering this many COMMANDs (0: never), until
            ``resume()``.
    """

    def __init__(
        self,
        path: Path,
        *,
        bad_answer: str | None = None,
        bad_connections: int = 1,
        stall_after_welcome: float = 0.0,
        answer_delay: float = 0.0,
        pause_after_commands: int = 0,
    ) -> None:
        self.path = path
        self.bad_answer = bad_answer
        self.bad_connections = bad_connections
        self.stall_after_welcome = stall_after_welcome
        self.answer_delay = answer_delay
        self.pause_after_commands = pause_after_commands
        self.commands = 0  # COMMANDs answered, all connections
        self.reading = threading.Event()  # cleared while the daemon does not read
        self.reading.set()
        self.connections = 0
        self.frames: list[tuple[int, int, int, int]] = []  # (type, arg, visitor, channel), all connections
        self.state = FakeState()
        self.hello_bodies: list[bytes] = []
        self.protocol_errors: list[str] = []  # frames the shim should never have sent
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []

    def __enter__(self) -> FakeDaemon:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        self._server.bind(str(self.path))
        self._server.listen(16)
        self._server.settimeout(0.1)
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)

    def close(self) -> None:
        self._stop.set()
        self.reading.set()
        self._server.close()
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5)

    def resume(self) -> None:
        """Reads again after a pause (pause_after_commands)."""
        self.reading.set()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                number = self.connections
                self._conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn, number), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket, number: int) -> None:
        try:
            self._exchange(conn, number)
        except OSError:
            pass
        finally:
            conn.close()

    def _recv_exact(self, conn: socket.socket, n: int) -> bytes | None:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def _exchange(self, conn: socket.socket, number: int) -> None:
        misbehave = self.bad_answer is not None and number <= self.bad_connections
        welcomed = False
        while not self._stop.is_set():
            if not self.reading.wait(0.05):
                continue
            head = self._recv_exact(conn, HEADER.size)
            if head is None:
                return
            length, kind, arg, reserved, ident, visitor, channel = HEADER.unpack(head)
            body = self._recv_exact(conn, length) if length else b""
            if body is None:
                return
            if reserved or length > MAX_BODY:
                self.protocol_errors.append(f"bad header {head.hex()}")
            if not welcomed:
                if kind != HELLO or arg != 1:
                    self.protocol_errors.append(f"expected HELLO, got type {kind}")
                    return
                with self._lock:
                    self.hello_bodies.append(body)
                    self.state = FakeState()  # a new connection has no sessions
                conn.sendall(frame(WELCOME, b"fake-daemon 0", arg=1))
                welcomed = True
                if self.stall_after_welcome:
                    time.sleep(self.stall_after_welcome)
                continue
            with self._lock:
                self.frames.append((kind, arg, visitor, channel))
            if kind == COMMAND:
                if ident == 0:
                    self.protocol_errors.append("COMMAND with id 0")
                if misbehave:
                    bad = self.bad_answer or ""
                    conn.sendall(frame(REPLY, ident=ident) if bad == "empty_reply" else BAD_ANSWERS[bad])
                    misbehave = False
                    continue
                if self.answer_delay:
                    time.sleep(self.answer_delay)
                conn.sendall(frame(REPLY, self._reply(body, visitor, channel), ident=ident))
                with self._lock:
                    self.commands += 1
                    if self.commands == self.pause_after_commands:
                        self.reading.clear()
            elif kind == STREAM_REQUEST:
                with self._lock:
                    refuse = arg == 1 and self.state.talker not in (None, (visitor, channel))
                conn.sendall(frame(STREAM_ANSWER, b"1" if refuse else b"0", arg=int(refuse), ident=ident))
            elif VIEWER_START <= kind <= RESYNC:
                if length:
                    self.protocol_errors.append(f"event type {kind} with a body")
                with self._lock:
                    self.state.apply(kind, arg, visitor, channel)
            else:
                self.protocol_errors.append(f"unknown frame type {kind}")

    def _reply(self, body: bytes, visitor: int, channel: int) -> bytes:
        match = _MESSAGE_ID.search(body)
        with self._lock:
            user_num, intercom = self.state.user_num(), self.state.talker is not None
        reply = b'{"confirmation_topic":"get_status","result":"0","user_num":%d,"intercom":"%s"' % (
            user_num,
            b"using" if intercom else b"unused",
        )
        if match:
            reply += b',"message_id":' + match.group(1)
        return reply + b"}"


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Polls predicate until it returns a truthy value, else fails."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
