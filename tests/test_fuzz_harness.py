"""The fuzz harnesses run in the normal suite, without libFuzzer, so they cannot rot.

Every harness of ``fuzz/`` runs over a sample of its seed corpus and over mutants of it; the
comparison they share with the differential tests must catch a backend that differs; the
dictionary must be valid libFuzzer syntax; and under ``fuzz/sanitize-gcc`` (which names its build
in ``IOTVIDEO_SIGNALING_FUZZ_BUILD``) the kernel in use must be the sanitized one.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fuzz import corpus, dictionary, harnesses, sanitized
from fuzz.differential import Mismatch, assert_same, assert_same_loads
from fuzz.mutate import Mutator

from iotvideo_signaling import Command

#: Seeds per harness in this test (the corpus has hundreds); spread over the whole corpus.
SAMPLE = 100
MUTANTS = 100


def _sample(seeds: list[bytes]) -> list[bytes]:
    return seeds[:: max(1, len(seeds) // SAMPLE)]


@pytest.mark.parametrize("name", list(harnesses.HARNESSES))
def test_harness_passes_on_seeds_and_mutants(name: str, c_backend: ModuleType) -> None:
    run = harnesses.HARNESSES[name].run
    seeds = corpus.seeds(name)
    for seed in _sample(seeds):
        run(seed)
    rng = random.Random(14)
    mutator = Mutator(rng, dictionary.load(), max_len=4096)
    for _ in range(MUTANTS):
        run(mutator.mutate(rng.choice(seeds), seeds))


def test_every_harness_has_seeds() -> None:
    counts = {name: len(corpus.seeds(name)) for name in harnesses.HARNESSES}
    assert all(count >= 100 for count in counts.values()), counts
    for name in harnesses.HARNESSES:
        assert all(len(seed) <= corpus.MAX_SEED for seed in corpus.seeds(name))


def test_the_corpus_holds_the_documents_examples_and_the_vector_files() -> None:
    commands = corpus.seeds("parse_command")
    assert b'action=user_define&channel=0&cmd={\n    "topic": "get_status"' in b"\n".join(commands)
    json_files = list((corpus.DATA / "jsontestsuite" / "test_parsing").glob("[yn]_*.json"))
    assert len(corpus.seeds("loads")) >= len({path.read_bytes() for path in json_files})
    assert all(stream.startswith(b"\0\0\0\4\1\1") for stream in corpus.seeds("bridge"))  # a HELLO first


def test_write_names_each_seed_by_its_sha1(tmp_path: Path) -> None:
    counts = corpus.write(tmp_path, ["loads"])
    files = list((tmp_path / "loads").iterdir())
    assert counts == {"loads": len(files)}
    assert all(len(path.name) == 40 for path in files)


class _Differs:
    """A "C backend" that parts from the Python one on one input, only when it comes as a bytearray."""

    def __init__(self, real: ModuleType) -> None:
        self._real = real

    def parse_command(self, raw: Any, /, **options: Any) -> Any:
        if isinstance(raw, bytearray) and raw == b"action=user_define&cmd=x":
            return Command("user_define", 1, "x", None, ())
        return self._real.parse_command(raw, **options)

    def loads(self, payload: Any, offset: int = 0) -> Any:
        return self._real.loads(payload, offset) if payload != b"[1]" else [2]


def test_the_shared_comparison_catches_a_difference(py_backend: ModuleType) -> None:
    fake: Any = _Differs(py_backend)
    assert_same(py_backend, fake, b"action=user_define&cmd=y", entry_points=("parse_command",))
    with pytest.raises(Mismatch, match=r"parse_command\(bytearray"):
        assert_same(py_backend, fake, b"action=user_define&cmd=x", entry_points=("parse_command",))
    with pytest.raises(Mismatch, match="loads"):
        assert_same_loads(py_backend, fake, b"[1]")


def test_the_dictionary_is_valid_libfuzzer_syntax() -> None:
    values = dictionary.load()
    assert len(values) >= 100
    assert len(set(values)) == len(values), "duplicate entries"
    assert all(0 < len(value) <= 64 for value in values)  # libFuzzer's longest dictionary entry
    assert b"action=user_define&channel=0&cmd=" in values and b"\xef\xbb\xbf" in values


@pytest.mark.parametrize(
    ("line", "value"),
    [('"a"', b"a"), ('kw1="x=y"', b"x=y"), ('  "\\x41\\x00"  ', b"A\0"), ('"\\\\"', b"\\"), ('"\\""', b'"')],
)
def test_dictionary_entries(line: str, value: bytes) -> None:
    assert dictionary.parse_entry(line) == value


@pytest.mark.parametrize("line", ['""', '"a', 'a"', '"\\q"', '"\\x4"', '"\u00e9"', '"\x01"', 'kw""'])
def test_dictionary_refuses_what_libfuzzer_refuses(line: str) -> None:
    with pytest.raises(dictionary.DictionaryError):
        dictionary.parse_entry(line)


def test_dictionary_skips_comments_and_blank_lines() -> None:
    assert dictionary.parse('# a comment\n\n   \n  # indented\n"v"\n') == [b"v"]
    with pytest.raises(dictionary.DictionaryError, match="line 2"):
        dictionary.parse('"ok"\nnot an entry\n')


def test_the_mutator_is_reproducible_and_bounded() -> None:
    tokens = dictionary.load()
    seeds = corpus.seeds("parse_command")[:20]
    runs = []
    for _ in range(2):
        mutator = Mutator(random.Random(7), tokens, max_len=64)
        runs.append([mutator.mutate(seed, seeds) for seed in seeds])
    assert runs[0] == runs[1]
    assert all(len(mutant) <= 64 for mutant in runs[0])
    assert runs[0] != [seed[:64] for seed in seeds]


def test_a_failing_harness_leaves_a_reproducer(tmp_path: Path) -> None:
    from fuzz.mutate import fuzz_harness

    def harness(data: bytes) -> None:
        assert b"&&" not in data

    result = fuzz_harness(
        "demo", harness, [b"a&b"], tokens=[b"&"], seconds=30, rng=random.Random(1), crash_dir=tmp_path
    )
    assert result.crash is not None and b"&&" in result.crash.read_bytes()


def test_the_sanitized_build_is_the_one_in_use() -> None:
    """Under fuzz/sanitize-gcc: the kernel imported is the sanitized build, with ASan loaded."""
    build = os.environ.get(sanitized.ENV)
    if not build:
        pytest.skip(f"{sanitized.ENV} is not set (only fuzz/sanitize-gcc and fuzz/run set it)")
    assert build in sanitized.check(Path(build))


def test_the_sanitized_check_refuses_the_normal_build(tmp_path: Path, c_backend: ModuleType) -> None:
    if os.environ.get(sanitized.ENV):
        pytest.skip("this process runs the sanitized build")
    with pytest.raises(sanitized.SanitizedBuildError, match="not from the build"):
        sanitized.check(tmp_path)
