"""The wire layer done correctly with the standard library only: the baseline of the benchmarks.

This is what an integrator would write without this library, *if* they got it right:
``urllib.parse`` for the query string and ``json`` for the payload. The naive version,
``dict(parse_qsl(text))["cmd"]``, is wrong for real traffic: the JSON after ``cmd=`` is raw, not
percent-encoded, so a signed OTA URL in it (``...?a=1&b=2%3D+x``) is cut at its first ``&`` and
its ``+`` turn into spaces. So this reference first locates the raw JSON value with
``json.JSONDecoder.raw_decode`` (which also decodes it), and hands only the text around it to
``parse_qsl``.

It follows PROTOCOL.md §2-§3 (bare payload, raw or percent-encoded JSON ``cmd``, WHATWG form
decoding of everything else, the one lenient repair of trailing commas) and returns its own
:class:`Command`, with the fields of the library's (``test_corpus.py`` compares them one by one):
like every contender it imports nothing from ``iotvideo_signaling``. Errors are plain
:class:`ValueError`; their text and offsets are not the library's. On the benchmark corpus it
produces exactly what the library does (``test_corpus.py`` checks); on pathological JSON the
stdlib decoder is more permissive than orjson (integers beyond 64 bits, lone surrogate escapes,
nesting beyond 1024 levels).
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple, Optional, Union
from urllib.parse import parse_qsl, unquote_plus

__all__ = ["DEFAULT_MAX_SIZE", "Command", "decode_command", "parse_command"]

DEFAULT_MAX_SIZE = 16384
_ACTIONS = ("user_define", "inner_define")
_CHANNEL_LIMIT = 2**32
_JSON_WHITESPACE = " \t\r\n"

#: One token of the fallback bracket scan: a JSON string (an unterminated one runs to the end) or a bracket.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*(?:"|\\?\Z)|[\[\]{}]', re.DOTALL)
#: A JSON string (kept) or a comma directly before a closing bracket (dropped).
_TRAILING_COMMA = re.compile(r'("(?:[^"\\]|\\.)*(?:"|\\?\Z))|,(?=[ \t\r\n]*[\]}])', re.DOTALL)
#: Marks the value of a raw JSON ``cmd`` that ``raw_decode`` rejected; decoded leniently later.
_UNDECODED: Any = object()


class Command(NamedTuple):
    """One parsed command string (PROTOCOL.md §2): a JSON ``payload`` or a ``cmd`` token, not both."""

    action: str
    channel: int
    cmd: Optional[str]
    payload: Optional[bytes]
    params: tuple[tuple[str, str], ...]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")  # NaN and Infinity: orjson rejects them too


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _loads(text: str) -> Any:
    """Decode JSON, retrying once without trailing commas (PROTOCOL.md §3)."""
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError:
        repaired = _TRAILING_COMMA.sub(lambda m: m.group(1) or "", text)
        if repaired == text:
            raise
        return _DECODER.decode(repaired)


def _json_end(text: str, start: int) -> int:
    """Index past the bracket matching the one at ``start``, or ``len(text)`` if none does."""
    depth = 0
    for match in _TOKEN.finditer(text, start):
        token = match.group()
        if token in "{[":
            depth += 1
        elif token in "}]":
            depth -= 1
            if depth == 0:
                return match.end()
    return len(text)


def _text(value: str) -> str:
    """Finish WHATWG decoding of ``parse_qsl`` output: invalid UTF-8 (kept as surrogates) becomes U+FFFD."""
    if value.isascii():
        return value
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _form_pairs(text: str) -> list[tuple[Optional[str], str]]:
    # Python >= 3.9.2 splits on "&" only, as WHATWG does.
    pairs = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="surrogateescape")
    return [(_text(name), _text(value)) for name, value in pairs]


def _split(text: str) -> tuple[list[tuple[Optional[str], str]], Any]:
    """Split ``text`` into ``(name, value)`` pairs; the raw JSON ``cmd`` (if any) has name None.

    Returns the pairs and the decoded raw JSON value (``_UNDECODED`` if strict decoding failed).
    """
    size = len(text)
    pos = 0
    while pos < size:
        amp = text.find("&", pos)
        if amp < 0:
            amp = size
        eq = text.find("=", pos, amp)
        if eq >= 0 and unquote_plus(text[pos:eq]) == "cmd":
            first = eq + 1
            while first < size and text[first] in _JSON_WHITESPACE:
                first += 1
            if first < size and text[first] in "{[":
                try:
                    value, close = _DECODER.raw_decode(text, first)
                except json.JSONDecodeError:
                    value, close = _UNDECODED, _json_end(text, first)
                after = close
                while after < size and text[after] in _JSON_WHITESPACE:
                    after += 1
                if after < size and text[after] != "&":
                    raise ValueError("unexpected text after the JSON value of 'cmd'")
                pairs = _form_pairs(text[:pos])
                pairs.append((None, text[eq + 1 : close]))
                pairs += _form_pairs(text[after + 1 :])
                return pairs, value
        pos = amp + 1
    return _form_pairs(text), _UNDECODED


def _channel(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or len(value.lstrip("0")) > 10 or int(value) >= _CHANNEL_LIMIT:
        raise ValueError("'channel' must be a decimal number below 2**32")
    return int(value)


def decode_command(raw: Union[bytes, str], /, *, max_size: int = DEFAULT_MAX_SIZE) -> tuple[Command, Any]:
    """Parse a command string and decode its JSON payload, like ``iotvideo_signaling`` does.

    Returns:
        ``(command, value)``: ``value`` is the decoded payload, or None for a ``cmd`` token.

    Raises:
        ValueError: the command string or its JSON payload is malformed.
    """
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
    if len(data) > max_size:
        raise ValueError(f"command exceeds {max_size} bytes")
    data = data.rstrip(b"\0\r\n")
    if not data:
        raise ValueError("empty command")
    if data[0] == 0x7B:  # the bare payload of the SDK's high-level API
        return Command("user_define", 0, None, data, ()), _loads(data.decode("utf-8"))

    pairs, decoded = _split(data.decode("utf-8", "surrogateescape"))
    action: Optional[str] = None
    channel: Optional[int] = None
    cmd: Optional[str] = None
    payload: Optional[str] = None
    params: list[tuple[str, str]] = []
    for name, value in pairs:
        if name is None or name == "cmd":
            if cmd is not None or payload is not None:
                raise ValueError("duplicate 'cmd' parameter")
            if name is None:
                payload = value  # raw JSON: still surrogate-escaped, encoded back byte for byte below
            elif not value:
                raise ValueError("'cmd' is empty")
            elif value[0] in "{[":
                payload = value
                decoded = _UNDECODED
            else:
                cmd = value
        elif name == "action":
            if action is not None:
                raise ValueError("duplicate 'action' parameter")
            if value not in _ACTIONS:
                raise ValueError("'action' must be 'user_define' or 'inner_define'")
            action = value
        elif name == "channel":
            if channel is not None:
                raise ValueError("duplicate 'channel' parameter")
            channel = _channel(value)
        else:
            params.append((name, value))
    if action is None:
        raise ValueError("missing 'action' parameter")
    if payload is None:
        if cmd is None:
            raise ValueError("missing 'cmd' parameter")
        return Command(action, channel or 0, cmd, None, tuple(params)), None

    payload_bytes = payload.encode("utf-8", "surrogateescape")
    if not payload.isascii():
        payload_bytes.decode("utf-8")  # invalid UTF-8 in the payload: UnicodeDecodeError, a ValueError
    if decoded is _UNDECODED:
        decoded = _loads(payload)
    return Command(action, channel or 0, None, payload_bytes, tuple(params)), decoded


def parse_command(raw: Union[bytes, str], /, *, max_size: int = DEFAULT_MAX_SIZE) -> Command:
    """The command of :func:`decode_command`.

    The standard library cannot find where a JSON value ends without decoding it, so this does
    the whole job; it exists for API symmetry, not as a parse-only baseline.
    """
    return decode_command(raw, max_size=max_size)[0]
