"""A small JSON state store whose writes are atomic and durable.

A write goes to a temporary file in the same directory, is fsynced, replaces the old file with
``os.replace`` and then fsyncs the directory, so after a crash the file holds either the old or
the new content, never a mix. A missing file reads as the defaults; a corrupt one too, with a
warning, and it is kept beside (``state.json.corrupt-<UTC time>``) when the first write replaces it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, Union

import orjson

__all__ = [
    "StateFile",
    "atomic_write_bytes",
    "atomic_write_json",
    "fsync_dir",
    "read_json",
    "remove_stale_temporaries",
]

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


def _temporary_beside(target: Path) -> tuple[int, str]:
    """A new file ``.NAME.XXXXXXXX.tmp`` beside ``target``, mode 0600: ``(fd, path)``.

    What :func:`tempfile.mkstemp` does, without importing tempfile (with shutil, random, bz2 and
    lzma it costs a daemon about 1 MiB of memory).
    """
    for _ in range(100):
        tmp = str(target.parent / f".{target.name}.{os.urandom(4).hex()}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {target}")


def remove_stale_temporaries(path: PathLike) -> int:
    """Remove the temporary files a killed writer of ``path`` left beside it; returns how many.

    Only regular files named exactly as :func:`atomic_write_bytes` names them for this target
    (``.NAME.XXXXXXXX.tmp``, eight lower-case hex digits) are removed; anything else is left
    alone. Call it at start-up, before the first write: a write in progress has such a file too.
    """
    target = Path(path)
    pattern = re.compile(rf"\.{re.escape(target.name)}\.[0-9a-f]{{8}}\.tmp")
    try:
        names = os.listdir(target.parent)
    except OSError:
        return 0
    removed = 0
    for name in names:
        if not pattern.fullmatch(name):
            continue
        stale = target.parent / name
        try:
            if not stat.S_ISREG(os.lstat(stale).st_mode):
                continue
            os.unlink(stale)
        except OSError:
            continue
        removed += 1
    if removed:
        log.info("removed %d stale temporary file(s) of %s", removed, target)
    return removed


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably (tmp, fsync, replace, dir fsync)."""
    target = Path(path)
    fd, tmp = _temporary_beside(target)
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

    Values not in ``defaults`` are dropped on load. A value whose type differs from its default,
    or that is not among its ``choices``, falls back to the default with a warning naming it. A
    file that cannot be used (corrupt, not an object, unreadable) reads as the defaults and is
    renamed to ``<name>.corrupt-<UTC time>`` just before the first write would replace it.

    Args:
        path: the JSON file.
        defaults: every key and its default value (a None default accepts any type).
        choices: the allowed values of some keys (a value not among them falls back on load).
    """

    def __init__(
        self, path: PathLike, defaults: Mapping[str, Any], *, choices: Mapping[str, Collection[Any]] | None = None
    ) -> None:
        self.path = Path(path)
        self._defaults = dict(defaults)
        self._choices = {key: tuple(allowed) for key, allowed in (choices or {}).items()}  # compared with ==
        self._lock = threading.Lock()
        self._values: dict[str, Any] = dict(defaults)
        self._unusable = False  # the file on disk could not be used: keep it before replacing it
        for key, value in self._load().items():
            if key not in self._defaults:
                continue
            default = self._defaults[key]
            if (default is None or type(value) is type(default)) and value in self._choices.get(key, (value,)):
                self._values[key] = value
            else:
                log.warning(
                    "state file %s: %s is %s, which is not valid; using the default %r",
                    self.path, key, _shown(value), default,
                )

    def _load(self) -> dict[str, Any]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            return self._cannot_use(f"cannot be read: {exc}")
        try:
            loaded = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            return self._cannot_use(f"is corrupt ({exc})")
        if not isinstance(loaded, dict):
            return self._cannot_use("does not hold an object")
        return loaded

    def _cannot_use(self, why: str) -> dict[str, Any]:
        log.warning("state file %s %s; using defaults (it is kept beside when the state is next saved)", self.path, why)
        self._unusable = True
        return {}

    def check_writable(self) -> None:
        """Raise OSError unless a write could replace the file now (a temporary file is created
        beside it and removed, as a write would)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _temporary_beside(self.path)
        os.close(fd)
        os.unlink(tmp)

    def remove_stale_temporaries(self) -> int:
        """Remove temporary files a killed write left beside the file (call at start-up)."""
        with self._lock:  # no write of ours is in progress meanwhile
            return remove_stale_temporaries(self.path)

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
            if all(self._values.get(k) == v for k, v in values.items()) and self.path.exists() and not self._unusable:
                return
            new = {**self._values, **values}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self._unusable:
                self._keep_unusable_file()
            atomic_write_json(self.path, new)  # memory changes only once the disk has it
            self._values = new

    def _keep_unusable_file(self) -> None:
        """Rename the file that could not be used to ``<name>.corrupt-<UTC time>`` (never over another)."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        backup = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while backup.exists() or backup.is_symlink():
            backup = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
            n += 1
        try:
            os.rename(self.path, backup)
        except FileNotFoundError:
            pass  # removed meanwhile: nothing to keep
        else:
            fsync_dir(self.path.parent)
            log.warning("state file %s could not be used; kept it as %s", self.path, backup.name)
        self._unusable = False


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
