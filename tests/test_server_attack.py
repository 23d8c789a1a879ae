"""The attack runner's scenarios (``benchmarks/attack/``) at their short size: every defence holds.

Each scenario starts a daemon of its own (``serve`` as a subprocess on loopback ports, in the
test's temporary directory, its log in ``serve.log`` there) and stops by itself; its verdicts
check behaviour, never speed, and its deadlines have wide margins (they only matter when a
defence fails). The figures are printed (``pytest -s``), not checked.

A scenario that shows a known defect not fixed yet goes in ``KNOWN_DEFECTS``: it is expected to
fail, strictly, so that a fix makes it pass and the mark must go.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks.attack import SCENARIOS, SHORT, markdown, run_scenario

pytest.importorskip("websockets")

pytestmark = pytest.mark.slow

KNOWN_DEFECTS: dict[str, str] = {}  # scenario: the defect it shows, while one is known and not fixed


def _scenarios() -> list[object]:
    return [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=KNOWN_DEFECTS[name]))
        if name in KNOWN_DEFECTS
        else name
        for name in SCENARIOS
    ]


@pytest.mark.parametrize("name", _scenarios())
def test_the_daemon_withstands(name: str, tmp_path: Path) -> None:
    outcome = run_scenario(name, SHORT, work=tmp_path)
    print("\n" + markdown([outcome]))
    if outcome.skipped:
        pytest.skip(outcome.skipped)
    assert outcome.passed, "\n".join(outcome.failures)
