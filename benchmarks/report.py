"""Print the README's speed tables (markdown), or check the budget: ``python -m benchmarks.report``.

``[--device] [--short] [--per-message] [--profile]`` print tables; ``--check`` measures the
performance budget and exits 1 when a target is missed (:mod:`benchmarks.check`); ``--bridge``
measures the SDK bridge end to end, from a C harness through the daemon (:mod:`benchmarks.bridge`);
``--attack`` runs the attacks on the daemon, with their verdicts and figures, and exits 1 when a
verdict fails (:mod:`benchmarks.attack`).

Wire layer (default): for each contender, the median µs per message over the corpus (each
message's own time is the median over rounds, then the median over the messages), the mean µs per
message (one pass over the corpus divided by its size, dominated by the 4 KiB and signed-URL
commands), and how many times faster than the stdlib reference each one is.

Device (``--device``): ``Device.handle``, the floor and the stdlib reference on the seed corpus
(the panel's nine requests) with a do-nothing camera, background jobs inline (see
:mod:`benchmarks.device_contenders`): median and mean µs per message, how many times faster than
the stdlib reference, how many times the floor; then the ratios the check mode checks (best of
rounds); then the two background topics with a real one-thread pool (µs from call to reply, median of
single calls). ``--profile`` adds cProfile's top functions of ``handle`` and the floor over the
corpus (the compiled decode runs inside ``handle``'s own time: cProfile does not see Cython calls).

Measured with :mod:`benchmarks.timing`, all contenders interleaved in one run; ``--short`` (or
``IOTVIDEO_SIGNALING_BENCH_SHORT``/``CI``) measures less.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import platform
import pstats
import statistics
import sys
from typing import Callable, Optional, Sequence

import orjson

from . import check, timing
from .contenders import c_backend, contenders, short_mode
from .corpus import CORPUS
from .device_contenders import (
    BACKGROUND_TOPICS,
    DEVICE_CORPUS,
    LABELS,
    device_contenders,
    measure_pooled,
    pooled_contenders,
)

_JOBS = {"parse": "parse", "decode": "parse + decode"}


def _us(ns: float) -> str:
    return f"{ns / 1000:.2f}"


def render(measured: timing.Timings, labels: dict[str, str], jobs: dict[str, str], per_message: bool) -> str:
    """The markdown tables of a measurement (contender keys in ``labels`` order, ``stdlib`` last)."""
    names = [entry.name for entry in CORPUS]
    typical = {key: [measured.typical(key, name) for name in names] for key in labels}
    median = {key: statistics.median(values) for key, values in typical.items()}
    mean = {key: statistics.fmean(values) for key, values in typical.items()}
    lines = [
        "| contender | job | median µs/msg | mean µs/msg | vs stdlib (median) | vs stdlib (mean) |",
        "|---|---|--:|--:|--:|--:|",
    ]
    for key, label in labels.items():
        lines.append(
            f"| {label} | {_JOBS[jobs[key]]} | {_us(median[key])} | {_us(mean[key])} "
            f"| {median['stdlib'] / median[key]:.1f}x | {mean['stdlib'] / mean[key]:.1f}x |"
        )
    if per_message:
        lines += ["", "| message | bytes | " + " | ".join(labels.values()) + " |", "|---|--:|" + "--:|" * len(labels)]
        for i, entry in enumerate(CORPUS):
            cells = " | ".join(_us(typical[key][i]) for key in labels)
            lines.append(f"| `{entry.name}` | {len(entry.raw)} | {cells} |")
    return "\n".join(lines)


def render_device(measured: timing.Timings, pooled: timing.Timings, per_message: bool) -> str:
    """The markdown tables of a device measurement (``handle``, ``floor``, ``stdlib``) and the pooled one."""
    names = [entry.name for entry in DEVICE_CORPUS]
    keys = list(LABELS)
    typical = {key: [measured.typical(key, name) for name in names] for key in keys}
    median = {key: statistics.median(values) for key, values in typical.items()}
    mean = {key: statistics.fmean(values) for key, values in typical.items()}
    lines = [
        "| contender | median µs/msg | mean µs/msg | vs stdlib (median) | vs stdlib (mean) "
        "| of floor (median) | of floor (mean) |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for key in keys:
        lines.append(
            f"| {LABELS[key]} | {_us(median[key])} | {_us(mean[key])} "
            f"| {median['stdlib'] / median[key]:.1f}x | {mean['stdlib'] / mean[key]:.1f}x "
            f"| {median[key] / median['floor']:.2f}x | {mean[key] / mean['floor']:.2f}x |"
        )

    def best_ratios(slow: str, fast: str) -> str:
        total = measured.total_best(slow) / measured.total_best(fast)
        geo = statistics.geometric_mean(measured.per_message_ratios(slow, fast).values())
        return f"{total:.2f}x over the corpus, {geo:.2f}x per message (geometric mean)"

    lines += [
        "",
        "Best of rounds (what `--check` checks, against the targets in its table): "
        f"stdlib ÷ handle {best_ratios('stdlib', 'handle')}; "
        f"handle ÷ floor {best_ratios('handle', 'floor')}; "
        f"ceiling stdlib ÷ floor {best_ratios('stdlib', 'floor')}.",
    ]
    if per_message:
        lines += [
            "",
            "| message | bytes | "
            + " | ".join(f"`{key}` µs" for key in keys)
            + " | handle ÷ floor | stdlib ÷ handle |",
            "|---|--:|" + "--:|" * (len(keys) + 2),
        ]
        for i, entry in enumerate(DEVICE_CORPUS):
            cells = " | ".join(_us(typical[key][i]) for key in keys)
            handle, floor, stdlib = (typical[key][i] for key in keys)
            lines.append(
                f"| `{entry.name}` | {len(entry.raw)} | {cells} | {handle / floor:.2f} | {stdlib / handle:.1f} |"
            )
    lines += [
        "",
        "Background topics, µs from call to reply (median of single calls): jobs inline (as above) "
        "against a real one-thread pool (drained between calls, untimed):",
        "",
        "| message | " + " | ".join(f"`{key}` inline | `{key}` pool" for key in keys) + " | handle ÷ floor (pool) "
        "| stdlib ÷ handle (pool) |",
        "|---|" + "--:|" * (2 * len(keys) + 2),
    ]
    for name in BACKGROUND_TOPICS:
        pool = {key: pooled.typical(key, name) for key in keys}
        cells = " | ".join(f"{_us(measured.typical(key, name))} | {_us(pool[key])}" for key in keys)
        lines.append(
            f"| `{name}` | {cells} | {pool['handle'] / pool['floor']:.2f} | {pool['stdlib'] / pool['handle']:.1f} |"
        )
    return "\n".join(lines)


def profile(funcs: dict[str, Callable[[bytes], object]], passes: int, top: int = 15) -> str:
    """cProfile's ``top`` functions by own time, per contender, over ``passes`` passes of the corpus."""
    raws = [entry.raw for entry in DEVICE_CORPUS]
    parts = []
    for key, func in funcs.items():
        for raw in raws:  # warm up: lazy set-up is not what we look for
            func(raw)
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(passes):
            for raw in raws:
                func(raw)
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime").print_stats(top)
        text = out.getvalue()
        body = text[text.index("ncalls") :] if "ncalls" in text else text
        parts.append(f"### `{key}`: {passes} passes over {len(raws)} messages\n\n```\n{body.strip()}\n```")
    return "\n\n".join(parts)


def _device(args: argparse.Namespace) -> int:
    wire_c, why = c_backend()
    if wire_c is None:
        print(f"error: {why}; the floor needs the compiled wire backend", file=sys.stderr)
        return 1
    short = args.short or short_mode()
    settings = timing.settings(short)
    messages = [(e.name, e.raw) for e in DEVICE_CORPUS]
    with device_contenders(wire_c) as found:
        funcs = {c.key: c.func for c in found}
        measured = timing.measure(funcs, messages, settings)
        profiled = profile({key: funcs[key] for key in ("handle", "floor")}, 2000) if args.profile else ""
    with pooled_contenders(wire_c) as pooled_found:
        calls = 300 if short else 2000
        pooled = measure_pooled(pooled_found, [m for m in messages if m[0] in BACKGROUND_TOPICS], calls)

    print(render_device(measured, pooled, args.per_message))
    print()
    print(
        f"Seed corpus: the panel's {len(DEVICE_CORPUS)} requests, compact "
        f"({', '.join(e.name for e in DEVICE_CORPUS)}); "
        f"do-nothing hardware; visitor None. Each time is the median of {settings.rounds} interleaved rounds "
        f"(pool: of {calls} single calls). Python {platform.python_version()}, orjson {orjson.__version__}, "
        f"{platform.machine()}."
    )
    if profiled:
        print()
        print(profiled)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.report",
        description="Print the speed tables of the wire layer or the device (markdown).",
    )
    parser.add_argument(
        "--device", action="store_true", help="request handling: Device.handle, floor, stdlib reference"
    )
    parser.add_argument("--short", action="store_true", help="fewer, shorter rounds (also: env var or CI)")
    parser.add_argument("--per-message", action="store_true", help="add a table of µs per message")
    parser.add_argument("--profile", action="store_true", help="with --device: add cProfile of handle and the floor")
    parser.add_argument(
        "--bridge", action="store_true", help="the SDK bridge: C harness -> daemon round trip, and the daemon's memory"
    )
    parser.add_argument(
        "--attack", action="store_true", help="the daemon under attack: slowloris, bursts, oversize, non-readers, ..."
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="measure the performance budget (best of 3) and exit 1 when a target is missed; always in full",
    )
    args = parser.parse_args(argv)
    if args.check:
        if args.device or args.profile or args.per_message:
            parser.error("--check prints its own table; it takes no other option")
        wire_c, why = c_backend()
        if wire_c is None:
            print(f"error: {why}; the budget is that of the compiled wire backend", file=sys.stderr)
            return 1
        try:
            return check.run(wire_c)
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    if args.bridge:
        from . import bridge

        try:
            print(bridge.render(bridge.measure(commands=20_000 if args.short or short_mode() else 100_000)))
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.attack:
        from .attack.__main__ import main as attack

        return attack(["--short"] if args.short or short_mode() else [])
    if args.device:
        return _device(args)
    if args.profile:
        parser.error("--profile needs --device")

    wire_c, why = c_backend()
    if wire_c is None:
        print(f"note: {why}; only the Python contenders are measured", file=sys.stderr)
    found = contenders(wire_c)
    settings = timing.settings(args.short or short_mode())
    measured = timing.measure({c.key: c.func for c in found}, [(e.name, e.raw) for e in CORPUS], settings)

    print(render(measured, {c.key: c.label for c in found}, {c.key: c.job for c in found}, args.per_message))
    print()
    print(
        f"Corpus: {len(CORPUS)} messages ({', '.join(e.name for e in CORPUS)}). "
        f"Each time is the median of {settings.rounds} interleaved rounds. "
        f"Python {platform.python_version()}, orjson {orjson.__version__}, {platform.machine()}."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
