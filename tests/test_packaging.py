"""The source distribution: it ships what its own tests need, and they run from the unpacked tree.

The sdist is built with ``python -m build --sdist --no-isolation`` (``build`` and a recent
``setuptools`` come with the ``test`` extra; no network, no Cython: the C extension is not built
for an sdist) from a copy of this tree without its ``*.egg-info`` (setuptools adds every file
an old ``SOURCES.txt`` lists, which would hide a gap in ``MANIFEST.in``), then unpacked into a
temporary directory, where pytest runs on the pure-Python backend with the unpacked ``src``
first on the path: it collects the whole suite (a helper module the sdist lacks is a collection
error) and runs the tests that read the shipped data and helpers. Nothing is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: What the test suite imports or reads besides the test modules (checked by name, so a failure
#: says which one is missing).
NEEDED = (
    "tests/conftest.py",
    "tests/spec_examples.py",
    "tests/ota_helpers.py",
    "tests/test_server_harness.py",
    "tests/data/README.md",
    "tests/data/urlencoded.json",
    "benchmarks/__init__.py",
    "benchmarks/conftest.py",
    "benchmarks/corpus.py",
    "fuzz/__init__.py",
    "fuzz/differential.py",
    "fuzz/wire.dict",
    "pyproject.toml",
    "setup.py",
    "cext/_wire_c.pyx",
    "README.md",
    "bridge/ivs_bridge.c",
    "bridge/ivs_bridge_iv.c",
    "tests/c/fake_sdk.c",
    "tests/c/iv_stub/iv_av.h",
)

#: Run in full from the unpacked tree: the wire vectors read tests/data, the protocol tests use
#: spec_examples (which imports benchmarks.corpus), the OTA unit tests use ota_helpers.
RUN_FROM_SDIST = ("tests/test_protocol.py", "tests/test_wire_vectors.py", "tests/test_ota_units.py")

pytestmark = pytest.mark.slow


def _run(argv: list[str], cwd: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=300, check=False)


def _pure_python_env(**extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("IOTVIDEO_SIGNALING_")}
    env.pop("PYTEST_ADDOPTS", None)
    env.update(IOTVIDEO_SIGNALING_NO_EXTENSIONS="1", **extra)
    return env


def _tree_files(top: Path, root: Path) -> set[str]:
    """The files under ``top``, relative to ``root``, less bytecode and tool caches."""
    found = set()
    for path in top.rglob("*"):
        parts = path.relative_to(root).parts
        cache = any(part == "__pycache__" or part.startswith(".") for part in parts)
        if path.is_file() and not cache and path.suffix not in (".pyc", ".pyo", ".so"):
            found.add("/".join(parts))
    return found


_NOT_COPIED = shutil.ignore_patterns(".*", "*.egg-info", "__pycache__", "build", "dist", "venv", "*.so", "*.py[cod]")


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, set[str]]]:
    """The sdist built from this tree and unpacked: (its top directory, its member files)."""
    work = tmp_path_factory.mktemp("sdist")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=_NOT_COPIED)
    argv = [sys.executable, "-m", "build", "--sdist", "--no-isolation", "--skip-dependency-check"]
    built = _run([*argv, "--outdir", str(work / "dist")], source, _pure_python_env())
    assert built.returncode == 0, built.stdout + built.stderr
    (archive,) = (work / "dist").glob("*.tar.gz")
    with tarfile.open(archive) as tar:
        members = [member for member in tar.getmembers() if member.isfile()]
        if hasattr(tarfile, "data_filter"):  # 3.12, and the security releases of older Pythons
            tar.extractall(work / "unpacked", filter="data")
        else:  # the archive is the one just built
            tar.extractall(work / "unpacked")
    (top,) = (work / "unpacked").iterdir()
    names = {member.name.split("/", 1)[1] for member in members}
    yield top, names


def test_the_sdist_ships_what_the_tests_need(unpacked: tuple[Path, set[str]]) -> None:
    _, names = unpacked
    missing = [name for name in NEEDED if name not in names]
    assert not missing, f"not in the sdist: {missing}"
    for top in ("tests", "benchmarks", "fuzz", "bridge"):
        absent = sorted(_tree_files(ROOT / top, ROOT) - names)
        assert not absent, f"not in the sdist: {absent}"
    generated_c = [name for name in names if name.startswith("cext/") and name.endswith(".c")]
    built = [name for name in names if name.endswith((".pyc", ".so"))] + generated_c
    assert not built, f"build products in the sdist: {built}"


def test_the_unpacked_sdist_runs_its_tests(unpacked: tuple[Path, set[str]]) -> None:
    top, _ = unpacked
    env = _pure_python_env(PYTHONPATH=str(top / "src"), HYPOTHESIS_PROFILE="dev")
    where = _run(
        [sys.executable, "-c", "import iotvideo_signaling as s; print(s.__file__); print(s.implementation)"], top, env
    )
    assert where.returncode == 0, where.stderr
    assert where.stdout.split() == [str(top / "src" / "iotvideo_signaling" / "__init__.py"), "python"]

    pytest_argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
    collected = _run([*pytest_argv, "--collect-only"], top, env)
    assert collected.returncode == 0, collected.stdout[-5000:] + collected.stderr[-5000:]
    assert collected.stdout.splitlines()[-1].split()[1:3] == ["tests", "collected"], collected.stdout[-500:]

    ran = _run([*pytest_argv, *RUN_FROM_SDIST], top, env)
    assert ran.returncode == 0, ran.stdout[-5000:] + ran.stderr[-5000:]
    assert " passed" in ran.stdout.splitlines()[-1]
