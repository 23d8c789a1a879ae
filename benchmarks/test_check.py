"""The check mode and the report run, and judge what they measure correctly; no speed is asserted here.

The judging is tested on made-up measurements (so the verdicts are known); the real measurement
runs once with the shortest settings, and only its table is looked at, not its verdict: how fast
the code is on this machine under this load is for ``python -m benchmarks.report --check`` to say.
"""

from __future__ import annotations

from types import ModuleType

import pytest

from . import check, import_cost, report, timing
from .contenders import contenders
from .corpus import CORPUS
from .device_contenders import DEVICE_CORPUS

TINY = timing.Settings(rounds=1, block_ns=20_000)


def _timings(ns: dict[str, float], names: tuple[str, ...]) -> timing.Timings:
    """Every contender in ``ns`` takes its time on every message of ``names``, in every round."""
    return timing.Timings({key: {name: [value, value * 1.5] for name in names} for key, value in ns.items()})


def _made_up(parse: float, decode: float, floor: float, stdlib: float, imports: float) -> check.Measurement:
    """A measurement where each target's ratio is the given one (``imports``: the package in typing imports)."""
    wire = _timings(
        {"c": 100.0, "py": 100.0 * parse, "c-fused": 200.0, "py-split+orjson": 200.0 * decode},
        tuple(e.name for e in CORPUS),
    )
    device = _timings(
        {"floor": 1000.0, "handle": 1000.0 * floor, "stdlib": 1000.0 * floor * stdlib},
        tuple(e.name for e in DEVICE_CORPUS),
    )
    return check.Measurement(wire, device, ((4.0, 4.0 * (imports - 1)), (5.0, 5.0 * (imports - 1)), (9.0, 1.0)))


def _verdicts(table: str) -> dict[str, str]:
    rows = [line.split(" | ") for line in table.splitlines()[2:]]
    return {row[0].lstrip("| "): row[-1].rstrip(" |") for row in rows}


def test_every_target_met() -> None:
    table, missed = check.render([_made_up(parse=4, decode=3, floor=1.9, stdlib=6, imports=3.6)])
    assert missed == 0
    assert set(_verdicts(table).values()) == {"ok"}
    assert len(_verdicts(table)) == len(check.TARGETS)


def test_each_target_judged_on_its_best_measurement() -> None:
    measurements = [
        _made_up(parse=2.5, decode=3, floor=2.7, stdlib=3.2, imports=4.9),
        _made_up(parse=3.5, decode=1.5, floor=2.2, stdlib=3.1, imports=4.2),
        _made_up(parse=2.9, decode=1.9, floor=2.6, stdlib=3.4, imports=4.6),
    ]
    table, missed = check.render(measurements)
    verdicts = _verdicts(table)
    assert missed == 2  # stdlib ÷ handle, over the corpus and per message: 3.4x at best
    assert [label for label, verdict in verdicts.items() if verdict == "**MISSED**"] == [
        "stdlib reference ÷ `Device.handle`, over the corpus",
        "stdlib reference ÷ `Device.handle`, per message",
    ]
    assert "| 3.40x | **MISSED** |" in table
    assert "| 4.90x | 4.20x | 4.60x | 4.20x | ok |" in table  # the best import ratio counts


def test_limits_are_the_design_budget() -> None:
    limits = {(target.op, target.limit) for target in check.TARGETS}
    assert limits == {(">=", 3.0), (">=", 2.0), ("<=", 2.5), (">=", 3.5), ("<=", 4.5)}
    aims = {target.label.split(",")[0]: target.aim for target in check.TARGETS if target.aim is not None}
    assert aims == {"`Device.handle` ÷ floor": 2.0, "stdlib reference ÷ `Device.handle`": 5.0}


def test_compiled_and_python_contenders_agree(wire_c: ModuleType) -> None:
    """The ratios compare like with like: the same commands from the same bytes."""
    funcs = {c.key: c.func for c in contenders(wire_c)}
    for entry in CORPUS:
        assert funcs["c"](entry.raw) == funcs["py"](entry.raw), entry.name
        assert funcs["c-fused"](entry.raw) == funcs["py-split+orjson"](entry.raw), entry.name


def test_check_measures_every_target(wire_c: ModuleType) -> None:
    measured = check.measure(wire_c, TINY, import_probes=1)
    assert len(measured.imports) == 1 and min(measured.imports[0]) > 0
    table, missed = check.render([measured])
    assert list(_verdicts(table)) == [target.label for target in check.TARGETS]
    assert 0 <= missed <= len(check.TARGETS)


@pytest.mark.parametrize("args", [["--short"], ["--device", "--short"]], ids=["wire", "device"])
def test_report_prints_its_tables(wire_c: ModuleType, capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    assert report.main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("| contender |")
    assert "stdlib reference" in out


def test_check_takes_no_other_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        report.main(["--check", "--device"])
    assert exited.value.code == 2
    assert "--check prints its own table" in capsys.readouterr().err


def test_a_target_met_short_of_its_aim_says_so() -> None:
    table, missed = check.render([_made_up(parse=4, decode=3, floor=2.2, stdlib=4.5, imports=3.6)])
    verdicts = _verdicts(table)
    assert missed == 0
    assert verdicts["`Device.handle` ÷ floor, over the corpus"] == "ok (aim not reached)"
    assert verdicts["stdlib reference ÷ `Device.handle`, per message"] == "ok (aim not reached)"
    assert verdicts["Python `parse_command` ÷ C `parse_command`, per message"] == "ok"


def test_the_import_yardstick_is_typing_alone() -> None:
    """The reference probe imports what its name says and nothing of this package."""
    modules = import_cost.probe(import_cost.REFERENCE).modules
    assert "typing" in modules
    assert not [m for m in modules if m.startswith(import_cost.PACKAGE)]
