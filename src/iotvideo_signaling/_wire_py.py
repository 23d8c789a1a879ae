"""Pure-Python wire backend: the reference semantics of docs/protocol.md §2.

``cext/_wire_c.pyx`` implements exactly this, faster; a Hypothesis differential test keeps the
two identical (results *and* errors). Change both or neither.

The grammar, in the order this module applies it:

* ``str`` input is encoded as UTF-8 (lone surrogates pass through as bytes and decode to U+FFFD
  later); ``bytearray`` and ``memoryview`` are read as bytes. A subclass of these types is read by
  its contents alone: methods it overrides (``encode``, ``__bytes__``, ``__len__``) are not called.
* An input longer than ``max_size`` bytes is refused. Then trailing NUL, CR and LF are dropped.
* A first byte ``{`` makes the whole input the JSON payload of a ``user_define`` command on
  channel 0 (the "bare payload" of the vendor SDK's high-level API).
* Otherwise ``&``-separated pairs are decoded as WHATWG ``application/x-www-form-urlencoded``,
  except a ``cmd`` value whose first byte after optional JSON whitespace is ``{`` or ``[``: that
  value is raw JSON, taken verbatim up to its matching bracket (strings and escapes skipped), and
  may contain ``&``. JSON whitespace may follow it; then the input ends or continues with ``&``.
* ``action`` (``user_define``/``inner_define``), ``channel`` (decimal, < 2**32, default 0) and
  ``cmd`` (non-empty) each appear at most once; ``action`` and ``cmd`` are required. Any other
  pair is kept, in order, in ``Command.params``.

Errors carry the offset of the pair they concern (the start of its name), the offset after the
last byte for a missing parameter, and ``max_size`` for an oversized input.
"""

from __future__ import annotations

import operator
import re
import sys
from typing import Any, Union

import orjson

from ._command import Command
from ._lenient import retry_or_raise
from .errors import WireError

__all__ = ["Buffer", "decode_command", "loads", "parse_command"]

Buffer = Union[bytes, bytearray, memoryview, str]

DEFAULT_MAX_SIZE = 16384
_ACTIONS = ("user_define", "inner_define")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_CHANNEL_LIMIT = 2**32
_WHITESPACE = b" \t\r\n"
_OPEN = b"{["


def _as_bytes(raw: Buffer) -> bytes:
    """The bytes of ``raw``, read as the compiled backend reads them: a subclass of a buffer type
    by its contents, never through methods it overrides (``encode``, ``__bytes__``, ``__len__``)."""
    if type(raw) is bytes:
        return raw
    if isinstance(raw, str):
        return str.encode(raw, "utf-8", "surrogatepass")
    if isinstance(raw, bytes):
        return bytes.__getitem__(raw, slice(None))  # a plain copy of the stored bytes
    if isinstance(raw, (bytearray, memoryview)):
        return memoryview(raw).tobytes()  # through the buffer, as the C backend reads it
    raise TypeError(f"expected bytes, bytearray, memoryview or str, not {type(raw).__name__}")


def _size(value: int) -> int:
    """A size argument as the compiled backend reads it: a C ``Py_ssize_t``, whose bounds are
    the platform's (``sys.maxsize`` is 2**31-1 on 32-bit ARM), read at each call."""
    size = int.__index__(operator.index(value))  # a plain int: not a bool, nor an int subclass's __int__
    if not -sys.maxsize - 1 <= size <= sys.maxsize:
        raise OverflowError("Python int too large to convert to C ssize_t")
    return size


def _form_decode(raw: bytes) -> str:
    """WHATWG percent-decoding of one name or value: ``+`` is a space, bad escapes stay."""
    raw = raw.replace(b"+", b" ")
    if b"%" in raw:
        parts = raw.split(b"%")
        out = bytearray(parts[0])
        for part in parts[1:]:
            if len(part) >= 2 and part[0] in _HEX and part[1] in _HEX:
                out.append(int(part[:2], 16))
                out += part[2:]
            else:
                out.append(0x25)
                out += part
        raw = bytes(out)
    return raw.decode("utf-8", "replace")


_STRUCTURE = re.compile(rb'["{}\[\]]')
_STRING_STOP = re.compile(rb'["\\]')


def _json_end(data: bytes, start: int, end: int) -> int:
    """Index just past the bracket that closes the one at ``start``, or ``end`` if none does.

    Jumps from one quote or bracket to the next; inside a string, from one quote or backslash
    to the next (a backslash skips the byte after it).
    """
    depth = 0
    i = start
    while True:
        found = _STRUCTURE.search(data, i, end)
        if found is None:
            return end
        i = found.start()
        c = data[i]
        if c == 0x22:
            i += 1
            while True:
                stop = _STRING_STOP.search(data, i, end)
                if stop is None:
                    return end
                i = stop.start()
                if data[i] == 0x22:
                    break
                i += 2
                if i >= end:
                    return end
        elif c in b"{[":
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1


def _skip_whitespace(data: bytes, i: int, end: int) -> int:
    while i < end and data[i] in _WHITESPACE:
        i += 1
    return i


def _channel(value: str, offset: int) -> int:
    digits = value.lstrip("0")
    if not (value.isascii() and value.isdigit()) or len(digits) > 10 or int(digits or "0") >= _CHANNEL_LIMIT:
        raise WireError("'channel' must be a decimal number below 2**32", offset)
    return int(digits or "0")


def _scan(raw: Buffer, max_size: int) -> tuple[Command, int]:
    """Parse ``raw``; return the command and the offset of its payload (see retry_or_raise)."""
    max_size = _size(max_size)
    if isinstance(raw, str) and str.__len__(raw) > max_size:  # every character takes at least one byte
        raise WireError(f"command exceeds {max_size} bytes", max_size)
    data = _as_bytes(raw)
    if len(data) > max_size:
        raise WireError(f"command exceeds {max_size} bytes", max_size)
    end = len(data)
    while end and data[end - 1] in b"\0\r\n":
        end -= 1
    if end == 0:
        raise WireError("empty command", 0)
    if data[0] == 0x7B:
        return Command("user_define", 0, None, data[:end], ()), 0

    action = None
    channel = -1
    cmd = None
    payload = None
    payload_at = -1
    params = []
    pos = 0
    while pos < end:
        amp = data.find(b"&", pos, end)
        if amp < 0:
            amp = end
        if amp == pos:
            pos += 1
            continue
        eq = data.find(b"=", pos, amp)
        name = _form_decode(data[pos : amp if eq < 0 else eq])
        value = ""
        if eq >= 0:
            if name == "cmd":
                first = _skip_whitespace(data, eq + 1, end)
                if first < end and data[first] in _OPEN:
                    close = _json_end(data, first, end)
                    after = _skip_whitespace(data, close, end)
                    if after < end and data[after] != 0x26:
                        raise WireError("unexpected byte after the JSON value of 'cmd'", after)
                    if cmd is not None or payload is not None:
                        raise WireError("duplicate 'cmd' parameter", pos)
                    payload = data[eq + 1 : close]
                    payload_at = eq + 1
                    pos = after + 1
                    continue
            value = _form_decode(data[eq + 1 : amp])
        if name == "cmd":
            if cmd is not None or payload is not None:
                raise WireError("duplicate 'cmd' parameter", pos)
            if not value:
                raise WireError("'cmd' is empty", pos)
            if value[0] in "{[":
                payload = value.encode("utf-8", "surrogatepass")
                payload_at = ~(eq + 1)  # decoded: errors point at the value, see retry_or_raise
            else:
                cmd = value
        elif name == "action":
            if action is not None:
                raise WireError("duplicate 'action' parameter", pos)
            if value not in _ACTIONS:
                raise WireError("'action' must be 'user_define' or 'inner_define'", pos)
            action = value
        elif name == "channel":
            if channel >= 0:
                raise WireError("duplicate 'channel' parameter", pos)
            channel = _channel(value, pos)
        else:
            params.append((name, value))
        pos = amp + 1

    if action is None:
        raise WireError("missing 'action' parameter", end)
    if cmd is None and payload is None:
        raise WireError("missing 'cmd' parameter", end)
    return Command(action, max(channel, 0), cmd, payload, tuple(params)), payload_at


def parse_command(raw: Buffer, /, *, max_size: int = DEFAULT_MAX_SIZE) -> Command:
    """Parse one command string (docs/protocol.md §2).

    Args:
        raw: the command as received: ``bytes``, ``bytearray``, ``memoryview`` or ``str``.
        max_size: longest accepted input in bytes, trailing NUL/CR/LF included.

    Returns:
        The parsed :class:`Command`. A JSON payload is located but not decoded.

    Raises:
        WireError: the input is not a valid command string (result code ``1``).
        TypeError: ``raw`` is not one of the accepted types.
    """
    return _scan(raw, max_size)[0]


def loads(payload: bytes, offset: int = 0) -> Any:
    """Decode a JSON payload with orjson, leniently (docs/protocol.md §3).

    Args:
        payload: the JSON text.
        offset: where ``payload`` starts in the command string, for error offsets; a negative
            ``~n`` marks a payload percent-decoded from the value at ``n`` (errors then point at
            ``n``, as positions in the decoded text do not map back to the input).

    Raises:
        WireError: code ``2``, offset ``offset`` plus the byte where decoding failed.
    """
    offset = _size(offset)
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        return retry_or_raise(payload, offset, exc)


def decode_command(raw: Buffer, /, *, max_size: int = DEFAULT_MAX_SIZE) -> tuple[Command, Any]:
    """Parse a command string and decode its JSON payload in one call.

    Returns:
        ``(command, value)``: ``value`` is the decoded payload, or None for a ``cmd`` token.

    Raises:
        WireError: code ``1`` for the command string, code ``2`` for its JSON payload.
        TypeError: ``raw`` is not one of the accepted types.
    """
    command, payload_at = _scan(raw, max_size)
    if command.payload is None:
        return command, None
    return command, loads(command.payload, payload_at)

