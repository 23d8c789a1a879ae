"""Read a libFuzzer dictionary (``-dict=``) the way libFuzzer does.

One entry a line: an optional name, then the value in double quotes (``kw="value"`` or
``"value"``). Inside the quotes: printable ASCII or whitespace, ``\\\\`` for a backslash, ``\\"``
for a quote and ``\\xAB`` for any byte; nothing else may follow a backslash. Blank lines and
lines starting with ``#`` are skipped. The rules are those of libFuzzer's
``ParseOneDictionaryEntry``, so a dictionary this module accepts, libFuzzer accepts too.
"""

from __future__ import annotations

import string
from pathlib import Path

__all__ = ["WIRE_DICT", "DictionaryError", "load", "parse", "parse_entry"]

#: The dictionary of the wire harnesses.
WIRE_DICT = Path(__file__).resolve().parent / "wire.dict"

_HEX = frozenset(string.hexdigits)
_SPACE = frozenset(" \t\n\v\f\r")
_ALLOWED = frozenset(chr(code) for code in range(0x20, 0x7F)) | _SPACE  # isprint or isspace


class DictionaryError(ValueError):
    """A line libFuzzer would refuse (it refuses the whole file)."""


def parse_entry(line: str) -> bytes:
    """The value of one entry line.

    Raises:
        DictionaryError: the line is not a valid entry.
    """
    text = line.strip(" \t\n\v\f\r")
    if len(text) < 3 or text[-1] != '"':
        raise DictionaryError(f"no quoted value of at least one byte: {line!r}")
    opening = text.find('"', 0, len(text) - 1)
    if opening < 0:
        raise DictionaryError(f"no opening quote: {line!r}")
    body = text[opening + 1 : -1]
    if not body:
        raise DictionaryError(f"empty value: {line!r}")
    out = bytearray()
    i = 0
    while i < len(body):
        char = body[i]
        if char not in _ALLOWED:
            raise DictionaryError(f"{char!r} must be written as \\xAB: {line!r}")
        if char != "\\":
            out.append(ord(char))
            i += 1
        elif body[i + 1 : i + 2] in ("\\", '"'):
            out.append(ord(body[i + 1]))
            i += 2
        elif body[i + 1 : i + 2] == "x" and len(body) >= i + 4 and _HEX.issuperset(body[i + 2 : i + 4]):
            out.append(int(body[i + 2 : i + 4], 16))
            i += 4
        else:
            raise DictionaryError(f"invalid escape at {i}: {line!r}")
    return bytes(out)


def parse(text: str) -> list[bytes]:
    """The values of a dictionary file, in order.

    Raises:
        DictionaryError: a line is not a valid entry (its number is in the message).
    """
    values = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.lstrip(" \t\n\v\f\r")
        if not stripped or stripped.startswith("#"):
            continue
        try:
            values.append(parse_entry(line))
        except DictionaryError as exc:
            raise DictionaryError(f"line {number}: {exc}") from None
    return values


def load(path: Path = WIRE_DICT) -> list[bytes]:
    """The values of the dictionary file at ``path``."""
    return parse(path.read_text(encoding="ascii"))
