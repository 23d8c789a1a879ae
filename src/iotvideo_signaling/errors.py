"""Exceptions and result codes.

The tree::

    SignalingError                 base of what the library's core raises on purpose
    ├── WireError(ValueError)      the command string or its JSON payload is malformed
    ├── RequestError               a well-formed request that cannot be served
    │   └── protocol.EnvelopeError   its envelope (topic, message_id, data) is wrong
    ├── ptz.PtzRefused             a PTZ start refused by the controller's ``allow_start``
    └── installer.InstallError     an installer command failed or timed out

The daemon and CLI have their own (``server.ConfigError``, ``server.ClientError``).

Every exception carries the :class:`ResultCode` that the protocol answers with, so the
boundary that turns exceptions into replies never has to guess.
"""

from __future__ import annotations

import enum

__all__ = ["RequestError", "ResultCode", "SignalingError", "WireError"]

#: Longest ``reason`` a reply may carry (docs/protocol.md §5).
MAX_REASON = 200


class ResultCode(str, enum.Enum):
    """The ``result`` strings of docs/protocol.md §5."""

    OK = "0"
    MALFORMED_COMMAND = "1"
    MALFORMED_JSON = "2"
    UNKNOWN = "3"
    INVALID_PARAMETER = "4"
    BUSY = "5"
    FORBIDDEN = "6"
    DEVICE_ERROR = "7"
    STANDBY = "8"


class SignalingError(Exception):
    """Base class: a failure that maps to a result code and a short reason."""

    code: ResultCode = ResultCode.DEVICE_ERROR

    def __init__(self, reason: str, *, code: ResultCode | None = None) -> None:
        # Refusals are raised on hot paths, so the base __init__ runs only when needed:
        # BaseException.__new__ has set ``args`` to the positional arguments already.
        if code is not None:
            self.code = code
        if len(reason) > MAX_REASON:
            reason = reason[:MAX_REASON]
        self.reason = reason
        if len(self.args) != 1 or self.args[0] is not reason:  # subclasses with more arguments
            self.args = (reason,)


class WireError(SignalingError, ValueError):
    """The command string (code ``1``) or its JSON payload (code ``2``) is malformed.

    Attributes:
        code: :attr:`ResultCode.MALFORMED_COMMAND` or :attr:`ResultCode.MALFORMED_JSON`.
        reason: short English text, safe to put in a reply.
        offset: byte offset in the (NUL/CR/LF-stripped) input where the problem was found.
    """

    code = ResultCode.MALFORMED_COMMAND

    def __init__(self, reason: str, offset: int, *, code: ResultCode | None = None) -> None:
        super().__init__(reason, code=code)
        self.offset = offset

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WireError):
            return NotImplemented
        return (self.code, self.reason, self.offset) == (other.code, other.reason, other.offset)

    def __hash__(self) -> int:
        return hash((self.code, self.reason, self.offset))

    def __repr__(self) -> str:
        return f"WireError({self.reason!r}, {self.offset}, code={self.code.value!r})"

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_wire_error, (self.reason, self.offset, self.code))


def _rebuild_wire_error(reason: str, offset: int, code: ResultCode) -> WireError:
    return WireError(reason, offset, code=code)


class RequestError(SignalingError):
    """A decoded request that cannot be served: bad parameter, unknown topic, busy, ..."""

    code = ResultCode.INVALID_PARAMETER
