"""Firmware upgrade (OTA): download over HTTPS, verify, install, confirm after the restart.

Theory of operation
-------------------
:class:`OtaManager` runs at most one job. :meth:`~OtaManager.request` validates the panel's
``upgrade`` fields, records the job in the job file and hands the slow work to ``submit``; it
never blocks on the network. A job's states (:attr:`OtaStatus.state`)::

    idle ──request()──► downloading ──all bytes, size and MD5 ok──► burning ──version changed──► done
                          │    ▲                                     │   │
                          │    └── resume() at start-up              │   └── installer returned, same
                          ▼                                          ▼       version: confirming ──┐
                        fail (-1 … -5)                            fail (-5)      resume() at start-up:
                                                                                 done, or fail (-5) ◄┘

Every transition publishes one ``upgrade`` :class:`~iotvideo_signaling.events.Event` (except
``confirming``, which is not one of Tencent's states) and goes through ``_emit``/``_finish``.

Durability: ``<download_dir>/.ota-job.json`` (atomic writes, mode 0600: it holds the signed URL,
which a resume after a restart needs) records the job and the *durable* offset: the ``.part``
file is fsynced before an offset covering it is written, so after a crash its first ``offset``
bytes are good; they are re-hashed on resume and the rest is fetched with ``Range``. Before the
installer runs the record switches to the ``installing`` phase with the version that was running;
``resume()`` after the restart reports ``done`` only if the running version changed.
:meth:`~OtaManager.cancel` and the worker's switch to ``installing`` both decide under the
manager's lock: a cancel that comes first stops the job (-5 ``cancelled``, image removed, the
installer never called) even when the download is complete; once the switch is made, cancel()
returns False and the install goes ahead and is recorded.

HTTP: one GET per attempt on a fresh ``http.client.HTTPSConnection`` (certificate and host name
always verified, TLS >= 1.2), ``Accept-Encoding: identity``, redirects followed by hand (https
only, at most 5). Within one process a dropped transfer resumes from the bytes already written.
A ``200`` to a ``Range`` request starts the file over; a ``206`` whose ``Content-Range`` is not
exactly what was asked for, or a ``416``, drops the partial file and the job continues without
``Range``. Retries back off exponentially with jitter; a transfer that stays below
``stall_min_rate`` over ``stall_window`` seconds, receives nothing for ``timeout`` seconds, or
whose response headers are not all in ``header_timeout`` seconds after it started connecting
(a watchdog shuts the socket down), counts as a failed attempt. The failure count starts over
only on real progress: the partial file reaching 1 MiB beyond the furthest it had reached when
the count last started over (a server that ignores ``Range`` and drops every transfer at the
same point resends the same bytes and earns nothing). However the retries go, a job that
received more than 3 x ``fileSize`` + 1 MiB over the network in one process fails (-1
``too much data received``).

Failure codes are Tencent's (:class:`OtaCode`): -1 timeout (also retries exhausted), -2 not found,
-3 denied (401/403, TLS verification, refused redirect), -4 size/MD5 mismatch (also a
``Content-Encoding`` other than identity), -5 install failed (also: not enough disk space, the
new firmware did not start, cancelled). Signed query strings never reach logs or events: URLs
are logged as ``scheme://host/path`` only.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Protocol, Tuple, Union
from urllib.parse import urljoin, urlsplit

from .errors import RequestError, ResultCode
from .events import Event, Publish
from .state import _fsync_dir, atomic_write_json, read_json

if TYPE_CHECKING:
    import http.client
    import socket
    import ssl
    from urllib.parse import SplitResult

__all__ = [
    "JOB_FILE",
    "CommandInstaller",
    "InstallError",
    "OtaCode",
    "OtaManager",
    "OtaReporter",
    "OtaStatus",
    "ota_report_payload",
    "ota_version_payload",
]

log = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

#: Name of the job file inside ``download_dir``.
JOB_FILE = ".ota-job.json"
MAX_URL = 2048
KiB = 1024
MiB = 1024 * KiB

_MD5 = re.compile(r"[0-9a-fA-F]{32}")
_IMAGE = re.compile(r"firmware-[0-9a-f]{32}(\.tar)?(\.[A-Za-z0-9]{1,8})?(\.part)?")
_EXTENSION = re.compile(r"(\.tar)?\.[A-Za-z0-9]{1,8}$")
_CONTENT_RANGE = re.compile(r"bytes +([0-9]{1,20})-([0-9]{1,20})/([0-9]{1,20})")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PROGRESS_RESETS_RETRIES = 1 * MiB  # growth beyond the furthest offset at the last reset that resets it again
_RECEIVE_FACTOR = 3  # a job fails once it received more than this many times fileSize ...
_RECEIVE_SLACK = 1 * MiB  # ... plus this


def _receive_budget(size: int) -> int:
    """Most bytes one job may receive over the network (in one process) before it fails."""
    return _RECEIVE_FACTOR * size + _RECEIVE_SLACK


class OtaCode(enum.IntEnum):
    """Tencent's OTA result codes, as carried by ``fail`` events and ``$ota/report``."""

    OK = 0
    TIMEOUT = -1
    NOT_FOUND = -2
    DENIED = -3
    MISMATCH = -4
    INSTALL_FAILED = -5


@dataclass(frozen=True)
class OtaStatus:
    """A snapshot of the upgrade state, for introspection.

    Attributes:
        state: ``idle``, ``downloading``, ``burning``, ``confirming`` (installed, waiting for a
            restart to confirm), ``done`` or ``fail``.
        percent: the last published percentage.
        code: the :class:`OtaCode` of a failure, else 0.
        reason: short English text of a failure.
        url: the job's URL as ``scheme://host/path`` (never the query).
        md5: expected MD5, lower-case hex.
        size: expected size in bytes.
        received: bytes downloaded and hashed so far.
    """

    state: str = "idle"
    percent: int = 0
    code: int = 0
    reason: str = ""
    url: str = ""
    md5: str = ""
    size: int = 0
    received: int = 0


class _Fatal(Exception):
    """The job fails with ``code``; no retry helps."""

    def __init__(self, code: OtaCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class _Retry(Exception):
    """This attempt failed; another may succeed. ``code`` is reported if retries run out."""

    def __init__(self, reason: str, code: OtaCode = OtaCode.TIMEOUT) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class _Stopped(Exception):
    """close() or cancel() interrupted the job."""


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
        """Watch the TCP socket ``sock`` through a duplicate (TLS takes the original over);
        shutting the duplicate down shuts the connection down."""
        with self._lock:
            self._sock = sock.dup()
            if self._fired:
                _shutdown(self._sock)

    def _fire(self) -> None:
        with self._lock:
            self._fired = True
            _shutdown(self._sock)

    def stop(self) -> bool:
        """Disarm; True if the deadline had passed (the connection is then unusable)."""
        self._timer.cancel()
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
            return self._fired


class _Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...


# -- URLs ------------------------------------------------------------------------------------


def _url_problem(url: str, name: str = "'url'") -> Optional[str]:
    """Why ``url`` is not an acceptable download URL (a reason that never echoes it), or None."""
    if len(url) > MAX_URL:
        return f"{name} is longer than {MAX_URL} characters"
    if not (url.isascii() and url.isprintable()) or " " in url:
        return f"{name} must be ASCII without spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return f"{name} is not a valid URL"
    if parts.scheme != "https":
        return f"{name} must be an https URL"
    if not parts.hostname:
        return f"{name} has no host"
    if parts.username is not None or parts.password is not None:
        return f"{name} must not carry credentials"
    return None


def _redact(url: str) -> str:
    """``scheme://host[:port]/path`` of ``url``: what logs and status may show."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid URL>"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}{parts.path}"[:200]


def _job_key(url: str, md5: str) -> Tuple[str, str]:
    """What makes two requests "the same job": the URL without query or fragment, and the MD5."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.lower()}{parts.path or '/'}", md5


def _image_name(url: str, md5: str) -> str:
    """``firmware-<md5><ext>``, ``ext`` being the URL's own (installers may look at it: ``.raucb``,
    ``.swu``, ``.tar.gz``) when it is short and plain, else ``.bin``."""
    base = urlsplit(url).path.rsplit("/", 1)[-1]
    match = _EXTENSION.search(base)
    ext = match.group(0) if match and match.start() > 0 else ".bin"
    return f"firmware-{md5}{'.bin' if ext.lower() == '.part' else ext}"


def _target(parts: SplitResult) -> str:
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


# -- the job ---------------------------------------------------------------------------------


class _Job:
    """One upgrade job. Fields other than the flags are touched by the worker only."""

    def __init__(self, url: str, md5: str, size: int) -> None:
        self.url = url
        self.md5 = md5
        self.size = size
        self.key = _job_key(url, md5)
        self.name = _image_name(url, md5)
        self.phase = "downloading"  # or "installing" (the pending-confirm record)
        self.resume_from = 0  # durable offset read from the job file, re-hashed by the worker
        self.durable = 0
        self.offset = 0
        self.etag: Optional[str] = None
        self.last_modified: Optional[str] = None
        self.use_range = True
        self.version_before: Optional[str] = None
        self.cancelled = False
        self.running = False
        self.wake = threading.Event()
        self.percent = 0
        self.last_event = float("-inf")

    def record(self) -> Dict[str, Any]:
        return {
            "format": 1,
            "phase": self.phase,
            "url": self.url,
            "md5": self.md5,
            "size": self.size,
            "offset": self.durable,
            "etag": self.etag,
            "last_modified": self.last_modified,
            "use_range": self.use_range,
            "version_before": self.version_before,
        }

    @classmethod
    def from_record(cls, record: Any, max_size: int) -> _Job:
        """Rebuild a job from the job file; ValueError when anything in it is off."""
        if not isinstance(record, dict) or record.get("format") != 1:
            raise ValueError("unknown job file format")
        url, md5, size, offset = record.get("url"), record.get("md5"), record.get("size"), record.get("offset")
        if not isinstance(url, str) or _url_problem(url) is not None:
            raise ValueError("bad url")
        if not isinstance(md5, str) or not _MD5.fullmatch(md5):
            raise ValueError("bad md5")
        if type(size) is not int or not 0 < size <= max_size:
            raise ValueError("bad size")
        if type(offset) is not int or not 0 <= offset <= size:
            raise ValueError("bad offset")
        job = cls(url, md5.lower(), size)
        job.phase = record.get("phase", "")
        if job.phase not in ("downloading", "installing"):
            raise ValueError("bad phase")
        job.resume_from = job.durable = job.offset = offset
        job.percent = offset * 100 // size
        for name in ("etag", "last_modified", "version_before"):
            value = record.get(name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"bad {name}")
            setattr(job, name, value)
        job.use_range = record.get("use_range") is not False
        if job.phase == "installing" and job.version_before is None:
            raise ValueError("installing without version_before")
        return job

    def validator(self) -> Optional[str]:
        """The ``If-Range`` value: a strong ETag, else Last-Modified."""
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified


class _PartFile:
    """The growing ``.part`` file and the MD5 of what it holds."""

    def __init__(self, path: Path) -> None:
        import hashlib  # noqa: PLC0415 - lazy: keep `import iotvideo_signaling` light

        self._new_digest: Callable[[], _Digest] = lambda: hashlib.md5(usedforsecurity=False)
        self.path = path
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise _Fatal(OtaCode.INSTALL_FAILED, "cannot write the firmware file") from exc
        self.handle = os.fdopen(fd, "r+b")
        self.digest: _Digest = self._new_digest()
        self.offset = 0
        self.durable = 0
        self.received = 0  # bytes received over the network, ever

    def adopt(self, durable: int, chunk: int, stopping: Callable[[], bool]) -> None:
        """Continue a file from a previous process: keep and re-hash its first ``durable`` bytes."""
        if durable <= 0 or os.fstat(self.handle.fileno()).st_size < durable:
            self.restart()
            return
        self.handle.truncate(durable)
        self.handle.seek(0)
        left = durable
        while left:
            if stopping():
                raise _Stopped
            data = self.handle.read(min(chunk, left))
            if not data:
                self.restart()
                return
            self.digest.update(data)
            left -= len(data)
        self.offset = self.durable = durable

    def restart(self) -> None:
        """Drop everything and start from byte 0."""
        self.handle.seek(0)
        self.handle.truncate(0)
        self.digest = self._new_digest()
        self.offset = self.durable = 0

    def write(self, data: bytes) -> None:
        try:
            self.handle.write(data)
        except OSError as exc:
            raise _Fatal(OtaCode.INSTALL_FAILED, "cannot write the firmware file") from exc
        self.digest.update(data)
        self.offset += len(data)
        self.received += len(data)

    def sync(self) -> None:
        """Flush and fsync: afterwards ``durable == offset``."""
        if self.durable != self.offset:
            self.handle.flush()
            os.fsync(self.handle.fileno())
            self.durable = self.offset

    def close(self) -> None:
        self.handle.close()


# -- the manager -----------------------------------------------------------------------------


class OtaManager:
    """Runs firmware upgrades: one job at a time, in the background, resumable.

    Args:
        download_dir: where the partial download, the verified image and the job file live.
        install: ``install(path, md5, size)`` installs a verified image; raises on failure; may
            block (it runs in the worker). E.g. a :class:`CommandInstaller`, or
            ``lambda p, m, s: hardware.install_firmware(p, md5=m, size=s)``.
        current_version: returns the running firmware version.
        publish: receives the ``upgrade`` events.
        submit: runs a job function in the background (a worker pool's submit); called from
            :meth:`request` and :meth:`resume`.
        ca_file: CA bundle that verifies the download server (replaces the system store).
        max_firmware_size: largest accepted ``fileSize``.
        clock: monotonic clock for rate limits and stall detection.
        sleep: waits between retries; None waits on an event that :meth:`close` and
            :meth:`cancel` interrupt.
        chunk_size: largest read from the network.
        fsync_every: bytes between fsyncs (and job file updates) of the partial file.
        retries: failed attempts retried before the job fails. The count starts over when the
            partial file gets 1 MiB beyond the furthest it had got at the last start-over (real
            progress, not the same bytes fetched again); independently, a job that received
            more than 3 x ``fileSize`` + 1 MiB over the network fails (-1).
        backoff: first retry delay in seconds (doubled each retry, jittered to 50-100 %).
        backoff_max: longest retry delay.
        timeout: socket timeout (connect and each read).
        header_timeout: deadline of each request from connecting until the response headers
            are in (TLS handshake and redirects' headers included, each hop its own).
        stall_min_rate: an attempt slower than this many bytes/s over ``stall_window`` seconds
            is abandoned; 0 disables the check.
        stall_window: seconds over which the rate is measured.
        progress_interval: least seconds between two ``downloading`` events.
        heartbeat: seconds after which a ``downloading`` event repeats the same percentage; checked
            whenever data arrives and around retry pauses.
        max_redirects: redirects followed per attempt.
    """

    def __init__(
        self,
        *,
        download_dir: PathLike,
        install: Callable[[str, str, int], None],
        current_version: Callable[[], str],
        publish: Publish,
        submit: Callable[[Callable[[], None]], object],
        ca_file: Optional[PathLike] = None,
        max_firmware_size: int = 128 * MiB,
        clock: Callable[[], float] = time.monotonic,
        sleep: Optional[Callable[[float], None]] = None,
        chunk_size: int = 64 * KiB,
        fsync_every: int = 4 * MiB,
        retries: int = 5,
        backoff: float = 1.0,
        backoff_max: float = 30.0,
        timeout: float = 30.0,
        header_timeout: float = 60.0,
        stall_min_rate: float = 1024.0,
        stall_window: float = 60.0,
        progress_interval: float = 1.0,
        heartbeat: float = 30.0,
        max_redirects: int = 5,
    ) -> None:
        if chunk_size <= 0 or fsync_every <= 0 or max_firmware_size <= 0:
            raise ValueError("chunk_size, fsync_every and max_firmware_size must be positive")
        if retries < 0 or max_redirects < 0 or timeout <= 0 or header_timeout <= 0 or stall_window <= 0:
            raise ValueError("retries and max_redirects must be >= 0, the timeouts and stall_window > 0")
        self._dir = Path(download_dir)
        self.job_path = self._dir / JOB_FILE
        self._install = install
        self._current_version = current_version
        self._publish = publish
        self._submit = submit
        self._ca_file = None if ca_file is None else os.fspath(ca_file)
        self.max_firmware_size = max_firmware_size
        self._clock = clock
        self._sleep = sleep
        self._chunk = chunk_size
        self._fsync_every = fsync_every
        self._retries = retries
        self._backoff = backoff
        self._backoff_max = backoff_max
        self._timeout = timeout
        self._header_timeout = header_timeout
        self._min_rate = stall_min_rate
        self._window = stall_window
        self._interval = progress_interval
        self._heartbeat = heartbeat
        self._max_redirects = max_redirects
        self._lock = threading.Lock()  # guards _job, _status, _sock, _closed and the job flags
        self._file_lock = threading.Lock()  # serialises job file writes
        self._job: Optional[_Job] = None
        self._status = OtaStatus()
        self._sock: Optional[socket.socket] = None
        self._closed = False
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._tls: Optional[ssl.SSLContext] = None

    # -- public API ----------------------------------------------------------------------------

    def request(self, url: object, md5: object, file_size: object) -> None:
        """Accept an upgrade job and start it in the background; returns at once.

        The same job again (same URL without query, same MD5) is acknowledged; while it is
        still downloading its fresh URL (a new signature) is used for later attempts.

        Raises:
            RequestError: code 4 for an invalid parameter, 5 when another upgrade is running,
                7 when the job cannot be stored or started.
        """
        url, md5, size = self._validate(url, md5, file_size)
        key = _job_key(url, md5)
        with self._lock:
            if self._closed:
                raise RequestError("the device is shutting down", code=ResultCode.DEVICE_ERROR)
            current = self._job
            if current is not None:
                if current.key != key or current.cancelled:
                    raise RequestError("an upgrade is already running", code=ResultCode.BUSY)
                refresh = current.phase == "downloading" and current.url != url
                if refresh:
                    current.url = url
            else:
                job = self._job = _Job(url, md5, size)
                self._status = OtaStatus("downloading", url=_redact(url), md5=md5, size=size)
        if current is not None:
            log.info("upgrade: %s requested again; acknowledged", _redact(url))
            if refresh:
                self._persist(current)
            return
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            self._persist(job, strict=True)
        except OSError:
            self._rollback(job)
            raise RequestError("cannot store the upgrade job", code=ResultCode.DEVICE_ERROR) from None
        log.info("upgrade: accepted %s (%d bytes, md5 %s)", _redact(url), size, md5)
        try:
            self._submit(lambda: self._run(job))
        except Exception:  # noqa: BLE001 - any refusal of the pool
            self._rollback(job)
            raise RequestError("cannot start the upgrade", code=ResultCode.DEVICE_ERROR) from None

    def resume(self) -> None:
        """At start-up: continue an unfinished download, or confirm a pending install.

        Call once before serving requests. A download continues in the background from the
        durable offset of the job file (its bytes are re-hashed first). A job that reached the
        installer is decided now: ``done`` if the running version differs from the one before
        the install, else ``fail`` (-5).
        """
        with self._lock:
            if self._closed or self._job is not None:
                return
        record = read_json(self.job_path)
        if record is None:
            if self.job_path.exists():  # unreadable or corrupt (read_json logged why)
                self._drop_job_file()
            return
        try:
            job = _Job.from_record(record, self.max_firmware_size)
        except ValueError as exc:
            log.warning("upgrade: discarding an unusable job file (%s)", exc)
            self._drop_job_file()
            return
        if job.phase == "installing":
            self._confirm(job)
            return
        with self._lock:
            if self._closed or self._job is not None:
                return
            self._job = job
            self._status = OtaStatus(
                "downloading", job.percent, url=_redact(job.url), md5=job.md5, size=job.size, received=job.durable
            )
        log.info("upgrade: resuming %s at byte %d of %d", _redact(job.url), job.durable, job.size)
        try:
            self._submit(lambda: self._run(job))
        except Exception:  # noqa: BLE001 - any refusal of the pool
            log.error("upgrade: cannot resume the download; it stays recorded for the next start")
            with self._lock:
                if self._job is job:
                    self._job = None
                    self._status = OtaStatus()

    def cancel(self) -> bool:
        """Cancel a job that has not reached the installer; it will not be resumed.

        Works on a recorded job that :meth:`resume` has not picked up yet as well. A job whose
        download is complete is still cancelled (its image is removed) unless the worker has
        switched it to ``installing``: from then on the install goes ahead and is recorded.

        Returns:
            True if a job was cancelled (a ``fail`` event with code -5 and reason
            ``cancelled`` follows, and the installer is not called), False if there was nothing
            to cancel or the install has begun.
        """
        with self._lock:
            job = self._job
            if job is None or job.phase != "downloading" or job.cancelled:
                return job is None and self._cancel_recorded()
            job.cancelled = True
            job.wake.set()
            running, sock = job.running, self._sock
        log.info("upgrade: cancelling %s", _redact(job.url))
        self._drop_job_file()
        if running:
            _shutdown(sock)  # the worker cleans up and publishes the failure
        else:
            _unlink(self._dir / (job.name + ".part"))
            self._finish(job, "fail", OtaCode.INSTALL_FAILED, "cancelled")
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Stop a running download promptly, keeping its resumable state; refuse new jobs.

        Waits up to ``timeout`` seconds for the worker to stop (an installer that is running is
        not interrupted). Safe to call twice.
        """
        with self._lock:
            self._closed = True
            job = self._job
            sock = self._sock
        self._stop.set()
        if job is not None:
            job.wake.set()
        _shutdown(sock)
        if not self._idle.wait(timeout):
            log.warning("upgrade: the worker did not stop within %.1f s", timeout)

    def status(self) -> OtaStatus:
        """The current state of the job (or of the last one)."""
        with self._lock:
            job = self._job
            if job is not None and job.phase == "downloading" and self._status.state == "downloading":
                return replace(self._status, received=job.offset)
            return self._status

    # -- validation ----------------------------------------------------------------------------

    def _validate(self, url: object, md5: object, file_size: object) -> Tuple[str, str, int]:
        # The cheap checks first: parsing the URL costs more than all the others together.
        if not isinstance(url, str):
            raise RequestError("'url' must be a string")
        if not isinstance(md5, str) or not _MD5.fullmatch(md5):
            raise RequestError("'md5' must be 32 hexadecimal digits")
        if type(file_size) is not int or not 0 < file_size <= self.max_firmware_size:
            raise RequestError(f"'fileSize' must be an integer from 1 to {self.max_firmware_size}")
        problem = _url_problem(url)
        if problem is not None:
            raise RequestError(problem)
        return url, md5.lower(), file_size

    # -- the worker ----------------------------------------------------------------------------

    def _run(self, job: _Job) -> None:
        with self._lock:
            if self._closed or job.cancelled or self._job is not job:
                return
            job.running = True
            self._idle.clear()
        try:
            path = self._download(job)
            self._install_image(job, path)
        except _Fatal as exc:
            self._finish(job, "fail", exc.code, exc.reason)
        except _Stopped:
            if job.cancelled:
                self._finish(job, "fail", OtaCode.INSTALL_FAILED, "cancelled")
            else:
                log.info("upgrade: stopped at byte %d of %d; will resume", job.durable, job.size)
        except Exception as exc:  # noqa: BLE001 - report, never die silently in a pool
            log.error("upgrade: internal error (%s)", type(exc).__name__)
            self._finish(job, "fail", OtaCode.INSTALL_FAILED, "internal error")
        finally:
            with self._lock:
                job.running = False
            self._idle.set()

    def _download(self, job: _Job) -> str:
        """Fetch, verify and move the image into place; returns its path."""
        self._cleanup(job)
        self._emit(job, "downloading", job.percent, force=True)
        part_path = self._dir / (job.name + ".part")
        sink = _PartFile(part_path)
        try:
            if job.resume_from:
                sink.adopt(job.resume_from, self._chunk, lambda: self._stopping(job))
                if sink.offset != job.resume_from:
                    log.warning("upgrade: the partial file is shorter than recorded; starting over")
            else:
                sink.restart()
            job.offset = job.durable = sink.offset
            self._check_space(job, sink.offset)
            self._fetch(job, sink)
            sink.sync()
            if sink.offset != job.size:
                raise _Fatal(OtaCode.MISMATCH, "size mismatch")
            if sink.digest.hexdigest() != job.md5:
                raise _Fatal(OtaCode.MISMATCH, "MD5 mismatch")
        except _Stopped:
            if job.cancelled:
                sink.close()
                _unlink(part_path)
            else:
                self._checkpoint(job, sink)
                sink.close()
            raise
        except BaseException:
            sink.close()
            _unlink(part_path)
            raise
        sink.close()
        final = self._dir / job.name
        os.replace(part_path, final)
        _fsync_dir(self._dir)
        log.info("upgrade: %s verified (%d bytes)", job.name, job.size)
        return str(final)

    def _fetch(self, job: _Job, sink: _PartFile) -> None:
        """Attempts with retries until the file is complete.

        Only real progress earns more retries: the partial file growing ``_PROGRESS_RESETS_RETRIES``
        beyond the largest offset it had when the count last started over. A server that ignores
        ``Range`` and drops each transfer at the same point makes none, however much it sends.
        """
        failures = 0
        best = mark = sink.offset  # the largest offset yet; the one at the last reset
        while sink.offset < job.size:  # complete already when a restart came after the last byte
            self._check_stop(job)
            try:
                self._attempt(job, sink)
            except _Retry as exc:
                self._checkpoint(job, sink)
                self._check_stop(job)
                best = max(best, sink.offset)
                if best - mark >= _PROGRESS_RESETS_RETRIES:
                    failures, mark = 0, best
                failures += 1
                if failures > self._retries:
                    raise _Fatal(exc.code, exc.reason) from None
                delay = self._delay(failures)
                log.info("upgrade: %s; retry %d of %d in %.1f s", exc.reason, failures, self._retries, delay)
                self._progress(job, sink.offset)  # heartbeats go on while the link is bad
                self._pause(job, delay)
                self._progress(job, sink.offset)

    def _attempt(self, job: _Job, sink: _PartFile) -> None:
        ranged = sink.offset > 0 and job.use_range
        conn, response = self._open(job, sink.offset if ranged else 0)
        try:
            self._accept(job, response, sink, ranged)
            self._stream(job, response, sink)
        finally:
            with self._lock:
                self._sock = None
            conn.close()

    def _open(self, job: _Job, start: int) -> Tuple[http.client.HTTPSConnection, http.client.HTTPResponse]:
        """Send the GET, following https redirects; returns the final response."""
        import http.client  # noqa: PLC0415 - lazy imports keep the package import light

        url = job.url
        for _ in range(self._max_redirects + 1):
            self._check_stop(job)
            parts = urlsplit(url)
            host, port = parts.hostname or "", parts.port or 443
            conn = http.client.HTTPSConnection(host, port, timeout=self._timeout, context=self._tls_context())
            watchdog = _Watchdog(self._header_timeout)
            try:
                response = self._request(job, conn, parts, start, watchdog)
            except BaseException as exc:
                late = watchdog.stop()
                conn.close()
                if isinstance(exc, (OSError, http.client.HTTPException)):
                    raise self._request_failure(job, exc, late) from None
                raise
            if watchdog.stop():  # the headers came just as the deadline passed: the socket is shut
                conn.close()
                self._check_stop(job)
                raise _Retry("response headers timed out")
            if response.status not in _REDIRECTS:
                return conn, response
            location = (response.getheader("Location") or "").strip()
            conn.close()
            target = urljoin(url, location)
            problem = _url_problem(target, "redirect") if location else "redirect without a location"
            if problem is not None:
                log.warning("upgrade: %s refused: %s", _redact(url), problem)
                raise _Fatal(OtaCode.DENIED, "redirect refused: " + problem.replace("redirect ", "", 1))
            log.info("upgrade: redirected to %s", _redact(target))
            url = target
        raise _Fatal(OtaCode.DENIED, "too many redirects")

    def _request(
        self, job: _Job, conn: http.client.HTTPSConnection, parts: SplitResult, start: int, watchdog: _Watchdog
    ) -> http.client.HTTPResponse:
        """Connect (by hand, so that ``watchdog`` sees the TCP socket before the TLS handshake),
        send the GET and read the response headers."""
        import socket  # noqa: PLC0415

        host, port = conn.host, conn.port
        raw = socket.create_connection((host, port), self._timeout)
        try:
            watchdog.watch(raw)
            conn.sock = self._tls_context().wrap_socket(raw, server_hostname=host)
        except BaseException:
            raw.close()  # a no-op if the TLS socket took it over (and closed itself)
            raise
        conn.putrequest("GET", _target(parts), skip_accept_encoding=True)
        conn.putheader("Accept-Encoding", "identity")
        conn.putheader("User-Agent", "iotvideo-signaling")
        if start:
            conn.putheader("Range", f"bytes={start}-")
            validator = job.validator()
            if validator:
                conn.putheader("If-Range", validator)
        conn.endheaders()
        with self._lock:
            self._sock = conn.sock
        return conn.getresponse()

    def _request_failure(self, job: _Job, exc: BaseException, late: bool) -> Exception:
        """The exception that a failed request turns into (``late``: its deadline had passed)."""
        import socket  # noqa: PLC0415
        import ssl  # noqa: PLC0415

        if isinstance(exc, ssl.SSLCertVerificationError):
            return _Fatal(OtaCode.DENIED, "TLS certificate verification failed")
        self._check_stop(job)
        if late:
            return _Retry("response headers timed out")
        if isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
            return _Retry("connection lost")
        if isinstance(exc, ssl.SSLError):
            return _Fatal(OtaCode.DENIED, "TLS handshake failed")
        return _Retry("connection timed out" if isinstance(exc, socket.timeout) else "connection failed")

    def _accept(self, job: _Job, response: http.client.HTTPResponse, sink: _PartFile, ranged: bool) -> None:
        """Check status and headers; decide whether the body continues or restarts the file."""
        status = response.status
        if status in (404, 410):
            raise _Fatal(OtaCode.NOT_FOUND, f"HTTP {status}: firmware not found")
        if status in (401, 403):
            raise _Fatal(OtaCode.DENIED, f"HTTP {status}: access denied or expired")
        if status == 416:
            self._start_over(job, sink, "the server refused the range (416)")
            raise _Retry("HTTP 416")
        if status in (408, 429) or status >= 500:
            raise _Retry(f"HTTP {status}")
        if status not in (200, 206):
            raise _Fatal(OtaCode.NOT_FOUND, f"HTTP {status}")
        encoding = (response.getheader("Content-Encoding") or "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise _Fatal(OtaCode.MISMATCH, "unexpected Content-Encoding")
        length = _content_length(response)
        etag, modified = response.getheader("ETag"), response.getheader("Last-Modified")
        if status == 206:
            if not ranged:
                raise _Fatal(OtaCode.MISMATCH, "unexpected partial response")
            expected = (sink.offset, job.size - 1, job.size)
            match = _CONTENT_RANGE.fullmatch((response.getheader("Content-Range") or "").strip())
            if (
                match is None
                or tuple(int(g) for g in match.groups()) != expected
                or (length is not None and length != job.size - sink.offset)
                or (etag is not None and job.etag is not None and etag != job.etag)
            ):
                self._start_over(job, sink, "the partial response does not match the request")
                raise _Retry("bad Content-Range")
            return
        if length is not None and length != job.size:
            raise _Fatal(OtaCode.MISMATCH, "size mismatch")
        job.etag, job.last_modified = etag, modified
        if sink.offset:
            log.info("upgrade: the server sent the whole file; starting over")
            sink.restart()
            job.offset = 0
            self._checkpoint(job, sink)

    def _start_over(self, job: _Job, sink: _PartFile, why: str) -> None:
        """Drop the partial file and stop using ``Range`` for this job."""
        log.warning("upgrade: %s; starting over without Range", why)
        sink.restart()
        job.use_range = False
        job.offset = 0
        self._checkpoint(job, sink)

    def _stream(self, job: _Job, response: http.client.HTTPResponse, sink: _PartFile) -> None:
        """Copy the body into the partial file, never beyond ``size`` bytes."""
        import http.client  # noqa: PLC0415
        import socket  # noqa: PLC0415

        window_start, window_bytes = self._clock(), sink.offset
        budget = _receive_budget(job.size)
        while sink.offset < job.size:
            self._check_stop(job)
            try:
                data = response.read1(min(self._chunk, job.size - sink.offset))
            except socket.timeout:
                raise _Retry("download stalled") from None
            except (OSError, http.client.HTTPException):
                self._check_stop(job)
                raise _Retry("connection lost") from None
            if not data:
                self._check_stop(job)
                if response.chunked:  # the last chunk arrived: the server's file is shorter
                    raise _Fatal(OtaCode.MISMATCH, "size mismatch: the server sent less than fileSize")
                raise _Retry("connection closed early")
            sink.write(data)
            job.offset = sink.offset
            if sink.received > budget:
                raise _Fatal(OtaCode.TIMEOUT, "too much data received")
            if sink.offset - sink.durable >= self._fsync_every:
                self._checkpoint(job, sink)
            now = self._clock()
            if self._min_rate > 0 and now - window_start >= self._window:
                if (sink.offset - window_bytes) / (now - window_start) < self._min_rate:
                    raise _Retry("download too slow")
                window_start, window_bytes = now, sink.offset
            self._progress(job, sink.offset)
        try:
            extra = response.read1(1)
        except (OSError, http.client.HTTPException):
            extra = b""  # closed right after the last byte: nothing more was sent
        if extra:
            raise _Fatal(OtaCode.MISMATCH, "size mismatch: the server sent more than fileSize")

    def _install_image(self, job: _Job, path: str) -> None:
        """Record the pending install, run the installer, and confirm if the version changed."""
        try:
            before = self._current_version()
        except Exception:  # noqa: BLE001 - a broken hook must not leave the job hanging
            _unlink(Path(path))
            if job.cancelled:  # keep cancel()'s word: the failure reads "cancelled"
                raise _Stopped from None
            raise _Fatal(OtaCode.INSTALL_FAILED, "cannot read the running version") from None
        with self._lock:  # cancel() decides on the phase under the same lock
            cancelled = job.cancelled
            if not cancelled:
                job.version_before = before
                job.phase = "installing"
        if cancelled:
            _unlink(Path(path))
            raise _Stopped
        self._persist(job)
        self._emit(job, "burning", 100)
        log.info("upgrade: installing %s (running %s)", job.name, before)
        try:
            self._install(path, job.md5, job.size)
        except Exception as exc:  # noqa: BLE001 - any installer failure is -5
            log.warning("upgrade: installer failed: %s", str(exc)[:200] or type(exc).__name__)
            _unlink(Path(path))
            raise _Fatal(OtaCode.INSTALL_FAILED, "install failed") from None
        after = self._read_version()
        if after is not None and after != before:
            log.info("upgrade: done, running %s", after)
            self._finish(job, "done", OtaCode.OK, "")
            return
        with self._lock:
            self._status = replace(self._status, state="confirming", reason="waiting for a restart")
        log.info("upgrade: installed; the version is confirmed after the restart")

    def _confirm(self, job: _Job) -> None:
        """resume() found a job that reached the installer: did the new firmware start?"""
        now = self._read_version()
        if now is not None and now != job.version_before:
            log.info("upgrade: confirmed, running %s (was %s)", now, job.version_before)
            self._finish(job, "done", OtaCode.OK, "")
        else:
            log.warning("upgrade: still running %s after the install", job.version_before)
            _unlink(self._dir / job.name)
            self._finish(job, "fail", OtaCode.INSTALL_FAILED, "the new firmware did not start")

    # -- helpers ---------------------------------------------------------------------------------

    def _tls_context(self) -> ssl.SSLContext:
        import ssl  # noqa: PLC0415

        if self._tls is None:
            try:
                context = ssl.create_default_context(cafile=self._ca_file)
            except (OSError, ssl.SSLError):
                raise _Fatal(OtaCode.DENIED, "cannot load the CA file") from None
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.check_hostname = True
            context.verify_mode = ssl.CERT_REQUIRED
            self._tls = context
        return self._tls

    def _read_version(self) -> Optional[str]:
        try:
            return self._current_version()
        except Exception as exc:  # noqa: BLE001 - unknown counts as "not changed"
            log.warning("upgrade: cannot read the running version (%s)", type(exc).__name__)
            return None

    def _stopping(self, job: _Job) -> bool:
        return self._stop.is_set() or job.cancelled

    def _check_stop(self, job: _Job) -> None:
        if self._stopping(job):
            raise _Stopped

    def _delay(self, failures: int) -> float:
        import random  # noqa: PLC0415

        delay: float = min(self._backoff_max, self._backoff * 2 ** (failures - 1))
        return delay * random.uniform(0.5, 1.0)

    def _pause(self, job: _Job, delay: float) -> None:
        if self._sleep is None:
            job.wake.wait(delay)
        else:
            self._sleep(delay)
        self._check_stop(job)

    def _check_space(self, job: _Job, have: int) -> None:
        try:
            free = shutil.disk_usage(self._dir).free
        except OSError:
            return
        if job.size - have > free:
            raise _Fatal(OtaCode.INSTALL_FAILED, "not enough disk space")

    def _cleanup(self, job: _Job) -> None:
        """Remove images and partial files of earlier jobs (only names this module creates)."""
        keep = {job.name, job.name + ".part"}
        try:
            names = os.listdir(self._dir)
        except OSError:
            return
        for name in names:
            if name not in keep and _IMAGE.fullmatch(name):
                _unlink(self._dir / name)

    def _checkpoint(self, job: _Job, sink: _PartFile) -> None:
        """fsync the data, then record the offset it covers."""
        if sink.durable == sink.offset and job.durable == sink.durable:
            return
        try:
            sink.sync()
        except OSError:
            log.warning("upgrade: fsync of the partial file failed")
            return
        job.durable = sink.durable
        self._persist(job)

    def _persist(self, job: _Job, *, strict: bool = False) -> None:
        with self._file_lock:
            if job.cancelled:
                return
            try:
                atomic_write_json(self.job_path, job.record())
            except OSError:
                if strict:
                    raise
                log.warning("upgrade: cannot update the job file")

    def _drop_job_file(self) -> None:
        with self._file_lock:
            _unlink(self.job_path)

    def _cancel_recorded(self) -> bool:
        """cancel() with no job in memory: forget a recorded download (called under the lock)."""
        record = read_json(self.job_path)
        if not isinstance(record, dict) or record.get("phase") != "downloading":
            return False
        self._drop_job_file()
        md5, url = record.get("md5"), record.get("url")
        if isinstance(md5, str) and isinstance(url, str) and _MD5.fullmatch(md5):
            _unlink(self._dir / (_image_name(url, md5.lower()) + ".part"))
        log.info("upgrade: cancelled the recorded job")
        return True

    def _rollback(self, job: _Job) -> None:
        with self._lock:
            if self._job is job:
                self._job = None
                self._status = OtaStatus()
        self._drop_job_file()

    def _progress(self, job: _Job, offset: int) -> None:
        """A ``downloading`` event if the percentage grew (at most one per interval) or as heartbeat."""
        since = self._clock() - job.last_event
        percent = offset * 100 // job.size
        if (percent > job.percent and since >= self._interval) or since >= self._heartbeat:
            self._emit(job, "downloading", percent)

    def _emit(
        self, job: _Job, state: str, percent: int, *, code: int = 0, reason: str = "", force: bool = False
    ) -> None:
        with self._lock:
            if state == "downloading" and job.cancelled and not force:
                return
            percent = max(percent, job.percent)
            job.percent = percent
            job.last_event = self._clock()
            self._status = OtaStatus(state, percent, int(code), reason, _redact(job.url), job.md5, job.size, job.offset)
        event = Event("upgrade", {"state": state, "percent": percent, "code": int(code), "reason": reason}, time.time())
        try:
            self._publish(event)
        except Exception as exc:  # noqa: BLE001 - a broken subscriber must not stop the upgrade
            log.warning("upgrade: event subscriber failed (%s)", type(exc).__name__)

    def _finish(self, job: _Job, state: str, code: OtaCode, reason: str) -> None:
        """End a job: done or fail. Drops the job file; the event goes out last."""
        with self._lock:
            if self._job is job:
                self._job = None
        self._drop_job_file()
        if state == "fail":
            log.warning("upgrade: %s failed (%d): %s", _redact(job.url), int(code), reason)
        self._emit(job, state, 100 if state == "done" else job.percent, code=code, reason=reason, force=True)


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


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("upgrade: cannot remove %s (%s)", path.name, type(exc).__name__)


# The installer and the IoT Explorer reporter live in their own modules; importable from here too.
from .installer import CommandInstaller, InstallError  # noqa: E402
from .ota_report import OtaReporter, ota_report_payload, ota_version_payload  # noqa: E402
