"""Robust relative timing on a shared, noisy machine, without pytest-benchmark.

Theory of operation: noise from other processes only ever *adds* time, and it comes in bursts
(a time slice lost, a cache flushed). So:

* every measurement is a short block of many calls timed with ``time.perf_counter_ns`` (a block
  is ``block_ns`` long, about a millisecond: long against the timer, short against a time slice);
* the contenders are interleaved: in each round, for each message, every contender runs one block
  back to back, in an order that alternates between rounds, so drift (CPU frequency, a neighbour
  starting) hits all of them alike;
* the statistics are taken per (contender, message) over the rounds: the minimum estimates the
  undisturbed cost (what ratios are computed from), the median the typical one (what a report shows);
* the garbage collector is off while timing (as in :mod:`timeit`), and one warm-up round is thrown away.

Short mode (:func:`benchmarks.contenders.short_mode`) keeps the same design with fewer, shorter
rounds.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from itertools import repeat
from typing import Callable, Mapping, NamedTuple, Sequence

__all__ = ["Settings", "Timings", "measure", "settings"]


class Settings(NamedTuple):
    """How long to measure: ``rounds`` kept rounds of blocks of about ``block_ns`` each."""

    rounds: int
    block_ns: int


FULL = Settings(rounds=25, block_ns=2_000_000)
SHORT = Settings(rounds=7, block_ns=500_000)


def settings(short: bool) -> Settings:
    """The full or the short :class:`Settings`."""
    return SHORT if short else FULL


class Timings(NamedTuple):
    """Nanoseconds per call: ``samples[contender][message]`` holds one value per round."""

    samples: dict[str, dict[str, list[float]]]

    def best(self, contender: str, message: str) -> float:
        """The fastest round: the undisturbed cost of one call."""
        return min(self.samples[contender][message])

    def typical(self, contender: str, message: str) -> float:
        """The median round."""
        return statistics.median(self.samples[contender][message])

    def total_best(self, contender: str) -> float:
        """One pass over every message, each at its best."""
        return math.fsum(self.best(contender, m) for m in self.samples[contender])

    def per_message_ratios(self, slow: str, fast: str) -> dict[str, float]:
        """How many times faster ``fast`` is than ``slow`` on each message (best against best)."""
        return {m: self.best(slow, m) / self.best(fast, m) for m in self.samples[fast]}


def _block(func: Callable[[bytes], object], raw: bytes, loops: int) -> int:
    start = time.perf_counter_ns()
    for _ in repeat(None, loops):
        func(raw)
    return time.perf_counter_ns() - start


def _calibrate(func: Callable[[bytes], object], raw: bytes, block_ns: int) -> int:
    """Loops per block: grow until a block takes a tenth of ``block_ns``, then scale up."""
    loops = 1
    while True:
        elapsed = min(_block(func, raw, loops) for _ in range(3))
        if elapsed * 10 >= block_ns or loops >= 1 << 24:
            return max(1, round(loops * block_ns / max(elapsed, 1)))
        loops *= 4


def measure(
    contenders: Mapping[str, Callable[[bytes], object]],
    messages: Sequence[tuple[str, bytes]],
    settings: Settings,
) -> Timings:
    """Time every contender on every message, interleaved; see the module docstring.

    Args:
        contenders: name -> callable taking one raw message.
        messages: ``(name, raw)`` pairs; every contender must accept every message.
        settings: rounds and block length.
    """
    names = list(contenders)
    samples: dict[str, dict[str, list[float]]] = {c: {m: [] for m, _ in messages} for c in names}
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        loops = {(c, m): _calibrate(contenders[c], raw, settings.block_ns) for c in names for m, raw in messages}
        for round_no in range(-1, settings.rounds):  # round -1 warms up and is not kept
            order = names if round_no % 2 == 0 else names[::-1]
            for m, raw in messages:
                for c in order:
                    n = loops[c, m]
                    elapsed = _block(contenders[c], raw, n)
                    if round_no >= 0:
                        samples[c][m].append(elapsed / n)
    finally:
        if gc_was_enabled:
            gc.enable()
    return Timings(samples)
