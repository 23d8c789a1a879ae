"""What every part of a firmware upgrade shares: Tencent's result codes, the exceptions that end
a run of a job, and the rules for download URLs.

The manager (``ota``), the job and its files (``_ota_job``) and the HTTPS transfer
(``_ota_transfer``) take these from here, so that the transfer may use the job's files and the
manager both without an import cycle. A run of a job ends in :class:`Fatal` (the job fails with
an :class:`OtaCode`) or :class:`Stopped` (``close()`` or ``cancel()``), whichever module raises
it. :func:`url_problem` checks a URL with reasons that never echo it, and :class:`HostPolicy`
which hosts and addresses a download may reach; URLs reach logs and the status only through
:func:`redact`.
"""

from __future__ import annotations

import enum
import re
from typing import Optional, Sequence
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


_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_HOST_NAME = re.compile(rf"{_LABEL}(\.{_LABEL})*")
_NUMERIC_LOOKING = re.compile(r"(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]*))*")
NOT_PUBLIC = "a loopback, private, link-local or other non-public address"


def host_pattern_problem(pattern: object) -> Optional[str]:
    """Why ``pattern`` is not a valid ``ota_allowed_hosts`` entry, or None.

    An entry is a host name (``fw.example.com``), a suffix pattern (``*.example.com``: every
    name under it, not the name itself) or an IP address (``192.168.1.10``, ``::1``).
    """
    if type(pattern) is not str:
        return "entries must be strings"
    name = pattern.lower()
    if name.startswith("*."):
        name = name[2:]
    elif _ip(name) is not None:
        return None
    if len(name) > 253 or not _HOST_NAME.fullmatch(name) or _NUMERIC_LOOKING.fullmatch(name):
        return f"{pattern!r} is not a host name, '*.' followed by one, or an IP address"
    return None


class HostPolicy:
    """Which hosts a firmware download may connect to (``DeviceConfig.ota_allowed_hosts``).

    With no patterns every host is allowed except loopback, private, link-local, unspecified,
    multicast and other non-public IP addresses, ``localhost`` and names under ``.localhost``;
    a name must also resolve to public addresses only (checked on the address each connection
    is made to, so a later DNS answer cannot slip a private one in). With patterns only the
    hosts they match are allowed, and those are trusted whatever address they are or resolve to:
    listing an internal server (or ``127.0.0.1``) is how one is allowed. Pure: no DNS here.

    Args:
        patterns: exact host names or IP addresses, and ``*.example.com`` suffix patterns.
    """

    def __init__(self, patterns: Sequence[str] = ()) -> None:
        self._exact = frozenset(_normal(p) for p in patterns if not p.startswith("*."))
        self._suffixes = tuple("." + _normal(p[2:]) for p in patterns if p.startswith("*."))

    def listed(self, host: str) -> bool:
        """True if a pattern matches ``host`` (then any address of it is allowed)."""
        host = _normal(host)
        return host in self._exact or host.endswith(self._suffixes)

    def host_problem(self, host: str, name: str = "'url'") -> Optional[str]:
        """Why a URL with this host (``SplitResult.hostname``) may not be fetched, or None."""
        if self.listed(host):
            return None
        if self._exact or self._suffixes:
            return f"{name} has a host that ota_allowed_hosts does not allow"
        host = _normal(host)
        ip = _ip(host)
        if ip is not None:
            return None if _public(ip) else f"{name} points to {NOT_PUBLIC}"
        if host == "localhost" or host.endswith(".localhost"):
            return f"{name} points to {NOT_PUBLIC}"
        if _NUMERIC_LOOKING.fullmatch(host):  # 127.1, 0x7f.1, 2130706433: resolvers read them as IPs
            return f"{name} has a host that is neither a name nor a plain IP address"
        return None

    def address_allowed(self, host: str, address: str) -> bool:
        """May a connection to ``host`` be made to ``address`` (as ``getaddrinfo`` gave it)?"""
        if self.listed(host):
            return True
        ip = _ip(address)
        return ip is not None and _public(ip)


def _normal(host: str) -> str:
    return host.lower().rstrip(".")


def _ip(text: str) -> Optional[object]:
    import ipaddress  # noqa: PLC0415 - only the upgrade path pays for it

    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _public(ip: object) -> bool:
    import ipaddress  # noqa: PLC0415

    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            return _public(mapped)
    assert isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address))
    return ip.is_global and not ip.is_multicast


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
