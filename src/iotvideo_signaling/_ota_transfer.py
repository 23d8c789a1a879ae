"""The network side of a firmware upgrade: fetch one image over HTTPS into its ``.part`` file.

Theory of operation
-------------------
:class:`~iotvideo_signaling.ota.OtaManager` owns the job (validation, the job file, events,
verification, the installer); this module owns the transfer. The manager builds one
:class:`Downloader` (settings and the TLS context) and, for each run of a job, opens the
``.part`` file (``_ota_job.PartFile``) and calls :meth:`Downloader.fetch`, which makes attempts
until the file holds ``size`` bytes. Its whole view of the manager is the job (:class:`Resource`:
what to fetch, plus the fields the transfer keeps up to date for the job file and the status)
and :class:`Hooks` (stop?, write the job record, progress, wait, and where to find the live
connection). ``fetch`` returns when the file is complete, or raises ``Fatal`` (the job fails
with an ``OtaCode``) or ``Stopped`` (``Hooks.stopping`` turned true), both from ``_ota_base``;
it never reads the job file, publishes events or checks the MD5.

HTTP: one GET per attempt on a fresh ``http.client.HTTPSConnection`` (certificate and host name
always verified, TLS >= 1.2), ``Accept-Encoding: identity``, redirects followed by hand (https
only, at most ``max_redirects``). Every hop's host, the first included, must pass the
:class:`~iotvideo_signaling._ota_base.HostPolicy`, and so must every address a connection is
made to (the addresses ``getaddrinfo`` gave, checked just before each connect: no second lookup
that DNS could answer differently). A retry resumes from the bytes already written, with ``Range``
and ``If-Range`` (a strong ETag, else Last-Modified). A ``200`` to a ``Range`` request starts the
file over; a ``206`` whose ``Content-Range`` is not exactly what was asked for, or a ``416``, drops
the partial file and the job continues without ``Range``. A transfer that stays below
``stall_min_rate`` over ``stall_window`` seconds, receives nothing for ``timeout`` seconds, or
whose response headers are not all in ``header_timeout`` seconds after it started connecting (a
:class:`_Watchdog` shuts the socket down), counts as a failed attempt. Once the request is sent,
from the moment its socket exists (TCP connect, TLS handshake, request, headers, body) ``Hooks.set_interrupt``
holds a way to shut it down, so that ``close()``/``cancel()`` can cut it under a blocked connect or
read; only the name lookup runs to its own end.

Retries back off exponentially with jitter. The failure count starts over only on real progress:
the partial file reaching 1 MiB beyond the furthest it had reached when the count last started
over (a server that ignores ``Range`` and drops every transfer at the same point resends the same
bytes and earns nothing). However the retries go, a job that received more than 3 x ``size`` +
1 MiB over the network in one process fails (-1 ``too much data received``).

Durability: the transfer calls ``_ota_job.checkpoint`` (fsync the ``.part`` file, *then* set
``Resource.durable`` and call ``Hooks.record``) every ``fsync_every`` bytes, after a failed
attempt and whenever the file starts over. Signed query strings never reach logs: URLs are
logged through ``_ota_base.redact``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Optional, Protocol, Tuple
from urllib.parse import urljoin, urlsplit

from ._ota_base import NOT_PUBLIC, Fatal, HostPolicy, MiB, OtaCode, Stopped, redact, url_problem
from ._ota_job import PartFile, checkpoint

if TYPE_CHECKING:
    import http.client
    import socket
    import ssl
    from urllib.parse import SplitResult

# The upgrade logs under one name, whichever of its modules speaks.
log = logging.getLogger("iotvideo_signaling.ota")

_CONTENT_RANGE = re.compile(r"bytes +([0-9]{1,20})-([0-9]{1,20})/([0-9]{1,20})")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PROGRESS_RESETS_RETRIES = 1 * MiB  # growth beyond the furthest offset at the last reset that resets it again
_RECEIVE_FACTOR = 3  # a job fails once it received more than this many times its size ...
_RECEIVE_SLACK = 1 * MiB  # ... plus this


class Retry(Exception):
    """This attempt failed; another may succeed. ``code`` is reported if retries run out."""

    def __init__(self, reason: str, code: OtaCode = OtaCode.TIMEOUT) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


# -- the interface with the manager ----------------------------------------------------------


class Resource(Protocol):
    """The job as the transfer sees it.

    ``url`` is read again at every attempt (the manager may swap in a fresh signature) and
    ``size`` is the expected length. The transfer keeps the others up to date: ``offset`` (bytes
    in the part file), ``durable`` (bytes known to be on disk), and what a later resume needs:
    ``etag``, ``last_modified`` and ``use_range``.
    """

    url: str
    size: int
    offset: int
    durable: int
    etag: Optional[str]
    last_modified: Optional[str]
    use_range: bool


class Hooks(NamedTuple):
    """What the transfer needs from the manager, for one job."""

    stopping: Callable[[], bool]
    """True once close() or cancel() asked the job to stop; the transfer then raises Stopped."""
    record: Callable[[], None]
    """Write the job's record (after :func:`checkpoint` made its ``durable`` offset true)."""
    progress: Callable[[int], None]
    """Bytes in the part file now; called after every write and around retry pauses."""
    wait: Callable[[float], None]
    """Wait between attempts; may return early when the job is asked to stop."""
    set_interrupt: Callable[[Optional[Callable[[], None]]], None]
    """Keep the function that shuts down the connection in use (None: no connection)."""


# -- requests --------------------------------------------------------------------------------


def _target(parts: SplitResult) -> str:
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _if_range(job: Resource) -> Optional[str]:
    """The ``If-Range`` value: a strong ETag, else Last-Modified."""
    if job.etag and not job.etag.startswith("W/"):
        return job.etag
    return job.last_modified


def _receive_budget(size: int) -> int:
    """Most bytes one job may receive over the network (in one process) before it fails."""
    return _RECEIVE_FACTOR * size + _RECEIVE_SLACK


# -- the transfer ----------------------------------------------------------------------------


class Downloader:
    """Fetches firmware images over HTTPS; one per manager, so the TLS context is built once.

    The arguments are :class:`~iotvideo_signaling.ota.OtaManager`'s, which documents them and
    checks their ranges.
    """

    def __init__(
        self,
        *,
        ca_file: Optional[str],
        hosts: HostPolicy,
        clock: Callable[[], float],
        chunk_size: int,
        fsync_every: int,
        retries: int,
        backoff: float,
        backoff_max: float,
        timeout: float,
        header_timeout: float,
        stall_min_rate: float,
        stall_window: float,
        max_redirects: int,
    ) -> None:
        self._ca_file = ca_file
        self.hosts = hosts
        self.clock = clock
        self.chunk = chunk_size
        self.fsync_every = fsync_every
        self.retries = retries
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.timeout = timeout
        self.header_timeout = header_timeout
        self.min_rate = stall_min_rate
        self.window = stall_window
        self.max_redirects = max_redirects
        self._tls: Optional[ssl.SSLContext] = None

    def fetch(self, job: Resource, sink: PartFile, hooks: Hooks) -> None:
        """Make attempts, with retries, until ``sink`` holds ``job.size`` bytes.

        Raises:
            Fatal: the job fails (retries exhausted, a refusal, a mismatch, a write error).
            Stopped: ``hooks.stopping()`` turned true.
        """
        _Transfer(self, job, sink, hooks).run()

    def tls_context(self) -> ssl.SSLContext:
        import ssl  # noqa: PLC0415

        if self._tls is None:
            try:
                context = ssl.create_default_context(cafile=self._ca_file)
            except (OSError, ssl.SSLError):
                raise Fatal(OtaCode.DENIED, "cannot load the CA file") from None
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.check_hostname = True
            context.verify_mode = ssl.CERT_REQUIRED
            self._tls = context
        return self._tls

    def delay(self, failures: int) -> float:
        """Seconds to wait before the next attempt after ``failures`` failed ones."""
        import random  # noqa: PLC0415

        delay: float = min(self.backoff_max, self.backoff * 2 ** (failures - 1))
        return delay * random.uniform(0.5, 1.0)


class _Transfer:
    """One :meth:`Downloader.fetch`: the attempts that fill ``sink`` for ``job``."""

    def __init__(self, settings: Downloader, job: Resource, sink: PartFile, hooks: Hooks) -> None:
        self._settings = settings
        self._job = job
        self._sink = sink
        self._hooks = hooks

    def run(self) -> None:
        """Attempts with retries until the file is complete.

        Only real progress earns more retries: the partial file growing ``_PROGRESS_RESETS_RETRIES``
        beyond the largest offset it had when the count last started over. A server that ignores
        ``Range`` and drops each transfer at the same point makes none, however much it sends.
        """
        job, sink, hooks, settings = self._job, self._sink, self._hooks, self._settings
        failures = 0
        best = mark = sink.offset  # the largest offset yet; the one at the last reset
        while sink.offset < job.size:  # complete already when a restart came after the last byte
            self._check_stop()
            try:
                self._attempt()
            except Retry as exc:
                self._checkpoint()
                self._check_stop()
                best = max(best, sink.offset)
                if best - mark >= _PROGRESS_RESETS_RETRIES:
                    failures, mark = 0, best
                failures += 1
                if failures > settings.retries:
                    raise Fatal(exc.code, exc.reason) from None
                delay = settings.delay(failures)
                log.info("upgrade: %s; retry %d of %d in %.1f s", exc.reason, failures, settings.retries, delay)
                hooks.progress(sink.offset)  # heartbeats go on while the link is bad
                hooks.wait(delay)
                self._check_stop()
                hooks.progress(sink.offset)

    def _attempt(self) -> None:
        ranged = self._sink.offset > 0 and self._job.use_range
        conn, response = self._open(self._sink.offset if ranged else 0)
        try:
            self._accept(response, ranged)
            self._stream(response)
        finally:
            self._hooks.set_interrupt(None)
            conn.close()

    def _open(self, start: int) -> Tuple[http.client.HTTPSConnection, http.client.HTTPResponse]:
        """Send the GET, following https redirects; returns the final response."""
        import http.client  # noqa: PLC0415 - lazy imports keep the package import light

        settings, url = self._settings, self._job.url
        for _ in range(settings.max_redirects + 1):
            self._check_stop()
            parts = urlsplit(url)
            host, port = parts.hostname or "", parts.port or 443
            first = url == self._job.url
            refused = settings.hosts.host_problem(host, "the URL" if first else "the target")
            if refused is not None:
                log.warning("upgrade: %s refused: %s", redact(url), refused)
                raise Fatal(OtaCode.DENIED, refused if first else "redirect refused: " + refused)
            conn = http.client.HTTPSConnection(host, port, timeout=settings.timeout, context=settings.tls_context())
            watchdog = _Watchdog(settings.header_timeout)
            try:
                response = self._request(conn, parts, start, watchdog)
            except BaseException as exc:
                late = watchdog.stop()
                conn.close()
                if isinstance(exc, (OSError, http.client.HTTPException)):
                    raise self._request_failure(exc, late) from None
                raise
            if watchdog.stop():  # the headers came just as the deadline passed: the socket is shut
                conn.close()
                self._check_stop()
                raise Retry("response headers timed out")
            if response.status not in _REDIRECTS:
                return conn, response
            location = (response.getheader("Location") or "").strip()
            conn.close()
            target = urljoin(url, location)
            problem = url_problem(target, "redirect") if location else "redirect without a location"
            if problem is not None:
                log.warning("upgrade: %s refused: %s", redact(url), problem)
                raise Fatal(OtaCode.DENIED, "redirect refused: " + problem.replace("redirect ", "", 1))
            log.info("upgrade: redirected to %s", redact(target))
            url = target
        raise Fatal(OtaCode.DENIED, "too many redirects")

    def _request(
        self, conn: http.client.HTTPSConnection, parts: SplitResult, start: int, watchdog: _Watchdog
    ) -> http.client.HTTPResponse:
        """Connect (by hand, so that ``watchdog`` and a stop can cut the TCP connect and the TLS
        handshake), send the GET and read the response headers."""
        host, port = conn.host, conn.port
        raw = self._connect(host, port, watchdog)
        try:
            conn.sock = self._settings.tls_context().wrap_socket(raw, server_hostname=host)
        except BaseException:
            raw.close()  # a no-op if the TLS socket took it over (and closed itself)
            raise
        conn.putrequest("GET", _target(parts), skip_accept_encoding=True)
        conn.putheader("Accept-Encoding", "identity")
        conn.putheader("User-Agent", "iotvideo-signaling")
        if start:
            conn.putheader("Range", f"bytes={start}-")
            validator = _if_range(self._job)
            if validator:
                conn.putheader("If-Range", validator)
        conn.endheaders()
        sock = conn.sock
        self._hooks.set_interrupt(lambda: _shutdown(sock))
        return conn.getresponse()

    def _connect(self, host: str, port: int, watchdog: _Watchdog) -> socket.socket:
        """``socket.create_connection``, except that each socket is watched and interruptible
        while it connects; the name lookup is not."""
        import socket  # noqa: PLC0415

        error: Optional[OSError] = None
        hosts = self._settings.hosts
        allowed = 0
        for family, kind, proto, _, address in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
            if not hosts.address_allowed(host, str(address[0])):
                continue
            allowed += 1
            try:
                sock = socket.socket(family, kind, proto)
            except OSError as exc:  # an address family this host lacks (IPv6): the next address
                error = error or exc  # (a connect error seen before says more)
                continue
            try:
                watchdog.watch(sock)
                self._hooks.set_interrupt(watchdog.interrupt)
                self._connect_one(sock, address, watchdog)
                return sock
            except OSError as exc:
                sock.close()
                error = exc
                if self._hooks.stopping() or watchdog.fired:
                    break
            except BaseException:
                sock.close()
                raise
        if error is None and not allowed:
            log.warning("upgrade: %s resolves only to %s; refused", host, NOT_PUBLIC)
            raise Fatal(OtaCode.DENIED, f"the host resolves to {NOT_PUBLIC}")
        raise error if error is not None else OSError(f"no address for {host}")

    def _connect_one(self, sock: socket.socket, address: Any, watchdog: _Watchdog) -> None:
        """Connect ``sock`` without blocking in ``connect()``.

        A shutdown aborts a connect in progress but not one that has not started yet, so the
        connect is started first and only then are the stop and the deadline checked: one that
        came earlier is seen here, one that comes later aborts the connect.
        """
        import selectors  # noqa: PLC0415
        import socket  # noqa: PLC0415

        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            sock.connect(address)
        self._check_stop()
        if watchdog.fired:
            raise socket.timeout("connect: the request's deadline passed")
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_WRITE)
            if not selector.select(self._settings.timeout):
                raise socket.timeout("connect timed out")
        failure = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if failure:
            raise OSError(failure, os.strerror(failure))
        sock.settimeout(self._settings.timeout)

    def _request_failure(self, exc: BaseException, late: bool) -> Exception:
        """The exception that a failed request turns into (``late``: its deadline had passed)."""
        import socket  # noqa: PLC0415
        import ssl  # noqa: PLC0415

        if isinstance(exc, ssl.SSLCertVerificationError):
            return Fatal(OtaCode.DENIED, "TLS certificate verification failed")
        self._check_stop()
        if late:
            return Retry("response headers timed out")
        if isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
            return Retry("connection lost")
        if isinstance(exc, ssl.SSLError):
            return Fatal(OtaCode.DENIED, "TLS handshake failed")
        return Retry("connection timed out" if isinstance(exc, socket.timeout) else "connection failed")

    def _accept(self, response: http.client.HTTPResponse, ranged: bool) -> None:
        """Check status and headers; decide whether the body continues or restarts the file."""
        job, sink = self._job, self._sink
        status = response.status
        if status in (404, 410):
            raise Fatal(OtaCode.NOT_FOUND, f"HTTP {status}: firmware not found")
        if status in (401, 403):
            raise Fatal(OtaCode.DENIED, f"HTTP {status}: access denied or expired")
        if status == 416:
            self._start_over("the server refused the range (416)")
            raise Retry("HTTP 416")
        if status in (408, 429) or status >= 500:
            raise Retry(f"HTTP {status}")
        if status not in (200, 206):
            raise Fatal(OtaCode.NOT_FOUND, f"HTTP {status}")
        encoding = (response.getheader("Content-Encoding") or "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise Fatal(OtaCode.MISMATCH, "unexpected Content-Encoding")
        length = _content_length(response)
        etag, modified = response.getheader("ETag"), response.getheader("Last-Modified")
        if status == 206:
            if not ranged:
                raise Fatal(OtaCode.MISMATCH, "unexpected partial response")
            expected = (sink.offset, job.size - 1, job.size)
            match = _CONTENT_RANGE.fullmatch((response.getheader("Content-Range") or "").strip())
            if (
                match is None
                or tuple(int(g) for g in match.groups()) != expected
                or (length is not None and length != job.size - sink.offset)
                or (etag is not None and job.etag is not None and etag != job.etag)
            ):
                self._start_over("the partial response does not match the request")
                raise Retry("bad Content-Range")
            return
        if length is not None and length != job.size:
            raise Fatal(OtaCode.MISMATCH, "size mismatch")
        job.etag, job.last_modified = etag, modified
        if sink.offset:
            log.info("upgrade: the server sent the whole file; starting over")
            sink.restart()
            job.offset = 0
            self._checkpoint()

    def _start_over(self, why: str) -> None:
        """Drop the partial file and stop using ``Range`` for this job."""
        log.warning("upgrade: %s; starting over without Range", why)
        self._sink.restart()
        self._job.use_range = False
        self._job.offset = 0
        self._checkpoint()

    def _stream(self, response: http.client.HTTPResponse) -> None:
        """Copy the body into the partial file, never beyond ``size`` bytes."""
        import http.client  # noqa: PLC0415
        import socket  # noqa: PLC0415

        job, sink, settings = self._job, self._sink, self._settings
        window_start, window_bytes = settings.clock(), sink.offset
        budget = _receive_budget(job.size)
        while sink.offset < job.size:
            self._check_stop()
            try:
                data = response.read1(min(settings.chunk, job.size - sink.offset))
            except socket.timeout:
                raise Retry("download stalled") from None
            except (OSError, http.client.HTTPException):
                self._check_stop()
                raise Retry("connection lost") from None
            if not data:
                self._check_stop()
                if response.chunked:  # the last chunk arrived: the server's file is shorter
                    raise Fatal(OtaCode.MISMATCH, "size mismatch: the server sent less than fileSize")
                raise Retry("connection closed early")
            sink.write(data)
            job.offset = sink.offset
            if sink.received > budget:
                raise Fatal(OtaCode.TIMEOUT, "too much data received")
            if sink.offset - sink.durable >= settings.fsync_every:
                self._checkpoint()
            now = settings.clock()
            if settings.min_rate > 0 and now - window_start >= settings.window:
                if (sink.offset - window_bytes) / (now - window_start) < settings.min_rate:
                    raise Retry("download too slow")
                window_start, window_bytes = now, sink.offset
            self._hooks.progress(sink.offset)
        try:
            extra = response.read1(1)
        except (OSError, http.client.HTTPException):
            extra = b""  # closed right after the last byte: nothing more was sent
        if extra:
            raise Fatal(OtaCode.MISMATCH, "size mismatch: the server sent more than fileSize")

    def _check_stop(self) -> None:
        if self._hooks.stopping():
            raise Stopped

    def _checkpoint(self) -> None:
        checkpoint(self._job, self._sink, self._hooks.record)


class _Watchdog:
    """The deadline of one request: connecting, the TLS handshake, sending the request and
    receiving the response headers. When it passes, the connection is shut down under whoever
    is blocked on it (a server trickling bytes within the per-read timeout cannot hold on)."""

    def __init__(self, seconds: float) -> None:
        self._lock = threading.Lock()
        self._sock: Optional[socket.socket] = None
        self._fired = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: socket.socket) -> None:
        """Watch the TCP socket ``sock`` (instead of any watched before) through a duplicate
        (TLS takes the original over); shutting the duplicate down shuts the connection down."""
        with self._lock:
            if self._sock is not None:
                self._sock.close()
            self._sock = sock.dup()
            if self._fired:
                _shutdown(self._sock)

    def _fire(self) -> None:
        with self._lock:
            self._fired = True
            _shutdown(self._sock)

    def interrupt(self) -> None:
        """Shut the watched connection down now (a stop, not the deadline)."""
        with self._lock:
            _shutdown(self._sock)

    @property
    def fired(self) -> bool:
        """True once the deadline has passed."""
        with self._lock:
            return self._fired

    def stop(self) -> bool:
        """Disarm; True if the deadline had passed (the connection is then unusable)."""
        self._timer.cancel()
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
            return self._fired


def _content_length(response: http.client.HTTPResponse) -> Optional[int]:
    value = (response.getheader("Content-Length") or "").strip()
    return int(value) if value.isascii() and value.isdigit() else None


def _shutdown(sock: Optional[socket.socket]) -> None:
    """Unblock a reader in another thread: shut the TCP socket down under the TLS layer."""
    if sock is None:
        return
    import socket  # noqa: PLC0415

    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
