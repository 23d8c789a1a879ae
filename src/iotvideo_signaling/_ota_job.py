"""A firmware upgrade's job and the files that let it survive a restart.

Theory of operation
-------------------
:class:`Job` is the one job :class:`~iotvideo_signaling.ota.OtaManager` runs: what to fetch, how
far it got, and the flags the manager sets under its lock. Its files live in ``download_dir``:

* the job file ``.ota-job.json`` (:class:`JobFile`) holds :meth:`Job.record`. It is written
  atomically with mode 0600 (it holds the signed URL, which a resume after a restart needs),
  first when the job is accepted, then as the download progresses, and once more when the job
  switches to the ``installing`` phase, with the version that was running before the install.
  It is removed when the job ends. :meth:`JobFile.load` rebuilds the job at start-up and
  removes a file it cannot use.
* the partial image ``firmware-<md5><ext>.part`` (:class:`PartFile`), with the MD5 of what it
  holds; once size and MD5 check out it is renamed to ``firmware-<md5><ext>`` for the installer.

Durability: :func:`checkpoint` fsyncs the ``.part`` file *before* it sets the job's ``durable``
offset and writes the record, so the offset in the job file never covers bytes that are not on
disk. After a crash the first ``offset`` bytes are good: :meth:`PartFile.adopt` re-hashes them and
the transfer fetches the rest with ``Range``. A cancelled job's record is never written again, so
a write racing with ``cancel()`` cannot bring back the file it removed.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Protocol, Tuple
from urllib.parse import urlsplit

from ._ota_base import Fatal, OtaCode, Stopped, url_problem
from .protocol import is_md5
from .state import atomic_write_json, read_json, remove_stale_temporaries

# The upgrade logs under one name, whichever of its modules speaks.
log = logging.getLogger("iotvideo_signaling.ota")

#: Name of the job file inside ``download_dir``.
JOB_FILE = ".ota-job.json"

#: The names of the files this module creates in ``download_dir`` (and may remove).
IMAGE = re.compile(r"firmware-[0-9a-f]{32}(\.tar)?(\.[A-Za-z0-9]{1,8})?(\.part)?")
_EXTENSION = re.compile(r"(\.tar)?\.[A-Za-z0-9]{1,8}$")


# -- job names -------------------------------------------------------------------------------


def job_key(url: str, md5: str) -> Tuple[str, str]:
    """What makes two requests "the same job": the URL without query or fragment, and the MD5."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.lower()}{parts.path or '/'}", md5


def image_name(url: str, md5: str) -> str:
    """``firmware-<md5><ext>``, ``ext`` being the URL's own (installers may look at it: ``.raucb``,
    ``.swu``, ``.tar.gz``) when it is short and plain, else ``.bin``."""
    base = urlsplit(url).path.rsplit("/", 1)[-1]
    match = _EXTENSION.search(base)
    ext = match.group(0) if match and match.start() > 0 else ".bin"
    return f"firmware-{md5}{'.bin' if ext.lower() == '.part' else ext}"


# -- the job ---------------------------------------------------------------------------------


class Job:
    """One upgrade job. Fields other than the flags are touched by the worker only."""

    def __init__(self, url: str, md5: str, size: int) -> None:
        self.url = url
        self.md5 = md5
        self.size = size
        self.key = job_key(url, md5)
        self.name = image_name(url, md5)
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
        """What the job file holds."""
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
    def from_record(cls, record: Any, max_size: int) -> Job:
        """Rebuild a job from the job file; ValueError when anything in it is off."""
        if not isinstance(record, dict) or record.get("format") != 1:
            raise ValueError("unknown job file format")
        url, md5, size, offset = record.get("url"), record.get("md5"), record.get("size"), record.get("offset")
        if not isinstance(url, str) or url_problem(url) is not None:
            raise ValueError("bad url")
        if not isinstance(md5, str) or not is_md5(md5):
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


# -- the job file ----------------------------------------------------------------------------


class JobFile:
    """The job file in ``directory``: the record of the one job, or no file."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / JOB_FILE
        self._lock = threading.Lock()  # serialises writes and removal

    def save(self, job: Job) -> None:
        """Write ``job``'s record atomically (nothing once the job is cancelled).

        Raises:
            OSError: the record could not be written; the previous one is still in place.
        """
        with self._lock:
            if not job.cancelled:
                atomic_write_json(self.path, job.record())

    def save_or_warn(self, job: Job) -> None:
        """:meth:`save` for a job that goes on either way: a failure is logged, and a resume
        after a restart starts from the last record that was written."""
        try:
            self.save(job)
        except OSError:
            log.warning("upgrade: cannot update the job file")

    def remove_stale_temporaries(self) -> None:
        """Remove temporary files a killed write of the job file left (at start-up)."""
        with self._lock:  # no write is in progress meanwhile
            remove_stale_temporaries(self.path)

    def remove(self) -> None:
        """Remove the file (no job is recorded any more)."""
        with self._lock:
            unlink(self.path)

    def load(self, max_size: int) -> Optional[Job]:
        """The recorded job, or None; an unreadable or unusable file is removed (and logged)."""
        record = read_json(self.path)
        if record is None:
            if self.path.exists():  # unreadable or corrupt (read_json logged why)
                self.remove()
            return None
        try:
            return Job.from_record(record, max_size)
        except ValueError as exc:
            log.warning("upgrade: discarding an unusable job file (%s)", exc)
            self.remove()
            return None

    def forget_download(self) -> bool:
        """Remove a recorded download and its partial file (a pending install stays).

        Returns:
            True if a download was recorded.
        """
        record = read_json(self.path)
        if not isinstance(record, dict) or record.get("phase") != "downloading":
            return False
        self.remove()
        md5, url = record.get("md5"), record.get("url")
        if isinstance(md5, str) and isinstance(url, str) and is_md5(md5):
            unlink(self.path.parent / (image_name(url, md5.lower()) + ".part"))
        return True


# -- the partial file ------------------------------------------------------------------------


class _Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...


class PartFile:
    """The growing ``.part`` file and the MD5 of what it holds."""

    def __init__(self, path: Path) -> None:
        import hashlib  # noqa: PLC0415 - lazy: keep `import iotvideo_signaling` light

        self._new_digest: Callable[[], _Digest] = lambda: hashlib.md5(usedforsecurity=False)
        self.path = path
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise Fatal(OtaCode.INSTALL_FAILED, "cannot write the firmware file") from exc
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
                raise Stopped
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
            raise Fatal(OtaCode.INSTALL_FAILED, "cannot write the firmware file") from exc
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


class Durable(Protocol):
    """A job as :func:`checkpoint` sees it: the offset its record claims is on disk."""

    durable: int


def checkpoint(job: Durable, sink: PartFile, record: Callable[[], None]) -> None:
    """fsync the data, then record the offset it covers (nothing when both are current)."""
    if sink.durable == sink.offset and job.durable == sink.durable:
        return
    try:
        sink.sync()
    except OSError:
        log.warning("upgrade: fsync of the partial file failed")
        return
    job.durable = sink.durable
    record()


# -- files of other jobs ---------------------------------------------------------------------


def remove_other_images(directory: Path, keep: str) -> None:
    """Remove images and partial files other than ``keep``'s (only names this module creates)."""
    kept = {keep, keep + ".part"}
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if name not in kept and IMAGE.fullmatch(name):
            unlink(directory / name)


def unlink(path: Path) -> None:
    """Remove ``path``; a missing file is fine, another failure is logged."""
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("upgrade: cannot remove %s (%s)", path.name, type(exc).__name__)
