"""A plain mutation fuzzer, for the CI leg that has gcc's sanitizers and no libFuzzer.

No coverage feedback: each round takes a seed (or an earlier mutant), applies one to eight
random edits (bit flips, interesting bytes, dictionary tokens inserted or written over, ranges
deleted, duplicated or spliced from another input, truncation) and runs the harness on it. It
finds less than atheris does, but it needs nothing but Python, it runs the same harnesses, and a
fixed ``--seed`` replays a run exactly. The first failure stops the run: its input is saved and
the command that replays it is printed. A sanitizer report ends the process before Python can
save anything, so each input is written to ``<crash dir>/last-input-<harness>`` before it runs;
the file is removed when the harness's time is up, so one left behind is the input that crashed.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Callable, NamedTuple

__all__ = ["Mutator", "Result", "fuzz_harness"]

_INTERESTING = b"\x00\xff\x7f\x80&=%+{}[]\",:\\\r\n 0129"
#: Mutants kept as bases for later rounds (a random walk away from the seeds).
_POOL_LIMIT = 4000


class Mutator:
    """Random edits of a byte string, with a dictionary of tokens."""

    def __init__(self, rng: random.Random, tokens: Sequence[bytes], max_len: int) -> None:
        self._rng = rng
        self._tokens = list(tokens) or [b"&"]
        self._max_len = max_len
        self._edits: list[Callable[[bytearray, Sequence[bytes]], None]] = [
            self._flip_bit,
            self._set_byte,
            self._insert_token,
            self._insert_token,
            self._write_token,
            self._delete_range,
            self._duplicate_range,
            self._insert_random,
            self._splice,
            self._truncate,
        ]

    def mutate(self, data: bytes, others: Sequence[bytes]) -> bytes:
        """``data`` after one to eight random edits (``others``: inputs to splice from)."""
        out = bytearray(data)
        for _ in range(self._rng.randint(1, 8)):
            self._rng.choice(self._edits)(out, others)
        return bytes(out[: self._max_len])

    def _at(self, out: bytearray, extra: int = 0) -> int:
        return self._rng.randrange(len(out) + extra) if len(out) + extra else 0

    def _flip_bit(self, out: bytearray, others: Sequence[bytes]) -> None:
        if out:
            out[self._at(out)] ^= 1 << self._rng.randrange(8)

    def _set_byte(self, out: bytearray, others: Sequence[bytes]) -> None:
        if out:
            out[self._at(out)] = self._rng.choice(_INTERESTING)

    def _insert_token(self, out: bytearray, others: Sequence[bytes]) -> None:
        at = self._at(out, 1)
        out[at:at] = self._rng.choice(self._tokens)

    def _write_token(self, out: bytearray, others: Sequence[bytes]) -> None:
        token = self._rng.choice(self._tokens)
        at = self._at(out, 1)
        out[at : at + len(token)] = token

    def _range(self, out: bytearray) -> tuple[int, int]:
        start = self._at(out)
        return start, min(len(out), start + self._rng.choice((1, 2, 4, 8, 32)))

    def _delete_range(self, out: bytearray, others: Sequence[bytes]) -> None:
        start, end = self._range(out)
        del out[start:end]

    def _duplicate_range(self, out: bytearray, others: Sequence[bytes]) -> None:
        start, end = self._range(out)
        at = self._at(out, 1)
        out[at:at] = out[start:end]

    def _insert_random(self, out: bytearray, others: Sequence[bytes]) -> None:
        at = self._at(out, 1)
        out[at:at] = self._rng.randbytes(self._rng.randint(1, 4))

    def _splice(self, out: bytearray, others: Sequence[bytes]) -> None:
        if others:
            other = self._rng.choice(others)
            cut = self._at(out, 1)
            out[cut:] = other[self._at(bytearray(other), 1) :]

    def _truncate(self, out: bytearray, others: Sequence[bytes]) -> None:
        del out[self._at(out, 1) :]


class Result(NamedTuple):
    """One harness's run: inputs run, seconds spent, and the failing input's file, if any."""

    runs: int
    seconds: float
    crash: Path | None


def fuzz_harness(
    name: str,
    run: Callable[[bytes], None],
    seeds: Sequence[bytes],
    *,
    tokens: Sequence[bytes],
    seconds: float,
    rng: random.Random,
    crash_dir: Path,
    max_len: int = 4096,
) -> Result:
    """Run every seed, then mutants of them until ``seconds`` have passed or one fails."""
    mutator = Mutator(rng, tokens, max_len)
    pool = list(seeds)
    started = time.monotonic()
    deadline = started + seconds
    runs = 0
    data = b""
    crash_dir.mkdir(parents=True, exist_ok=True)
    last = crash_dir / f"last-input-{name}"
    fd = os.open(last, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    def checked(data: bytes) -> None:
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        run(data)

    try:
        for data in seeds:
            checked(data)
            runs += 1
        while time.monotonic() < deadline:
            data = mutator.mutate(rng.choice(pool), pool)
            checked(data)
            runs += 1
            if rng.random() < 0.1:
                if len(pool) >= _POOL_LIMIT:
                    pool[rng.randrange(len(seeds), len(pool))] = data
                else:
                    pool.append(data)
    except Exception:  # noqa: BLE001 - every failure of the harness is a finding
        crash = crash_dir / f"crash-{name}-{hashlib.sha1(data).hexdigest()}"  # noqa: S324 - a name
        crash.write_bytes(data)
        sys.stderr.write(traceback.format_exc())
        sys.stderr.write(f"{name}: failure on input {data[:200]!r}\n  saved to {crash}\n")
        sys.stderr.write(f"  replay with: python -m fuzz replay {name} {crash}\n")
        return Result(runs, time.monotonic() - started, crash)
    finally:
        os.close(fd)
        last.unlink()
    return Result(runs, time.monotonic() - started, None)
