"""Helpers of the daemon tests (no tests here): start ``serve`` as a subprocess, talk to it.

The daemon is started as ``python -m iotvideo_signaling serve`` on port 0 with ``--ready-file``,
so tests never race for ports: the ready file holds the addresses actually bound. Unix sockets
live in a short temporary directory (socket paths are limited to about 100 bytes).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

USER_DEFINE = b"action=user_define&channel=0&cmd="
OWNER_TOKEN = "owner-token-0123456789abcdef"
SHARER_TOKEN = "sharer-token-0123456789abcdef"


def command(topic: str, message_id: int | str | None = None, **fields: Any) -> bytes:
    """A command string as the panel sends it."""
    body: dict[str, Any] = {"topic": topic}
    if message_id is not None:
        body["message_id"] = message_id
    if fields:
        body["data"] = fields
    return USER_DEFINE + orjson.dumps(body)


@dataclass
class Served:
    """A running daemon subprocess."""

    process: subprocess.Popen[bytes]
    urls: list[str]
    state_dir: Path
    log_path: Path
    socket_dir: Path
    ready_file: Path
    _log_file: Any = field(repr=False, default=None)

    def url(self, scheme: str) -> str:
        """The first bound URL of ``scheme``."""
        return next(url for url in self.urls if url.startswith(scheme + "://"))

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_log(self, text: str, timeout: float = 5.0) -> bool:
        """True once ``text`` appears in the log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return True
            time.sleep(0.02)
        return False

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then wait; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            if self._log_file is not None:
                self._log_file.close()
            shutil.rmtree(self.socket_dir, ignore_errors=True)


def serve_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "iotvideo_signaling", "serve", *args]


def start_server(
    tmp: Path,
    listen: tuple[str, ...] | None = None,
    *,
    config: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 15.0,
    extra: tuple[str, ...] = (),
) -> Served:
    """Start ``serve`` and wait until its ready file names the bound addresses.

    Without ``listen``: the config's listen URLs, or ``tcp://127.0.0.1:0`` without a config.
    """
    if listen is None and config is None:
        listen = ("tcp://127.0.0.1:0",)
    socket_dir = Path(tempfile.mkdtemp(prefix="ivs-"))
    ready = tmp / "ready.json"
    state_dir = tmp / "state"
    tmp.mkdir(parents=True, exist_ok=True)
    args = ["--state-dir", str(state_dir), "--ready-file", str(ready), "--log-level", "info", *extra]
    for url in listen or ():
        args += ["--listen", url.replace("{sockets}", str(socket_dir))]
    if config is not None:
        config_path = tmp / "config.toml"
        config_path.write_text(config, encoding="utf-8")
        config_path.chmod(0o600)
        args += ["--config", str(config_path)]
    log_path = tmp / "serve.log"
    log_file = open(log_path, "wb")  # noqa: SIM115 - closed by Served.stop
    process = subprocess.Popen(
        serve_command(*args), stdout=log_file, stderr=subprocess.STDOUT, env=dict(env) if env else None
    )
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            log_file.close()
            raise AssertionError(f"serve did not start:\n{log_path.read_text(errors='replace')}")
        time.sleep(0.02)
    urls = json.loads(ready.read_text(encoding="utf-8"))["listen"]
    return Served(process, urls, state_dir, log_path, socket_dir, ready, log_file)


@contextlib.contextmanager
def running(tmp: Path, *listen: str, config: str | None = None) -> Iterator[Served]:
    served = start_server(tmp, listen or None, config=config)
    try:
        yield served
    finally:
        served.stop()


class LineClient:
    """A blocking client of the line transport, for tests."""

    def __init__(self, url: str, timeout: float = 5.0, rcvbuf: int | None = None, source: str | None = None) -> None:
        if url.startswith("unix://"):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: Any = url[len("unix://") :]
        else:
            host, _, port = url[len("tcp://") :].rpartition(":")
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            address = (host, int(port))
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source is not None:  # another loopback address (127.0.0.2, ...): another "host"
            self.sock.bind((source, 0))
        self.sock.settimeout(timeout)
        self.sock.connect(address)
        self._buffer = b""

    def send(self, *lines: bytes) -> None:
        self.sock.sendall(b"".join(line + b"\n" for line in lines))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        """The next reply line (without its newline); b"" when the server closed the connection."""
        while b"\n" not in self._buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                rest, self._buffer = self._buffer, b""
                return rest
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def reply(self) -> Any:
        line = self.line()
        assert line, "the server closed the connection"
        return orjson.loads(line)

    def request(self, raw: bytes) -> Any:
        self.send(raw)
        return self.reply()

    def closed_by_server(self) -> bool:
        """True when the server closed (EOF or reset) before the socket timeout."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> LineClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def run_cli(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """``python -m iotvideo_signaling ARGS`` as a subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "iotvideo_signaling", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        check=False,
    )


def wait_until(predicate: Callable[[], object], timeout: float = 20.0) -> bool:
    """True once ``predicate()`` is true, False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False
