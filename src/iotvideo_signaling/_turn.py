"""A turn: one thread at a time calls the hooks of one actuator, and no lock is held meanwhile.

Hardware calls that change one actuator (the motor, the power switch) must reach the hardware in
the order their decisions were made, so they are serialised. A plain lock held across the hook
would block everything else that lock guards (reading a position, a report, a status) behind a
slow hook, and deadlock a hook that calls back into the library. A :class:`Turn` instead is taken
and given back under a short-lived condition: while one thread holds the turn, others wait for it
without holding anything, the state lock stays free, and a hook that asks for the turn it is
running under gets a RuntimeError instead of a deadlock.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Optional

__all__ = ["Turn"]


class Turn:
    """A non-reentrant turn, used as ``with turn: ...`` around hardware calls."""

    __slots__ = ("_cond", "_owner")

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._owner: Optional[int] = None

    def __enter__(self) -> Turn:
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                raise RuntimeError("a hardware hook called back into the operation that is running it")
            while self._owner is not None:
                self._cond.wait()
            self._owner = me
        return self

    def __exit__(
        self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        with self._cond:
            self._owner = None
            self._cond.notify()

    def held(self) -> bool:
        """True when the calling thread holds the turn."""
        return self._owner == threading.get_ident()
