"""The attack runner's scenarios (``benchmarks/attack/``) at their short size: every defence holds.

Each scenario starts a daemon of its own (``serve`` as a subprocess on loopback ports, in the
test's temporary directory, its log in ``serve.log`` there) and stops by itself; its verdicts
check behaviour, never speed, and its deadlines have wide margins (they only matter when a
defence fails). The figures are printed (``pytest -s``), not checked.

One scenario shows a defect found by these attacks and not fixed yet; it is expected to fail,
strictly, so that a fix makes it pass and the mark must go.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks.attack import SCENARIOS, SHORT, markdown, run_scenario

pytest.importorskip("websockets")

pytestmark = pytest.mark.slow

KNOWN_DEFECTS = {
    "ws-burst": (
        "connections to a ws:// listener that never send their handshake are not bounded (each holds "
        "a file for websockets' open_timeout): past the daemon's file limit no listener accepts, and "
        "asyncio logs every failed accept with its traceback"
    ),
}


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
