"""Pick the wire backend: the compiled one unless it is disabled or missing.

``IOTVIDEO_SIGNALING_NO_EXTENSIONS`` (1/true/yes/on) forces the pure-Python twin. Type checkers
always see the typed twin.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

__all__ = ["decode_command", "env_flag", "implementation", "loads", "parse_command"]


def env_flag(name: str) -> bool:
    """An on/off environment variable: only 1, true, yes and on (any case) mean on."""
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


NO_EXTENSIONS = env_flag("IOTVIDEO_SIGNALING_NO_EXTENSIONS")

implementation: str
if TYPE_CHECKING or NO_EXTENSIONS:
    from ._wire_py import decode_command, loads, parse_command

    implementation = "python"
else:
    try:
        from ._wire_c import decode_command, loads, parse_command

        implementation = "c"
    except ImportError:  # pragma: no cover - depends on the build
        from ._wire_py import decode_command, loads, parse_command

        implementation = "python"
