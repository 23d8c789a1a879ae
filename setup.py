"""Build the optional Cython wire backend.

Environment (parsed explicitly: only 1/true/yes/on count as set):
* ``IOTVIDEO_SIGNALING_NO_EXTENSIONS``: build pure Python only.
* ``IOTVIDEO_SIGNALING_REQUIRE_EXTENSIONS``: a failed extension build is an error instead of a
  fallback to pure Python.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

TRUE = {"1", "true", "yes", "on"}


def flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in TRUE


NO_EXTENSIONS = flag("IOTVIDEO_SIGNALING_NO_EXTENSIONS")
REQUIRE_EXTENSIONS = flag("IOTVIDEO_SIGNALING_REQUIRE_EXTENSIONS")
if NO_EXTENSIONS and REQUIRE_EXTENSIONS:
    sys.exit("IOTVIDEO_SIGNALING_NO_EXTENSIONS and IOTVIDEO_SIGNALING_REQUIRE_EXTENSIONS are both set")


def say(message: str) -> None:
    sys.stderr.write(f"iotvideo-signaling: {message}\n")


class OptionalBuildExt(build_ext):
    """Fall back to pure Python when the compiler is missing, unless extensions are required."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any build failure means "no extension"
            self._fallback(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            self._fallback(exc)
        else:
            say(f"built the C wire backend ({ext.name})")

    def _fallback(self, exc: Exception) -> None:
        if REQUIRE_EXTENSIONS:
            raise exc
        say(f"could not build the C wire backend ({exc}); installing the pure-Python backend")


def extensions() -> list[Extension]:
    if NO_EXTENSIONS:
        say("IOTVIDEO_SIGNALING_NO_EXTENSIONS is set: building the pure-Python backend only")
        return []
    try:
        from Cython.Build import cythonize  # noqa: PLC0415 - optional at build time
    except ImportError:
        if REQUIRE_EXTENSIONS:
            raise
        say("Cython is not available; installing the pure-Python backend")
        return []
    return cythonize(
        [Extension("iotvideo_signaling._wire_c", ["cext/_wire_c.pyx"], extra_compile_args=["-O2"])],
        compiler_directives={"language_level": "3"},
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
