"""The peer: a second process whose Devices run on the pure-Python wire backend.

A Device takes its wire backend from the selector once per process, so the harnesses compare a
C-backed Device with a Python-backed one by asking this process for its outcome of each input.
It is started with ``IOTVIDEO_SIGNALING_NO_EXTENSIONS=1``, the same module path as its parent and
without ``LD_PRELOAD`` (it loads no sanitized code), and refuses to serve unless the selector
really chose the Python backend.

Frames, both ways: a header ``!BI`` then the body. Request: the index of the outcome in
``PEER_OUTCOMES`` and the input. Answer: 0 and the outcome, or 1 and the peer's traceback.
"""

from __future__ import annotations

import atexit
import os
import struct
import subprocess
import sys
import traceback
from typing import IO, Optional

from fuzz.oracle import ROOT

__all__ = ["Peer", "main", "peer"]

_HEADER = struct.Struct("!BI")
_READY = b"peer on the python backend\n"


def _read(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if data is None or len(data) != size:
        raise EOFError("the peer's pipe closed")
    return data


class Peer:
    """The peer process; :meth:`outcome` asks it for one outcome. ``close`` ends it."""

    def __init__(self) -> None:
        from fuzz.harnesses import PEER_OUTCOMES  # noqa: PLC0415 - the harnesses import this module

        self._names = list(PEER_OUTCOMES)
        env = {name: value for name, value in os.environ.items() if name != "LD_PRELOAD"}
        env["IOTVIDEO_SIGNALING_NO_EXTENSIONS"] = "1"
        env["PYTHONPATH"] = os.pathsep.join(path for path in sys.path if path)
        self._process = subprocess.Popen(
            [sys.executable, "-m", "fuzz.peer"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=ROOT
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        self._to, self._from = self._process.stdin, self._process.stdout
        ready = self._from.readline()
        if ready != _READY:
            self.close()
            raise RuntimeError(f"the peer did not start on the Python backend: {ready!r}")

    def outcome(self, name: str, data: bytes) -> bytes:
        """The peer's outcome ``name`` of ``data``.

        Raises:
            RuntimeError: the outcome raised in the peer (its traceback is the message).
        """
        self._to.write(_HEADER.pack(self._names.index(name), len(data)) + data)
        self._to.flush()
        status, size = _HEADER.unpack(_read(self._from, _HEADER.size))
        body = _read(self._from, size)
        if status:
            raise RuntimeError(f"{name} failed on the Python backend:\n{body.decode()}")
        return body

    def close(self) -> None:
        """End the peer (it exits when its input closes)."""
        self._to.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._from.close()


_peer: Optional[Peer] = None


def peer() -> Peer:
    """The peer of this process, started on first use and ended at exit."""
    global _peer  # noqa: PLW0603 - one per process
    if _peer is None:
        _peer = Peer()
        atexit.register(_peer.close)
    return _peer


def main() -> int:
    """Serve outcome requests on stdin/stdout until stdin closes."""
    import iotvideo_signaling  # noqa: PLC0415
    from fuzz.harnesses import PEER_OUTCOMES, quiet_logs  # noqa: PLC0415

    quiet_logs()  # the parent's own run logs the same
    if iotvideo_signaling.implementation != "python":
        sys.stdout.write(f"peer on the {iotvideo_signaling.implementation} backend\n")
        return 1
    outcomes = list(PEER_OUTCOMES.values())
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    sink.write(_READY)
    sink.flush()
    while True:
        try:
            index, size = _HEADER.unpack(_read(source, _HEADER.size))
            data = _read(source, size)
        except EOFError:
            return 0
        try:
            status, body = 0, outcomes[index](data)
        except Exception:  # noqa: BLE001 - reported to the parent, which fails the input
            status, body = 1, traceback.format_exc().encode()
        sink.write(_HEADER.pack(status, len(body)) + body)
        sink.flush()


if __name__ == "__main__":
    sys.exit(main())
