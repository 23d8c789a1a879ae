"""Unix socket files of the daemon: bound with mode 0660 from the start, stale ones reclaimed.

Shared by the ``unix://`` line listener and the ``bridge://`` listener; no asyncio here, so a
bridge-only daemon does not import it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from pathlib import Path

from .listen import ConfigError

__all__ = ["UNIX_SOCKET_MODE", "bind_unix", "claim_unix_path"]

UNIX_SOCKET_MODE = 0o660


def bind_unix(path: Path) -> socket.socket:
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


def claim_unix_path(path: Path, url: str) -> Path:
    """Make ``path`` free for a new socket: remove a stale socket, refuse a live one or a file.

    ``url`` names the listener in the error (``unix://...`` or ``bridge://...``).
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        if not path.parent.is_dir():
            raise ConfigError(f"cannot listen on {url}: {path.parent} does not exist") from None
        return path
    if not stat.S_ISSOCK(mode):
        raise ConfigError(f"cannot listen on {url}: it exists and is not a socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # a socket file left by a daemon that is gone
            return path
    raise ConfigError(f"cannot listen on {url}: another server is listening there")
