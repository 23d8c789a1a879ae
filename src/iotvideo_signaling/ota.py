"""Firmware upgrade (OTA): download over HTTPS, verify, install, confirm after the restart.

Theory of operation
-------------------
:class:`OtaManager` owns the job's lifecycle and runs at most one job. Constructing it touches
neither the disk nor threads; :meth:`~OtaManager.start`, called once before serving requests,
picks up what the job file of the last process holds, and :meth:`~OtaManager.close` stops the
worker (``with OtaManager(...) as ota:`` does both). :meth:`~OtaManager.request` validates the
panel's ``upgrade`` fields, records the job in the job file and hands the slow work to
``submit``; it never blocks on the network. A job's states (:attr:`OtaStatus.state`)::

    idle ──request()──► downloading ──all bytes, size and MD5 ok──► burning ──version changed──► done
                          │    ▲                                     │   │
                          │    └── start() after a restart           │   └── installer returned, same
                          ▼                                          ▼       version: confirming ──┐
                        fail (-1 … -5)                            fail (-5)  start() after the restart:
                                                                                 done, or fail (-5) ◄┘

Every state but ``confirming`` (not one of Tencent's) is announced by one ``upgrade``
:class:`~iotvideo_signaling.events.Event`, made in ``_transition`` together with the status.

The job's record and files are ``_ota_job``'s; the network is ``_ota_transfer``'s: HTTPS,
redirects, ``Range``, the deadlines, stall detection, retries with backoff and the byte cap per
job (their docstrings tell how). The worker opens the ``.part`` file, checks the disk space,
calls ``Downloader.fetch`` with the job and its ``Hooks``, then checks size and MD5 and moves the
image into place.

Durability: the job file ``<download_dir>/.ota-job.json`` records the job and the offset up to
which its ``.part`` file is known to be on disk (``_ota_job`` tells how the two are kept in
step), so after a restart the download goes on from there. Before the installer runs the record
switches to the ``installing`` phase with the version that was running; ``start()`` after the
restart reports ``done`` only if the running version changed. The verified image lives only
as long as the installer needs it: it is removed when the installer returns (the installer has
taken what it needs, whether the version changed at once or changes at the restart), or, if the
installer rebooted before returning, by ``start()`` when it decides the job.
:meth:`~OtaManager.cancel` and the worker's switch to ``installing`` both decide under the
manager's lock: a cancel that comes first stops the job (-5 ``cancelled``, image removed, the
installer never called) even when the download is complete; once the switch is made, cancel()
returns False and the install goes ahead and is recorded.

Failure codes are Tencent's (:class:`OtaCode`): -1 timeout (also retries exhausted, or more than
3 x ``fileSize`` + 1 MiB received), -2 not found, -3 denied (401/403, TLS verification, refused
redirect), -4 size/MD5 mismatch (also a ``Content-Encoding`` other than identity), -5 install
failed (also: not enough disk space, the new firmware did not start, cancelled).

Which hosts may be reached is :class:`~iotvideo_signaling._ota_base.HostPolicy`'s
(``allowed_hosts``): a request for a host it refuses is refused (result 4, a reason that names
the rule, never the URL); a redirect to one, a name that resolves only to refused addresses, or
a recorded job whose host is no longer allowed fails the job with -3. Signed query
strings never reach logs or events: URLs are logged as ``scheme://host/path`` only.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Union, cast
from urllib.parse import urlsplit

from ._ota_base import Fatal, HostPolicy, KiB, MiB, OtaCode, Stopped, redact, url_problem
from ._ota_job import JOB_FILE, Job, JobFile, PartFile, checkpoint, job_key, remove_other_images, unlink
from ._ota_transfer import Downloader, Hooks
from .errors import RequestError, ResultCode
from .events import Event, Publish
from .protocol import MD5_REASON, is_md5
from .state import fsync_dir

__all__ = ["JOB_FILE", "OtaCode", "OtaManager", "OtaStatus"]

log = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]


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


# -- the manager -----------------------------------------------------------------------------


class OtaManager:
    """Runs firmware upgrades: one job at a time, in the background, resumable.

    The constructor does no I/O and starts nothing. Call :meth:`start` once before serving
    requests and :meth:`close` at the end, or use the manager as a context manager.

    Args:
        download_dir: where the partial download, the verified image and the job file live.
        install: ``install(path, md5, size)`` installs a verified image; raises on failure; may
            block (it runs in the worker), or reboot into the new image without returning. The
            image at ``path`` is removed as soon as it returns (failed or not): an installer
            that needs the image after it returned must copy it. One that reboots leaves it for
            :meth:`start` to remove when it decides the job. E.g. a
            :class:`~iotvideo_signaling.installer.CommandInstaller`, or
            ``lambda p, m, s: hardware.install_firmware(p, md5=m, size=s)``.
        current_version: returns the running firmware version.
        publish: receives the ``upgrade`` events.
        submit: runs a job function in the background (a worker pool's submit); called from
            :meth:`request` and :meth:`start`.
        ca_file: CA bundle that verifies the download server (replaces the system store).
        allowed_hosts: the hosts a download (and each redirect) may reach, as
            ``DeviceConfig.ota_allowed_hosts``; empty: every public host, no loopback, private
            or link-local address (see ``HostPolicy`` in ``_ota_base``).
        max_firmware_size: largest accepted ``fileSize``.
        clock: monotonic clock for rate limits and stall detection.
        wall_clock: seconds since the epoch, the ``time`` of the published events.
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
        allowed_hosts: Sequence[str] = (),
        max_firmware_size: int = 128 * MiB,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
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
        self._job_file = JobFile(self._dir)
        self.job_path = self._job_file.path
        self._install = install
        self._current_version = current_version
        self._publish = publish
        self._submit = submit
        self.max_firmware_size = max_firmware_size
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._chunk = chunk_size
        self._interval = progress_interval
        self._heartbeat = heartbeat
        if isinstance(allowed_hosts, str):
            raise ValueError("allowed_hosts must be a sequence of host patterns")
        self._hosts = HostPolicy(allowed_hosts)
        self._downloader = Downloader(
            ca_file=None if ca_file is None else os.fspath(ca_file),
            hosts=self._hosts,
            clock=clock,
            chunk_size=chunk_size,
            fsync_every=fsync_every,
            retries=retries,
            backoff=backoff,
            backoff_max=backoff_max,
            timeout=timeout,
            header_timeout=header_timeout,
            stall_min_rate=stall_min_rate,
            stall_window=stall_window,
            max_redirects=max_redirects,
        )
        self._lock = threading.Lock()  # guards _job, _status, _interrupt, _started, _closed, the job flags
        self._job: Optional[Job] = None
        self._status = OtaStatus()
        self._interrupt: Optional[Callable[[], None]] = None  # shuts the transfer's connection down
        self._started = False
        self._closed = False
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._idle.set()

    # -- public API ----------------------------------------------------------------------------

    def __enter__(self) -> OtaManager:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> None:
        """Continue an unfinished download, or confirm a pending install, from the job file.

        Call once before serving requests; later calls, and calls after :meth:`close`, do
        nothing. Temporary files that a crash left beside the job file are removed first. A
        download continues in the background from the durable offset of the job
        file (its bytes are re-hashed first). A job that reached the installer is decided now:
        ``done`` if the running version differs from the one before the install, else ``fail``
        (-5).
        """
        with self._lock:
            if self._started or self._closed:
                return
            self._started = True
            if self._job is not None:  # request() came first: the job file is that job's
                return
        self._job_file.remove_stale_temporaries()
        job = self._job_file.load(self.max_firmware_size)
        if job is None:
            return
        if job.phase == "installing":
            self._confirm(job)
            return
        with self._lock:
            if self._closed or self._job is not None:
                return
            self._job = job
            self._status = OtaStatus(
                "downloading", job.percent, url=redact(job.url), md5=job.md5, size=job.size, received=job.durable
            )
        log.info("upgrade: resuming %s at byte %d of %d", redact(job.url), job.durable, job.size)
        try:
            self._submit(lambda: self._run(job))
        except Exception:  # noqa: BLE001 - any refusal of the pool
            log.error("upgrade: cannot resume the download; it stays recorded for the next start")
            with self._lock:
                if self._job is job:
                    self._job = None
                    self._status = OtaStatus()

    def request(self, url: object, md5: object, file_size: object) -> None:
        """Accept an upgrade job and start it in the background; returns at once.

        The same job again (same URL without query, same MD5) is acknowledged; while it is
        still downloading its fresh URL (a new signature) is used for later attempts.

        Raises:
            RequestError: code 4 for an invalid parameter, 5 when another upgrade is running,
                7 when the job cannot be stored or started.
        """
        problem = self._problem(url, md5, file_size)
        if problem is not None:
            raise RequestError(problem)
        url, md5, size = cast(str, url), cast(str, md5).lower(), cast(int, file_size)
        key = job_key(url, md5)
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
                job = self._job = Job(url, md5, size)
                self._status = OtaStatus("downloading", url=redact(url), md5=md5, size=size)
        if current is not None:
            log.info("upgrade: %s requested again; acknowledged", redact(url))
            if refresh:
                self._job_file.save_or_warn(current)
            return
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            self._job_file.save(job)
        except OSError:
            self._rollback(job)
            raise RequestError("cannot store the upgrade job", code=ResultCode.DEVICE_ERROR) from None
        log.info("upgrade: accepted %s (%d bytes, md5 %s)", redact(url), size, md5)
        try:
            self._submit(lambda: self._run(job))
        except Exception:  # noqa: BLE001 - any refusal of the pool
            self._rollback(job)
            raise RequestError("cannot start the upgrade", code=ResultCode.DEVICE_ERROR) from None

    def cancel(self) -> bool:
        """Cancel a job that has not reached the installer; it will not be resumed.

        Works on a recorded job that :meth:`start` has not picked up yet as well. A job whose
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
            running, interrupt = job.running, self._interrupt
        log.info("upgrade: cancelling %s", redact(job.url))
        self._job_file.remove()
        if running:
            if interrupt is not None:
                interrupt()  # the worker cleans up and publishes the failure
        else:
            unlink(self._dir / (job.name + ".part"))
            self._finish(job, "fail", OtaCode.INSTALL_FAILED, "cancelled")
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Stop a running download promptly, keeping its resumable state; refuse new jobs.

        Waits up to ``timeout`` seconds for the worker to stop (an installer that is running is
        not interrupted). Safe to call twice.
        """
        with self._lock:  # stop flag and interrupt read together: see _set_interrupt
            self._closed = True
            self._stop.set()
            job = self._job
            interrupt = self._interrupt
        if job is not None:
            job.wake.set()
        if interrupt is not None:
            interrupt()
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

    def _problem(self, url: object, md5: object, file_size: object) -> Optional[str]:
        """Why the request's parameters are invalid, or None (returned, not raised: a refusal
        raises once, in :meth:`request`)."""
        # The cheap checks first: parsing the URL costs more than all the others together.
        if not isinstance(url, str):
            return "'url' must be a string"
        if not isinstance(md5, str) or not is_md5(md5):
            return MD5_REASON
        if type(file_size) is not int or not 0 < file_size <= self.max_firmware_size:
            return f"'fileSize' must be an integer from 1 to {self.max_firmware_size}"
        problem = url_problem(url)
        if problem is not None:
            return problem
        return self._hosts.host_problem(urlsplit(url).hostname or "")

    # -- the worker ----------------------------------------------------------------------------

    def _run(self, job: Job) -> None:
        with self._lock:
            if self._closed or job.cancelled or self._job is not job:
                return
            job.running = True
            self._idle.clear()
        try:
            path = self._download(job)
            self._install_image(job, path)
        except Fatal as exc:
            self._finish(job, "fail", exc.code, exc.reason)
        except Stopped:
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

    def _download(self, job: Job) -> str:
        """Fetch, verify and move the image into place; returns its path."""
        remove_other_images(self._dir, job.name)
        self._emit(job, "downloading", job.percent)
        part_path = self._dir / (job.name + ".part")
        sink = PartFile(part_path)
        adopted = False  # a stop while the kept prefix is re-hashed must not record offset 0
        try:
            if job.resume_from:
                sink.adopt(job.resume_from, self._chunk, lambda: self._stopping(job))
                if sink.offset != job.resume_from:
                    log.warning("upgrade: the partial file is shorter than recorded; starting over")
            else:
                sink.restart()
            job.offset = job.durable = sink.offset
            adopted = True
            self._check_space(job, sink.offset)
            self._downloader.fetch(job, sink, self._hooks(job))
            sink.sync()
            if sink.offset != job.size:
                raise Fatal(OtaCode.MISMATCH, "size mismatch")
            if sink.digest.hexdigest() != job.md5:
                raise Fatal(OtaCode.MISMATCH, "MD5 mismatch")
        except Stopped:
            if job.cancelled:
                sink.close()
                unlink(part_path)
            else:
                if adopted:
                    checkpoint(job, sink, lambda: self._job_file.save_or_warn(job))
                sink.close()
            raise
        except BaseException:
            sink.close()
            unlink(part_path)
            raise
        sink.close()
        final = self._dir / job.name
        os.replace(part_path, final)
        fsync_dir(self._dir)
        log.info("upgrade: %s verified (%d bytes)", job.name, job.size)
        return str(final)

    def _install_image(self, job: Job, path: str) -> None:
        """Record the pending install, run the installer, and confirm if the version changed."""
        try:
            before = self._current_version()
        except Exception:  # noqa: BLE001 - a broken hook must not leave the job hanging
            unlink(Path(path))
            if job.cancelled:  # keep cancel()'s word: the failure reads "cancelled"
                raise Stopped from None
            raise Fatal(OtaCode.INSTALL_FAILED, "cannot read the running version") from None
        with self._lock:  # cancel() decides on the phase under the same lock
            cancelled = job.cancelled
            if not cancelled:
                job.version_before = before
                job.phase = "installing"
        if cancelled:
            unlink(Path(path))
            raise Stopped
        self._job_file.save_or_warn(job)
        self._emit(job, "burning", 100)
        log.info("upgrade: installing %s (running %s)", job.name, before)
        try:
            self._install(path, job.md5, job.size)
        except Exception as exc:  # noqa: BLE001 - any installer failure is -5
            log.warning("upgrade: installer failed: %s", str(exc)[:200] or type(exc).__name__)
            unlink(Path(path))
            raise Fatal(OtaCode.INSTALL_FAILED, "install failed") from None
        unlink(Path(path))  # the installer returned: it has what it needs, the image is no use now
        after = self._read_version()
        if after is not None and after != before:
            log.info("upgrade: done, running %s", after)
            self._finish(job, "done", OtaCode.OK, "")
            return
        with self._lock:
            self._status = replace(self._status, state="confirming", reason="waiting for a restart")
        log.info("upgrade: installed; the version is confirmed after the restart")

    def _confirm(self, job: Job) -> None:
        """start() found a job that reached the installer: did the new firmware start?"""
        unlink(self._dir / job.name)  # left if the installer rebooted before it returned
        now = self._read_version()
        if now is not None and now != job.version_before:
            log.info("upgrade: confirmed, running %s (was %s)", now, job.version_before)
            self._finish(job, "done", OtaCode.OK, "")
        else:
            log.warning("upgrade: still running %s after the install", job.version_before)
            self._finish(job, "fail", OtaCode.INSTALL_FAILED, "the new firmware did not start")

    # -- helpers ---------------------------------------------------------------------------------

    def _read_version(self) -> Optional[str]:
        try:
            return self._current_version()
        except Exception as exc:  # noqa: BLE001 - unknown counts as "not changed"
            log.warning("upgrade: cannot read the running version (%s)", type(exc).__name__)
            return None

    def _hooks(self, job: Job) -> Hooks:
        """What the transfer of ``job`` may ask of the manager."""
        return Hooks(
            stopping=lambda: self._stopping(job),
            record=lambda: self._job_file.save_or_warn(job),
            progress=lambda offset: self._progress(job, offset),
            wait=lambda delay: self._wait(job, delay),
            set_interrupt=lambda interrupt: self._set_interrupt(job, interrupt),
        )

    def _stopping(self, job: Job) -> bool:
        return self._stop.is_set() or job.cancelled

    def _wait(self, job: Job, delay: float) -> None:
        if self._sleep is None:
            job.wake.wait(delay)
        else:
            self._sleep(delay)

    def _set_interrupt(self, job: Job, interrupt: Optional[Callable[[], None]]) -> None:
        """Keep the transfer's way to cut its connection; use it at once if a stop came first.

        close() and cancel() set their flag and read the interrupt under the lock, and this
        stores it and reads the flags under the lock: whichever comes second calls it.
        """
        with self._lock:
            self._interrupt = interrupt
            stopped = self._stop.is_set() or job.cancelled
        if stopped and interrupt is not None:
            interrupt()

    def _check_space(self, job: Job, have: int) -> None:
        try:
            import shutil  # noqa: PLC0415 - once per upgrade

            free = shutil.disk_usage(self._dir).free
        except OSError:
            return
        if job.size - have > free:
            raise Fatal(OtaCode.INSTALL_FAILED, "not enough disk space")

    def _cancel_recorded(self) -> bool:
        """cancel() with no job in memory: forget a recorded download (called under the lock)."""
        if not self._job_file.forget_download():
            return False
        log.info("upgrade: cancelled the recorded job")
        return True

    def _rollback(self, job: Job) -> None:
        with self._lock:
            if self._job is job:
                self._job = None
                self._status = OtaStatus()
        self._job_file.remove()

    def _progress(self, job: Job, offset: int) -> None:
        """A ``downloading`` event if the percentage grew (at most one per interval) or as heartbeat."""
        since = self._clock() - job.last_event
        percent = offset * 100 // job.size
        if (percent > job.percent and since >= self._interval) or since >= self._heartbeat:
            self._emit_progress(job, percent)

    def _emit_progress(self, job: Job, percent: int) -> None:
        """A ``downloading`` event, unless the job is cancelled (its ``fail`` event is coming)."""
        with self._lock:
            if job.cancelled:
                return
            data = self._transition(job, "downloading", percent, OtaCode.OK, "")
        self._send(data)

    def _emit(self, job: Job, state: str, percent: int, *, code: int = 0, reason: str = "") -> None:
        """The event of a transition, whatever became of the job meanwhile."""
        with self._lock:
            data = self._transition(job, state, percent, code, reason)
        self._send(data)

    def _transition(self, job: Job, state: str, percent: int, code: int, reason: str) -> Dict[str, Any]:
        """Make ``state`` the status (called under the lock); returns the event's data."""
        percent = max(percent, job.percent)
        job.percent = percent
        job.last_event = self._clock()
        self._status = OtaStatus(state, percent, int(code), reason, redact(job.url), job.md5, job.size, job.offset)
        return {"state": state, "percent": percent, "code": int(code), "reason": reason}

    def _send(self, data: Dict[str, Any]) -> None:
        """Publish one ``upgrade`` event; a failing subscriber is logged, never raised."""
        event = Event("upgrade", data, self._wall_clock())
        try:
            self._publish(event)
        except Exception as exc:  # noqa: BLE001 - a broken subscriber must not stop the upgrade
            log.warning("upgrade: event subscriber failed (%s)", type(exc).__name__)

    def _finish(self, job: Job, state: str, code: OtaCode, reason: str) -> None:
        """End a job: done or fail. Drops the job file; the event goes out last."""
        with self._lock:
            if self._job is job:
                self._job = None
        self._job_file.remove()
        if state == "fail":
            log.warning("upgrade: %s failed (%d): %s", redact(job.url), int(code), reason)
        self._emit(job, state, 100 if state == "done" else job.percent, code=code, reason=reason)
