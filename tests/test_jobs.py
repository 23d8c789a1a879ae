"""The owned worker pool: bounded, refuses when full, and reports every job it drops."""

from __future__ import annotations

import functools
import threading
import time
from typing import Callable

import pytest

from iotvideo_signaling import RequestError, ResultCode
from iotvideo_signaling.jobs import InlineJobs, WorkerPool

WAIT = 10.0


def hold(gate: threading.Event) -> Callable[[], None]:
    def run() -> None:
        gate.wait(WAIT)

    return run


def test_nothing_starts_before_the_first_job() -> None:
    before = threading.active_count()
    pool = WorkerPool(2)
    assert threading.active_count() == before
    assert pool.close(1.0)


def test_a_full_pool_refuses_with_busy() -> None:
    gate = threading.Event()
    pool = WorkerPool(1, max_queued=3)
    try:
        for _ in range(3):
            pool.submit(hold(gate))
        with pytest.raises(RequestError) as caught:
            pool.submit(lambda: None)
        assert caught.value.code == ResultCode.BUSY
        assert pool.pending() == 3
    finally:
        gate.set()
        assert pool.close(WAIT)


def test_close_drops_waiting_jobs_and_reports_each() -> None:
    gate = threading.Event()
    running = threading.Event()
    pool = WorkerPool(1)
    ran: list[int] = []
    dropped: list[int] = []

    def hold() -> None:
        running.set()
        gate.wait(WAIT)

    pool.submit(hold)
    assert running.wait(WAIT)
    for i in range(5):
        pool.submit(lambda i=i: ran.append(i), on_drop=lambda i=i: dropped.append(i))  # type: ignore[misc]
    closer = threading.Thread(target=pool.close)
    closer.start()
    time.sleep(0.05)  # close() is waiting for the running job
    gate.set()
    closer.join(WAIT)
    assert not closer.is_alive()
    assert (ran, dropped) == ([], [0, 1, 2, 3, 4])
    with pytest.raises(RuntimeError):
        pool.submit(lambda: None)


def test_a_job_submitted_to_a_free_worker_runs_even_if_close_follows_at_once() -> None:
    for _ in range(50):
        pool = WorkerPool(2)
        ran: list[str] = []
        pool.submit(functools.partial(ran.append, "first"), on_drop=functools.partial(ran.append, "dropped"))
        assert pool.close(WAIT)
        assert ran == ["first"]


def test_a_failing_job_is_logged_and_the_worker_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    pool = WorkerPool(1)
    done = threading.Event()

    def boom() -> None:
        raise ValueError("boom")

    pool.submit(boom)
    pool.submit(done.set)
    assert done.wait(WAIT)
    assert pool.close(WAIT)
    assert "background job: run failed" in caplog.text


def test_a_pool_that_cannot_start_a_worker_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_threads(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", no_threads)
    pool = WorkerPool(2)
    with pytest.raises(RuntimeError, match="can't start"):
        pool.submit(lambda: None)
    assert pool.pending() == 0  # refused: nothing left queued that would never run
    monkeypatch.undo()
    assert pool.close(WAIT)


def test_close_gives_up_waiting_after_its_timeout() -> None:
    gate = threading.Event()
    pool = WorkerPool(1)
    pool.submit(hold(gate))
    try:
        assert pool.close(0.05) is False
    finally:
        gate.set()


def test_inline_jobs_run_in_the_caller_and_refuse_once_closed() -> None:
    jobs = InlineJobs()
    seen: list[int] = []
    jobs.submit(lambda: seen.append(threading.get_ident()))
    assert seen == [threading.get_ident()]
    assert jobs.close()
    with pytest.raises(RuntimeError):
        jobs.submit(lambda: None)
