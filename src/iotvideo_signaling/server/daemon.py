"""The daemon: listeners, lifecycle, signals and systemd.

Theory of operation. :func:`run` builds the hardware and the :class:`~iotvideo_signaling.Device`,
starts the Device (its start-up PTZ stop, an upgrade resumed) before anything listens, then runs
:class:`Daemon` on an asyncio loop until SIGTERM or SIGINT:

1. start: bind every listener (a failure closes the ones already bound and is reported), write the
   bound addresses to the ready file if one was asked for, log them, tell systemd ``READY=1`` and
   start the watchdog pings;
2. stop: tell systemd ``STOPPING=1``, stop accepting, let every connection send the replies it
   has already answered (at most :data:`DRAIN_SECONDS`), abort the rest, remove Unix socket files
   and the ready file;
3. after the loop: ``device.close()`` (stops the motor, stops workers, flushes state), given at
   most :data:`CLOSE_SECONDS`, so the process exits within 5 s of the signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import stat
import threading
from pathlib import Path
from typing import Any, Callable

from .. import _wire
from ..device import Device
from ..state import atomic_write_json
from .hub import Hub
from .lines import LineConnection
from .listen import ConfigError, ListenAddress
from .settings import Settings, build_hardware
from .systemd import Notifier

__all__ = ["CLOSE_SECONDS", "DRAIN_SECONDS", "Daemon", "run"]

log = logging.getLogger(__name__)

#: Longest wait for connections to flush their replies at shutdown.
DRAIN_SECONDS = 2.0
#: Longest wait for ``Device.close()`` at shutdown.
CLOSE_SECONDS = 2.5
UNIX_SOCKET_MODE = 0o660


class Daemon:
    """The listeners of one Device, started and stopped together.

    Args:
        device: the Device to serve (the caller starts and closes it).
        settings: listeners, limits, timeouts and tokens.
        notifier: the systemd notifier (None: read the environment).
        ready_file: where to write ``{"pid": ..., "listen": [...]}`` once listening.
    """

    def __init__(
        self,
        device: Device,
        settings: Settings,
        *,
        notifier: Notifier | None = None,
        ready_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self.device = device
        self.settings = settings
        self.notifier = notifier if notifier is not None else Notifier()
        self.ready_file = Path(ready_file) if ready_file is not None else None
        self.bound: list[ListenAddress] = []
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
        try:
            for address in self.settings.listen:
                self.bound.extend(await self._listen(self._hub, address))
        except BaseException:
            await self._hub.shutdown(0)
            await self._close_listeners()
            raise
        urls = [str(address) for address in self.bound]
        if self.ready_file is not None:
            atomic_write_json(self.ready_file, {"pid": os.getpid(), "listen": urls})
        log.info("listening on %s", ", ".join(urls))
        self.notifier.notify("READY=1", f"STATUS=listening on {', '.join(urls)}")
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
        log.info("shutting down")
        self.notifier.notify("STOPPING=1")
        if self._watchdog is not None:
            self._watchdog.cancel()
        for server in self._servers:
            server.close()
        if self._hub is not None:
            await self._hub.shutdown(DRAIN_SECONDS)
        await self._close_listeners()
        if self.ready_file is not None:
            with contextlib.suppress(OSError):
                self.ready_file.unlink()

    # -- listeners -------------------------------------------------------------------------------

    async def _listen(self, hub: Hub, address: ListenAddress) -> list[ListenAddress]:
        loop = asyncio.get_running_loop()
        try:
            if address.scheme == "ws":
                from .websocket import start_websocket_listener  # noqa: PLC0415 - optional dependency

                ws_server, bound = await start_websocket_listener(hub, address)
                self._servers.append(ws_server)
                return bound
            if address.scheme == "unix":
                path = _claim_unix_path(Path(address.path))
                unix_sock = _bind_unix(path)
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


def _bind_unix(path: Path) -> socket.socket:
    """A Unix stream socket bound at ``path``, whose file is never open to more users than 0660 allows.

    ``bind()`` creates the socket file with the process umask, and a ``chmod`` after it would
    leave a moment when the file has whatever mode the umask gives (0777 with umask 0) and any
    local user could connect. So the umask is 077 for the ``bind()`` call alone, which creates
    the file with mode 0700 at most (owner only), and the chmod then widens it to
    :data:`UNIX_SOCKET_MODE`. This code runs synchronously: no other coroutine runs while the umask
    is changed. The umask is per process, so a file another thread (a hardware class or a Device
    worker) creates during that one system call would get mode 0700/0600 at most: more
    restrictive, never less.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        umask = os.umask(0o077)
        try:
            sock.bind(str(path))
        finally:
            os.umask(umask)
        try:
            os.chmod(path, UNIX_SOCKET_MODE)
        except BaseException:
            with contextlib.suppress(OSError):
                path.unlink()
            raise
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _claim_unix_path(path: Path) -> Path:
    """Make ``path`` free for a new socket: remove a stale socket, refuse a live one or a file."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        if not path.parent.is_dir():
            raise ConfigError(f"cannot listen on unix://{path}: {path.parent} does not exist") from None
        return path
    if not stat.S_ISSOCK(mode):
        raise ConfigError(f"cannot listen on unix://{path}: it exists and is not a socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # a socket file left by a daemon that is gone
            return path
    raise ConfigError(f"cannot listen on unix://{path}: another server is listening there")


# -- the process -------------------------------------------------------------------------------


def run(settings: Settings, *, ready_file: str | os.PathLike[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT; returns the exit status (0 after a clean stop).

    Raises:
        ConfigError: the settings are unsafe or unusable, or a listener cannot be bound.
    """
    settings.check()
    warning = backend_warning()
    if warning:
        log.warning("%s", warning)
    hardware = build_hardware(settings)
    config = settings.device
    if config.download_dir is None:  # firmware downloads must survive a restart to resume
        config = config._replace(download_dir=str(settings.resolved_state_dir() / "ota"))
    device = Device(hardware, config=config)
    daemon = Daemon(device, settings, ready_file=ready_file)
    try:
        device.start()  # before any listener: the start-up PTZ stop must not cancel a first press
        asyncio.run(_serve(daemon))
    finally:
        closed = _close_device(device, CLOSE_SECONDS)
    if not closed:
        log.error("Device.close() did not finish cleanly within %.1f s", CLOSE_SECONDS)
        return 1
    log.info("stopped")
    return 0


def backend_warning() -> str | None:
    """What to tell the operator when the wire backend is the pure-Python twin, else None."""
    if _wire.implementation == "c":
        return None
    if _wire.NO_EXTENSIONS:
        why = "IOTVIDEO_SIGNALING_NO_EXTENSIONS is set; unset it for the compiled one"
    else:
        why = (
            "the C extension was not built when this package was installed; for the compiled one, "
            "reinstall where a C compiler and the Python headers are available "
            "(with IOTVIDEO_SIGNALING_REQUIRE_EXTENSIONS=1, pip stops with the reason instead of falling back)"
        )
    return f"running on the pure-Python wire backend, several times slower at parsing commands: {why}"


async def _serve(daemon: Daemon) -> None:
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


def _close_device(device: Device, timeout: float) -> bool:
    """``device.close()`` in a thread, waited for at most ``timeout`` s; True when it succeeded."""
    done: list[bool] = []

    def close() -> None:
        try:
            device.close()
        except Exception:
            log.exception("Device.close() failed")
        else:
            done.append(True)

    thread = threading.Thread(target=close, name="iotvideo-signaling-close", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(done)
