"""Device events: every state change is published as one :class:`Event`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["Event", "Publish"]


@dataclass(frozen=True)
class Event:
    """One state change inside the device.

    Attributes:
        kind: ``"power"``, ``"flip"``, ``"ptz"``, ``"upgrade"``, ``"sd_format"``, ``"tone"``,
            ``"session"``, ``"stream"``, ``"intercom"``, or a vendor's own kind.
        data: JSON-compatible details; never contains secrets such as signed URLs.
        time: wall-clock seconds when it happened.
    """

    kind: str
    data: Mapping[str, Any] = field(default_factory=dict)
    time: float = 0.0


#: What controllers call to publish an event.
Publish = Callable[[Event], None]
