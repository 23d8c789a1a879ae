"""Sessions: who is connected and in which role, who watches, who talks, and who may start a stream.

The one place that answers those questions. The Device asks it for a visitor's role (policy),
for ``user_num`` and the intercom's state (replies), and for the admission of a stream
(``get_device_st``, and the device SDK's own stream requests through the bridge). Every change is
made under one short lock and published as an event after it is released.
"""

from __future__ import annotations

import threading
from typing import Callable, NamedTuple, Optional

from .events import EventBus
from .protocol import short

__all__ = ["ROLES", "STREAM_KINDS", "Admission", "Sessions", "sharer_refusal"]

ROLES = ("owner", "sharer")
#: What a visitor may ask to start: live view, talk-back, playback of recordings.
STREAM_KINDS = ("live", "voice", "playback")

_SHARER_REASONS = {
    "upgrade": "sharers may not upgrade the firmware",
    "sd_format": "sharers may not format the SD card",
    "set_status": "sharers may not switch the camera on or off",
}


def check_visitor(visitor: object, *, optional: bool = False) -> None:
    """Refuse an id that cannot name a visitor: anything but a ``str`` (and None where
    ``optional``: None stands for "no session" and is never a key)."""
    if not (isinstance(visitor, str) or (optional and visitor is None)):
        kind = "a str or None" if optional else "a str"
        raise TypeError(f"visitor must be {kind}, not {type(visitor).__name__}")


def sharer_refusal(topic: str) -> str:
    """The reason a sharer is refused ``topic`` (one of ``DeviceConfig.sharer_denied_topics``)."""
    return _SHARER_REASONS.get(topic, f"sharers may not use {short(topic)}")


class Admission(NamedTuple):
    """The answer to "may this visitor start this stream?", in Tencent's ``get_device_st`` codes.

    Attributes:
        status: ``"0"`` accepted, ``"1"`` refused (standby, or the intercom is someone else's),
            ``"405"`` too many viewers, ``"406"`` not supported by this camera.
        viewers: visitors streaming, counting this one once (``appConnectNum``).
    """

    status: str
    viewers: int

    @property
    def accepted(self) -> bool:
        """True when the stream may start."""
        return self.status == "0"


class Sessions:
    """Visitors, their roles, their streams and the intercom.

    A visitor is whatever id the transport gives its peer (a ``str``); ``None`` means "no
    session" and always has the default role.

    Args:
        events: where ``session``, ``stream`` and ``intercom`` events go.
        default_role: the role of a visitor without a session.
        max_viewers: most visitors streaming at once (a newcomer beyond gets 405).
        in_standby: whether the camera is in standby (privacy mode) now.
        playback: whether the camera can play back recordings.
    """

    def __init__(
        self,
        *,
        events: EventBus,
        default_role: str,
        max_viewers: int,
        in_standby: Callable[[], bool],
        playback: bool,
    ) -> None:
        self._events = events
        self._default_role = default_role
        self._max_viewers = max_viewers
        self._in_standby = in_standby
        self._playback = playback
        self._lock = threading.Lock()
        self._roles: dict[Optional[str], str] = {}  # None is never a key: get(None) misses
        self._streaming: set[Optional[str]] = set()
        self._talker: Optional[str] = None

    # -- who is connected ------------------------------------------------------------------

    def open(self, visitor: str, role: Optional[str] = "owner") -> None:
        """A peer connected. ``role`` is ``"owner"``, ``"sharer"`` or None (the default role)."""
        if role is None:
            role = self._default_role
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        check_visitor(visitor)
        with self._lock:
            self._roles[visitor] = role
        self._events.emit("session", visitor=visitor, state="open", role=role)

    def close(self, visitor: str) -> None:
        """A peer left: its stream and its intercom end."""
        check_visitor(visitor)
        with self._lock:
            known = self._roles.pop(visitor, None) is not None
            was_streaming = visitor in self._streaming
            self._streaming.discard(visitor)
            was_talking = self._talker == visitor
            if was_talking:
                self._talker = None
        if was_streaming:
            self._events.emit("stream", visitor=visitor, state="stopped")
        if was_talking:
            self._events.emit("intercom", visitor=visitor, state="unused")
        if known:
            self._events.emit("session", visitor=visitor, state="closed")

    def role(self, visitor: Optional[str]) -> str:
        """The role of ``visitor``: from its session, else the default role."""
        check_visitor(visitor, optional=True)
        return self._roles.get(visitor, self._default_role)

    # -- who watches ---------------------------------------------------------------------------

    def start_stream(self, visitor: str) -> None:
        """Live view started for ``visitor`` (it counts in ``user_num``)."""
        check_visitor(visitor)
        with self._lock:
            new = visitor not in self._streaming
            self._streaming.add(visitor)
        if new:
            self._events.emit("stream", visitor=visitor, state="started")

    def stop_stream(self, visitor: str) -> None:
        """Live view stopped for ``visitor``."""
        check_visitor(visitor)
        with self._lock:
            was = visitor in self._streaming
            self._streaming.discard(visitor)
        if was:
            self._events.emit("stream", visitor=visitor, state="stopped")

    def viewers(self, visitor: Optional[str]) -> int:
        """Visitors streaming, counting ``visitor`` once (``user_num``); only ``get_status`` asks,
        inside ``Device.handle``, which has checked the visitor already."""
        with self._lock:
            return len(self._streaming) + (visitor not in self._streaming)

    # -- who talks ------------------------------------------------------------------------------

    def start_intercom(self, visitor: str) -> bool:
        """Give the intercom to ``visitor``; False when another visitor holds it."""
        check_visitor(visitor)
        with self._lock:
            if self._talker not in (None, visitor):
                return False
            new = self._talker is None
            self._talker = visitor
        if new:
            self._events.emit("intercom", visitor=visitor, state="using")
        return True

    def stop_intercom(self, visitor: str) -> None:
        """``visitor`` stopped talking (nothing happens if it did not hold the intercom)."""
        check_visitor(visitor)
        with self._lock:
            was = self._talker == visitor
            if was:
                self._talker = None
        if was:
            self._events.emit("intercom", visitor=visitor, state="unused")

    def intercom_in_use(self) -> bool:
        """True while a visitor holds the intercom."""
        return self._talker is not None

    # -- who may start a stream ---------------------------------------------------------------

    def admit(self, visitor: Optional[str], kind: str) -> Admission:
        """May ``visitor`` start a stream of ``kind`` (one of :data:`STREAM_KINDS`) now?

        Refused in standby, and talk-back while another visitor holds the intercom; 405 for a
        visitor not streaming yet when ``max_viewers`` others already are; 406 for playback on a
        camera without recordings.
        """
        check_visitor(visitor, optional=True)
        if kind not in STREAM_KINDS:
            raise ValueError(f"kind must be one of {STREAM_KINDS}")
        with self._lock:
            streaming = visitor in self._streaming
            count = len(self._streaming) + (not streaming)
            talker = self._talker
        if self._in_standby():
            status = "1"
        elif not streaming and count > self._max_viewers:
            status = "405"
        elif kind == "voice" and talker is not None and talker != visitor:
            status = "1"
        elif kind == "playback" and not self._playback:
            status = "406"
        else:
            status = "0"
        return Admission(status, count)

