"""Which wire backend runs: the ``c`` leg must really be compiled, and the selector must pick it."""

from __future__ import annotations

import importlib
import inspect
from importlib.machinery import EXTENSION_SUFFIXES, ExtensionFileLoader
from types import ModuleType

import pytest

import iotvideo_signaling
from iotvideo_signaling import _wire, _wire_py
from iotvideo_signaling._wire import env_flag

#: Every function of the kernel; ``test_wire_properties.py`` checks each against the twin.
_ENTRY_POINTS = ("parse_command", "decode_command", "loads")


def test_backend_fixture_covers_both_legs(request: pytest.FixtureRequest, backend: ModuleType) -> None:
    leg = request.node.callspec.id
    expected = {"py": "iotvideo_signaling._wire_py", "c": "iotvideo_signaling._wire_c"}[leg]
    assert backend.__name__ == expected


def test_c_leg_is_compiled(c_backend: ModuleType) -> None:
    """Fails when the module behind the ``c`` leg is Python (a stray ``_wire_c.py``, a shim)."""
    assert c_backend is not _wire_py
    assert c_backend.__spec__ is not None
    assert isinstance(c_backend.__spec__.loader, ExtensionFileLoader), c_backend.__spec__
    assert c_backend.__file__ is not None
    assert c_backend.__file__.endswith(tuple(EXTENSION_SUFFIXES)), c_backend.__file__
    for name in _ENTRY_POINTS:
        function = getattr(c_backend, name)
        assert not inspect.isfunction(function), f"{name} is a Python function"
        assert function is not getattr(_wire_py, name)


def test_the_kernel_has_no_entry_point_beyond_the_differential_tests(c_backend: ModuleType) -> None:
    """A new function in either backend must join ``_ENTRY_POINTS`` and the differential tests."""
    own = {
        name
        for name, value in vars(c_backend).items()
        if callable(value) and not name.startswith("_") and getattr(value, "__module__", None) == c_backend.__name__
    }
    assert own == set(_ENTRY_POINTS)
    assert set(_wire_py.__all__) - {"Buffer"} == set(_ENTRY_POINTS)
    assert set(_wire.__all__) - {"env_flag", "implementation"} == set(_ENTRY_POINTS)


def test_selector_uses_the_c_backend_unless_disabled() -> None:
    if env_flag("IOTVIDEO_SIGNALING_NO_EXTENSIONS"):
        assert _wire.NO_EXTENSIONS
        assert iotvideo_signaling.implementation == "python"
        chosen: ModuleType = _wire_py
    else:
        try:
            chosen = importlib.import_module("iotvideo_signaling._wire_c")
        except ImportError as exc:
            pytest.skip(f"the C backend is not built ({exc})")
        assert iotvideo_signaling.implementation == "c"
    assert _wire.implementation == iotvideo_signaling.implementation
    for name in _ENTRY_POINTS:
        assert getattr(_wire, name) is getattr(chosen, name)
    assert iotvideo_signaling.parse_command is chosen.parse_command


def test_c_backend_present_when_required() -> None:
    """With ``IOTVIDEO_SIGNALING_REQUIRE_EXTENSIONS`` set, a missing C backend is a failure, not a skip."""
    if not env_flag("IOTVIDEO_SIGNALING_REQUIRE_EXTENSIONS"):
        pytest.skip("IOTVIDEO_SIGNALING_REQUIRE_EXTENSIONS is not set")
    if env_flag("IOTVIDEO_SIGNALING_NO_EXTENSIONS"):
        pytest.fail("IOTVIDEO_SIGNALING_REQUIRE_EXTENSIONS and IOTVIDEO_SIGNALING_NO_EXTENSIONS are both set")
    try:
        module = importlib.import_module("iotvideo_signaling._wire_c")
    except ImportError as exc:
        pytest.fail(f"IOTVIDEO_SIGNALING_REQUIRE_EXTENSIONS is set but the C backend cannot be imported: {exc}")
    assert module.__spec__ is not None
    assert isinstance(module.__spec__.loader, ExtensionFileLoader)
    assert iotvideo_signaling.implementation == "c"
