"""The compiled wire backend is much faster than its pure-Python twin, measured in one run.

Ratios, never absolute times (STYLE.md), from :func:`benchmarks.timing.measure`: interleaved
blocks, minimum over rounds, garbage collector off. A plain test, not a pytest-benchmark one, so
it runs in the normal suite. ``IOTVIDEO_SIGNALING_BENCH_SHORT=1`` (or ``CI=true``) makes it take
well under a few seconds.

Each ratio must hold twice over the corpus: for one pass over the whole corpus (total time,
where the 4 KiB command weighs most), and as the geometric mean of the per-message ratios (every
message weighs the same, so the small everyday commands count).
"""

from __future__ import annotations

import statistics

import pytest

from . import timing
from .contenders import c_backend_or_skip, contenders, short_mode
from .corpus import CORPUS

#: C ``parse_command`` against Python ``parse_command``.
PARSE_MIN_RATIO = 3.0
#: C ``decode_command`` (fused orjson) against Python ``parse_command`` + ``orjson.loads``.
DECODE_MIN_RATIO = 2.0

PAIRS = (
    # (what, slow, fast, minimum ratio)
    ("parse_command", "py", "c", PARSE_MIN_RATIO),
    ("fused decode", "py-split+orjson", "c-fused", DECODE_MIN_RATIO),
)


def _table(timings: timing.Timings) -> str:
    keys = [key for _, slow, fast, _ in PAIRS for key in (fast, slow)]
    lines = ["ns per call, best of rounds: " + "  ".join(f"{key:>16}" for key in keys)]
    lines += [
        f"{entry.name:>28}: " + "  ".join(f"{timings.best(k, entry.name):16.0f}" for k in keys) for entry in CORPUS
    ]
    return "\n".join(lines)


def test_c_backend_beats_python() -> None:
    wire_c = c_backend_or_skip()
    funcs = {c.key: c.func for c in contenders(wire_c)}
    for entry in CORPUS:  # never time a fast path that gives a different answer
        assert wire_c.parse_command(entry.raw) == funcs["py"](entry.raw), entry.name
        assert wire_c.decode_command(entry.raw) == funcs["py-split+orjson"](entry.raw), entry.name

    measured = timing.measure(
        {key: funcs[key] for _, slow, fast, _ in PAIRS for key in (fast, slow)},
        [(entry.name, entry.raw) for entry in CORPUS],
        timing.settings(short_mode()),
    )

    summary = []
    failures = []
    for what, slow, fast, minimum in PAIRS:
        total = measured.total_best(slow) / measured.total_best(fast)
        typical = statistics.geometric_mean(measured.per_message_ratios(slow, fast).values())
        summary.append(
            f"{what}: {fast} is {total:.1f}x faster than {slow} over the corpus, "
            f"{typical:.1f}x per message (geometric mean); required {minimum:.0f}x"
        )
        if total < minimum or typical < minimum:
            failures.append(what)
    report = "\n".join([*summary, _table(measured)])
    print(report)
    if failures:
        pytest.fail(f"too slow: {', '.join(failures)}\n{report}", pytrace=False)
