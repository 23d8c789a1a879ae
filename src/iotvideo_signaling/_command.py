"""The values both wire backends produce: :class:`Command`, and :class:`Request` for its envelope.

The envelope check (:func:`envelope`) lives here, beside the wire layer, because the compiled
backend does it in the same call that decodes the payload (``decode_request``); this is its
reference. Explaining a bad envelope is the request layer's (``protocol.parse_request``).

No ``from __future__ import annotations`` here: NamedTuple would compile every string
annotation at import time.
"""

from collections.abc import Mapping
from typing import Any, NamedTuple, Optional, Tuple

__all__ = ["MAX_MESSAGE_ID_LEN", "MAX_SAFE_INT", "MISSING", "Command", "Request", "envelope"]

#: ``message_id`` limits (PROTOCOL.md §3): an integer within +-(2**53-1), or a string this long.
MAX_SAFE_INT = 2**53 - 1
MAX_MESSAGE_ID_LEN = 128


class Command(NamedTuple):
    """One parsed command string (PROTOCOL.md §2).

    A tuple underneath, so both backends build it cheaply and it is immutable and
    comparable. Exactly one of ``cmd`` and ``payload`` is set.

    Attributes:
        action: ``"user_define"`` or ``"inner_define"``.
        channel: the ``channel`` parameter, 0 when absent.
        cmd: the ``cmd`` token when it is not JSON (``"wx_call_start"``, ``"get_device_st"``).
        payload: the bytes of the JSON text when ``cmd`` is JSON.
        params: every other parameter, decoded, in input order.
    """

    action: str
    channel: int
    cmd: Optional[str]
    payload: Optional[bytes]
    params: Tuple[Tuple[str, str], ...]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


#: ``Request.message_id`` when the request had none (the reply then has none either).
MISSING: Any = _Missing()


class Request(NamedTuple):
    """A decoded ``user_define`` request (a tuple underneath: cheap to build, immutable).

    Attributes:
        topic: the request's topic, exactly as sent.
        message_id: an int or str to echo, or :data:`MISSING`.
        body: the whole decoded JSON object.
        data: the ``data`` object, or an empty dict.
    """

    topic: str
    message_id: Any
    body: Mapping[str, Any]
    data: Mapping[str, Any]

    def get(self, name: str) -> Any:
        """A field from ``data``, else from the top level, else :data:`MISSING`."""
        value = self.data.get(name, MISSING)
        if value is MISSING:
            value = self.body.get(name, MISSING)
        return value

    def fields(self, spec: Tuple[Any, ...]) -> "dict[str, Any]":
        """Validate the fields of ``spec`` (``protocol.Field``); raise RequestError (code 4) on the first bad one."""
        found = {}
        for f in spec:
            found[f.name] = f.read(self)
        return found


_new_request = tuple.__new__


def envelope(value: Any) -> Optional[Request]:
    """The :class:`Request` of a decoded payload whose envelope is well-formed, else None.

    Well-formed (PROTOCOL.md §3): a JSON object with a non-empty string ``topic``, a
    ``message_id`` that is absent, an integer within +-:data:`MAX_SAFE_INT` or a string of at
    most :data:`MAX_MESSAGE_ID_LEN` characters, and a ``data`` that is absent or an object.
    """
    if type(value) is dict:
        topic = value.get("topic")
        message_id = value.get("message_id", MISSING)
        data = value.get("data", MISSING)
        if (
            type(topic) is str
            and topic
            and (
                message_id is MISSING
                or (type(message_id) is int and -MAX_SAFE_INT <= message_id <= MAX_SAFE_INT)
                or (type(message_id) is str and len(message_id) <= MAX_MESSAGE_ID_LEN)
            )
            and (data is MISSING or type(data) is dict)
        ):
            return _new_request(Request, (topic, message_id, value, {} if data is MISSING else data))
    return None
