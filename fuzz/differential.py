"""The C kernel against its Python twin on one input: same result, or the same error.

The differential tests (``tests/test_wire_properties.py``) and the fuzz harnesses
(:mod:`fuzz.harnesses`) both call these functions, so "the backends agree" means one thing.
An outcome is compared by value *and* by ``repr`` (types, key order, float formatting), and an
error by its type and text, a :class:`~iotvideo_signaling.WireError` by code, reason and offset.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any, Callable, Optional, Union

from iotvideo_signaling import WireError

__all__ = [
    "COMMAND_ENTRY_POINTS",
    "LyingBytearray",
    "LyingBytes",
    "LyingStr",
    "Mismatch",
    "Raw",
    "assert_same",
    "assert_same_loads",
    "buffers",
    "outcome",
]

Raw = Union[bytes, str]

#: The kernel's entry points that take a command string.
COMMAND_ENTRY_POINTS = ("parse_command", "decode_command")

_SHOWN = 300  # characters of an outcome a mismatch report shows


class Mismatch(AssertionError):
    """The backends parted: one call gave different outcomes (the message shows both)."""


def outcome(call: Callable[..., Any], *args: Any, **options: Any) -> tuple[Any, ...]:
    """What ``call(*args, **options)`` did, in a form that compares equal across backends."""
    try:
        result = call(*args, **options)
    except WireError as exc:
        return ("WireError", exc.code, exc.reason, exc.offset)
    except Exception as exc:  # noqa: BLE001 - anything else is a bug too, but it must be the same bug
        return (type(exc).__name__, str(exc))
    return ("ok", result, repr(result))


LIE = b"action=user_define&cmd=lie"


class LyingStr(str):
    """A str whose methods disagree with its characters (``LIE`` whatever it holds)."""

    def encode(self, *args: Any, **kwargs: Any) -> bytes:
        return LIE

    def __len__(self) -> int:
        return 0


class LyingBytes(bytes):
    """A bytes object whose methods disagree with its contents."""

    def __bytes__(self) -> bytes:
        return LIE

    def __len__(self) -> int:
        return 0

    def __getitem__(self, index: Any) -> Any:
        return LIE[index]

    def find(self, *args: Any) -> int:
        return -1


class LyingBytearray(bytearray):
    """A bytearray whose methods disagree with its contents."""

    def __bytes__(self) -> bytes:
        return LIE

    def __len__(self) -> int:
        return 0


def buffers(raw: Raw) -> list[Any]:
    """``raw`` in each type a caller may pass: as is and, for bytes, as a bytearray and as a
    contiguous and a strided memoryview; and as subclasses whose methods lie about their contents,
    which both backends must ignore."""
    if isinstance(raw, str):
        return [raw, LyingStr(raw)]
    strided = memoryview(bytes(byte for value in raw for byte in (value, 0)))[::2]
    return [raw, bytearray(raw), memoryview(raw), strided, LyingBytes(raw), LyingBytearray(raw)]


def _compare(
    name: str, py_call: Callable[..., Any], c_call: Callable[..., Any], buffer: Any, *args: Any, **options: Any
) -> None:
    c = outcome(c_call, buffer, *args, **options)
    py = outcome(py_call, buffer, *args, **options)
    if c != py:
        raise Mismatch(
            f"{name}({type(buffer).__name__}, args={args!r}, options={options!r}) differs:\n"
            f"  c:      {repr(c)[:_SHOWN]}\n  python: {repr(py)[:_SHOWN]}"
        )


def assert_same(
    py: ModuleType,
    c: ModuleType,
    raw: Raw,
    max_size: Optional[int] = None,
    *,
    entry_points: Sequence[str] = COMMAND_ENTRY_POINTS,
) -> None:
    """``parse_command`` and ``decode_command`` (or ``entry_points``) agree on ``raw`` in every
    buffer type (``max_size`` None: the default limit, the argument left out).

    Raises:
        Mismatch: on the first call whose outcomes differ.
    """
    options = {} if max_size is None else {"max_size": max_size}
    for buffer in buffers(raw):
        for name in entry_points:
            _compare(name, getattr(py, name), getattr(c, name), buffer, **options)


def assert_same_loads(py: ModuleType, c: ModuleType, payload: Raw, offset: Optional[int] = None) -> None:
    """``loads`` agrees on ``payload`` in every buffer type (``offset`` None: left out).

    Raises:
        Mismatch: on the first call whose outcomes differ.
    """
    args = () if offset is None else (offset,)
    for buffer in buffers(payload):
        _compare("loads", py.loads, c.loads, buffer, *args)
