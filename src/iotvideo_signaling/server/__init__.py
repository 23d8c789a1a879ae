"""The daemon: line (``tcp://``, ``unix://``) and WebSocket (``ws://``) transports on asyncio, and
the ``bridge://`` listener of the device SDK's C shim on threads.

The core never imports this package. ``ws://`` needs the ``websockets`` package (the ``server``
extra), imported only when a ``ws://`` listener starts or a ``ws://`` client connects. asyncio is
imported only by what needs it (:class:`Daemon`, :func:`exchange`), so a daemon that serves only
the bridge never loads it.

Entry points: :func:`run` (what ``iotvideo-signaling serve`` calls), :class:`Daemon` (to embed
the listeners in your own loop), :class:`BridgeListener` (the bridge alone, on its threads),
:func:`load_settings` and :class:`Settings` (the config file), and :func:`exchange` (the client
of ``iotvideo-signaling send``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .bridge import BridgeListener
from .listen import ConfigError, ListenAddress, parse_listen
from .process import run
from .settings import Settings, build_hardware, default_state_dir, load_settings
from .systemd import Notifier

if TYPE_CHECKING:
    from .client import ClientError, exchange
    from .daemon import Daemon

__all__ = [
    "BridgeListener",
    "ClientError",
    "ConfigError",
    "Daemon",
    "ListenAddress",
    "Notifier",
    "Settings",
    "build_hardware",
    "default_state_dir",
    "exchange",
    "load_settings",
    "parse_listen",
    "run",
]

_ON_ASYNCIO = {"ClientError": "client", "exchange": "client", "Daemon": "daemon"}


def __getattr__(name: str) -> Any:
    """The names whose modules import asyncio, imported on first use."""
    module = _ON_ASYNCIO.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib  # noqa: PLC0415

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
