"""The daemon on an asyncio loop: the line (``tcp://``, ``unix://``) and ``ws://`` listeners, and
``bridge://`` ones beside them.

Theory of operation (the process around it is process.py). :class:`Daemon` serves the Devices it
is given until :meth:`Daemon.request_stop`:

1. start: bind every listener (a failure closes the ones already bound and is reported), then
   announce them (:class:`~.process.Readiness`: the ready file, the log, systemd's ``READY=1``)
   and start the watchdog pings from the loop (a stuck loop gets the process restarted);
2. stop: tell systemd ``STOPPING=1``, stop accepting, let every connection send the replies it
   has already answered (at most :data:`~.process.DRAIN_SECONDS`), abort the rest, remove Unix
   socket files and the ready file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

from ..device import Device
from .bridge import BridgeListener
from .hub import Hub
from .lines import LineConnection
from .listen import ConfigError, ListenAddress
from .panel import PanelPage, add_panel_topics
from .process import DRAIN_SECONDS, Readiness, start_bridge
from .settings import Settings
from .systemd import Notifier
from .unixsock import bind_unix, claim_unix_path

__all__ = ["Daemon", "serve"]

log = logging.getLogger(__name__)


class Daemon:
    """The listeners of a camera, started and stopped together.

    Args:
        device: the Device our own transports serve (the caller starts and closes it).
        settings: listeners, limits, timeouts and tokens.
        channels: the Device of each channel, for ``bridge://`` listeners (None: ``{0: device}``).
        notifier: the systemd notifier (None: read the environment).
        ready_file: where to write ``{"pid": ..., "listen": [...]}`` once listening.
    """

    def __init__(
        self,
        device: Device,
        settings: Settings,
        *,
        channels: Mapping[int, Device] | None = None,
        notifier: Notifier | None = None,
        ready_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self.device = device
        self.settings = settings
        self.channels = channels if channels is not None else {0: device}
        self.notifier = notifier if notifier is not None else Notifier()
        self._readiness = Readiness(self.notifier, Path(ready_file) if ready_file is not None else None)
        self.bound: list[ListenAddress] = []
        self._bridges: list[BridgeListener] = []
        self._servers: list[Any] = []  # asyncio.Server and websockets Server: close(), wait_closed()
        self._unix_paths: list[tuple[Path, int]] = []  # (path, inode) of our socket files
        self._hub: Hub | None = None
        self._stop: asyncio.Event | None = None
        self._stop_requested = False  # a stop asked for before start() made the event
        self._watchdog: asyncio.TimerHandle | None = None

    async def start(self) -> list[ListenAddress]:
        """Bind every listener; returns the bound addresses (with the real ports).

        Raises:
            ConfigError: the settings are unsafe or unusable (checked here too, for embedders).
        """
        self.settings.check()
        self._stop = asyncio.Event()
        if self._stop_requested:
            self._stop.set()
        self._hub = Hub(self.device, self.settings)
        if self.settings.panel:
            add_panel_topics(self.device)  # the page's cancel button
        try:
            for address in self.settings.listen:
                self.bound.extend(await self._listen(self._hub, address))
        except BaseException:
            await self._hub.shutdown(0)
            await self._close_listeners()
            raise
        self._readiness.announce(self.bound)
        self._schedule_watchdog()
        return list(self.bound)

    def request_stop(self) -> None:
        """Ask :meth:`serve_until_stopped` to return (safe from a signal handler on the loop);
        a request that comes during :meth:`start` is kept."""
        self._stop_requested = True
        if self._stop is not None:
            self._stop.set()

    async def serve_until_stopped(self) -> None:
        """Wait for :meth:`request_stop`, then stop."""
        assert self._stop is not None, "start() first"
        await self._stop.wait()
        await self.stop()

    async def stop(self) -> None:
        """Stop accepting, flush what is answered, close every connection."""
        self._readiness.stopping()
        if self._watchdog is not None:
            self._watchdog.cancel()
        for server in self._servers:
            server.close()
        if self._hub is not None:
            await self._hub.shutdown(DRAIN_SECONDS)
        await self._close_listeners()
        self._readiness.withdraw()

    # -- listeners -------------------------------------------------------------------------------

    async def _listen(self, hub: Hub, address: ListenAddress) -> list[ListenAddress]:
        loop = asyncio.get_running_loop()
        if address.scheme == "bridge":  # threads of its own: see bridge.py
            self._bridges.append(start_bridge(address, self.channels, self.settings))
            return [address]
        try:
            if address.scheme == "ws":
                from .websocket import start_websocket_listener  # noqa: PLC0415 - optional dependency

                page = PanelPage(auth_required=hub.auth_required) if self.settings.panel else None
                ws_server, bound = await start_websocket_listener(hub, address, page=page)
                if page is not None:
                    for where in bound:
                        log.info("the panel simulator is at %s", str(where).replace("ws://", "http://", 1) + "/")
                self._servers.append(ws_server)
                return bound
            if address.scheme == "unix":
                path = claim_unix_path(Path(address.path), str(address))
                unix_sock = bind_unix(path)
                self._unix_paths.append((path, os.stat(path).st_ino))  # removed by stop(), or on failure
                try:
                    server = await loop.create_unix_server(lambda: LineConnection(hub, "unix"), sock=unix_sock)
                except BaseException:
                    unix_sock.close()
                    raise
                self._servers.append(server)
                return [address]
            server = await loop.create_server(lambda: LineConnection(hub, "tcp"), address.host, address.port)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {address}: {exc.strerror or exc}") from None
        self._servers.append(server)
        return [address.with_port(sock.getsockname()[1]) for sock in server.sockets]

    async def _close_listeners(self) -> None:
        for server in self._servers:
            server.close()
        for server in self._servers:
            try:
                await asyncio.wait_for(server.wait_closed(), DRAIN_SECONDS)
            except asyncio.TimeoutError:
                log.warning("a listener did not close in time")
        self._servers.clear()
        bridges, self._bridges = self._bridges, []
        for bridge in bridges:
            await asyncio.to_thread(bridge.stop, DRAIN_SECONDS)
        for path, inode in self._unix_paths:
            with contextlib.suppress(OSError):
                if os.stat(path).st_ino == inode:
                    path.unlink()
        self._unix_paths.clear()

    # -- systemd watchdog ------------------------------------------------------------------------

    def _schedule_watchdog(self) -> None:
        interval = self.notifier.watchdog_interval
        if interval is None or not self.notifier.enabled:
            return

        def ping() -> None:
            self.notifier.notify("WATCHDOG=1")
            self._watchdog = loop.call_later(interval, ping)

        loop = asyncio.get_running_loop()
        ping()


# -- on an event loop ------------------------------------------------------------------------


async def serve(daemon: Daemon) -> None:
    """Run ``daemon`` until SIGTERM or SIGINT (what ``serve`` does when it has our own transports)."""
    restore = _on_signals(daemon.request_stop)  # before start(): readiness must not precede them
    try:
        await daemon.start()
        await daemon.serve_until_stopped()
    finally:
        restore()


def _on_signals(callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback`` on SIGTERM and SIGINT; returns a function that undoes it."""
    loop = asyncio.get_running_loop()
    signals = [signal.SIGTERM, signal.SIGINT]
    try:
        for signum in signals:
            loop.add_signal_handler(signum, callback)
    except NotImplementedError:  # pragma: no cover - Windows' event loops
        for signum in signals:
            signal.signal(signum, lambda *_: loop.call_soon_threadsafe(callback))
        return lambda: None

    def restore() -> None:
        for signum in signals:
            loop.remove_signal_handler(signum)

    return restore
