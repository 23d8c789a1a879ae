"""The atomic JSON state store (``state.py``)."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from iotvideo_signaling import state
from iotvideo_signaling.state import StateFile, atomic_write_bytes, atomic_write_json, read_json

DEFAULTS: dict[str, Any] = {"power": "working", "flip": "normal", "x": 5}


def _leftovers(directory: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name not in keep)


# -- atomic writes --------------------------------------------------------------------------


def test_atomic_write_bytes_writes_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"one")
    assert target.read_bytes() == b"one"
    atomic_write_bytes(str(target), b"two")
    assert target.read_bytes() == b"two"
    atomic_write_bytes(target, b"")
    assert target.read_bytes() == b""


def test_atomic_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    for i in range(50):
        atomic_write_json(target, {"i": i})
    assert _leftovers(tmp_path, {"state.json"}) == []
    assert orjson.loads(target.read_bytes()) == {"i": 49}


def test_atomic_write_json_is_sorted_and_indented(tmp_path: Path) -> None:
    target = tmp_path / "s.json"
    atomic_write_json(target, {"b": 1, "a": [1, 2]})
    text = target.read_text()
    assert text.index('"a"') < text.index('"b"')
    assert "\n  " in text
    assert orjson.loads(text) == {"a": [1, 2], "b": 1}


@pytest.mark.parametrize("failing", ["replace", "fsync", "write"])
def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    target = tmp_path / "state.json"
    atomic_write_json(target, {"power": "working"})
    before = target.read_bytes()

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise OSError(28, "No space left on device")

    if failing == "replace":
        monkeypatch.setattr(os, "replace", boom)
    elif failing == "fsync":
        monkeypatch.setattr(os, "fsync", boom)
    else:
        monkeypatch.setattr(os, "fdopen", boom)
    with pytest.raises(OSError, match="No space"):
        atomic_write_json(target, {"power": "standby"})
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert _leftovers(tmp_path, {"state.json"}) == []


def test_a_failed_first_write_creates_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise OSError("replace failed")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_bytes(tmp_path / "new.json", b"{}")
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_write_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "state.json"
    atomic_write_bytes(target, b"old")

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert _leftovers(tmp_path, {"state.json"}) == []


def test_the_temporary_file_is_beside_the_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(src: Any, dst: Any) -> None:
        seen.append((os.fspath(src), os.fspath(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    atomic_write_bytes(tmp_path / "state.json", b"{}")
    (src, dst), = seen
    assert Path(src).parent == tmp_path
    assert Path(dst) == tmp_path / "state.json"
    assert Path(src).name.endswith(".tmp")


# -- reading ----------------------------------------------------------------------------------


def test_read_json_missing_is_none_and_quiet(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    assert read_json(tmp_path / "absent.json") is None
    assert caplog.records == []


@pytest.mark.parametrize("content", [b"", b"{", b'{"power": "work', b"\xff\xfe\x00garbage", b"null null"])
def test_read_json_corrupt_is_none_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    caplog.set_level(logging.WARNING)
    path = tmp_path / "state.json"
    path.write_bytes(content)
    assert read_json(path) is None
    assert any(r.levelno == logging.WARNING and r.name == "iotvideo_signaling.state" for r in caplog.records)


def test_read_json_of_a_directory_is_none_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    (tmp_path / "state.json").mkdir()
    assert read_json(tmp_path / "state.json") is None
    assert caplog.records


# -- StateFile ----------------------------------------------------------------------------------


def test_statefile_defaults_without_a_file(tmp_path: Path) -> None:
    store = StateFile(tmp_path / "state.json", DEFAULTS)
    assert store.snapshot() == DEFAULTS
    assert store.get("power") == "working"
    assert not (tmp_path / "state.json").exists()


def test_statefile_update_persists(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store = StateFile(path, DEFAULTS)
    store.update(power="standby", x=7)
    assert store.get("power") == "standby"
    assert orjson.loads(path.read_bytes()) == {"power": "standby", "flip": "normal", "x": 7}
    again = StateFile(path, DEFAULTS)
    assert again.snapshot() == {"power": "standby", "flip": "normal", "x": 7}


def test_statefile_creates_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "state.json"
    StateFile(path, DEFAULTS).update(flip="flip")
    assert StateFile(path, DEFAULTS).get("flip") == "flip"


def test_statefile_snapshot_is_a_copy(tmp_path: Path) -> None:
    store = StateFile(tmp_path / "state.json", DEFAULTS)
    snap = store.snapshot()
    snap["power"] = "standby"
    assert store.get("power") == "working"


def test_statefile_unknown_key_is_refused_and_nothing_written(tmp_path: Path) -> None:
    store = StateFile(tmp_path / "state.json", DEFAULTS)
    with pytest.raises(KeyError):
        store.update(power="standby", colour="red")
    assert store.get("power") == "working"
    assert not (tmp_path / "state.json").exists()


def test_statefile_unchanged_update_does_not_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.json"
    store = StateFile(path, DEFAULTS)
    writes: list[Any] = []
    real = state.atomic_write_json

    def counting(target: Any, value: Any) -> None:
        writes.append(dict(value))
        real(target, value)

    monkeypatch.setattr(state, "atomic_write_json", counting)
    store.update(power="working")  # same as the default, but no file yet: written once
    store.update(power="working")
    store.update(power="working", flip="normal")
    store.update(power="standby")
    store.update(power="standby")
    assert [w["power"] for w in writes] == ["working", "standby"]


def test_statefile_drops_unknown_keys_and_mistyped_values(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(orjson.dumps({"power": "standby", "flip": 1, "x": "5", "extra": True}))
    store = StateFile(path, DEFAULTS)
    assert store.snapshot() == {"power": "standby", "flip": "normal", "x": 5}


def test_statefile_bool_is_not_an_int(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(orjson.dumps({"x": True}))
    assert StateFile(path, DEFAULTS).get("x") == 5


@pytest.mark.parametrize(
    "content",
    [b"", b"{", b'{"power": "standby", "fl', b"\x00\x01\x02", b"[1, 2]", b'"standby"', b"42", b"null"],
)
def test_statefile_corrupt_file_means_defaults_and_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    caplog.set_level(logging.WARNING)
    path = tmp_path / "state.json"
    path.write_bytes(content)
    store = StateFile(path, DEFAULTS)
    assert store.snapshot() == DEFAULTS
    if content != b"null":  # a JSON null is read as "nothing stored"
        assert any(r.levelno == logging.WARNING for r in caplog.records), content
    store.update(power="standby")  # and the store can write again
    assert orjson.loads(path.read_bytes())["power"] == "standby"


def test_statefile_a_failed_write_raises_and_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    store = StateFile(path, DEFAULTS)
    store.update(power="working")
    before = path.read_bytes()

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        store.update(power="standby")
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert _leftovers(tmp_path, {"state.json"}) == []
    assert StateFile(path, DEFAULTS).get("power") == "working"


def test_statefile_retry_after_a_failed_write_persists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.json"
    store = StateFile(path, DEFAULTS)
    store.update(power="working")

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        store.update(power="standby")
    monkeypatch.undo()
    assert store.get("power") == "working"  # memory agrees with the disk
    store.update(power="standby")
    assert StateFile(path, DEFAULTS).get("power") == "standby"


def test_statefile_concurrent_updates_leave_a_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store = StateFile(path, {"n0": 0, "n1": 0, "n2": 0, "n3": 0})
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            start.wait()
            for i in range(1, 26):
                store.update(**{f"n{k}": i})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert orjson.loads(path.read_bytes()) == {"n0": 25, "n1": 25, "n2": 25, "n3": 25}
    assert _leftovers(tmp_path, {"state.json"}) == []


# -- an unusable file is kept; invalid values are named -----------------------------------------


def _backups(directory: Path) -> list[Path]:
    return sorted(directory.glob("state.json.corrupt-*"))


@pytest.mark.parametrize("content", [b'{"power": "standby", "fl', b"\xff\x00", b"[1, 2]", b"null"])
def test_statefile_keeps_an_unusable_file_beside_when_it_first_writes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    caplog.set_level(logging.WARNING, logger="iotvideo_signaling")
    path = tmp_path / "state.json"
    path.write_bytes(content)
    store = StateFile(path, DEFAULTS)
    assert path.read_bytes() == content  # reading moves nothing
    assert _backups(tmp_path) == []
    store.update(power="working")  # the default: still written, since the file is unusable
    [backup] = _backups(tmp_path)
    assert backup.read_bytes() == content
    assert orjson.loads(path.read_bytes()) == DEFAULTS
    assert f"kept it as {backup.name}" in caplog.text
    store.update(power="standby")
    assert len(_backups(tmp_path)) == 1  # once


def test_statefile_backups_never_replace_each_other(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "gmtime", lambda *args: time.struct_time((2030, 1, 2, 3, 4, 5, 2, 2, 0)))
    path = tmp_path / "state.json"
    for generation in (b"{1", b"{2", b"{3"):
        path.write_bytes(generation)
        StateFile(path, DEFAULTS).update(flip="flip")
    assert [(p.name, p.read_bytes()) for p in _backups(tmp_path)] == [
        ("state.json.corrupt-20300102T030405Z", b"{1"),
        ("state.json.corrupt-20300102T030405Z-1", b"{2"),
        ("state.json.corrupt-20300102T030405Z-2", b"{3"),
    ]


def test_statefile_a_valid_file_is_not_kept(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(orjson.dumps({"power": "standby", "flip": 7}))  # one value falls back: the file is usable
    StateFile(path, DEFAULTS).update(x=1)
    assert _backups(tmp_path) == []


def test_statefile_warns_about_each_value_that_falls_back(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="iotvideo_signaling")
    path = tmp_path / "state.json"
    path.write_bytes(orjson.dumps({"power": "exploded", "flip": "flip", "x": "5", "extra": 1}))
    store = StateFile(path, DEFAULTS, choices={"power": ("working", "standby"), "flip": ("normal", "flip")})
    assert store.snapshot() == {"power": "working", "flip": "flip", "x": 5}
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        f"state file {path}: power is 'exploded', which is not valid; using the default 'working'",
        f"state file {path}: x is '5', which is not valid; using the default 5",
    ]


def test_statefile_check_writable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = StateFile(tmp_path / "sub" / "state.json", DEFAULTS)
    store.check_writable()
    assert list((tmp_path / "sub").iterdir()) == []  # the probe is removed

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(state, "_temporary_beside", refused)  # where every write begins
    with pytest.raises(PermissionError):
        store.check_writable()


# -- stale temporary files ------------------------------------------------------------------


def _stale_and_look_alikes(directory: Path, name: str) -> tuple[list[str], list[str]]:
    """Temporary files a killed writer of ``name`` leaves, and names that must survive."""
    stale = [f".{name}.0123abcd.tmp", f".{name}.ffffffff.tmp"]
    survivors = [
        f".{name}.0123ABCD.tmp",  # upper-case hex: not our name
        f".{name}.0123abc.tmp",  # seven digits
        f".{name}.0123abcde.tmp",  # nine digits
        f".{name}.0123abcd.tmp.keep",
        f"{name}.0123abcd.tmp",  # no leading dot
        ".other.json.0123abcd.tmp",  # another target's
        f".x{name}.0123abcd.tmp",
        "notes.tmp",
    ]
    for leftover in stale + survivors:
        (directory / leftover).write_bytes(b"{")
    (directory / f".{name}.aaaaaaaa.tmp").mkdir()  # a directory is never ours
    survivors.append(f".{name}.aaaaaaaa.tmp")
    return stale, survivors


def test_stale_temporary_files_of_the_target_are_removed_and_nothing_else(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_bytes(b"{}")
    stale, survivors = _stale_and_look_alikes(tmp_path, target.name)
    assert state.remove_stale_temporaries(target) == len(stale)
    assert _leftovers(tmp_path, set()) == sorted([*survivors, "state.json"])
    assert target.read_bytes() == b"{}"
    assert state.remove_stale_temporaries(tmp_path / "missing-dir" / "state.json") == 0


def test_a_state_file_removes_stale_temporaries_only_when_asked(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    stale, survivors = _stale_and_look_alikes(tmp_path, target.name)
    store = StateFile(target, DEFAULTS)  # the constructor does no such I/O
    assert all((tmp_path / name).exists() for name in stale)
    assert store.remove_stale_temporaries() == len(stale)
    assert _leftovers(tmp_path, set()) == sorted(survivors)


def test_the_daemon_removes_stale_temporaries_of_its_ready_file_when_it_writes_it(tmp_path: Path) -> None:
    from iotvideo_signaling.server.listen import parse_listen
    from iotvideo_signaling.server.process import Readiness
    from iotvideo_signaling.server.systemd import Notifier

    ready = tmp_path / "ready.json"
    _, survivors = _stale_and_look_alikes(tmp_path, ready.name)
    Readiness(Notifier({}), ready).announce([parse_listen("tcp://127.0.0.1:7130")])
    assert orjson.loads(ready.read_bytes())["listen"] == ["tcp://127.0.0.1:7130"]
    assert _leftovers(tmp_path, {"ready.json"}) == sorted(survivors)
