"""Listen addresses: the ``tcp://``, ``unix://`` and ``ws://`` URLs of the daemon and of ``send``.

:func:`parse_listen` turns a URL into a :class:`ListenAddress`, which knows whether only this
machine can reach it. :class:`ConfigError`, the error of every setting that cannot be used, lives
here because this is the lowest module that raises it; settings.py raises it too.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass

__all__ = ["DEFAULT_LISTEN", "SCHEMES", "ConfigError", "ListenAddress", "parse_listen"]

SCHEMES = ("tcp", "unix", "ws")


class ConfigError(ValueError):
    """A setting that cannot be used; the message says which one and why."""


@dataclass(frozen=True)
class ListenAddress:
    """One parsed listen URL.

    Attributes:
        scheme: ``"tcp"``, ``"unix"`` or ``"ws"``.
        host: the host of ``tcp`` and ``ws`` (an IP address or a name), else ``""``.
        port: the port of ``tcp`` and ``ws`` (0: any free port), else 0.
        path: the socket path of ``unix``, else ``""``.
    """

    scheme: str
    host: str = ""
    port: int = 0
    path: str = ""

    @property
    def loopback(self) -> bool:
        """True when only this machine can connect: a Unix socket, ``localhost`` or a loopback IP."""
        if self.scheme == "unix":
            return True
        if self.host.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def with_port(self, port: int) -> ListenAddress:
        """The same address with the port the system actually bound."""
        return dataclasses.replace(self, port=port)

    def __str__(self) -> str:
        if self.scheme == "unix":
            return f"unix://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


#: Where ``serve`` listens without ``--listen`` or a ``listen`` setting.
DEFAULT_LISTEN = ListenAddress("tcp", "127.0.0.1", 7130)


def parse_listen(url: str) -> ListenAddress:
    """Parse ``tcp://HOST:PORT``, ``ws://HOST:PORT`` or ``unix:///PATH``.

    IPv6 hosts are written in brackets (``tcp://[::1]:7130``). Port 0 asks for any free port.

    Raises:
        ConfigError: the URL has another scheme, no host, or a bad port.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in SCHEMES:
        raise ConfigError(f"listen URL {url!r}: use tcp://HOST:PORT, ws://HOST:PORT or unix:///PATH")
    if scheme == "unix":
        if not rest or "\0" in rest:
            raise ConfigError(f"listen URL {url!r}: give a socket path, e.g. unix:///run/camera.sock")
        return ListenAddress("unix", path=rest)
    if rest.startswith("["):
        host, bracket, port_text = rest[1:].partition("]")
        if not bracket or not port_text.startswith(":"):
            raise ConfigError(f"listen URL {url!r}: write an IPv6 address as [ADDRESS]:PORT")
        port_text = port_text[1:]
    else:
        host, _, port_text = rest.rpartition(":")
    if not host or "/" in host or "/" in port_text:
        raise ConfigError(f"listen URL {url!r}: give HOST:PORT (0.0.0.0 means every interface)")
    if not (port_text.isascii() and port_text.isdigit()) or int(port_text) > 65535:
        raise ConfigError(f"listen URL {url!r}: the port must be a number from 0 to 65535")
    return ListenAddress(scheme, host, int(port_text))
