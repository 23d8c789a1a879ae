"""The start-once lifecycle shared by the Device: one start across threads, retry after a failure,
close wins, a starting thread may call back."""

from __future__ import annotations

import threading

import pytest

from iotvideo_signaling._lifecycle import Lifecycle


def test_one_thread_does_the_start_the_others_wait_for_it() -> None:
    life = Lifecycle()
    barrier = threading.Barrier(6)
    gate = threading.Event()
    work: list[str] = []
    seen: list[bool] = []

    def start() -> None:
        barrier.wait()
        if life.begin_start():
            work.append(threading.current_thread().name)
            assert gate.wait(10)
            life.started()
        seen.append(life.running)  # the waiters return only once it is running

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join(10)
    assert len(work) == 1 and seen == [True] * 6


def test_a_failed_start_is_tried_again_and_close_wins() -> None:
    life = Lifecycle()
    assert life.begin_start()
    assert life.begin_start() is False  # the starting thread calling back goes through
    life.start_failed()
    assert not life.running
    assert life.begin_start()
    life.started()
    assert life.running and not life.closed
    assert life.begin_close() and not life.begin_close()
    assert life.closed and not life.running
    with pytest.raises(RuntimeError):
        life.begin_start()
