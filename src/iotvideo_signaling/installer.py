"""Installing a verified firmware image on a real camera: an external command with a timeout.

``CommandInstaller(["rauc", "install", "{path}"])`` is a ready ``install`` callable for
:class:`~iotvideo_signaling.ota.OtaManager` (and a Hardware's ``install_firmware`` can delegate
to it). No shell is involved; the command runs in its own process group, killed whole on timeout.
"""

from __future__ import annotations

import logging
import os
from typing import Any, List, Sequence

from .errors import SignalingError

__all__ = ["CommandInstaller", "InstallError"]

log = logging.getLogger(__name__)


class InstallError(SignalingError):
    """The installer command failed or timed out."""


class CommandInstaller:
    """An ``install`` callable that runs an external command, e.g. ``rauc install <path>``.

    Each argument of ``argv_template`` may contain ``{path}``, ``{md5}`` and ``{size}``, replaced
    literally (no shell, no format-string parsing). The command gets no stdin; its output is
    logged (last 2000 characters) when it fails.

    Args:
        argv_template: the command line.
        timeout: seconds before the command (and its process group) is killed.

    Raises (when called):
        InstallError: the command is missing, exits with a non-zero status, or times out.
    """

    def __init__(self, argv_template: Sequence[str] = ("rauc", "install", "{path}"), *, timeout: float = 600.0) -> None:
        if isinstance(argv_template, str) or not argv_template:
            raise ValueError("argv_template must be a non-empty sequence of arguments")
        self.argv_template = tuple(argv_template)
        self.timeout = timeout

    def argv(self, path: str, md5: str, size: int) -> List[str]:
        """The command line for one install."""
        values = {"{path}": path, "{md5}": md5, "{size}": str(size)}
        out = []
        for template in self.argv_template:
            arg = template
            for placeholder, value in values.items():
                arg = arg.replace(placeholder, value)
            out.append(arg)
        return out

    def __call__(self, path: str, md5: str, size: int) -> None:
        import subprocess  # noqa: PLC0415

        argv = self.argv(path, md5, size)
        try:
            process = subprocess.Popen(  # noqa: S603 - an argument list from the integrator, no shell
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise InstallError(f"cannot run the installer {argv[0]!r} ({type(exc).__name__})") from exc
        try:
            output, _ = process.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            process.communicate()
            raise InstallError(f"the installer timed out after {self.timeout:g} s") from None
        if process.returncode != 0:
            tail = output.decode("utf-8", "replace")[-2000:].strip()
            log.warning("upgrade: installer %s exited with status %d: %s", argv[0], process.returncode, tail)
            raise InstallError(f"the installer exited with status {process.returncode}")


def _kill_group(process: Any) -> None:
    import signal  # noqa: PLC0415

    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (OSError, AttributeError):
        process.kill()
