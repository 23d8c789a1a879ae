"""Make sure a sanitized run really runs the sanitized build of the kernel.

A sanitizer run that silently imported the normal build would pass and prove nothing, so the
runners (``fuzz/run``, ``fuzz/sanitize-gcc``) name the build directory in
``IOTVIDEO_SIGNALING_FUZZ_BUILD`` and every process of the run calls :func:`require_from_env`:
the C backend must be the extension under that directory, its file must reference the ASan
runtime (``__asan_init``), the runtime must be loaded in this process, and the selector must
have picked that module.
"""

from __future__ import annotations

import ctypes
import importlib
import os
from pathlib import Path

__all__ = ["ENV", "SanitizedBuildError", "check", "require_from_env"]

ENV = "IOTVIDEO_SIGNALING_FUZZ_BUILD"


class SanitizedBuildError(RuntimeError):
    """The kernel in use is not the sanitized build that was asked for."""


def check(build: Path) -> str:
    """Check that ``iotvideo_signaling._wire_c`` is the sanitized build under ``build``.

    Returns:
        The path of the module, for the log.

    Raises:
        SanitizedBuildError: what is wrong.
    """
    module = importlib.import_module("iotvideo_signaling._wire_c")
    selector = importlib.import_module("iotvideo_signaling._wire")
    path = Path(module.__file__ or "").resolve()
    if build.resolve() not in path.parents:
        raise SanitizedBuildError(f"the C backend was imported from {path}, not from the build in {build}")
    if b"__asan_init" not in path.read_bytes():
        raise SanitizedBuildError(f"{path} is not built with -fsanitize=address")
    if not hasattr(ctypes.CDLL(None), "__asan_init"):
        raise SanitizedBuildError("the ASan runtime is not loaded (LD_PRELOAD)")
    if selector.implementation != "c" or selector.parse_command is not module.parse_command:
        raise SanitizedBuildError(f"the selector chose the {selector.implementation} backend")
    return str(path)


def require_from_env() -> None:
    """:func:`check` the build named by ``IOTVIDEO_SIGNALING_FUZZ_BUILD``, when it is set."""
    build = os.environ.get(ENV)
    if build:
        check(Path(build))
