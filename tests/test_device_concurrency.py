"""Many threads, one Device: sessions opening and closing while commands are handled.

Vendor SDK callbacks arrive on SDK threads, so ``handle`` and the session calls race in the field.
Eight threads each run 5,000 mixed calls on visitors of their own; every reply must be valid, the
per-visitor facts a thread alone controls must hold throughout, and once every thread has closed
its sessions the counters must be back where they started.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Optional

import orjson

from iotvideo_signaling import Device, Event, Hardware, Request, SimulatedHardware
from iotvideo_signaling.sessions import Admission
from spec_examples import PANEL_PREFIX, REQUEST_EXAMPLES, bare, check_reply, inner, panel

THREADS = 8
CALLS = 5000
VISITORS_PER_THREAD = 3


class _Camera(SimulatedHardware):
    """The simulator without firmware installation, so no upgrade can start a download."""

    install_firmware = Hardware.install_firmware


COMMANDS: list[bytes] = [
    *(panel(text) for text in REQUEST_EXAMPLES.values()),
    *(bare(text) for text in REQUEST_EXAMPLES.values()),
    panel(b'{"topic":"get_status","message_id":1,"user":"sharer"}'),
    panel(b'{"topic":"version","message_id":"v"}'),
    panel(b'{"topic":"intercom","message_id":2}'),
    panel(b'{"topic":"Mirror_flip","data":{"mode":"normal"}}'),
    panel(b'{"topic":"set_status","data":{"status":"working"}}'),
    panel(b'{"topic":"sd_format","message_id":3}'),
    panel(b'{"topic":"bind_status","status":"success"}'),
    panel(b'{"topic":"zoom","message_id":4}'),
    panel(b'{"topic":"echo","message_id":5,"data":{"n":1}}'),
    panel(b'{"topic":"Mirror_flip","data":{"mode":"bad"},"message_id":6}'),
    panel(b'{"topic":"get_status","message_id":1.5}'),
    panel(b"wx_call_start"),
    panel(b"ptz_left"),
    inner("get_device_st", type="live", quality="high"),
    inner("get_device_st", type="voice"),
    inner("get_device_st", type="playback"),
    inner("get_record_index", start_time="0", end_time="4000000000"),
    inner("get_month_record", time="202402"),
    inner("get_file_list", start_time="0", end_time="4000000000", file_type="0"),
    inner("playback_progress"),
    inner("nope"),
    b"",
    b"\0",
    b"action=user_define&cmd=x&cmd=y",
    b'{"topic":',
    b"\xff\xfe{garbage",
    (PANEL_PREFIX + "A" * 3000).encode(),
]
RARE_COMMANDS: list[bytes] = [
    panel(b'{"topic":"Mirror_flip","data":{"mode":"flip"}}'),
    panel(b'{"topic":"set_status","data":{"status":"standby"}}'),
]


class Tally:
    """Counts events by ``(kind, state)`` from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[tuple[str, str]] = Counter()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.counts[(event.kind, str(event.data.get("state", "")))] += 1


def _worker(device: Device, index: int, start: threading.Barrier, failures: list[BaseException]) -> None:
    rng = random.Random(1000 + index)
    visitors = [f"t{index}-v{j}" for j in range(VISITORS_PER_THREAD)]
    streaming: set[str] = set()
    talking: Optional[str] = None

    def call(raw: bytes, visitor: Optional[str]) -> Any:
        return check_reply(device.handle(raw, visitor=visitor), raw)

    try:
        start.wait()
        for _ in range(CALLS):
            visitor = rng.choice([*visitors, None])
            roll = rng.random()
            if roll < 0.55 or visitor is None:
                raw = rng.choice(RARE_COMMANDS) if rng.random() < 0.002 else rng.choice(COMMANDS)
                call(raw, visitor)
            elif roll < 0.62:
                device.open_session(visitor, role=rng.choice(["owner", "sharer", None]))
            elif roll < 0.68:
                device.close_session(visitor)
                streaming.discard(visitor)
                if talking == visitor:
                    talking = None
            elif roll < 0.76:
                device.start_stream(visitor)
                streaming.add(visitor)
            elif roll < 0.82:
                device.stop_stream(visitor)
                streaming.discard(visitor)
            elif roll < 0.88:
                got = device.start_intercom(visitor)
                if talking is not None:
                    # one of ours holds it, and only we can release it
                    assert got == (talking == visitor), (talking, visitor, got)
                elif got:
                    talking = visitor
            elif roll < 0.92:
                device.stop_intercom(visitor)
                if talking == visitor:
                    talking = None
            elif roll < 0.96:
                status = call(panel(b'{"topic":"get_status","message_id":0}'), visitor)
                if status["result"] == "0":
                    assert 1 <= status["user_num"] <= THREADS * VISITORS_PER_THREAD + 1, status
                    if visitor not in streaming:
                        assert status["user_num"] >= 1 + len(streaming), (status, streaming)
                    else:
                        assert status["user_num"] >= len(streaming), (status, streaming)
            elif roll < 0.98:
                intercom = call(panel(b'{"topic":"intercom","message_id":0}'), visitor)
                if talking is not None:
                    assert intercom["status"] == "using", intercom
            else:
                unsubscribe = device.subscribe(lambda event: None)
                call(panel(b'{"topic":"Mirror_flip","data":{"mode":"normal"}}'), visitor)
                unsubscribe()
        for visitor in visitors:
            device.close_session(visitor)
    except BaseException as exc:
        failures.append(exc)


def test_threads_with_sessions_opening_and_closing(tmp_path: Path) -> None:
    hw = _Camera(tmp_path)
    tally = Tally()
    with Device(hw) as device:
        device.subscribe(tally)

        @device.topic("echo")
        def echo(request: Request, visitor: Optional[str]) -> dict[str, Any]:
            return {"n": request.get("n"), "visitor": visitor}

        @device.command("wx_call_start")
        def call_start(command: Any, visitor: Optional[str]) -> None:
            return None

        def raising(event: Event) -> None:
            if event.kind == "stream":
                raise RuntimeError("subscriber bug under load")

        device.subscribe(raising)

        failures: list[BaseException] = []
        start = threading.Barrier(THREADS)
        threads = [
            threading.Thread(target=_worker, args=(device, k, start, failures), name=f"sdk-{k}") for k in range(THREADS)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads)
        assert failures == [], failures[:3]

        # every thread closed its sessions: the counters are back to where they started
        status = orjson.loads(device.handle(panel(b'{"topic":"get_status","message_id":0}')))
        assert status["user_num"] == 1, status
        for k in range(THREADS):
            got = orjson.loads(device.handle(panel(b'{"topic":"get_status"}'), visitor=f"t{k}-v0"))
            assert got["user_num"] == 1
        assert orjson.loads(device.handle(panel(b'{"topic":"intercom"}')))["status"] == "unused"
        assert all(device.role(f"t{k}-v0") == "owner" for k in range(THREADS))  # the default: no session
        assert device.admit_stream(None, "voice") == Admission("0", 1)  # nobody streams, nobody talks
        assert device.start_intercom("after") is True
        device.stop_intercom("after")
        # the device still works normally
        assert orjson.loads(device.handle(panel(b'{"topic":"set_status","status":"working"}')))["result"] == "0"
        reply = orjson.loads(device.handle(inner("get_device_st", type="live")))
        assert reply == [{"status": "0", "appConnectNum": "1"}]

    counts = tally.counts
    assert counts[("stream", "started")] == counts[("stream", "stopped")] > 0
    assert counts[("intercom", "using")] == counts[("intercom", "unused")] > 0
    assert counts[("session", "open")] >= counts[("session", "closed")] > 0
    # every accepted format ends: done, or failed when close() found it still waiting for the pool
    assert counts[("sd_format", "formatting")] == counts[("sd_format", "done")] + counts[("sd_format", "failed")]
    assert counts[("sd_format", "done")] > 0
    assert counts[("tone", "")] > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sdcard", "state.json", "tones.log"]


def test_concurrent_sd_format_requests_start_one_format(tmp_path: Path) -> None:
    """However many threads ask at once, exactly one format runs; the others are busy or queued after."""
    release = threading.Event()
    formats: list[int] = []

    class Slow(SimulatedHardware):
        def format_sd(self) -> None:
            formats.append(1)
            release.wait(10)

    with Device(Slow(tmp_path)) as device:
        results: list[str] = []
        lock = threading.Lock()
        start = threading.Barrier(THREADS)

        def ask_format() -> None:
            start.wait()
            got = check_reply(device.handle(panel(b'{"topic":"sd_format"}')))
            with lock:
                results.append(got["result"])

        threads = [threading.Thread(target=ask_format) for _ in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        release.set()
    assert sorted(results) == ["0"] + ["5"] * (THREADS - 1)
    assert formats == [1]


def test_concurrent_intercom_requests_grant_one_talker(tmp_path: Path) -> None:
    with Device(SimulatedHardware(tmp_path)) as device:
        granted: list[str] = []
        lock = threading.Lock()
        start = threading.Barrier(THREADS)

        def take(name: str) -> Callable[[], None]:
            def run() -> None:
                start.wait()
                if device.start_intercom(name):
                    with lock:
                        granted.append(name)

            return run

        threads = [threading.Thread(target=take(f"v{k}")) for k in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(granted) == 1
        assert device.admit_stream("nobody", "voice").status == "1"  # someone else talks
