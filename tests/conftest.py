"""Shared fixtures: the wire backend under test, and the Hypothesis settings profiles.

Every wire test takes ``backend``, parametrized over the pure-Python reference (``py``) and the
compiled twin (``c``). The ``c`` leg is skipped, with the reason, when
``IOTVIDEO_SIGNALING_NO_EXTENSIONS`` is set or the extension was not built;
``test_wire_backend.py`` fails instead when ``IOTVIDEO_SIGNALING_REQUIRE_EXTENSIONS`` is set
or when the module behind the ``c`` leg is not really compiled.

Hypothesis profiles: ``dev`` (default, 300 examples), ``ci`` (2000 examples, chosen when ``CI``
is set), ``long`` (20000 examples). ``HYPOTHESIS_PROFILE=<name>`` picks one explicitly.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, settings

from iotvideo_signaling import Device, SimulatedHardware
from iotvideo_signaling._wire import env_flag

NO_EXTENSIONS = env_flag("IOTVIDEO_SIGNALING_NO_EXTENSIONS")
REQUIRE_EXTENSIONS = env_flag("IOTVIDEO_SIGNALING_REQUIRE_EXTENSIONS")

_SUPPRESSED = [HealthCheck.too_slow]
settings.register_profile("dev", max_examples=300, deadline=None, suppress_health_check=_SUPPRESSED)
settings.register_profile("ci", max_examples=2000, deadline=None, suppress_health_check=_SUPPRESSED)
settings.register_profile("long", max_examples=20000, deadline=None, suppress_health_check=_SUPPRESSED)
_ci = os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no", "off"}
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if _ci else "dev"))


def _import_c() -> ModuleType:
    """The compiled backend, or a skip that says why it is not tested."""
    if NO_EXTENSIONS:
        pytest.skip("IOTVIDEO_SIGNALING_NO_EXTENSIONS is set: the C backend is disabled")
    try:
        return importlib.import_module("iotvideo_signaling._wire_c")
    except ImportError as exc:
        if REQUIRE_EXTENSIONS:
            pytest.fail(f"IOTVIDEO_SIGNALING_REQUIRE_EXTENSIONS is set but the C backend is not importable: {exc}")
        pytest.skip(
            f"the C backend is not built ({exc}); set IOTVIDEO_SIGNALING_REQUIRE_EXTENSIONS=1 to make this an error"
        )


@pytest.fixture(scope="session", params=["py", "c"])
def backend(request: pytest.FixtureRequest) -> ModuleType:
    """The wire module under test: ``_wire_py`` or ``_wire_c``."""
    if request.param == "c":
        return _import_c()
    return importlib.import_module("iotvideo_signaling._wire_py")


@pytest.fixture(scope="session")
def py_backend() -> ModuleType:
    """The pure-Python reference backend."""
    return importlib.import_module("iotvideo_signaling._wire_py")


@pytest.fixture(scope="session")
def c_backend() -> ModuleType:
    """The compiled backend (skipped when it is disabled or missing), for differential tests."""
    return _import_c()


@pytest.fixture
def hw(tmp_path: Path) -> SimulatedHardware:
    """A simulated camera in a fresh state directory."""
    return SimulatedHardware(tmp_path / "cam")


@pytest.fixture
def device(hw: SimulatedHardware) -> Iterator[Device]:
    """A Device on ``hw``, closed after the test."""
    with Device(hw) as dev:
        yield dev
