"""What the benchmarks compare: each contender is one callable taking the raw command bytes.

* ``parse_command`` of the compiled backend and of the pure-Python twin (scan only);
* ``decode_command`` of the compiled backend (scan and ``orjson.loads`` fused in one C call)
  against the same job assembled in Python: the twin's ``parse_command``, then ``orjson.loads``
  on the payload; the twin's own ``decode_command`` for completeness;
* the stdlib reference (:mod:`benchmarks.stdlib_reference`), the same job with ``urllib.parse``
  and ``json``.

The compiled backend is imported directly, not through ``iotvideo_signaling._wire``, so
``IOTVIDEO_SIGNALING_NO_EXTENSIONS`` does not turn a C measurement into a Python one.
"""

from __future__ import annotations

import importlib
import importlib.machinery
from types import ModuleType
from typing import Any, Callable, NamedTuple, Optional

import orjson

from iotvideo_signaling import Command, _wire_py
from iotvideo_signaling._wire import env_flag

from . import stdlib_reference

__all__ = [
    "REQUIRE_EXTENSIONS_ENV",
    "SHORT_ENV",
    "Contender",
    "c_backend",
    "c_backend_or_skip",
    "contenders",
    "extensions_required",
    "py_split_orjson",
    "short_mode",
]

REQUIRE_EXTENSIONS_ENV = "IOTVIDEO_SIGNALING_REQUIRE_EXTENSIONS"
SHORT_ENV = "IOTVIDEO_SIGNALING_BENCH_SHORT"



def extensions_required() -> bool:
    """True when ``IOTVIDEO_SIGNALING_REQUIRE_EXTENSIONS`` is 1/true/yes/on."""
    return env_flag(REQUIRE_EXTENSIONS_ENV)


def short_mode() -> bool:
    """True when ``IOTVIDEO_SIGNALING_BENCH_SHORT`` or ``CI`` is 1/true/yes/on."""
    return env_flag(SHORT_ENV) or env_flag("CI")


def c_backend() -> tuple[Optional[ModuleType], str]:
    """The compiled wire module and ``""``, or None and why it is unavailable."""
    try:
        module = importlib.import_module("iotvideo_signaling._wire_c")
    except ImportError as exc:
        return None, f"the C wire backend iotvideo_signaling._wire_c does not import ({exc})"
    origin = getattr(module, "__file__", None) or ""
    if not origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
        return None, f"iotvideo_signaling._wire_c is not a compiled extension ({origin or 'no file'})"
    return module, ""


def c_backend_or_skip() -> ModuleType:
    """For tests: the compiled wire module; skip without it, fail if extensions are required."""
    import pytest

    module, why = c_backend()
    if module is None:
        if extensions_required():
            pytest.fail(f"{REQUIRE_EXTENSIONS_ENV} is set but {why}")
        pytest.skip(f"{why}; build it, or set {REQUIRE_EXTENSIONS_ENV}=1 to make this a failure")
    return module


def py_split_orjson(raw: bytes) -> tuple[Command, Any]:
    """The fused decode assembled in Python: the twin's scan, then ``orjson.loads``."""
    command = _wire_py.parse_command(raw)
    payload = command.payload
    return command, None if payload is None else orjson.loads(payload)


class Contender(NamedTuple):
    """One measured callable.

    Attributes:
        key: short id, used in test ids and benchmark names.
        job: ``"parse"`` (locate the payload) or ``"decode"`` (also decode it).
        label: what the report prints.
        func: called with one raw command.
    """

    key: str
    job: str
    label: str
    func: Callable[[bytes], object]


def contenders(c_module: Optional[ModuleType]) -> list[Contender]:
    """Every contender, the compiled ones only when ``c_module`` is given."""
    found: list[Contender] = []
    if c_module is not None:
        found.append(Contender("c", "parse", "C `parse_command`", c_module.parse_command))
    found.append(Contender("py", "parse", "Python `parse_command`", _wire_py.parse_command))
    if c_module is not None:
        found.append(Contender("c-fused", "decode", "C `decode_command` (fused orjson)", c_module.decode_command))
    found += [
        Contender("py-split+orjson", "decode", "Python `parse_command` + `orjson.loads`", py_split_orjson),
        Contender("py-fused", "decode", "Python `decode_command`", _wire_py.decode_command),
        Contender("stdlib", "decode", "stdlib reference (`urllib.parse` + `json`)", stdlib_reference.decode_command),
    ]
    return found
