"""The daemon process: one Device per channel, the listeners, signals, readiness, shutdown.

Theory of operation. :func:`run` builds each channel's hardware and
:class:`~iotvideo_signaling.Device` (one camera: channel 0), starts them (their start-up PTZ stop,
an upgrade resumed) before anything listens, serves until SIGTERM or SIGINT, then closes them,
given at most :data:`CLOSE_SECONDS`, so the process exits within 5 s of the signal.

How it serves depends on the listeners:

* only ``bridge://`` listeners (a camera whose panel commands all come through the device SDK):
  threads, no asyncio, which a low-memory camera feels (see the README's memory figures). The main
  thread waits for a signal through :func:`signal.set_wakeup_fd` and sends the systemd watchdog
  pings meanwhile;
* any ``tcp://``, ``unix://`` or ``ws://`` listener: :class:`~.daemon.Daemon` on an asyncio loop,
  which runs the ``bridge://`` listeners beside the others.

Either way the order is the same: signal handlers, then every listener bound (a failure closes the
ones already bound and is reported), then :class:`Readiness` (the ready file, the log line,
systemd's ``READY=1``); at the stop, ``STOPPING=1``, the listeners closed, the ready file removed.
Our own transports (``tcp``/``unix``/``ws``) serve the lowest channel's camera; on an NVR the other
channels are reached through the bridge.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Callable

from .. import _wire
from ..device import Device
from ..state import atomic_write_json, remove_stale_temporaries
from .bridge import BridgeListener
from .listen import ConfigError, ListenAddress
from .settings import Settings, build_hardware
from .systemd import Notifier

__all__ = ["CLOSE_SECONDS", "DRAIN_SECONDS", "Readiness", "backend_warning", "build_devices", "run"]

log = logging.getLogger(__name__)

#: Longest wait for connections to flush their replies at shutdown.
DRAIN_SECONDS = 2.0
#: Longest wait for ``Device.close()`` at shutdown.
CLOSE_SECONDS = 2.5


class Readiness:
    """Tells the world the daemon listens, and that it stops: the ready file, the log, systemd.

    Args:
        notifier: the systemd notifier.
        ready_file: where to write ``{"pid": ..., "listen": [...]}`` once listening (None: nowhere).
    """

    def __init__(self, notifier: Notifier, ready_file: Path | None) -> None:
        self.notifier = notifier
        self.ready_file = ready_file

    def announce(self, bound: list[ListenAddress]) -> None:
        """Every listener is bound: write the ready file, log, tell systemd ``READY=1``."""
        urls = [str(address) for address in bound]
        if self.ready_file is not None:
            remove_stale_temporaries(self.ready_file)  # left by a crash while writing it
            atomic_write_json(self.ready_file, {"pid": os.getpid(), "listen": urls})
        log.info("listening on %s", ", ".join(urls))
        self.notifier.notify("READY=1", f"STATUS=listening on {', '.join(urls)}")

    def stopping(self) -> None:
        """The stop begins: tell systemd ``STOPPING=1``."""
        log.info("shutting down")
        self.notifier.notify("STOPPING=1")

    def withdraw(self) -> None:
        """The listeners are closed: remove the ready file."""
        if self.ready_file is not None:
            with contextlib.suppress(OSError):
                self.ready_file.unlink()


def start_bridge(address: ListenAddress, channels: Mapping[int, Device], settings: Settings) -> BridgeListener:
    """Bind and start one ``bridge://`` listener.

    Raises:
        ConfigError: it cannot be bound (the message says why).
    """
    listener = BridgeListener(address, channels, write_timeout=settings.write_timeout)
    try:
        listener.start()
    except OSError as exc:
        raise ConfigError(f"cannot listen on {address}: {exc.strerror or exc}") from None
    return listener


def run(settings: Settings, *, ready_file: str | os.PathLike[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT; returns the exit status (0 after a clean stop).

    Raises:
        ConfigError: the settings are unsafe or unusable, or a listener cannot be bound.
    """
    settings.check()
    warning = backend_warning()
    if warning:
        log.warning("%s", warning)
    channels = build_devices(settings)
    readiness = Readiness(Notifier(), Path(ready_file) if ready_file is not None else None)
    try:
        for device in channels.values():
            device.start()  # before any listener: the start-up PTZ stop must not cancel a first press
        if all(address.scheme == "bridge" for address in settings.listen):
            _serve_bridges(settings, channels, readiness)
        else:
            import asyncio  # noqa: PLC0415 - only a daemon with our own transports needs it

            from .daemon import Daemon, serve  # noqa: PLC0415

            daemon = Daemon(
                channels[min(channels)],
                settings,
                channels=channels,
                notifier=readiness.notifier,
                ready_file=readiness.ready_file,
            )
            asyncio.run(serve(daemon))
    finally:
        closed = _close_devices(list(channels.values()), CLOSE_SECONDS)
    if not closed:
        log.error("Device.close() did not finish cleanly within %.1f s", CLOSE_SECONDS)
        return 1
    log.info("stopped")
    return 0


def build_devices(settings: Settings) -> dict[int, Device]:
    """One Device per channel, not started; firmware downloads go to each one's state directory.

    Raises:
        ConfigError: a channel's hardware cannot be built.
    """
    channels = {}
    for number in settings.channel_numbers():
        channel = settings.for_channel(number)
        config = channel.device
        if config.download_dir is None:  # firmware downloads must survive a restart to resume
            config = config._replace(download_dir=str(channel.resolved_state_dir() / "ota"))
        channels[number] = Device(build_hardware(channel), config=config)
    return channels


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


# -- a daemon of bridges only: threads, no event loop ------------------------------------------


def _serve_bridges(settings: Settings, channels: Mapping[int, Device], readiness: Readiness) -> None:
    with _signals() as wait:  # before binding: readiness must not precede them
        listeners: list[BridgeListener] = []
        try:
            for address in settings.listen:
                listeners.append(start_bridge(address, channels, settings))
            readiness.announce([listener.address for listener in listeners])
            notifier = readiness.notifier
            interval = notifier.watchdog_interval if notifier.enabled else None
            if interval is not None:
                notifier.notify("WATCHDOG=1")
            while not wait(interval):
                notifier.notify("WATCHDOG=1")
            readiness.stopping()
        finally:
            for listener in listeners:
                listener.stop(DRAIN_SECONDS)
            readiness.withdraw()


@contextlib.contextmanager
def _signals() -> Iterator[Callable[[float | None], bool]]:
    """While inside, SIGTERM and SIGINT end the wait of the yielded function ``wait(timeout)``,
    which returns True once one arrived (False when ``timeout`` s passed first).

    The handlers do nothing but exist; :func:`signal.set_wakeup_fd` writes each signal's number to
    a socket that ``wait`` reads, so no lock is ever taken inside a signal handler.
    """
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    previous = {signum: signal.signal(signum, _ignore) for signum in (signal.SIGTERM, signal.SIGINT)}
    old_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    stopped = threading.Event()

    def wait(timeout: float | None) -> bool:
        while not stopped.is_set():
            reader.settimeout(timeout)
            try:
                received = reader.recv(64)
            except socket.timeout:
                return False
            if any(signum in received for signum in (signal.SIGTERM, signal.SIGINT)):
                stopped.set()
        return True

    try:
        yield wait
    finally:
        signal.set_wakeup_fd(old_fd)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        reader.close()
        writer.close()


def _ignore(signum: int, frame: object) -> None:
    """A handler that lets :func:`signal.set_wakeup_fd` report the signal instead of dying of it."""


def _close_devices(devices: list[Device], timeout: float) -> bool:
    """``close()`` every Device, each in a thread, all waited for at most ``timeout`` s in total;
    True when every one succeeded."""
    done: list[bool] = []

    def close(device: Device) -> None:
        try:
            device.close()
        except Exception:
            log.exception("Device.close() failed")
        else:
            done.append(True)

    threads = [
        threading.Thread(target=close, args=(device,), name="iotvideo-signaling-close", daemon=True)
        for device in devices
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return len(done) == len(devices)
