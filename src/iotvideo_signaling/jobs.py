"""Background jobs: the small worker pool that runs a Device's slow work after the reply.

An SD format, a prompt tone or a firmware download must not hold up the answer to the panel, so
the Device hands them to a :class:`Jobs` pool. :class:`WorkerPool` is the one it owns by default:
a bounded queue (a full queue refuses with "busy", result 5), worker threads started as jobs
arrive, and :meth:`WorkerPool.close` that drops the jobs still waiting for a busy worker, telling
each so (its ``on_drop``: an SD format then reports ``failed``), and waits for the others. A job
submitted while a worker was free to take it is never dropped: it runs before close() returns.
:class:`InlineJobs` runs each job in the caller's thread, for tests and benchmarks.

A pool never calls ``run`` or ``on_drop`` with its own lock held.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable, NamedTuple, Optional, Protocol

from ._log import logger
from .errors import RequestError, ResultCode

__all__ = ["MAX_QUEUED_JOBS", "InlineJobs", "Jobs", "WorkerPool"]

log = logger(__name__)

#: Jobs that may wait or run at once in a Device's default pool.
MAX_QUEUED_JOBS = 16

BUSY_REASON = "too much background work is queued"


class Jobs(Protocol):
    """What a Device needs of a worker pool (inject your own through ``Device(jobs=...)``)."""

    def submit(self, run: Callable[[], None], /, *, on_drop: Optional[Callable[[], None]] = None) -> None:
        """Run ``run`` in the background, or refuse at once.

        Args:
            run: the job; an exception it raises is logged, not propagated.
            on_drop: called instead of ``run`` when the pool closes before the job started.

        Raises:
            RequestError: code 5 (busy) when the pool is full.
            RuntimeError: the pool is closed or cannot start a worker.
        """

    def close(self, timeout: Optional[float] = None) -> bool:
        """Refuse new jobs, drop queued ones (calling their ``on_drop``), wait for running ones.

        Returns:
            True when every worker stopped within ``timeout`` seconds (None: no limit).
        """


class _Job(NamedTuple):
    run: Callable[[], None]
    on_drop: Optional[Callable[[], None]]


def _call(what: str, fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception:
        log.exception("background job: %s failed", what)


class WorkerPool:
    """A bounded queue served by up to ``workers`` threads, started as jobs arrive.

    Args:
        workers: most threads running jobs at once.
        max_queued: most jobs waiting or running; one more is refused with code 5.
        name: prefix of the worker threads' names.
    """

    def __init__(self, workers: int = 2, *, max_queued: int = MAX_QUEUED_JOBS, name: str = "iotvideo-job") -> None:
        if workers < 1 or max_queued < 1:
            raise ValueError("workers and max_queued must be at least 1")
        self._workers = workers
        self._max_queued = max_queued
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[_Job] = deque()
        self._running = 0
        self._idle = 0
        self._promised = 0  # queued jobs a free worker is on its way to take: close() keeps them
        self._threads: list[threading.Thread] = []
        self._closed = False

    def submit(self, run: Callable[[], None], /, *, on_drop: Optional[Callable[[], None]] = None) -> None:
        """See :meth:`Jobs.submit`."""
        job = _Job(run, on_drop)
        with self._cond:
            if self._closed:
                raise RuntimeError("the worker pool is closed")
            if len(self._queue) + self._running >= self._max_queued:
                raise RequestError(BUSY_REASON, code=ResultCode.BUSY)
            if self._idle > self._promised:  # a free worker takes it
                self._queue.append(job)
                self._promised += 1
                self._cond.notify()
            elif len(self._threads) < self._workers:  # a new worker starts with it
                self._start_worker(job)
            else:  # it waits for a busy worker
                self._queue.append(job)

    def _start_worker(self, job: _Job) -> None:
        thread = threading.Thread(target=self._serve, args=(job,), name=f"{self._name}-{len(self._threads)}")
        thread.daemon = True
        try:
            thread.start()
        except BaseException:
            if not self._threads:  # nobody would ever run it
                raise
            log.warning("cannot start another worker; the job waits for a running one", exc_info=True)
            self._queue.append(job)
        else:
            self._threads.append(thread)
            self._running += 1

    def pending(self) -> int:
        """Jobs waiting or running."""
        with self._cond:
            return len(self._queue) + self._running

    def close(self, timeout: Optional[float] = None) -> bool:
        """See :meth:`Jobs.close`; safe to call twice."""
        with self._cond:
            self._closed = True
            dropped = list(self._queue)[self._promised :]
            for _ in dropped:
                self._queue.pop()
            self._cond.notify_all()
            threads = list(self._threads)
        for job in dropped:
            if job.on_drop is not None:
                _call("on_drop", job.on_drop)
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in threads:
            if thread is threading.current_thread():
                continue  # a job that closes its own pool
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("a background job did not finish within %.1f s", timeout)
                return False
        return True

    def _serve(self, first: _Job) -> None:
        job = first
        while True:
            try:
                _call("run", job.run)
            finally:
                with self._cond:
                    self._running -= 1
            with self._cond:
                while not self._queue and not self._closed:
                    self._idle += 1
                    self._cond.wait()
                    self._idle -= 1
                    if self._promised:  # this worker was (or stands in for) the one promised
                        self._promised -= 1
                if not self._queue:
                    return
                job = self._queue.popleft()
                self._running += 1


class InlineJobs:
    """Runs every job at once in the caller's thread (for tests and benchmarks).

    ``submit`` returns when the job has ended; a closed pool refuses like :class:`WorkerPool`.
    """

    def __init__(self) -> None:
        self._closed = False

    def submit(self, run: Callable[[], None], /, *, on_drop: Optional[Callable[[], None]] = None) -> None:
        """See :meth:`Jobs.submit`."""
        if self._closed:
            raise RuntimeError("the worker pool is closed")
        _call("run", run)

    def close(self, timeout: Optional[float] = None) -> bool:
        """See :meth:`Jobs.close`."""
        self._closed = True
        return True

