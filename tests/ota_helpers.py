"""Helpers of the OTA tests: a configurable HTTPS firmware server on loopback, and fakes.

The server is a ``ThreadingHTTPServer`` whose accepted sockets are wrapped with a trustme
certificate; each test configures its :class:`Behaviour` (drops, stalls, redirects, broken
ranges, ...) and reads back what the server saw (requests and their headers, body bytes sent).
"""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple
from urllib.parse import urlsplit

import trustme

from iotvideo_signaling._simfirmware import make_image, read_image_version
from iotvideo_signaling.events import Event
from iotvideo_signaling.ota import OtaManager

SECRET = "Signature=TOPSECRET"
#: The test servers' hosts, refused by the default host policy: every test that downloads lists them.
LOCAL_SERVER_HOSTS = ("127.0.0.1", "localhost")
FW_PATH = "/fw/camera.bin"


@dataclass
class Behaviour:
    """What the firmware server does; tests change it freely (also while it runs)."""

    body: bytes = b""
    etag: Optional[str] = '"fw-1"'
    last_modified: Optional[str] = None
    honour_range: bool = True
    bad_content_range: bool = False
    status: Optional[int] = None  # answer every request with this status and no body
    range_status: Optional[int] = None  # answer every Range request with this status and no body
    redirects: Dict[str, str] = field(default_factory=dict)  # path -> Location
    content_encoding: Optional[str] = None
    extra: bytes = b""  # appended after the body
    send_length: bool = True
    chunked: bool = False  # HTTP/1.1 chunked transfer coding (no drops or pauses then)
    drop_after: Optional[int] = None  # close the connection after this many body bytes ...
    drop_times: int = 1  # ... in this many responses
    pause_after: Optional[int] = None  # after this many body bytes, trickle ...
    trickle: Tuple[int, float] = (0, 0.05)  # ... n bytes every s seconds (0 bytes: silence) ...
    pause_times: int = 1  # ... in this many responses
    header_trickle: Optional[float] = None  # send the status line, then one header byte per s seconds


@dataclass
class Seen:
    """One request the server received."""

    path: str
    headers: Dict[str, str]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, context: ssl.SSLContext, behaviour: Behaviour) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.context = context
        self.behaviour = behaviour
        self.lock = threading.Lock()
        self.requests: List[Seen] = []
        self.bytes_sent = 0
        self.drops = 0
        self.pauses = 0
        self.stopping = threading.Event()

    def get_request(self) -> Tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up or refuse our certificate are part of the tests: stay quiet."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def setup(self) -> None:
        self.request.settimeout(10)
        self.request.do_handshake()
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the access log."""

    def do_GET(self) -> None:
        behaviour, server = self.server.behaviour, self.server
        headers = {name.lower(): value for name, value in self.headers.items()}
        with server.lock:
            server.requests.append(Seen(self.path, headers))
        path = urlsplit(self.path).path
        if behaviour.header_trickle is not None:
            self._trickle_headers(behaviour.header_trickle)
            return
        if path in behaviour.redirects:
            self.send_response(302)
            self.send_header("Location", behaviour.redirects[path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        status = behaviour.range_status if "range" in headers else None
        status = behaviour.status if behaviour.status is not None else status
        if status is not None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body, start, status = behaviour.body, 0, 200
        reply_headers: Dict[str, str] = {}
        wanted = headers.get("range", "")
        if_range = headers.get("if-range")
        validators = {behaviour.etag, behaviour.last_modified} - {None}
        if wanted.startswith("bytes=") and behaviour.honour_range and (if_range is None or if_range in validators):
            start, status = int(wanted[len("bytes=") :].rstrip("-")), 206
            first = start + 1 if behaviour.bad_content_range else start
            reply_headers["Content-Range"] = f"bytes {first}-{len(body) - 1}/{len(body)}"
        payload = body[start:] + behaviour.extra
        if behaviour.chunked:
            self.protocol_version = "HTTP/1.1"
            self.close_connection = True
            reply_headers["Transfer-Encoding"] = "chunked"
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        if behaviour.etag:
            reply_headers["ETag"] = behaviour.etag
        if behaviour.last_modified:
            reply_headers["Last-Modified"] = behaviour.last_modified
        if behaviour.content_encoding:
            reply_headers["Content-Encoding"] = behaviour.content_encoding
        if behaviour.send_length and not behaviour.chunked:
            reply_headers["Content-Length"] = str(len(payload))
        for name, value in reply_headers.items():
            self.send_header(name, value)
        self.end_headers()
        if behaviour.chunked:
            for position in range(0, len(payload), 16384):
                piece = payload[position : position + 16384]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                with server.lock:
                    server.bytes_sent += len(piece)
            self.wfile.write(b"0\r\n\r\n")
            return
        self._send(payload)

    def _send(self, payload: bytes) -> None:
        behaviour, server = self.server.behaviour, self.server
        with server.lock:
            drop = behaviour.drop_after if server.drops < behaviour.drop_times else None
            pause = behaviour.pause_after if server.pauses < behaviour.pause_times else None
            server.drops += drop is not None
            server.pauses += pause is not None
        position = 0
        while position < len(payload):
            if drop is not None and position >= drop:
                self.close_connection = True
                return
            if pause is not None and position >= pause:
                self._trickle(payload, position)
                return
            end = min(len(payload), position + 16384, *(x for x in (drop, pause) if x is not None and x > position))
            self.wfile.write(payload[position:end])
            with server.lock:
                server.bytes_sent += end - position
            position = end

    def _trickle_headers(self, interval: float) -> None:
        """A status line, then a header that never ends: one byte per ``interval`` (for 20 s at most)."""
        self.close_connection = True
        self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        deadline = time.monotonic() + 20
        while not self.server.stopping.is_set() and time.monotonic() < deadline:
            time.sleep(interval)
            try:
                self.wfile.write(b"a")
            except OSError:
                return

    def _trickle(self, payload: bytes, position: int) -> None:
        size, interval = self.server.behaviour.trickle
        deadline = time.monotonic() + 20
        while position < len(payload) and not self.server.stopping.is_set() and time.monotonic() < deadline:
            time.sleep(interval)
            if size:
                piece = payload[position : position + size]
                try:
                    self.wfile.write(piece)
                except OSError:
                    return
                with self.server.lock:
                    self.server.bytes_sent += len(piece)
                position += len(piece)
        self.close_connection = True


class FirmwareServer:
    """An HTTPS server on 127.0.0.1 (port 0) serving ``behaviour``, in a thread."""

    def __init__(self, cert: trustme.LeafCert, behaviour: Behaviour) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)
        self.behaviour = behaviour
        self._httpd = _Server(context, behaviour)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def url(self, path: str = FW_PATH, query: str = f"Expires=1700000000&{SECRET}") -> str:
        return f"https://127.0.0.1:{self.port}{path}" + (f"?{query}" if query else "")

    @property
    def requests(self) -> List[Seen]:
        with self._httpd.lock:
            return list(self._httpd.requests)

    @property
    def bytes_sent(self) -> int:
        with self._httpd.lock:
            return self._httpd.bytes_sent

    def stop(self) -> None:
        self._httpd.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


def make_ca_file(ca: trustme.CA, directory: Path) -> str:
    path = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def make_body(directory: Path, version: str, size: int) -> Tuple[bytes, str]:
    """A simulated firmware image's bytes and MD5."""
    path = directory / f"image-{version}-{size}.bin"
    md5 = make_image(path, version, size)
    return path.read_bytes(), md5


@dataclass
class InstallCall:
    path: str
    md5: str
    size: int
    actual_md5: str
    actual_size: int


class FakeFirmware:
    """In-memory firmware slot: ``install`` checks the image and switches ``version``."""

    def __init__(self, version: str = "V1.0.0", *, apply: bool = True, fail: bool = False) -> None:
        self.version = version
        self.apply = apply
        self.fail = fail
        self.gate: Optional[threading.Event] = None
        self.started = threading.Event()
        self.calls: List[InstallCall] = []
        self.on_version: Optional[Callable[[], None]] = None  # called (once) by current_version

    def install(self, path: str, md5: str, size: int) -> None:
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(15)
        data = Path(path).read_bytes()
        self.calls.append(InstallCall(path, md5, size, hashlib.md5(data).hexdigest(), len(data)))
        if self.fail:
            raise RuntimeError("flash write failed")
        new = read_image_version(path)
        if new is None:
            raise RuntimeError("not a firmware image")
        if self.apply:
            self.version = new

    def current_version(self) -> str:
        hook, self.on_version = self.on_version, None
        if hook is not None:
            hook()
        return self.version


class EventLog:
    """Collects published events, with the (fake) clock reading at publish time."""

    def __init__(self, clock: Optional[Callable[[], float]] = None) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.entries: List[Tuple[Event, float]] = []

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.entries.append((event, self._clock() if self._clock else 0.0))

    @property
    def events(self) -> List[Event]:
        with self._lock:
            return [event for event, _ in self.entries]

    @property
    def states(self) -> List[str]:
        return [event.data["state"] for event in self.events]

    @property
    def last(self) -> Dict[str, Any]:
        return dict(self.events[-1].data)


class ThreadSubmit:
    """``submit`` that runs each job in its own thread; ``join`` waits for all of them."""

    def __init__(self) -> None:
        self.threads: List[threading.Thread] = []

    def __call__(self, job: Callable[[], None]) -> threading.Thread:
        thread = threading.Thread(target=job, daemon=True)
        self.threads.append(thread)
        thread.start()
        return thread

    def join(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            assert not thread.is_alive(), "the OTA job did not finish"


class FakeClock:
    """A monotonic clock that advances by ``step`` on every reading."""

    def __init__(self, step: float) -> None:
        self.step = step
        self._now = 1000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            self._now += self.step
            return self._now

    def peek(self) -> float:
        with self._lock:
            return self._now


def no_sleep(seconds: float) -> None:
    """The injected sleep of the tests: retries happen at once."""


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``predicate`` (an OSError or ValueError from it counts as False) until it holds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except (OSError, ValueError, KeyError):
            pass
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


class DiskUsage(NamedTuple):
    total: int
    used: int
    free: int


@dataclass
class Rig:
    """A manager wired to fakes, and what it published."""

    manager: OtaManager
    firmware: FakeFirmware
    events: EventLog
    submit: ThreadSubmit
    download_dir: Path

    def run(self, url: str, md5: str, size: int) -> None:
        """Request the upgrade and wait until the job function returned."""
        self.manager.request(url, md5, size)
        self.submit.join()

    def files(self) -> List[str]:
        return sorted(os.listdir(self.download_dir))


def make_rig(
    download_dir: Path,
    ca_file: Optional[str],
    *,
    firmware: Optional[FakeFirmware] = None,
    clock: Optional[Callable[[], float]] = None,
    **options: Any,
) -> Rig:
    firmware = firmware or FakeFirmware()
    events = EventLog(clock.peek if isinstance(clock, FakeClock) else clock)
    submit = ThreadSubmit()
    settings: Dict[str, Any] = {
        "sleep": no_sleep,
        "timeout": 5.0,
        "chunk_size": 16 * 1024,
        "fsync_every": 64 * 1024,
        "allowed_hosts": LOCAL_SERVER_HOSTS,
    }
    if clock is not None:
        settings["clock"] = clock
    settings.update(options)
    manager = OtaManager(
        download_dir=download_dir,
        install=firmware.install,
        current_version=firmware.current_version,
        publish=events,
        submit=submit,
        ca_file=ca_file,
        **settings,
    )
    return Rig(manager, firmware, events, submit, download_dir)
