"""``python -m fuzz``: the harnesses without libFuzzer (for atheris, see ``fuzz/run``).

Commands:

* ``list``: the harnesses and what each checks.
* ``corpus DIR [HARNESS ...]``: write the seed corpus to ``DIR/<harness>/``.
* ``mutate --seconds N [--harness NAME ...] [--seed S] [--crash-dir DIR]``: the plain mutator
  over the seeds and the dictionary, the time shared between the harnesses; exit 1 on a failure.
* ``replay HARNESS FILE ...``: run a harness on saved inputs (a reproducer); exit 1 on a failure.
* ``check-build DIR``: fail unless the C backend in use is the sanitized build in ``DIR``.

Scripts may print: this is the fuzzers' command line, not library code.
"""

from __future__ import annotations

import argparse
import random
import sys
import traceback
from pathlib import Path

__all__ = ["main"]

#: The plain mutator's default crash directory: in the scripts' work directory, ignored by git.
CRASH_DIR = Path(__file__).resolve().parent.parent / ".fuzz" / "crashes-mutate"


def _parser(names: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the harnesses")
    corpus = commands.add_parser("corpus", help="write the seed corpus")
    corpus.add_argument("directory", type=Path)
    corpus.add_argument("harnesses", nargs="*", metavar="HARNESS", help=f"default: all ({', '.join(names)})")
    mutate = commands.add_parser("mutate", help="the plain mutation fuzzer")
    mutate.add_argument("--seconds", type=float, default=60.0, help="time for all the harnesses together")
    mutate.add_argument("--harness", action="append", choices=names, help="one harness (repeatable; default all)")
    mutate.add_argument("--seed", type=int, help="random seed (default: a random one, printed)")
    mutate.add_argument(
        "--crash-dir", type=Path, default=CRASH_DIR, help="where a failing input goes (default: .fuzz/crashes-mutate)"
    )
    mutate.add_argument("--max-len", type=int, default=4096, help="longest input")
    replay = commands.add_parser("replay", help="run a harness on saved inputs")
    replay.add_argument("harness", choices=names)
    replay.add_argument("files", nargs="+", type=Path)
    check = commands.add_parser("check-build", help="fail unless the sanitized build is in use")
    check.add_argument("directory", type=Path)
    return parser


def main(argv: list[str] | None = None) -> int:
    from fuzz import corpus, dictionary, harnesses, mutate, sanitized  # noqa: PLC0415 - after argv checks

    names = list(harnesses.HARNESSES)
    parser = _parser(names)
    args = parser.parse_args(argv)
    if args.command == "corpus" and not set(args.harnesses) <= set(names):
        parser.error(f"unknown harness: {', '.join(sorted(set(args.harnesses) - set(names)))}")
    if args.command == "list":
        for harness in harnesses.HARNESSES.values():
            print(f"{harness.name:15} {harness.doc}")
        return 0
    if args.command == "corpus":
        for name, count in corpus.write(args.directory, args.harnesses or names).items():
            print(f"{name}: {count} seeds")
        return 0
    if args.command == "check-build":
        print(f"sanitized build in use: {sanitized.check(args.directory)}")
        return 0
    sanitized.require_from_env()
    harnesses.quiet_logs()
    if args.command == "replay":
        run = harnesses.HARNESSES[args.harness].run
        failed = 0
        for path in args.files:
            try:
                run(path.read_bytes())
            except Exception:  # noqa: BLE001 - reported
                failed += 1
                print(f"{path}: FAILED\n{traceback.format_exc()}")
            else:
                print(f"{path}: ok")
        return 1 if failed else 0
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    chosen = args.harness or names
    share = args.seconds / len(chosen)
    tokens = dictionary.load()
    print(f"mutate: seed {seed}, {share:.0f} s for each of {', '.join(chosen)}")
    rng = random.Random(seed)
    for name in chosen:
        result = mutate.fuzz_harness(
            name,
            harnesses.HARNESSES[name].run,
            corpus.seeds(name),
            tokens=tokens,
            seconds=share,
            rng=rng,
            crash_dir=args.crash_dir,
            max_len=args.max_len,
        )
        rate = result.runs / result.seconds if result.seconds else 0.0
        print(f"{name:15} {result.runs:8} runs in {result.seconds:5.1f} s ({rate:7.0f}/s)", flush=True)
        if result.crash is not None:
            print(f"mutate: FAILED in {name} (seed {seed}); input saved to {result.crash}")
            return 1
    print("mutate: no failure")
    return 0


if __name__ == "__main__":
    sys.exit(main())
