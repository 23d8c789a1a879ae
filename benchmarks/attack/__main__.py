"""``python -m benchmarks.attack [SCENARIO ...] [--short] [--to URL ...] [--json FILE]``: see the package."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
from pathlib import Path

from . import FULL, SCENARIOS, SHORT, markdown, run_scenario
from . import __doc__ as about
from .outcome import MAX_MESSAGE_SIZE


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios and print their table; the exit status is 1 when a verdict fails."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.attack",
        description=about.split("\n\n")[0] if about else None,
    )
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=f"default: all of {', '.join(SCENARIOS)}")
    parser.add_argument("--short", action="store_true", help="the test suite's sizes (seconds, not minutes)")
    parser.add_argument("--to", action="append", metavar="URL", help="a running daemon's tcp/unix/ws URL (repeatable)")
    parser.add_argument("--write-timeout", type=float, help="with --to: the daemon's write_timeout (default: 10)")
    parser.add_argument("--json", metavar="FILE", help="also write the outcomes here")
    args = parser.parse_args(argv)
    unknown = [name for name in args.scenarios if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {unknown[0]!r} (known: {', '.join(SCENARIOS)})")
    scale = SHORT if args.short else FULL
    if args.to or args.write_timeout:
        scale = dataclasses.replace(scale, write_timeout=args.write_timeout or 10.0)
    outcomes = [run_scenario(name, scale, to=args.to) for name in args.scenarios or SCENARIOS]
    print(markdown(outcomes))
    print()
    print(
        f"{'Short' if args.short else 'Full'} size; Python {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs; the daemon on the simulated camera, max_connections 32, "
        f"max_message_size {MAX_MESSAGE_SIZE}."
    )
    if args.json:
        result = {"scale": dataclasses.asdict(scale), "outcomes": [outcome.as_dict() for outcome in outcomes]}
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0 if all(outcome.passed for outcome in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
