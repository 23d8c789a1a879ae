"""Device events: every state change is published as one :class:`Event` through an :class:`EventBus`."""

import threading
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Callable, NamedTuple

from ._log import logger

__all__ = ["Event", "EventBus", "Publish"]

log = logger(__name__)


class Event(NamedTuple):
    """One state change inside the device.

    Attributes:
        kind: ``"power"``, ``"flip"``, ``"ptz"``, ``"upgrade"``, ``"sd_format"``, ``"tone"``,
            ``"session"``, ``"stream"``, ``"intercom"``, or a vendor's own kind.
        data: JSON-compatible details; never contains secrets such as signed URLs.
        time: wall-clock seconds when it happened.
    """

    kind: str
    data: Mapping[str, Any] = MappingProxyType({})  # read-only: one default shared by all
    time: float = 0.0


#: What controllers call to publish an event.
Publish = Callable[[Event], None]


class EventBus:
    """The subscribers of one Device, and the wall clock that stamps its events.

    Subscribing and unsubscribing take a short lock; publishing reads the current tuple of
    subscribers without it, and calls each outside any lock (a failing one is logged).

    Args:
        wall_clock: seconds since the epoch, for :attr:`Event.time` (tests inject a fake one).
    """

    __slots__ = ("_lock", "_subscribers", "wall_clock")

    def __init__(self, wall_clock: Callable[[], float] = time.time) -> None:
        self.wall_clock = wall_clock
        self._lock = threading.Lock()
        self._subscribers: tuple[Callable[[Event], None], ...] = ()

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback`` with every event; returns a function that unsubscribes."""
        with self._lock:
            self._subscribers = (*self._subscribers, callback)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = tuple(s for s in self._subscribers if s is not callback)

        return unsubscribe

    @property
    def listening(self) -> bool:
        """True when someone has subscribed (an event nobody hears need not be built)."""
        return bool(self._subscribers)

    def publish(self, event: Event) -> None:
        """Deliver ``event`` (stamped with the wall clock if it has no time) to every subscriber."""
        subscribers = self._subscribers
        if not subscribers:
            return
        if not event.time:
            event = Event(event.kind, event.data, self.wall_clock())
        for callback in subscribers:
            try:
                callback(event)
            except Exception:
                log.exception("event subscriber failed")

    def emit(self, kind: str, /, **data: Any) -> None:
        """Publish ``Event(kind, data)`` now, if anyone listens."""
        if self._subscribers:
            self.publish(Event(kind, data, self.wall_clock()))
