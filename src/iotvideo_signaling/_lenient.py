"""The cold path of JSON decoding, shared by both wire backends.

Both backends call ``orjson.loads`` themselves (the hot path). Only when it fails do they call
:func:`retry_or_raise`, which applies the one repair docs/protocol.md §3 allows (a comma directly
before ``}`` or ``]``, outside strings, optional JSON whitespace between) and decodes once more,
or raises the :class:`~iotvideo_signaling.errors.WireError` both backends must agree on.
"""

from __future__ import annotations

from typing import Any

import orjson

from .errors import ResultCode, WireError

_WHITESPACE = b" \t\r\n"


def drop_trailing_commas(text: bytes) -> bytes | None:
    """Return ``text`` without commas that directly precede ``}``/``]``, or None if it has none."""
    out = bytearray()
    dropped = False
    i, n = 0, len(text)
    comma = -1  # index in ``out`` of a comma seen outside strings, pending the next token
    while i < n:
        c = text[i]
        if c == 0x22:  # a string: copy through the closing quote, honouring escapes
            j = i + 1
            while j < n and text[j] != 0x22:
                j += 2 if text[j] == 0x5C else 1
            out += text[i : j + 1]
            i = j + 1
            comma = -1
            continue
        if c in (0x7D, 0x5D) and comma >= 0:
            del out[comma]
            dropped = True
        if c == 0x2C:
            comma = len(out)
        elif c not in _WHITESPACE:
            comma = -1
        out.append(c)
        i += 1
    return bytes(out) if dropped else None


def byte_offset(text: bytes, char_pos: int) -> int:
    """Turn orjson's character position into a byte offset within ``text``."""
    prefix = text.decode("utf-8", "surrogateescape")[:char_pos]
    return min(len(prefix.encode("utf-8", "surrogateescape")), len(text))


def retry_or_raise(payload: bytes, offset: int, error: orjson.JSONDecodeError) -> Any:
    """Decode ``payload`` leniently after ``error``, or raise a code-2 WireError.

    Args:
        payload: the JSON text that strict decoding rejected.
        offset: where ``payload`` starts in the command string. A negative value ``~n`` means
            the payload was percent-decoded from the value at ``n``: positions inside it do not
            map back to the input, so the error points at ``n``.
        error: the strict decoder's error; its position is the one reported.
    """
    repaired = drop_trailing_commas(payload)
    if repaired is not None:
        try:
            return orjson.loads(repaired)
        except orjson.JSONDecodeError:
            pass
    at = ~offset if offset < 0 else offset + byte_offset(payload, error.pos)
    raise WireError(f"invalid JSON at byte {at}", at, code=ResultCode.MALFORMED_JSON) from None
