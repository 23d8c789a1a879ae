"""What every part of a firmware upgrade shares: Tencent's result codes, the exceptions that end
a run of a job, and the rules for download URLs.

The manager (``ota``), the job and its files (``_ota_job``) and the HTTPS transfer
(``_ota_transfer``) take these from here, so that the transfer may use the job's files and the
manager both without an import cycle. A run of a job ends in :class:`Fatal` (the job fails with
an :class:`OtaCode`) or :class:`Stopped` (``close()`` or ``cancel()``), whichever module raises
it. :func:`url_problem` checks a URL with reasons that never echo it; URLs reach logs and the
status only through :func:`redact`.
"""

from __future__ import annotations

import enum
from typing import Optional
from urllib.parse import urlsplit

KiB = 1024
MiB = 1024 * KiB
MAX_URL = 2048


class OtaCode(enum.IntEnum):
    """Tencent's OTA result codes, as carried by ``fail`` events and ``$ota/report``."""

    OK = 0
    TIMEOUT = -1
    NOT_FOUND = -2
    DENIED = -3
    MISMATCH = -4
    INSTALL_FAILED = -5


class Fatal(Exception):
    """The job fails with ``code``; no retry helps."""

    def __init__(self, code: OtaCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Stopped(Exception):
    """close() or cancel() interrupted the job."""


def url_problem(url: str, name: str = "'url'") -> Optional[str]:
    """Why ``url`` is not an acceptable download URL (a reason that never echoes it), or None."""
    if len(url) > MAX_URL:
        return f"{name} is longer than {MAX_URL} characters"
    if not (url.isascii() and url.isprintable()) or " " in url:
        return f"{name} must be ASCII without spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return f"{name} is not a valid URL"
    if parts.scheme != "https":
        return f"{name} must be an https URL"
    if not parts.hostname:
        return f"{name} has no host"
    if parts.username is not None or parts.password is not None:
        return f"{name} must not carry credentials"
    return None


def redact(url: str) -> str:
    """``scheme://host[:port]/path`` of ``url``: what logs and status may show."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid URL>"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}{parts.path}"[:200]
