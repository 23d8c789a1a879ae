"""A turn: the order in which one actuator's hooks are called, and nothing else.

Hardware calls that change one actuator (the motor, the power switch) must reach the hardware in
the order their decisions were made, so they are serialised: one thread at a time holds the
actuator's :class:`Turn` while it calls the hooks. A turn guards no state. The locks that do
(a controller's position and move, the Device's flags and sessions) are never held while a hook
runs, so a slow hook holds up only the next call to the same actuator, never a status read, a
report or another topic. A hook that calls back into the operation running it gets a
RuntimeError instead of a deadlock.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Optional

__all__ = ["Turn"]


class Turn:
    """One actuator's turn, used as ``with turn: ...`` around its hook calls; not reentrant."""

    __slots__ = ("_mutex", "_owner")

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._owner: Optional[int] = None

    def __enter__(self) -> Turn:
        me = threading.get_ident()
        if self._owner == me:
            raise RuntimeError("a hardware hook called back into the operation that is running it")
        self._mutex.acquire()
        self._owner = me
        return self

    def __exit__(
        self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self._owner = None
        self._mutex.release()

    def held(self) -> bool:
        """True when the calling thread holds the turn."""
        return self._owner == threading.get_ident()
