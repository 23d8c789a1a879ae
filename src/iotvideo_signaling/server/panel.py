"""The panel simulator's page, served over HTTP on the port of a ``ws://`` listener (``serve --panel``).

The page (``panel/index.html``, ``panel.js``, ``panel.css``, shipped as package data) behaves
like the IoT Video standard panel and talks to the daemon over the WebSocket of the same port; it
needs nothing from outside (no CDN, works offline). :class:`PanelPage` answers the plain HTTP
requests that the WebSocket handshake lets through (``process_request`` of the ``websockets``
library): ``/``, the two files it loads, and ``/panel.json`` (whether a token is needed). Every
response carries a restrictive Content-Security-Policy: the page may load only its own script and
style and connect only to its own origin. The WebSocket listener adds the page's own origin
(``http://HOST:PORT``, and ``localhost``/``127.0.0.1`` both for a loopback listener) to the
``Origin`` values it admits.

The page cancels an upgrade with the ``upgrade_cancel`` topic, which :func:`add_panel_topics`
registers on the Device (``Device.cancel_upgrade``): the panel protocol has no such command, so it
exists only in a daemon started with ``--panel``, and sharers may not use it.
"""

from __future__ import annotations

import ipaddress
from importlib import resources
from typing import TYPE_CHECKING, Any, Optional

import orjson

from .. import __version__
from ..device import Device
from ..errors import RequestError, ResultCode
from .listen import ListenAddress

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..protocol import Request

__all__ = ["CSP", "PanelPage", "add_panel_topics", "page_origins"]

#: The page's Content-Security-Policy: its own script, style and WebSocket, nothing else.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/panel.js": ("panel.js", "text/javascript; charset=utf-8"),
    "/panel.css": ("panel.css", "text/css; charset=utf-8"),
}


class PanelPage:
    """The page's files, read once, and the HTTP responses that serve them.

    Args:
        auth_required: whether connections need ``AUTH <token>`` (the page then asks for it).
    """

    def __init__(self, *, auth_required: bool) -> None:
        folder = resources.files(__package__ or "iotvideo_signaling.server") / "panel"
        self._files = {path: (folder.joinpath(name).read_bytes(), kind) for path, (name, kind) in _FILES.items()}
        config = {"auth": auth_required, "daemon": f"iotvideo-signaling {__version__}"}
        self._files["/panel.json"] = (orjson.dumps(config), "application/json")

    def response(self, path: str) -> tuple[int, list[tuple[str, str]], bytes]:
        """``(status, headers, body)`` for a GET of ``path`` (its query string ignored)."""
        found = self._files.get(path.partition("?")[0])
        if found is None:
            return 404, _headers("text/plain; charset=utf-8"), b"not found\n"
        body, kind = found
        return 200, _headers(kind), body


def _headers(kind: str) -> list[tuple[str, str]]:
    return [
        ("Content-Type", kind),
        ("Content-Security-Policy", CSP),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("Cache-Control", "no-store"),
    ]


def page_origins(bound: list[ListenAddress]) -> list[str]:
    """The origins a browser gives the page served on ``bound`` (what the WebSocket must admit)."""
    origins = []
    for address in bound:
        names = [address.host]
        try:
            loopback = ipaddress.ip_address(address.host).is_loopback
        except ValueError:
            loopback = address.host.lower() == "localhost"
        if loopback:
            names += ["localhost", "127.0.0.1", "[::1]"]
        for name in names:
            host = f"[{name}]" if ":" in name and not name.startswith("[") else name
            origin = f"http://{host.lower()}:{address.port}"
            if origin not in origins:
                origins.append(origin)
    return origins


def add_panel_topics(device: Device) -> None:
    """Register ``upgrade_cancel`` on ``device`` (owners only): the page's cancel button."""

    def upgrade_cancel(request: Request, visitor: Optional[str]) -> Mapping[str, Any]:
        if device.role(visitor) == "sharer":
            raise RequestError("sharers may not cancel an upgrade", code=ResultCode.FORBIDDEN)
        return {"cancelled": "yes" if device.cancel_upgrade() else "no"}

    device.topic("upgrade_cancel")(upgrade_cancel)
