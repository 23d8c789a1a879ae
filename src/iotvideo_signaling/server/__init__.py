"""The daemon: line (``tcp://``, ``unix://``) and WebSocket (``ws://``) transports on asyncio.

The core never imports this package. ``ws://`` needs the ``websockets`` package (the ``server``
extra), imported only when a ``ws://`` listener starts or a ``ws://`` client connects.

Entry points: :func:`run` (what ``iotvideo-signaling serve`` calls), :class:`Daemon` (to embed
the listeners in your own loop), :func:`load_settings` and :class:`Settings` (the config file),
and :func:`exchange` (the client of ``iotvideo-signaling send``).
"""

from __future__ import annotations

from .client import ClientError, exchange
from .daemon import Daemon, run
from .listen import ConfigError, ListenAddress, parse_listen
from .settings import Settings, build_hardware, default_state_dir, load_settings
from .systemd import Notifier

__all__ = [
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
