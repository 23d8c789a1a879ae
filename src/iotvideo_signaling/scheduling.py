"""Timers for the PTZ move cap and end stops: a real scheduler thread and a manual clock for tests.

:class:`ThreadScheduler` runs every timer of a controller on one daemon thread (not a thread
per timer). :class:`ManualClock` is a clock and a scheduler in one object whose time only moves
when a test calls :meth:`ManualClock.advance`, so timing tests run instantly and exactly.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["ManualClock", "Scheduler", "ThreadScheduler", "TimerHandle"]

log = logging.getLogger(__name__)


class TimerHandle(Protocol):
    """What :meth:`Scheduler.call_later` returns."""

    def cancel(self) -> None:
        """Prevent the call if it has not started; no effect afterwards."""


class Scheduler(Protocol):
    """Runs a callable once after a delay (seconds on the controller's clock)."""

    def call_later(self, delay: float, fn: Callable[[], None], /) -> TimerHandle:
        """Schedule ``fn()``; it runs on the scheduler's thread and should not raise."""


class _Timer:
    __slots__ = ("cancelled", "deadline", "fn", "seq")

    def __init__(self, deadline: float, seq: int, fn: Callable[[], object]) -> None:
        self.deadline = deadline
        self.seq = seq
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __lt__(self, other: _Timer) -> bool:
        if self.deadline != other.deadline:
            return self.deadline < other.deadline
        return self.seq < other.seq


#: The heap size below which cancelled timers are left for the thread to drop as they come due.
_MIN_CLEAN = 64


def _delay(value: float) -> float:
    return value if value > 0 else 0.0  # also maps NaN to 0


class ThreadScheduler:
    """A :class:`Scheduler` with one daemon timer thread for all timers.

    The thread starts with the first timer. :meth:`close` drops pending timers and joins the
    thread; a callback that raises is logged and does not stop the thread.

    A new timer wakes the thread only when it is due before every other timer, and cancelled
    timers are dropped from the heap whenever it has doubled since the last clean-up, so a
    flood of re-armed timers (a panel repeating a press) costs neither wake-ups nor memory.
    """

    def __init__(self, *, name: str = "iotvideo-ptz-timer") -> None:
        self._name = name
        self._lock = threading.Lock()  # held directly on the hot path: Condition.__enter__ is Python
        self._cond = threading.Condition(self._lock)
        self._heap: list[_Timer] = []
        self._clean_at = _MIN_CLEAN
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._closed = False

    def call_later(self, delay: float, fn: Callable[[], object], /) -> TimerHandle:
        """Run ``fn()`` on the timer thread after ``delay`` seconds.

        Raises:
            RuntimeError: the scheduler is closed.
        """
        deadline = time.monotonic() + _delay(delay)
        with self._lock:
            if self._closed:
                raise RuntimeError("the scheduler is closed")
            heap = self._heap
            if len(heap) >= self._clean_at:
                heap[:] = [t for t in heap if not t.cancelled]
                heapq.heapify(heap)
                self._clean_at = max(_MIN_CLEAN, 2 * len(heap))
            timer = _Timer(deadline, next(self._seq), fn)
            heapq.heappush(heap, timer)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            elif heap[0] is timer:  # due first: the thread sleeps until a later deadline, or for good
                self._cond.notify()
        return timer

    def pending(self) -> int:
        """Timers in the heap, cancelled ones not yet dropped included (for tests and monitoring)."""
        with self._lock:
            return len(self._heap)

    def close(self, timeout: float | None = 5.0) -> None:
        """Drop pending timers, stop the thread and wait for it (not when called from it)."""
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def __enter__(self) -> ThreadScheduler:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _next_due(self) -> _Timer | None:
        with self._cond:
            while not self._closed:
                while self._heap and self._heap[0].cancelled:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0].deadline - time.monotonic()
                if wait <= 0:
                    return heapq.heappop(self._heap)
                self._cond.wait(wait)
            return None

    def _run(self) -> None:
        while True:
            timer = self._next_due()
            if timer is None:
                return
            if timer.cancelled:
                continue
            try:
                timer.fn()
            except Exception:
                log.exception("PTZ timer callback failed")


class ManualClock:
    """A fake monotonic clock that is also a :class:`Scheduler`, for tests.

    Time moves only in :meth:`advance`, which runs the due callbacks in deadline order in the
    calling thread, each one seeing the clock at its own deadline. Pass the same object as
    ``clock`` and ``scheduler`` (and as the clock of a :class:`VirtualMotor`)::

        clock = ManualClock()
        ptz = PtzController(hardware, publish=events.append, clock=clock, scheduler=clock)
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._heap: list[_Timer] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()

    def __call__(self) -> float:
        """The current fake time, in seconds."""
        with self._lock:
            return self._now

    @property
    def now(self) -> float:
        """The current fake time, in seconds."""
        return self()

    def call_later(self, delay: float, fn: Callable[[], object], /) -> TimerHandle:
        """Run ``fn()`` when :meth:`advance` reaches ``now + delay``."""
        with self._lock:
            timer = _Timer(self._now + _delay(delay), next(self._seq), fn)
            heapq.heappush(self._heap, timer)
        return timer

    def pending(self) -> int:
        """Number of timers scheduled and not cancelled."""
        with self._lock:
            return sum(1 for timer in self._heap if not timer.cancelled)

    def advance(self, seconds: float) -> None:
        """Move time forward, running every callback that falls due (exceptions propagate)."""
        if not seconds >= 0:
            raise ValueError("seconds must be >= 0")
        with self._lock:
            target = self._now + seconds
        while True:
            with self._lock:
                while self._heap and self._heap[0].cancelled:
                    heapq.heappop(self._heap)
                if not self._heap or self._heap[0].deadline > target:
                    self._now = max(self._now, target)
                    return
                timer = heapq.heappop(self._heap)
                self._now = max(self._now, timer.deadline)
            timer.fn()
