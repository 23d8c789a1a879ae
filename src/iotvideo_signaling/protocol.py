"""The request layer (docs/protocol.md §3-§5): requests, the per-topic field table, replies.

Nothing here knows of hardware or sessions: a decoded payload goes in, a :class:`Request` with
validated fields comes out, and replies are built as bytes with orjson in the key order of §4
(``confirmation_topic``, ``result``, the topic's fields, ``message_id``).
"""

import threading
from collections.abc import Mapping
from typing import Any, NamedTuple, Optional, Tuple

import orjson

from ._log import logger
from .errors import MAX_REASON, RequestError, ResultCode

__all__ = [
    "FIELDS",
    "MISSING",
    "EnvelopeError",
    "Field",
    "Request",
]

log = logger(__name__)

#: ``message_id`` limits (docs/protocol.md §3): an integer within +-(2**53-1), or a string this long.
MAX_SAFE_INT = 2**53 - 1
MAX_MESSAGE_ID_LEN = 128

MAX_TOPIC_ECHO = 64  # the longest topic an error reply echoes as confirmation_topic
_ECHO = 32  # characters of input a reason may quote (well under the 64-byte limit)


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

    def fields(self, spec: "Tuple[Field, ...]") -> "dict[str, Any]":
        """Validate the fields of ``spec`` (:class:`Field`); raise RequestError (code 4) on the first bad one."""
        found = {}
        for f in spec:
            found[f.name] = f.read(self)
        return found


_new_request = tuple.__new__


def short(value: object) -> str:
    """Quote a piece of input for a reason: at most 32 characters, never more than 64 bytes."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) > _ECHO:
        text = text[: _ECHO - 3] + "..."
    while len(text.encode("utf-8", "replace")) > 60:
        text = text[:-4] + "..."
    return "'" + text + "'"


class Field(NamedTuple):
    """One request field: its JSON type, allowed values and length limit.

    Attributes:
        name: the key, looked up in ``data`` first, then at the top level.
        kind: ``str`` or ``int`` (a JSON integer; ``true``/``false`` are not integers).
        choices: the allowed values, or None for any.
        required: whether a missing field is an error (else it reads as None).
        max_len: the longest accepted string.
        minimum: the smallest accepted integer.
    """

    name: str
    kind: type = str
    choices: Optional[Tuple[Any, ...]] = None
    required: bool = True
    max_len: Optional[int] = None
    minimum: Optional[int] = None

    def read(self, request: "Request") -> Any:
        """The validated value of this field in ``request`` (``data`` first, then top level)."""
        value = request.data.get(self.name, MISSING)
        if value is MISSING:
            value = request.body.get(self.name, MISSING)
        kind: Any = self.kind  # (typed Any: mypy would narrow ``value`` to object)
        if type(value) is kind:  # the common case, in one call
            choices = self.choices
            if choices is not None:
                if value in choices:
                    return value
            else:
                max_len, minimum = self.max_len, self.minimum
                if (max_len is None or len(value) <= max_len) and (minimum is None or value >= minimum):
                    return value
        return self.check(value)

    def check(self, value: Any) -> Any:
        """Return ``value`` if it is valid, else raise RequestError (code 4)."""
        kind: Any = self.kind
        if value is MISSING:
            if self.required:
                raise RequestError(f"missing '{self.name}'")
            return None
        if self.choices is not None:
            if type(value) is kind and value in self.choices:
                return value
            raise RequestError(f"'{self.name}' must be {_alternatives(self.choices)}")
        if type(value) is not kind:
            raise RequestError(f"'{self.name}' must be {'a string' if kind is str else 'an integer'}")
        if self.max_len is not None and len(value) > self.max_len:
            raise RequestError(f"'{self.name}' is longer than {self.max_len} characters")
        if self.minimum is not None and value < self.minimum:
            raise RequestError(f"'{self.name}' must be at least {self.minimum}")
        return value


def _alternatives(choices: tuple[Any, ...]) -> str:
    quoted = [f"'{c}'" for c in choices]
    text = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
    return text if len(text) < 120 else "one of the documented values"


PTZ_COMMANDS = ("ptz_up_press", "ptz_down_press", "ptz_left_press", "ptz_right_press", "ptz_release_pre")

_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
MD5_REASON = "'md5' must be 32 hexadecimal digits"


def is_md5(text: str) -> bool:
    """True for an upgrade's ``md5``: 32 hexadecimal digits, any case. The Device refuses a bad
    one as it reads the request; the OTA manager checks again for callers of its own API.
    (No regular expression: compiling one would cost every import of the package.)"""
    return len(text) == 32 and _HEX_DIGITS.issuperset(text)

#: The fields of each built-in topic (docs/protocol.md §4). The upgrade's other checks are the OTA
#: manager's: the URL (https, host, no credentials) and the configured size cap.
FIELDS: dict[str, tuple[Field, ...]] = {
    "get_status": (Field("user", choices=("owner", "sharer"), required=False),),
    "version": (),
    "upgrade": (Field("url", max_len=2048), Field("md5", max_len=64), Field("fileSize", int, minimum=1)),
    "Mirror_flip": (Field("mode", choices=("normal", "flip")),),
    "set_status": (Field("status", choices=("working", "standby")),),
    "ptz": (Field("cmd", choices=PTZ_COMMANDS),),
    "sd_format": (),
    "bind_status": (Field("status", choices=("success",)),),
    "intercom": (),
}


class EnvelopeError(RequestError):
    """A request whose envelope is wrong; carries what could be read of it for the reply."""

    def __init__(self, reason: str, *, topic: str = "", message_id: Any = MISSING) -> None:
        super().__init__(reason, code=ResultCode.INVALID_PARAMETER)
        self.topic = topic
        self.message_id = message_id


_dumps = orjson.dumps
#: The fields of a reply that has none: only ever unpacked, never changed.
NO_FIELDS: Mapping[str, Any] = {}


def parse_request(value: Any) -> Request:
    """The :class:`Request` of a decoded payload whose envelope is well-formed (docs/protocol.md §3).

    Well-formed: a JSON object with a non-empty string ``topic``, a ``message_id`` that is
    absent, an integer within +-:data:`MAX_SAFE_INT` or a string of at most
    :data:`MAX_MESSAGE_ID_LEN` characters, and a ``data`` that is absent or an object.

    Raises:
        EnvelopeError: not an object, bad ``topic``, ``message_id`` or ``data`` (code 4).
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
    raise _diagnose(value)


def _diagnose(value: Any) -> EnvelopeError:
    """Why ``value`` is not a well-formed envelope: its first fault in the order a reply needs
    (``message_id`` first, so that a later error can echo a valid one; then ``topic``, ``data``)."""
    if type(value) is not dict:
        return EnvelopeError("the payload must be a JSON object")
    topic = value.get("topic")
    shown = topic if type(topic) is str and len(topic) <= MAX_TOPIC_ECHO else ""
    message_id = value.get("message_id", MISSING)
    if type(message_id) is int:
        if not -MAX_SAFE_INT <= message_id <= MAX_SAFE_INT:
            return EnvelopeError("'message_id' is out of range", topic=shown)
    elif type(message_id) is str:
        if len(message_id) > MAX_MESSAGE_ID_LEN:
            return EnvelopeError(f"'message_id' is longer than {MAX_MESSAGE_ID_LEN} characters", topic=shown)
    elif message_id is not MISSING:
        return EnvelopeError("'message_id' must be an integer or a string", topic=shown)
    if type(topic) is not str or not topic:
        return EnvelopeError("missing 'topic'", message_id=message_id)
    return EnvelopeError("'data' must be an object", topic=shown, message_id=message_id)


def reply(topic: str, message_id: Any, fields: Optional[Mapping[str, Any]] = None) -> bytes:
    """A success reply: ``confirmation_topic``, ``result "0"``, ``fields``, ``message_id``."""
    body = {"confirmation_topic": topic, "result": "0", **(fields or NO_FIELDS)}
    if message_id is not MISSING:
        body["message_id"] = message_id  # (one dict: a key after ``**`` would build two)
    return _dumps(body)


def error_reply(topic: str, code: ResultCode, reason: str, message_id: Any = MISSING) -> bytes:
    """An error reply (docs/protocol.md §5); ``reason`` is cut to 200 characters."""
    # orjson writes a str Enum as its value, which spares the slow ``.value`` lookup
    if type(reason) is not str:  # a vendor's exception may carry anything
        reason = str(reason)
    body: dict[str, Any] = {"confirmation_topic": topic, "result": code, "reason": reason[:MAX_REASON]}
    if message_id is not MISSING:
        body["message_id"] = message_id
    return orjson.dumps(body)


_MAX_HOOK_NAME = 24  # keeps the "not supported" reason under 64 bytes


def missing_hook(exc: BaseException) -> Optional[str]:
    """The hook a NotImplementedError names, or None.

    The base ``Hardware`` hooks raise ``NotImplementedError("<hook name>")`` (and the Device
    does the same for a topic whose hook is missing); a bare NotImplementedError, or one whose
    argument is not a short identifier (a vendor's own sentence), names none.
    """
    args = exc.args
    if isinstance(exc, NotImplementedError) and len(args) == 1 and type(args[0]) is str:
        name: str = args[0]
        if name.isidentifier() and len(name) <= _MAX_HOOK_NAME:
            return name
    return None


def unsupported_reason(hook: Optional[str]) -> str:
    """The reason of a result 3 for a missing hook: ``not supported by this camera (no <hook> hook)``."""
    return "not supported by this camera" if hook is None else f"not supported by this camera (no {hook} hook)"


def failure_reply(topic: str, message_id: Any, exc: Exception) -> bytes:
    """The error reply for what a handler raised: its own code, 3 for a missing hook (named in
    the reason when the exception names it, see :func:`missing_hook`), else 7, logged as a
    warning: one line for an OSError (its traceback at DEBUG), with the traceback otherwise."""
    if isinstance(exc, RequestError):
        return error_reply(topic, exc.code, exc.reason, message_id)
    if isinstance(exc, NotImplementedError):
        return error_reply(topic, ResultCode.UNKNOWN, unsupported_reason(missing_hook(exc)), message_id)
    if isinstance(exc, OSError):  # the system's (a read-only disk, a device gone): its message says it
        log.warning("%s failed: %s", topic or "command", exc)
        log.debug("%s failed", topic or "command", exc_info=exc)
    else:
        log.warning("%s failed: %s", topic or "command", exc, exc_info=exc)
    return error_reply(topic, ResultCode.DEVICE_ERROR, "device error", message_id)


def oversized_reply(topic: str, message_id: Any) -> bytes:
    """The error reply (7) that replaces a reply longer than the reply limit."""
    log.warning("%s: the reply is longer than the reply limit; answering a device error instead", topic)
    return error_reply(topic, ResultCode.DEVICE_ERROR, "reply too large", message_id)


class FailureReplies:
    """:func:`failure_reply` for one Device, which also logs each missing hook once (at INFO)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._told: set[str] = set()

    def reply(self, topic: str, message_id: Any, exc: Exception) -> bytes:
        """The error reply for what a handler raised (see :func:`failure_reply`)."""
        if isinstance(exc, NotImplementedError):
            self.unsupported(topic, exc)
        return failure_reply(topic, message_id, exc)

    def unsupported(self, command: str, exc: NotImplementedError) -> None:
        """Log, once per hook, that ``command`` was answered "not supported" for lack of it."""
        hook = missing_hook(exc)
        key = hook or f"({command})"  # a bare NotImplementedError: once per command
        with self._lock:
            if key in self._told:
                return
            self._told.add(key)
        if hook is None:
            log.info("%s: a hook raised NotImplementedError; answering 'not supported'", command)
        else:
            log.info("%s: the camera has no %s hook; answering 'not supported' (logged once)", command, hook)
