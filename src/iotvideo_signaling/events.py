"""Device events: every state change is published as one :class:`Event`."""

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Callable, NamedTuple

__all__ = ["Event", "Publish"]


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
