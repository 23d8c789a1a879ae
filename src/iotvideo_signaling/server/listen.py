"""Listen addresses: the ``tcp://``, ``unix://``, ``ws://`` and ``bridge://`` URLs of the daemon and of ``send``.

:func:`parse_listen` turns a URL into a :class:`ListenAddress`, which knows whether only this
machine can reach it. :class:`ConfigError`, the error of every setting that cannot be used, lives
here because this is the lowest module that raises it; settings.py raises it too.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
from dataclasses import dataclass

__all__ = ["DEFAULT_LISTEN", "PATH_SCHEMES", "SCHEMES", "ConfigError", "ListenAddress", "parse_listen", "parse_target"]

SCHEMES = ("tcp", "unix", "ws", "bridge")
#: The schemes whose address is a Unix socket path.
PATH_SCHEMES = ("unix", "bridge")


class ConfigError(ValueError):
    """A setting that cannot be used; the message says which one and why."""


@dataclass(frozen=True)
class ListenAddress:
    """One parsed listen URL.

    Attributes:
        scheme: ``"tcp"``, ``"unix"``, ``"ws"`` or ``"bridge"`` (the device SDK's shim, see
            bridge.py).
        host: the host of ``tcp`` and ``ws`` (an IP address or a name), else ``""``.
        port: the port of ``tcp`` and ``ws`` (0: any free port), else 0.
        path: the socket path of ``unix`` and ``bridge``, else ``""``.
    """

    scheme: str
    host: str = ""
    port: int = 0
    path: str = ""

    @property
    def loopback(self) -> bool:
        """True when only this machine can connect: a Unix socket, ``localhost`` or a loopback IP."""
        if self.scheme in PATH_SCHEMES:
            return True
        if self.host.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def check_host(self) -> None:
        """Refuse a host name that does not resolve (IP addresses and ``localhost`` are not looked up).

        Raises:
            ConfigError: the name cannot be resolved, with the resolver's reason.
        """
        if self.scheme in PATH_SCHEMES or self.host.lower() == "localhost":
            return
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            pass
        else:
            return
        try:
            socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise ConfigError(f"{self}: cannot resolve the host {self.host!r} ({exc.strerror or exc})") from None
        except UnicodeError as exc:  # not a valid host name at all (an empty label, one too long)
            raise ConfigError(f"{self}: cannot resolve the host {self.host!r} ({exc})") from None

    def with_port(self, port: int) -> ListenAddress:
        """The same address with the port the system actually bound."""
        return dataclasses.replace(self, port=port)

    def __str__(self) -> str:
        if self.scheme in PATH_SCHEMES:
            return f"{self.scheme}://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


#: Where ``serve`` listens without ``--listen`` or a ``listen`` setting.
DEFAULT_LISTEN = ListenAddress("tcp", "127.0.0.1", 7130)


def parse_listen(url: str) -> ListenAddress:
    """Parse ``tcp://HOST:PORT``, ``ws://HOST:PORT``, ``unix:///PATH`` or ``bridge:///PATH``.

    IPv6 hosts are written in brackets (``tcp://[::1]:7130``). Port 0 asks for any free port.

    Raises:
        ConfigError: the URL has another scheme, no host, or a bad port.
    """
    return _parse(url, "listen URL", listening=True)


def parse_target(url: str) -> ListenAddress:
    """Parse the URL of a daemon to connect to (``send --to``): the same forms as :func:`parse_listen`.

    Raises:
        ConfigError: the URL has another scheme, no host, or a bad port; the message calls it
            the ``--to`` URL.
    """
    return _parse(url, "--to URL", listening=False)


def _parse(url: str, name: str, *, listening: bool) -> ListenAddress:
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in SCHEMES:
        raise ConfigError(f"{name} {url!r}: use tcp://HOST:PORT, ws://HOST:PORT, unix:///PATH or bridge:///PATH")
    if scheme == "unix":
        if not rest or "\0" in rest:
            raise ConfigError(f"{name} {url!r}: give a socket path, e.g. unix:///run/camera.sock")
        return ListenAddress("unix", path=rest)
    if scheme == "bridge":  # the C shim is configured with an absolute path: so is the listener
        if not rest.startswith("/") or "\0" in rest:
            raise ConfigError(
                f"{name} {url!r}: give an absolute socket path, e.g. bridge:///run/iotvideo-signaling/bridge.sock"
            )
        return ListenAddress("bridge", path=rest)
    if rest.startswith("["):
        host, bracket, port_text = rest[1:].partition("]")
        if not bracket or not port_text.startswith(":"):
            raise ConfigError(f"{name} {url!r}: write an IPv6 address as [ADDRESS]:PORT")
        port_text = port_text[1:]
    else:
        host, _, port_text = rest.rpartition(":")
    if not host or "/" in host or "/" in port_text:
        hint = " (0.0.0.0 means every interface)" if listening else ", e.g. tcp://127.0.0.1:7130"
        raise ConfigError(f"{name} {url!r}: give HOST:PORT{hint}")
    lowest = 0 if listening else 1  # a listener's port 0 asks for any free port
    if not (port_text.isascii() and port_text.isdigit()) or not lowest <= int(port_text) <= 65535:
        raise ConfigError(f"{name} {url!r}: the port must be a number from {lowest} to 65535")
    return ListenAddress(scheme, host, int(port_text))
