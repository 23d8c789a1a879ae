"""A small JSON state store whose writes are atomic and durable.

A write goes to a temporary file in the same directory, is fsynced, replaces the old file with
``os.replace`` and then fsyncs the directory, so after a crash the file holds either the old or
the new content, never a mix. A missing or corrupt file reads as the defaults, with a warning.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

import orjson

__all__ = ["StateFile", "atomic_write_bytes", "atomic_write_json", "fsync_dir", "read_json"]

log = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably (tmp, fsync, replace, dir fsync)."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        try:
            handle = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            raise
        with handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)


def atomic_write_json(path: PathLike, value: Any) -> None:
    """Write ``value`` as JSON to ``path`` atomically and durably."""
    atomic_write_bytes(path, orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


def read_json(path: PathLike) -> Any | None:
    """Read JSON from ``path``; None when it is missing, unreadable or corrupt (logged)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("cannot read state file %s: %s", path, exc)
        return None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        log.warning("state file %s is corrupt (%s); using defaults", path, exc)
        return None


class StateFile:
    """A JSON object on disk with defaults, updated atomically under a lock.

    Values not in ``defaults`` are dropped on load; a value whose type differs from its default
    falls back to the default.
    """

    def __init__(self, path: PathLike, defaults: Mapping[str, Any]) -> None:
        self.path = Path(path)
        self._defaults = dict(defaults)
        self._lock = threading.Lock()
        self._values: dict[str, Any] = dict(defaults)
        loaded = read_json(self.path)
        if loaded is not None and not isinstance(loaded, dict):
            log.warning("state file %s does not hold an object; using defaults", self.path)
            loaded = None
        for key, value in (loaded or {}).items():
            default = self._defaults.get(key)
            if key in self._defaults and (default is None or type(value) is type(default)):
                self._values[key] = value

    def get(self, key: str) -> Any:
        """The current value of ``key``."""
        with self._lock:
            return self._values[key]

    def snapshot(self) -> dict[str, Any]:
        """A copy of all values."""
        with self._lock:
            return dict(self._values)

    def update(self, **values: Any) -> None:
        """Set values and write the file atomically (only if something changed)."""
        with self._lock:
            unknown = set(values) - set(self._defaults)
            if unknown:
                raise KeyError(f"unknown state keys: {sorted(unknown)}")
            if all(self._values.get(k) == v for k, v in values.items()) and self.path.exists():
                return
            new = {**self._values, **values}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.path, new)  # memory changes only once the disk has it
            self._values = new
