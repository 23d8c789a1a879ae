"""The C bridge shim (bridge/): compiled here with the system cc, driven by tests/c/fake_sdk.c.

fake_sdk calls the shim only through the SDK's iv_avt callbacks (bridge/ivs_bridge_iv.c, built
against the stand-in headers in tests/c/iv_stub/) and checks every reply itself: non-empty, NUL
after it, strict JSON, the request's message_id echoed, freed once through dst.buf_free_fn, a
"timeout" never before the timeout. It exits 1 when a check failed and prints a JSON summary
that the tests below read.

Timing. This suite runs on busy 2-core machines and under qemu, so it asserts nothing that load
can break. Each fault test is built so that the bug it looks for shows up as a wait of SECONDS
(a call blocked until the daemon came back), while a correct shim answers within its own
reply timeout; the bound asserted is timeout + SLACK, SLACK being 1.5 s times the environment's
IOTVIDEO_SIGNALING_TIME_FACTOR (default 1; raise it for emulators). The tight property, no
"timeout" answer before the deadline, is load-proof and checked by fake_sdk itself (timeout_early);
the measured figures (max_us, late_50ms: calls over timeout + 50 ms) are reported, and absolute
latency belongs to the benchmark (`fake_sdk SOCK bench`).

Skips: no cc (unless IOTVIDEO_SIGNALING_REQUIRE_CC=1, then they fail), a compiler that cannot link
the sanitizers, absent cross compilers, and a daemon without the bridge:// listener.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bridge_harness import BAD_ANSWERS, RESYNC, FakeDaemon, wait_for

ROOT = Path(__file__).resolve().parent.parent
BRIDGE = ROOT / "bridge"
STUB = ROOT / "tests" / "c" / "iv_stub"
SOURCES = [BRIDGE / "ivs_bridge.c", BRIDGE / "ivs_bridge_iv.c", ROOT / "tests" / "c" / "fake_sdk.c"]
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pthread", "-O2"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g"]
CROSS = ["arm-linux-gnueabihf-gcc", "aarch64-linux-gnu-gcc", "mips-linux-gnu-gcc"]

TRUE = {"1", "true", "yes", "on"}
TIME_FACTOR = float(os.environ.get("IOTVIDEO_SIGNALING_TIME_FACTOR", "1") or "1")
SLACK_MS = 1500 * TIME_FACTOR


def _required() -> bool:
    """CI sets IOTVIDEO_SIGNALING_REQUIRE_CC: a missing compiler or sanitizer fails instead of skipping."""
    return os.environ.get("IOTVIDEO_SIGNALING_REQUIRE_CC", "").strip().lower() in TRUE


def _compiler() -> str:
    cc = shutil.which("cc")
    if cc is None:
        if _required():
            pytest.fail("IOTVIDEO_SIGNALING_REQUIRE_CC is set but there is no cc")
        pytest.skip("no C compiler (cc)")
    return cc


def _build(out: Path, extra: list[str]) -> Path:
    cmd = [_compiler(), *CFLAGS, *extra, f"-I{BRIDGE}", f"-I{STUB}", *map(str, SOURCES), "-o", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="session")
def fake_sdk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("shim") / "fake_sdk", [])


def _require_sanitizers(directory: Path) -> None:
    """Skips (or fails, when required) unless -fsanitize=address,undefined builds and runs here."""
    probe = directory / "probe.c"
    probe.write_text("int main(void) { return 0; }\n")
    result = subprocess.run(
        [_compiler(), *SANITIZE, str(probe), "-o", str(directory / "probe")],
        capture_output=True,
        timeout=120,
        check=False,
    )
    runs = result.returncode == 0 and subprocess.run([str(directory / "probe")], check=False).returncode == 0
    if not runs:
        if _required():  # CI: gcc with libasan and libubsan, as Debian's gcc has them
            pytest.fail(f"-fsanitize=address,undefined does not build or run: {result.stderr[-500:]!r}")
        pytest.skip("-fsanitize=address,undefined does not build or run here (e.g. under qemu-user)")


@pytest.fixture(scope="session")
def fake_sdk_sanitized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("shim_san")
    _require_sanitizers(directory)
    return _build(directory / "fake_sdk", SANITIZE)


# fake_sdk's hooked build: the shim's calls of these go through fake_sdk's wrappers (GNU ld, lld)
HOOKS = ["-DFAKE_SDK_HOOKS", "-Wl,--wrap=pthread_mutex_unlock", "-Wl,--wrap=pthread_condattr_setclock"]
SANITIZER_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0",
    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
}
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehaviorSanitizer")


@pytest.fixture(scope="session")
def fake_sdk_hooked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hooked build, under AddressSanitizer and UndefinedBehaviorSanitizer."""
    directory = tmp_path_factory.mktemp("shim_hooked")
    _require_sanitizers(directory)
    return _build(directory / "fake_sdk", [*SANITIZE, *HOOKS])


@pytest.fixture(scope="session")
def fake_sdk_tsan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("shim_tsan")
    probe = directory / "probe.c"
    probe.write_text("int main(void) { return 0; }\n")
    result = subprocess.run(
        [_compiler(), "-fsanitize=thread", str(probe), "-o", str(directory / "probe")],
        capture_output=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0 or subprocess.run([str(directory / "probe")], check=False).returncode != 0:
        pytest.skip("the compiler cannot build or run -fsanitize=thread here")
    return _build(directory / "fake_sdk", ["-fsanitize=thread", "-g"])


@dataclass
class Run:
    returncode: int
    summary: dict[str, Any]
    stderr: str


def _finish(proc: subprocess.Popen[str], timeout: float) -> Run:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    lines = [line for line in out.splitlines() if line.startswith("{")]
    summary = json.loads(lines[-1]) if lines else {}
    return Run(proc.returncode, summary, err)


def _start_sdk(
    binary: Path, sock: Path, mode: str, *opts: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(binary), str(sock), mode, *opts],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _run_sdk(binary: Path, sock: Path, mode: str, *opts: str, timeout: float = 60) -> Run:
    return _finish(_start_sdk(binary, sock, mode, *opts), timeout)


@dataclass
class Daemon:
    """The real daemon (python -m iotvideo_signaling serve) on a bridge:// socket; restartable."""

    sock: Path
    workdir: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        return self.procs[-1]

    def start(self) -> None:
        ready = self.workdir / "ready.json"
        ready.unlink(missing_ok=True)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        log = (self.workdir / "daemon.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "iotvideo_signaling", "serve", "--listen", f"bridge://{self.sock}",
             "--state-dir", str(self.workdir / "state"), "--ready-file", str(ready), "--log-level", "warning"],
            stdout=log, stderr=log, env=env,
        )  # fmt: skip
        log.close()
        self.procs.append(proc)
        deadline = time.monotonic() + 30
        while not ready.exists():
            if proc.poll() is not None:
                text = (self.workdir / "daemon.log").read_text(errors="replace")
                pytest.fail(f"the daemon exited with {proc.returncode}: {text[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("the daemon did not become ready in 30 s")
            time.sleep(0.02)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        self.proc.send_signal(sig)
        if sig == signal.SIGKILL:
            self.proc.wait(timeout=10)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    handle = Daemon(tmp_path / "bridge.sock", tmp_path)
    try:
        yield handle
    finally:
        handle.stop_all()


def _assert_clean(run: Run) -> None:
    assert run.summary, f"no summary; rc={run.returncode}; stderr: {run.stderr[-3000:]}"
    assert run.summary["problems"] == 0, run.summary
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.summary["given"] == run.summary["freed"]


def _fallbacks(summary: dict[str, Any]) -> int:
    return sum(n for kind, n in summary["kinds"].items() if kind != "ok")


# ---- compiling ----


@pytest.mark.parametrize("source", ["ivs_bridge.c", "ivs_bridge_iv.c"])
def test_compiles_pedantic(source: str, tmp_path: Path) -> None:
    """C99, every warning an error, -pedantic; also with the debug logging compiled in, without
    pipe2, and under _GNU_SOURCE (where glibc's declaration of pipe2 meets the shim's)."""
    cc = _compiler()
    for extra in (
        [],
        ["-DIVS_BRIDGE_DEBUG"],
        ["-DIVS_REPLY_SIZE_COUNTS_NUL=1"],
        ["-DIVS_BRIDGE_NO_PIPE2"],
        ["-D_GNU_SOURCE"],
    ):
        cmd = [cc, *CFLAGS, "-pedantic", *extra, f"-I{BRIDGE}", f"-I{STUB}", "-c", str(BRIDGE / source)]
        result = subprocess.run([*cmd, "-o", str(tmp_path / "x.o")], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr


def _cross_required() -> bool:
    """CI sets IOTVIDEO_SIGNALING_REQUIRE_CROSS: missing cross compilers or qemu fail instead of skipping."""
    return os.environ.get("IOTVIDEO_SIGNALING_REQUIRE_CROSS", "").strip().lower() in TRUE


def _cross_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        if _cross_required():
            pytest.fail(f"IOTVIDEO_SIGNALING_REQUIRE_CROSS is set but {name} is not installed")
        pytest.skip(f"{name} is not installed")
    return found


@pytest.mark.parametrize("compiler", CROSS)
def test_cross_compiles(compiler: str, tmp_path: Path) -> None:
    """32-bit ARM, arm64 and big-endian MIPS: compile only (the headers are built byte by byte)."""
    _cross_tool(compiler)
    for source in ("ivs_bridge.c", "ivs_bridge_iv.c"):
        cmd = [compiler, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2", f"-I{BRIDGE}", f"-I{STUB}"]
        result = subprocess.run(
            [*cmd, "-c", str(BRIDGE / source), "-o", str(tmp_path / "x.o")], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr


# ---- with no daemon at all ----


def test_fixed_replies_without_daemon(fake_sdk: Path, tmp_path: Path) -> None:
    """message_id echo rules, command too large, NULL src, fail-closed stream requests, misuse answers."""
    run = _run_sdk(fake_sdk, tmp_path / "nobody.sock", "edge", "wait_ms=0")
    _assert_clean(run)
    assert run.summary["edge"] == "passed", run.stderr
    assert run.summary["kinds"]["too_large"] == 1
    assert run.summary["stream_refuse"] == 2


# ---- against the real daemon ----


def test_churn(fake_sdk: Path, daemon: Daemon) -> None:
    """16 SDK threads: commands in every form, viewer/talk/stream/peer-loss churn, then a known state."""
    daemon.start()
    # a healthy daemon answers everything: the timeout is long so that load cannot make it a fallback
    run = _run_sdk(fake_sdk, daemon.sock, "churn", "threads=16", "count=1200", "timeout_ms=20000", timeout=120)
    _assert_clean(run)
    summary = run.summary
    assert summary["kinds"]["ok"] == summary["calls"] > 16 * 1200
    assert summary["stream_accept"] > 0
    status = summary["final_status"]
    assert status["result"] == "0" and status["message_id"] == 424242
    assert status["user_num"] == 4  # visitors 0..3 view (0 with two streams), the churn's sessions all gone
    assert summary["final_talk_stream"] == 1  # visitor 5 holds the intercom: visitor 6 is refused


def test_churn_big_endian_mips_under_qemu(tmp_path: Path, daemon: Daemon) -> None:
    """The shim and the fake SDK built for big-endian 32-bit MIPS, run under qemu-user against this
    machine's daemon: every header field crosses the socket in network order, or the churn fails."""
    compiler = _cross_tool("mips-linux-gnu-gcc")
    qemu = _cross_tool("qemu-mips-static")
    binary = tmp_path / "fake_sdk_mips"
    cmd = [compiler, *CFLAGS, "-static", f"-I{BRIDGE}", f"-I{STUB}", *map(str, SOURCES), "-o", str(binary)]
    built = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    assert built.returncode == 0, built.stderr
    daemon.start()
    argv = [qemu, str(binary), str(daemon.sock), "churn", "threads=4", "count=300", "timeout_ms=20000"]
    run = _finish(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), 180)
    _assert_clean(run)
    assert run.summary["kinds"]["ok"] == run.summary["calls"] > 4 * 300
    assert run.summary["final_status"]["user_num"] == 4


def test_churn_sanitized(fake_sdk_sanitized: Path, daemon: Daemon) -> None:
    """The churn under AddressSanitizer (leaks included) and UndefinedBehaviorSanitizer."""
    daemon.start()
    env = {**os.environ, **SANITIZER_ENV}
    proc = _start_sdk(fake_sdk_sanitized, daemon.sock, "churn", "threads=16", "count=300", "timeout_ms=20000", env=env)
    run = _finish(proc, 180)
    for marker in SANITIZER_MARKERS:
        assert marker not in run.stderr, run.stderr[-5000:]
    _assert_clean(run)
    assert run.summary["final_status"]["user_num"] == 4


def test_churn_thread_sanitized(fake_sdk_tsan: Path, daemon: Daemon) -> None:
    """The churn, then a SIGKILL of the daemon mid-run, under ThreadSanitizer: no data race."""
    daemon.start()
    env = {**os.environ, "TSAN_OPTIONS": "halt_on_error=0"}
    run = _finish(_start_sdk(fake_sdk_tsan, daemon.sock, "churn", "count=200", "timeout_ms=20000", env=env), 180)
    assert "ThreadSanitizer" not in run.stderr, run.stderr[-5000:]
    _assert_clean(run)
    proc = _start_sdk(fake_sdk_tsan, daemon.sock, "run", "threads=4", "seconds=2", "timeout_ms=300", env=env)
    try:
        time.sleep(0.7)
        daemon.kill(signal.SIGKILL)
    finally:
        run = _finish(proc, 60)
    assert "ThreadSanitizer" not in run.stderr, run.stderr[-5000:]
    _assert_clean(run)


def _run_through(
    fake_sdk: Path, daemon: Daemon, timeout_ms: int, fault: Callable[[], None], *opts: str
) -> dict[str, Any]:
    """fake_sdk's run mode (4 threads) with ``fault`` done to the daemon after 1 s; checks that the
    calls recovered and none waited past its deadline (with the load margin); returns the summary."""
    # recover_s: the run goes on until the daemon answers again, however long its (re)start took
    proc = _start_sdk(fake_sdk, daemon.sock, "run", "threads=4", f"timeout_ms={timeout_ms}", "recover_s=120", *opts)
    try:
        time.sleep(1.0)
        fault()
    finally:
        run = _finish(proc, 180)
    _assert_clean(run)  # includes timeout_early == 0: no "timeout" before the deadline
    summary = run.summary
    assert summary["ok_after_fallback"] > 0
    assert summary["max_us"] < (timeout_ms + SLACK_MS) * 1000, summary
    return summary


def test_daemon_starts_late(fake_sdk: Path, daemon: Daemon) -> None:
    """No daemon yet: every call is answered at once; once it starts, calls succeed, viewers replayed."""
    summary = _run_through(fake_sdk, daemon, 5000, daemon.start, "seconds=3", "wait_ms=0")
    assert summary["kinds"]["unavailable"] > 0
    # "at once": far from the 5 s a waiting call would take (see the module docstring on timing)
    assert summary["max_unavailable_us"] < SLACK_MS * 1000
    assert summary["final_status"]["user_num"] == 3  # viewers started while the daemon was away


def test_daemon_killed_and_restarted(fake_sdk: Path, daemon: Daemon) -> None:
    """SIGKILL mid-run: fallbacks, then recovery without restarting the SDK, viewers replayed."""

    def kill_and_restart() -> None:
        daemon.kill(signal.SIGKILL)
        time.sleep(1.0)
        daemon.start()

    daemon.start()
    summary = _run_through(fake_sdk, daemon, 500, kill_and_restart, "seconds=4")
    assert _fallbacks(summary) > 0
    assert summary["final_status"]["user_num"] == 3


def test_daemon_stopped(fake_sdk: Path, daemon: Daemon) -> None:
    """SIGSTOP for 3 s: calls end with "timeout" at their own deadline, not when the daemon resumes
    (a blocked call would take ~3 s)."""

    def stop_for_3_s() -> None:
        daemon.kill(signal.SIGSTOP)
        time.sleep(3.0)
        daemon.kill(signal.SIGCONT)

    daemon.start()
    summary = _run_through(fake_sdk, daemon, 300, stop_for_3_s, "seconds=5")
    assert summary["kinds"]["timeout"] > 0


# ---- against a misbehaving fake daemon ----


@pytest.mark.parametrize("bad", sorted(BAD_ANSWERS))
def test_garbage_from_daemon(fake_sdk: Path, tmp_path: Path, bad: str) -> None:
    """Garbage, an oversized frame, reserved bits, an empty REPLY, a fatal ERROR: drop, answer, reconnect."""
    sock = tmp_path / "fake.sock"
    with FakeDaemon(sock, bad_answer=bad, bad_connections=2) as fake:
        run = _run_sdk(fake_sdk, sock, "run", "threads=2", "seconds=1.5", "timeout_ms=2000", "wait_ms=0")
    _assert_clean(run)
    summary = run.summary
    assert summary["kinds"]["error"] >= 2, summary  # the caller whose answer was garbage, on both connections
    assert summary["ok_after_fallback"] > 0
    assert fake.connections >= 3
    assert fake.hello_bodies[0] == b"ivs-bridge/1"
    assert fake.protocol_errors == []
    assert summary["final_status"]["user_num"] == 3  # replayed on every new connection


def _overflow(fake_sdk: Path, sock: Path, stall_s: float, *opts: str) -> tuple[Run, Any]:
    """fake_sdk's events mode against a daemon that stops reading ``stall_s`` after WELCOME, until
    the shim sends RESYNC; returns the run and the daemon's view, with 4 viewers as the table has."""
    with FakeDaemon(sock, stall_after_welcome=stall_s) as fake:
        run = _run_sdk(fake_sdk, sock, "events", "threads=8", "timeout_ms=20000", *opts)
        wait_for(lambda: any(kind == RESYNC for kind, *_ in fake.frames), 10, "RESYNC")
        state = fake.state
    _assert_clean(run)
    assert fake.protocol_errors == []
    assert state.user_num() == 4
    return run, state


def test_event_queue_overflow_resyncs(fake_sdk: Path, tmp_path: Path) -> None:
    """A daemon that stops reading: the event queue overflows, RESYNC and the table follow."""
    run, state = _overflow(fake_sdk, tmp_path / "fake.sock", 1.0, "count=4000", "queue=8")
    assert state.viewers[(0, 0)] == {1, 2}
    assert state.talker == (5, 0)
    assert run.summary["final_status"]["user_num"] == 4
    assert run.summary["final_talk_stream"] == 1


def test_slow_daemon_times_out(fake_sdk: Path, tmp_path: Path) -> None:
    """Answers later than the timeout are dropped quietly; each caller gets "timeout" at its deadline."""
    sock = tmp_path / "fake.sock"
    with FakeDaemon(sock, answer_delay=0.4):
        run = _run_sdk(fake_sdk, sock, "run", "threads=2", "seconds=1.5", "timeout_ms=100", "wait_ms=0")
    _assert_clean(run)
    assert run.summary["kinds"]["timeout"] > 0
    assert run.summary["max_us"] < (100 + SLACK_MS) * 1000


# ---- against a daemon that stops reading (the shim's queue backs up) ----

COMMAND, PEER_LOST = 2, 8


def _stall(binary: Path, sock: Path, *opts: str) -> tuple[Run, list[tuple[int, int, int, int]]]:
    """fake_sdk's stall mode against a fake daemon that stops reading after the first command and
    reads again once visitor 7's peer is lost; returns the run and the frames the daemon read."""
    mark = sock.parent / "stalled"
    with FakeDaemon(sock, pause_after_commands=1) as fake:
        env = {**os.environ, "MALLOC_ARENA_MAX": "1"}  # one arena: mallinfo2 sees every thread's heap
        proc = _start_sdk(binary, sock, "stall", f"mark={mark}", "wait_ms=20000", *opts, env=env)
        try:
            wait_for(lambda: mark.exists() or proc.poll() is not None, 60 * TIME_FACTOR, "the stall")
            fake.resume()
        finally:
            run = _finish(proc, 60 * TIME_FACTOR)
        frames = list(fake.frames)
        assert fake.protocol_errors == []
    _assert_clean(run)
    return run, frames


@pytest.fixture(scope="module")
def stalled(fake_sdk: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, list[tuple[int, int, int, int]]]:
    """16 threads x 16 commands of 60 KB against a daemon that does not read, 300 ms timeout; then
    visitor 7's command times out and its peer is lost; then the daemon reads everything."""
    sock = tmp_path_factory.mktemp("stall") / "fake.sock"
    return _stall(fake_sdk, sock, "threads=16", "count=16", "size=60000", "timeout_ms=300")


def test_stalled_daemon_memory_is_bounded(stalled: tuple[Run, list[tuple[int, int, int, int]]]) -> None:
    """Timed-out requests' frames do not pile up: the queued request bytes are capped (256 KiB,
    then "busy"), so 15 MB of commands to a daemon that does not read cost far less than that.

    The heap in use is measured (glibc's mallinfo2, one arena), not the resident set: under
    qemu-user the RSS is the emulator's, whose own per-thread memory grew by 5-12 MiB on ARM.
    Where there is no mallinfo2 (another libc), the peak RSS with half the uncapped growth as bound."""
    run, _ = stalled
    summary = run.summary
    if summary["heap_start_kb"] >= 0:
        grown_kb, bound_kb = summary["heap_filled_kb"] - summary["heap_start_kb"], 2048
    else:
        assert summary["rss_start_kb"] > 0, "no /proc/self/status"
        grown_kb, bound_kb = summary["rss_filled_kb"] - summary["rss_start_kb"], 8192
    assert grown_kb < bound_kb, summary  # uncapped: ~15 MB (every timed-out 60 KB frame stays queued)
    assert summary["kinds"]["timeout"] + summary["kinds"]["busy"] >= 16 * 16, summary
    assert summary["kinds"]["busy"] > 0, summary


def test_timed_out_command_never_sent(stalled: tuple[Run, list[tuple[int, int, int, int]]]) -> None:
    """A command whose caller was answered "timeout" while its frame was still queued never runs
    later, when the daemon reads again; the peer's PEER_LOST does get there."""
    run, frames = stalled
    assert run.summary["v7_kind"] == "timeout", run.summary
    assert [kind for kind, _, visitor, _ in frames if visitor == 7] == [PEER_LOST]
    # of the 128 fillers, only those handed to the socket before they timed out can arrive: the
    # kernel's socket buffer (~200 KB) and the one batch stuck in the send buffer (<= 256 KiB)
    fillers = sum(1 for kind, _, visitor, _ in frames if kind == COMMAND and visitor >= 100)
    assert fillers <= 16, fillers  # without the filter: all 128, run seconds late


def test_peer_lost_after_waiting_command(fake_sdk: Path, tmp_path: Path) -> None:
    """Events and requests leave in one FIFO: visitor 7's command, queued behind a backlog, is still
    waiting when its peer is lost; the daemon must get COMMAND then PEER_LOST, never the reverse
    (a session opened after PEER_LOST would stay open: a PTZ move nothing stops)."""
    run, frames = _stall(fake_sdk, tmp_path / "fake.sock", "threads=6", "count=1", "size=60000", "live=1",
                         "timeout_ms=20000")  # fmt: skip
    assert run.summary["v7_kind"] == "ok", run.summary
    assert [kind for kind, _, visitor, _ in frames if visitor == 7] == [COMMAND, PEER_LOST]


# ---- with fake_sdk's hooks ----


def test_event_racing_close(fake_sdk_hooked: Path, tmp_path: Path) -> None:
    """An event call held up right after the shim unlocks its mutex while another thread closes the
    bridge (legal: the call began first): the call must be done with the bridge by then, or close
    frees it under the call's feet (AddressSanitizer: heap-use-after-free)."""
    sock = tmp_path / "fake.sock"
    with FakeDaemon(sock):
        run = _finish(_start_sdk(fake_sdk_hooked, sock, "close_race", env={**os.environ, **SANITIZER_ENV}), 60)
    for marker in SANITIZER_MARKERS:
        assert marker not in run.stderr, run.stderr[-5000:]
    _assert_clean(run)


def test_huge_event_queue_len_is_clamped(fake_sdk: Path, tmp_path: Path) -> None:
    """event_queue_len 2^32 - 1 is clamped to IVS_MAX_EVENT_QUEUE_LEN (65536): the bridge opens (the
    old evq allocation of queue_len * 12 bytes failed here, and wrapped to a small buffer on 32-bit
    builds), and past 65536 waiting events it resyncs instead of queueing without limit."""
    run, _ = _overflow(fake_sdk, tmp_path / "fake.sock", 2.0, "count=10000", "queue=4294967295")
    assert run.summary["final_status"]["user_num"] == 4


def test_without_monotonic_condition_variables(fake_sdk_hooked: Path, tmp_path: Path) -> None:
    """pthread_condattr_setclock fails (fake_sdk's hook, as on a libc without it): the bridge still
    opens, on realtime condition variables, and its calls still end at their monotonic deadline:
    answers in time are "ok", the caller behind them gets "timeout", never early (fake_sdk checks)."""
    sock = tmp_path / "fake.sock"
    timeout_ms = 1000
    with FakeDaemon(sock, answer_delay=0.6):  # one answer at a time: the second caller in line times out
        proc = _start_sdk(fake_sdk_hooked, sock, "run", "threads=2", "seconds=2", f"timeout_ms={timeout_ms}",
                          "wait_ms=0", "no_monotonic=1", env={**os.environ, **SANITIZER_ENV})  # fmt: skip
        run = _finish(proc, 60)
    _assert_clean(run)
    assert run.summary["kinds"]["ok"] > 0, run.summary
    assert run.summary["kinds"]["timeout"] > 0, run.summary
    assert run.summary["max_us"] < (timeout_ms + SLACK_MS) * 1000, run.summary
