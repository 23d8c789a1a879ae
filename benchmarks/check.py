"""Check mode of the report: measure the performance budget, fail when a target is missed.

``python -m benchmarks.report --check`` measures every target of the performance budget
(DESIGN.md) :data:`MEASUREMENTS` times, prints one table, and exits 1 when a target is missed.
This is the only place the project asserts speed; the test suite asserts no timing.

* Speed targets are ratios between contenders timed interleaved in the same run
  (:mod:`benchmarks.timing`: blocks of calls, best of rounds, garbage collector off), so a machine
  that is uniformly slower meets them all the same. Each ratio is checked twice: over the corpus
  (one pass, each message at its best: the big messages weigh most) and per message (geometric
  mean of the per-message ratios: every message weighs the same).
* The import target is a ratio too: what ``import iotvideo_signaling`` costs over ``import
  orjson``, in times ``import typing`` (:mod:`benchmarks.import_cost`). One fresh interpreter
  imports orjson, then typing, then the package (which finds typing loaded); the package's cost
  is the sum of both, and the ratio that sum over typing's, the median of :data:`IMPORT_PROBES`
  interpreters. Both parts are timed in the same process a moment apart, so noise shared by them
  cancels. DESIGN.md's 10 ms was set where the package took 7-8 ms, which the same code measures
  as about 3.7 times typing; at most 4.5 times keeps that bound and its headroom without
  depending on how fast the machine is (docs/decisions.md).
* Noise from other processes only ever slows a contender down, and rarely the same way in three
  measurements taken apart, so each target is judged on its best measurement.

Before timing, each measurement checks that the contenders agree (the same commands, the same
result codes): a fast path that answers differently is never timed.
"""

from __future__ import annotations

import math
import platform
import statistics
from types import ModuleType
from typing import Callable, NamedTuple, Optional, Sequence, cast

import orjson

from . import import_cost, timing
from .contenders import contenders
from .corpus import CORPUS
from .device_contenders import DEVICE_CORPUS, device_contenders

__all__ = ["IMPORT_PROBES", "MEASUREMENTS", "TARGETS", "Measurement", "Target", "measure", "render", "run"]

#: How many times every target is measured; each is judged on its best.
MEASUREMENTS = 3
#: Fresh interpreters per import measurement (the median of their ratios counts).
IMPORT_PROBES = 20

WIRE_KEYS = ("c", "py", "c-fused", "py-split+orjson")


class Measurement(NamedTuple):
    """One measurement of everything the targets need."""

    wire: timing.Timings  # WIRE_KEYS on the corpus
    device: timing.Timings  # handle, floor, stdlib on the seed corpus
    imports: tuple[tuple[float, float], ...]  # per probe: ms of import_cost.REFERENCE, then of the rest

    @property
    def import_ratio(self) -> float:
        """The package's whole import over the reference's, the median over the probes."""
        return statistics.median((reference + rest) / reference for reference, rest in self.imports)

    @property
    def import_ms(self) -> tuple[float, float]:
        """The median times of the reference's import and of the package's whole import, in ms."""
        return (
            statistics.median(reference for reference, _ in self.imports),
            statistics.median(reference + rest for reference, rest in self.imports),
        )


class Target(NamedTuple):
    """One line of the budget: ``value(measurement)`` must be ``>=`` or ``<=`` ``limit``.

    Attributes:
        label: what the table prints (markdown).
        op: ``">="`` or ``"<="``.
        limit: the bound.
        unit: ``"x"`` (a ratio) or ``" ms"``.
        value: what a measurement gives.
        aim: the design's aim, when it is stricter than the hard limit (printed, not checked).
    """

    label: str
    op: str
    limit: float
    unit: str
    value: Callable[[Measurement], float]
    aim: Optional[float] = None

    def met(self, value: float) -> bool:
        """Whether ``value`` is within the target."""
        return self.within(value, self.limit)

    def within(self, value: float, bound: float) -> bool:
        """Whether ``value`` is on the right side of ``bound``."""
        return value >= bound if self.op == ">=" else value <= bound

    def best(self, values: Sequence[float]) -> float:
        """The most favourable of ``values``."""
        return max(values) if self.op == ">=" else min(values)

    def show(self, value: float) -> str:
        """``value`` with this target's unit."""
        return f"{value:.2f}{self.unit}"


def _over_corpus(part: str, slow: str, fast: str) -> Callable[[Measurement], float]:
    def ratio(m: Measurement) -> float:
        timings: timing.Timings = getattr(m, part)
        return timings.total_best(slow) / timings.total_best(fast)

    return ratio


def _per_message(part: str, slow: str, fast: str) -> Callable[[Measurement], float]:
    def ratio(m: Measurement) -> float:
        timings: timing.Timings = getattr(m, part)
        return statistics.geometric_mean(timings.per_message_ratios(slow, fast).values())

    return ratio


def _pair(
    label: str, op: str, limit: float, *, part: str, slow: str, fast: str, aim: Optional[float] = None
) -> list[Target]:
    """``label`` over the corpus and per message, as the ratio ``slow ÷ fast``."""
    return [
        Target(f"{label}, over the corpus", op, limit, "x", _over_corpus(part, slow, fast), aim),
        Target(f"{label}, per message", op, limit, "x", _per_message(part, slow, fast), aim),
    ]


#: The budget, in the order of the table.
TARGETS: tuple[Target, ...] = (
    *_pair("Python `parse_command` ÷ C `parse_command`", ">=", 3.0, part="wire", slow="py", fast="c"),
    *_pair(
        "Python `parse_command` + `orjson.loads` ÷ C `decode_command`",
        ">=",
        2.0,
        part="wire",
        slow="py-split+orjson",
        fast="c-fused",
    ),
    *_pair("`Device.handle` ÷ floor", "<=", 2.5, part="device", slow="handle", fast="floor", aim=2.0),
    # 5x needs handle <= ceiling / 5 of the floor, where the ceiling (stdlib ÷ floor) depends on the
    # machine: ~8.3x when first measured (1.65x the floor, stricter than its own aim of 2.0x; the
    # request layer is Python on purpose, docs/decisions.md), ~10.5x later. 3.5x guards regressions.
    *_pair("stdlib reference ÷ `Device.handle`", ">=", 3.5, part="device", slow="stdlib", fast="handle", aim=5.0),
    Target(
        "`import iotvideo_signaling` ÷ `import typing`, each over `import orjson`",
        "<=",
        4.5,
        "x",
        lambda m: m.import_ratio,
    ),
)


def _agree_wire(wire_c: ModuleType, funcs: dict[str, Callable[[bytes], object]]) -> None:
    for entry in CORPUS:
        if wire_c.parse_command(entry.raw) != funcs["py"](entry.raw):
            raise RuntimeError(f"C and Python parse_command disagree on {entry.name}")
        if wire_c.decode_command(entry.raw) != funcs["py-split+orjson"](entry.raw):
            raise RuntimeError(f"C decode_command and Python parse_command + orjson disagree on {entry.name}")


def _agree_device(funcs: dict[str, Callable[[bytes], object]]) -> None:
    for entry in DEVICE_CORPUS:
        results = {key: orjson.loads(cast(bytes, func(entry.raw)))["result"] for key, func in funcs.items()}
        if results["handle"] != results["stdlib"] or results["floor"] != "0":
            raise RuntimeError(f"the device contenders take different paths on {entry.name}: {results}")


def measure(wire_c: ModuleType, settings: timing.Settings, import_probes: int = IMPORT_PROBES) -> Measurement:
    """One measurement: the wire contenders, the device contenders, then the import."""
    funcs = {c.key: c.func for c in contenders(wire_c) if c.key in WIRE_KEYS}
    _agree_wire(wire_c, funcs)
    wire = timing.measure(funcs, [(e.name, e.raw) for e in CORPUS], settings)
    with device_contenders(wire_c) as found:
        device_funcs = {c.key: c.func for c in found}
        _agree_device(device_funcs)
        device = timing.measure(device_funcs, [(e.name, e.raw) for e in DEVICE_CORPUS], settings)
    import_cost.probe()  # writes the bytecode caches if this checkout has none yet
    imports = []
    for _ in range(import_probes):
        reference, rest = import_cost.probe(import_cost.REFERENCE, import_cost.PACKAGE).ms
        imports.append((reference, rest))
    return Measurement(wire, device, tuple(imports))


def render(measurements: Sequence[Measurement], targets: Sequence[Target] = TARGETS) -> tuple[str, int]:
    """The markdown table of ``measurements`` against ``targets``, and how many targets were missed."""
    runs = len(measurements)
    lines = [
        "| target | required | " + " | ".join(f"run {i + 1}" for i in range(runs)) + " | best | |",
        "|---|---|" + "--:|" * (runs + 1) + "---|",
    ]
    missed = 0
    for target in targets:
        values = [target.value(m) for m in measurements]
        best = target.best(values)
        ok = target.met(best) and math.isfinite(best)
        missed += not ok
        required = f"{'≥' if target.op == '>=' else '≤'} {target.show(target.limit)}"
        if target.aim is not None:
            required += f" (aim {target.show(target.aim)})"
        cells = " | ".join(target.show(v) for v in values)
        verdict = "ok" if ok else "**MISSED**"
        if ok and target.aim is not None and not target.within(best, target.aim):
            verdict = "ok (aim not reached)"
        lines.append(f"| {target.label} | {required} | {cells} | {target.show(best)} | {verdict} |")
    return "\n".join(lines), missed


def run(wire_c: ModuleType, *, settings: timing.Settings = timing.FULL, measurements: int = MEASUREMENTS) -> int:
    """Measure, print the table and a verdict; 0 when every target is met, else 1."""
    taken = [measure(wire_c, settings) for _ in range(measurements)]
    table, missed = render(taken)
    print(table)
    print()
    best = min(taken, key=lambda m: m.import_ratio)
    typing_ms, package_ms = best.import_ms
    print(
        f"Best of {measurements} measurements; each times the contenders interleaved, {settings.rounds} rounds "
        f"per message (best round), the imports in {IMPORT_PROBES} fresh interpreters (median; in the best: "
        f"typing {typing_ms:.2f} ms, the package {package_ms:.2f} ms with it). "
        f"Python {platform.python_version()}, orjson {orjson.__version__}, {platform.machine()}."
    )
    if missed:
        print(f"\nFAILED: {missed} of {len(TARGETS)} targets missed in all {measurements} measurements.")
        return 1
    print(f"\nOK: all {len(TARGETS)} targets met.")
    return 0
