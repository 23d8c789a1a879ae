"""Who gets a connection slot under attack: clients that hung up, refusals in a loop, idle holders.

Each test starts its own daemon (``serve`` as a subprocess, see test_server_harness.py) with a
small ``max_connections``; traffic only goes to loopback, and every client stops by itself.
"""

from __future__ import annotations

import contextlib
import logging
import select
import signal
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from test_server_harness import LineClient, Served, command, running, wait_until

TOO_MANY = b'{"confirmation_topic":"","result":"5","reason":"too many connections"}'
IDLE_EVICTED = b'{"confirmation_topic":"","result":"5","reason":"closed: idle while every connection slot was taken"}'
SLOTS = 4


def config(slots: int = SLOTS) -> str:
    return f"""
[device]
max_connections = {slots}
"""


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Served]:
    with running(tmp_path, "tcp://127.0.0.1:0", config=config()) as served:
        yield served


@contextlib.contextmanager
def stopped(served: Served) -> Iterator[None]:
    """The daemon is suspended (SIGSTOP): connections wait in its listen queue until it resumes."""
    served.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        served.process.send_signal(signal.SIGCONT)


def hang_up(url: str, *, reset: bool) -> None:
    """Connect and close at once: with a FIN, or with a reset (SO_LINGER 0)."""
    client = LineClient(url)
    if reset:
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()


def test_clients_that_hung_up_before_they_were_read_do_not_take_the_slots(daemon: Served) -> None:
    url = daemon.url("tcp")
    with stopped(daemon):  # the daemon accepts them all in one batch when it resumes
        for i in range(3 * SLOTS):
            hang_up(url, reset=i % 2 == 1)
        client = LineClient(url)
    with client:
        client.send(command("version", 1))
        line = client.line()
        assert line != TOO_MANY
        reply = orjson.loads(line)
        assert (reply["result"], reply["message_id"]) == ("0", 1)
    assert daemon.wait_log("closed by the client (before it was read)")
    assert " ERROR " not in daemon.log(), daemon.log()


def test_refusals_in_a_loop_are_logged_once_a_while(daemon: Served) -> None:
    url = daemon.url("tcp")
    clients = [LineClient(url) for _ in range(SLOTS)]
    try:
        for attempt in range(40):
            if attempt % 10 == 0:  # the slot holders stay busy: none is idle enough to give way
                for i, client in enumerate(clients):
                    assert client.request(command("version", i))["result"] == "0"
            with LineClient(url) as extra:
                assert extra.line() == TOO_MANY
        assert daemon.log().count("refusing a tcp connection") == 1
    finally:
        for client in clients:
            client.close()



class Slowloris:
    """Holds ``count`` connections that send a byte now and then but never end a line, and
    reconnects each one the server closes; it stops when :meth:`stop` is called, or after
    ``limit`` seconds whatever happens."""

    def __init__(self, url: str, count: int, limit: float = 120.0) -> None:
        self.url = url
        self.count = count
        self.limit = limit
        self.reconnects = 0
        self.told: list[bytes] = []  # what the server said before closing a connection
        self.sockets: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Slowloris:
        for _ in range(self.count):
            self.sockets.append(LineClient(self.url).sock)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(30)
        for sock in self.sockets:
            sock.close()

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit
        while not self._stop.wait(0.1) and time.monotonic() < deadline:
            readable, _, _ = select.select(self.sockets, [], [], 0)
            for sock in readable:  # a reply (why it is closed) or the close itself
                with contextlib.suppress(OSError):
                    self.told.append(sock.recv(4096))
                sock.close()
                self.sockets.remove(sock)
                with contextlib.suppress(OSError):
                    self.sockets.append(LineClient(self.url).sock)
                    self.reconnects += 1
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.send(b"a")


def test_a_slowloris_holding_every_slot_gives_way_to_new_clients(daemon: Served) -> None:
    url = daemon.url("tcp")
    with LineClient(url) as panel:  # a client that sends a command now and then keeps its slot
        assert panel.request(command("version", 0))["result"] == "0"
        with Slowloris(url, SLOTS - 1) as attacker:
            for i in range(1, 6):
                evicted = i - 1
                assert wait_until(lambda: attacker.reconnects >= evicted)  # noqa: B023 - called at once
                assert panel.request(command("version", i))["message_id"] == i
                with LineClient(url) as newcomer:
                    line = newcomer.request(command("version", i))
                    assert line.get("message_id") == i, line
            assert panel.request(command("version", 9))["message_id"] == 9
        assert attacker.reconnects >= 4
        assert set(attacker.told) <= {IDLE_EVICTED + b"\n"}, attacker.told
    assert daemon.log().count("evicted: idle while every connection slot was taken") >= 5


def test_an_idle_websocket_gives_way_too(tmp_path: Path) -> None:
    websockets_sync = pytest.importorskip("websockets.sync.client")
    from websockets.exceptions import ConnectionClosed

    listen = ("tcp://127.0.0.1:0", "ws://127.0.0.1:0")
    with running(tmp_path, *listen, config=config()) as served, contextlib.ExitStack() as stack:
        idle = [stack.enter_context(websockets_sync.connect(served.url("ws"), compression=None)) for _ in range(SLOTS)]
        assert wait_until(lambda: served.log().count(" connected from ") >= SLOTS)
        with LineClient(served.url("tcp")) as newcomer:
            assert newcomer.request(command("version", 1))["message_id"] == 1
        told: list[Any] = []  # session events, then why it is closed
        with pytest.raises(ConnectionClosed) as closed:
            while len(told) < 100:
                told.append(orjson.loads(idle[0].recv(timeout=5)))
        assert orjson.loads(IDLE_EVICTED) in told  # the oldest made room
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013


# -- clients that do not read ----------------------------------------------------------------------

WRITE_TIMEOUT = 4.0


def test_a_websocket_that_reads_nothing_is_dropped_while_events_flow(tmp_path: Path) -> None:
    websockets_sync = pytest.importorskip("websockets.sync.client")
    settings = f"[server]\nwrite_timeout = {WRITE_TIMEOUT}\n"
    with running(tmp_path, "tcp://127.0.0.1:0", "ws://127.0.0.1:0", config=settings) as served:
        # max_queue: the client library stops reading the socket once 16 messages wait unread
        deaf = websockets_sync.connect(served.url("ws"), compression=None, max_queue=16, close_timeout=1)
        with deaf, LineClient(served.url("tcp")) as panel:
            started = time.monotonic()
            flips = 0
            while "does not read its events" not in served.log():  # each flip is an event for it
                # unread events fill the socket buffers (megabytes) long after this
                assert time.monotonic() - started < WRITE_TIMEOUT + 20, "the deaf client was not dropped"
                mode = "flip" if flips % 2 else "normal"
                assert panel.request(command("Mirror_flip", flips, mode=mode))["result"] == "0"
                flips += 1
                time.sleep(0.01)
            assert time.monotonic() - started >= WRITE_TIMEOUT  # it had write_timeout to read


def test_a_websocket_dropped_for_its_events_is_logged_once(tmp_path: Path) -> None:
    """However many events come before the drop takes effect: here a burst of flips in one write,
    each an event for the WebSocket, all handled before it can send any."""
    websockets_sync = pytest.importorskip("websockets.sync.client")
    settings = f"[server]\nwrite_timeout = {WRITE_TIMEOUT}\n"
    with running(tmp_path, "tcp://127.0.0.1:0", "ws://127.0.0.1:0", config=settings) as served:
        deaf = websockets_sync.connect(served.url("ws"), compression=None, max_queue=16, close_timeout=1)
        with deaf, LineClient(served.url("tcp")) as panel:
            flips = 200
            panel.send(*(command("Mirror_flip", i, mode="flip" if i % 2 else "normal") for i in range(flips)))
            assert [panel.reply()["result"] for _ in range(flips)] == ["0"] * flips
            started = time.monotonic()
            while "dropped: it did not read its events" not in served.log():  # the hub released it
                assert time.monotonic() - started < WRITE_TIMEOUT + 20, "the deaf client was not dropped"
                mode = "flip" if flips % 2 else "normal"
                assert panel.request(command("Mirror_flip", flips, mode=mode))["result"] == "0"
                flips += 1
                time.sleep(0.01)
        assert served.log().count("does not read its events; dropping it") == 1, served.log()


# -- connections that never send a WebSocket request --------------------------------------------

NOT_A_HANDSHAKE = {
    "gone": b"",
    "gone-with-a-reset": b"",
    "half-a-request": b"GET / HT",
    "not-http": b"\x16\x03\x01\x02\x00 not a request\r\n\r\n",
    "plain-http": b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "gone-before-the-answer": b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "foreign-origin": (
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Origin: https://evil.example\r\n\r\n"
    ),
}


def test_a_connection_without_a_valid_handshake_is_not_logged_as_an_error(tmp_path: Path) -> None:
    """A scanner, a client gone before its request, bytes that are not HTTP, plain HTTP, a web page
    of another origin: websockets 14 and 15 logged each as an ERROR with a traceback; the daemon
    logs none of them as a warning or an error, whatever the version (the origin is logged at INFO)."""
    websockets_sync = pytest.importorskip("websockets.sync.client")
    with running(tmp_path, "ws://127.0.0.1:0") as served:
        host, port = served.url("ws").removeprefix("ws://").rsplit(":", 1)
        for name, sent in NOT_A_HANDSHAKE.items():
            with socket.create_connection((host, int(port)), timeout=5) as raw:
                raw.sendall(sent)
                if name == "gone-with-a-reset":
                    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    continue
                if name not in ("plain-http", "foreign-origin"):  # those wait for their answer
                    raw.shutdown(socket.SHUT_WR)
                while raw.recv(4096):  # until the daemon has dealt with it and closed
                    pass
        with websockets_sync.connect(served.url("ws"), compression=None) as ws:
            ws.send(command("version", 1))
            assert orjson.loads(ws.recv(timeout=5))["message_id"] == 1
        served.stop()
        log = served.log()
    assert [line for line in log.splitlines() if " WARNING " in line or " ERROR " in line] == [], log
    assert "Traceback" not in log
    assert "Origin 'https://evil.example' is not in [server] allowed_origins" in log


def _raised_by_websockets() -> EOFError:
    """An EOFError raised inside websockets' own code, as its HTTP parser raises it."""
    from websockets.streams import StreamReader

    reader = StreamReader()
    reader.feed_eof()
    try:
        next(reader.read_line(100))
    except EOFError as exc:
        return exc
    raise AssertionError("websockets read a line from an empty stream")


def test_the_websockets_log_drops_the_peers_faults_and_keeps_the_daemons(caplog: pytest.LogCaptureFixture) -> None:
    """The adapter itself, called as websockets 14 and 15 call it, with what each of them raises (so
    this does not hang on the installed version); errors from elsewhere are kept."""
    pytest.importorskip("websockets")
    from websockets.exceptions import ConnectionClosedError, InvalidMessage, InvalidOrigin, InvalidUpgrade

    from iotvideo_signaling.server.websocket import _QuietLogger

    adapter = _QuietLogger(logging.getLogger("iotvideo_signaling.server.websockets"), {})
    peers_faults: list[BaseException] = [
        InvalidMessage("did not receive a valid HTTP request"),
        InvalidUpgrade("Upgrade"),
        InvalidOrigin("https://evil.example"),
        ConnectionClosedError(None, None),
        _raised_by_websockets(),
    ]
    daemons = [RuntimeError("a failure of the daemon's own"), ValueError("raised here, not by websockets")]
    with caplog.at_level(logging.DEBUG, "iotvideo_signaling.server.websockets"):
        for exc in peers_faults + daemons:
            try:
                raise exc
            except Exception:
                adapter.error("opening handshake failed", exc_info=True)
        adapter.warning("a warning without an exception")
        adapter.info("an info line")
    assert [(r.levelname, r.exc_info[1] if r.exc_info else None) for r in caplog.records] == [
        ("ERROR", daemons[0]),
        ("ERROR", daemons[1]),
        ("WARNING", None),
    ]
