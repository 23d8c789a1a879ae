"""Check mode of the report: measure the performance budget, fail when a target is missed.

``python -m benchmarks.report --check`` measures every target of the performance budget
(DESIGN.md) :data:`MEASUREMENTS` times, prints one table, and exits 1 when a target is missed.
This is the only place the project asserts speed; the test suite asserts no timing.

* Speed targets are ratios between contenders timed interleaved in the same run
  (:mod:`benchmarks.timing`: blocks of calls, best of rounds, garbage collector off), so a machine
  that is uniformly slower meets them all the same. Each ratio is checked twice: over the corpus
  (one pass, each message at its best: the big messages weigh most) and per message (geometric
  mean of the per-message ratios: every message weighs the same).
* The import target is a time: ``import iotvideo_signaling`` after ``import orjson``, in fresh
  interpreters (:mod:`benchmarks.import_cost`), the fastest of :data:`IMPORT_PROBES`.
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
#: Fresh interpreters per import measurement (the fastest counts).
IMPORT_PROBES = 10

WIRE_KEYS = ("c", "py", "c-fused", "py-split+orjson")


class Measurement(NamedTuple):
    """One measurement of everything the targets need."""

    wire: timing.Timings  # WIRE_KEYS on the corpus
    device: timing.Timings  # handle, floor, stdlib on the seed corpus
    import_ms: float


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
    # 5x needs handle <= ceiling / 5 of the floor, and the ceiling (stdlib ÷ floor) is ~8.3x here:
    # about 1.65x the floor, stricter than the floor's own aim of 2.0x (the request layer is Python
    # on purpose, docs/decisions.md). The floor's hard 2.5x means ~3.3x; 3.5x guards regressions.
    *_pair("stdlib reference ÷ `Device.handle`", ">=", 3.5, part="device", slow="stdlib", fast="handle", aim=5.0),
    Target("`import iotvideo_signaling` over `import orjson`", "<=", 10.0, " ms", lambda m: m.import_ms),
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
    import_ms = min(import_cost.probe().ms for _ in range(import_probes))
    return Measurement(wire, device, import_ms)


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
    print(
        f"Best of {measurements} measurements; each times the contenders interleaved, {settings.rounds} rounds "
        f"per message (best round), the import in {IMPORT_PROBES} fresh interpreters (fastest). "
        f"Python {platform.python_version()}, orjson {orjson.__version__}, {platform.machine()}."
    )
    if missed:
        print(f"\nFAILED: {missed} of {len(TARGETS)} targets missed in all {measurements} measurements.")
        return 1
    print(f"\nOK: all {len(TARGETS)} targets met.")
    return 0
