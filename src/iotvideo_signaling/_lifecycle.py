"""A lifecycle that starts once and closes once, whichever threads ask.

``new -> starting -> running -> closed``. The first thread to ask for a start does the start-up
work with no lock held (it calls hooks); any other thread that asks meanwhile waits for it, and a
hook that calls back into the starting object from the starting thread goes through instead of
deadlocking. A start that fails goes back to ``new``, so the next one tries again. A close waits
for a start in progress, then wins over every later start.
"""

from __future__ import annotations

import threading
from typing import Optional

__all__ = ["Lifecycle"]

_NEW, _STARTING, _RUNNING, _CLOSED = "new", "starting", "running", "closed"


class Lifecycle:
    """The phase of one object's life; see the module docstring.

    Attributes:
        running: True from a successful start to the close (read without a lock: a bool).
    """

    __slots__ = ("_cond", "_phase", "_starter", "running")

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._phase = _NEW
        self._starter: Optional[int] = None  # the thread doing the start-up work
        self.running = False

    @property
    def closed(self) -> bool:
        """True once a close began."""
        return self._phase == _CLOSED

    def begin_start(self) -> bool:
        """True when the caller must now do the start-up work (then :meth:`started` or
        :meth:`start_failed`); False when it is done, or being done by this very thread.

        Raises:
            RuntimeError: closed.
        """
        with self._cond:
            self._wait_for_starter()
            if self._phase == _CLOSED:
                raise RuntimeError("device is closed")
            if self._phase != _NEW:
                return False
            self._phase, self._starter = _STARTING, threading.get_ident()
            return True

    def started(self) -> None:
        """The start-up work succeeded."""
        self._end_start(_RUNNING)

    def start_failed(self) -> None:
        """The start-up work raised: back to new, the next start tries again."""
        self._end_start(_NEW)

    def begin_close(self) -> bool:
        """True when the caller must now do the closing work; False when it was closed already."""
        with self._cond:
            self._wait_for_starter()
            if self._phase == _CLOSED:
                return False
            self._phase, self.running = _CLOSED, False
            return True

    def _wait_for_starter(self) -> None:
        while self._phase == _STARTING and self._starter != threading.get_ident():
            self._cond.wait()

    def _end_start(self, phase: str) -> None:
        with self._cond:
            self._phase, self._starter, self.running = phase, None, phase == _RUNNING
            self._cond.notify_all()
