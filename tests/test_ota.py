"""OTA downloads against real HTTPS servers on loopback (trustme CA), one behaviour per test."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, List, NamedTuple

import pytest
import trustme

from iotvideo_signaling._ota_base import NOT_PUBLIC
from iotvideo_signaling.ota import JOB_FILE, OtaCode
from ota_helpers import (
    FW_PATH,
    SECRET,
    Behaviour,
    DiskUsage,
    FakeClock,
    FakeFirmware,
    FirmwareServer,
    Rig,
    make_body,
    make_ca_file,
    make_rig,
    wait_for,
)

SIZE = 1_200_003  # not a multiple of any chunk size
MiB = 1024 * 1024


class Image(NamedTuple):
    body: bytes
    md5: str
    size: int


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_ca_file(ca, tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    body, md5 = make_body(tmp_path_factory.mktemp("image"), "V2.0.0", SIZE)
    return Image(body, md5, SIZE)


@pytest.fixture(scope="module")
def big_image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    body, md5 = make_body(tmp_path_factory.mktemp("big"), "V2.0.0", 3 * MiB)
    return Image(body, md5, 3 * MiB)


@pytest.fixture
def serve(ca: trustme.CA) -> Iterator[Callable[..., FirmwareServer]]:
    """Start HTTPS servers: ``serve(behaviour)`` or ``serve(behaviour, issuer=other_ca)``."""
    servers: List[FirmwareServer] = []

    def start(behaviour: Behaviour, *, issuer: trustme.CA = ca) -> FirmwareServer:
        server = FirmwareServer(issuer.issue_cert("127.0.0.1", "localhost"), behaviour)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@dataclass
class Env:
    """What a test needs: a server starter, the image it serves, where the manager downloads to."""

    serve: Callable[..., FirmwareServer]
    image: Image
    download_dir: Path
    ca_file: str

    def rig(self, **options: Any) -> Rig:
        return make_rig(self.download_dir, self.ca_file, **options)


@pytest.fixture
def env(serve: Callable[..., FirmwareServer], image: Image, ca_file: str, tmp_path: Path) -> Env:
    download_dir = tmp_path / "downloads"
    download_dir.mkdir()
    return Env(serve, image, download_dir, ca_file)


def _assert_no_secret(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    assert "TOPSECRET" not in caplog.text
    assert all("TOPSECRET" not in json.dumps(dict(event.data)) for event in rig.events.events)
    assert "TOPSECRET" not in repr(rig.manager.status())


def _assert_failed(rig: Rig, code: OtaCode) -> None:
    assert rig.events.states[-1] == "fail"
    assert rig.events.last["code"] == code
    assert rig.events.last["reason"]
    assert rig.firmware.calls == []
    assert rig.files() == []  # no partial file, no job file
    assert rig.manager.status().state == "fail"


# -- the good path ---------------------------------------------------------------------------


def test_good_upgrade_end_to_end(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server = env.serve(Behaviour(body=env.image.body))
    rig = env.rig()
    rig.run(server.url(), env.image.md5.upper(), env.image.size)

    states = rig.events.states
    assert states[0] == "downloading" and rig.events.events[0].data["percent"] == 0
    assert states[-2:] == ["burning", "done"]
    assert set(states[:-2]) == {"downloading"}
    percents = [event.data["percent"] for event in rig.events.events]
    assert percents == sorted(percents) and percents[-1] == 100
    assert all(event.kind == "upgrade" and event.data["code"] == 0 for event in rig.events.events)

    [call] = rig.firmware.calls
    assert (call.md5, call.size, call.actual_md5, call.actual_size) == (
        env.image.md5,
        env.image.size,
        env.image.md5,
        env.image.size,
    )
    assert Path(call.path).parent == env.download_dir
    assert rig.files() == []  # the image is removed once the installer returned
    assert rig.firmware.version == "V2.0.0"
    assert rig.manager.status().state == "done"

    [seen] = server.requests
    assert seen.headers["accept-encoding"] == "identity"
    assert "range" not in seen.headers
    assert server.bytes_sent == env.image.size
    _assert_no_secret(rig, caplog)


def test_redirect_within_https_is_followed(env: Env) -> None:
    server = env.serve(Behaviour(body=env.image.body))
    server.behaviour.redirects = {"/old": f"{FW_PATH}?{SECRET}", "/older": server.url("/old")}
    rig = env.rig()
    rig.run(server.url("/older"), env.image.md5, env.image.size)
    assert rig.events.states[-1] == "done"
    assert [seen.path.split("?")[0] for seen in server.requests] == ["/older", "/old", FW_PATH]


# -- refusals ------------------------------------------------------------------------------


def test_md5_mismatch_fails_before_the_installer(env: Env) -> None:
    server = env.serve(Behaviour(body=env.image.body))
    rig = env.rig()
    rig.run(server.url(), "0" * 32, env.image.size)
    _assert_failed(rig, OtaCode.MISMATCH)
    assert "MD5" in rig.events.last["reason"]


@pytest.mark.parametrize("send_length", [True, False], ids=["content-length", "close-delimited"])
def test_server_sending_more_than_file_size_fails(env: Env, send_length: bool) -> None:
    server = env.serve(Behaviour(body=env.image.body, extra=b"x" * 1000, send_length=send_length))
    rig = env.rig()
    rig.run(server.url(), env.image.md5, env.image.size)
    _assert_failed(rig, OtaCode.MISMATCH)
    assert "size" in rig.events.last["reason"]


def test_server_sending_less_than_file_size_fails(env: Env) -> None:
    server = env.serve(Behaviour(body=env.image.body))
    rig = env.rig()
    rig.run(server.url(), env.image.md5, env.image.size + 10)
    _assert_failed(rig, OtaCode.MISMATCH)
    assert len(server.requests) == 1


@pytest.mark.parametrize(("extra", "size_delta"), [(b"", 0), (b"x" * 100, 0), (b"", 10)], ids=["exact", "more", "less"])
def test_chunked_responses(env: Env, extra: bytes, size_delta: int) -> None:
    server = env.serve(Behaviour(body=env.image.body, chunked=True, extra=extra))
    rig = env.rig()
    rig.run(server.url(), env.image.md5, env.image.size + size_delta)
    if extra or size_delta:
        _assert_failed(rig, OtaCode.MISMATCH)
        assert "size mismatch" in rig.events.last["reason"]
        assert len(server.requests) == 1
    else:
        assert rig.events.states[-1] == "done"


def test_https_to_http_redirect_is_refused(env: Env) -> None:
    server = env.serve(Behaviour(body=env.image.body))
    server.behaviour.redirects = {"/go": f"http://127.0.0.1:{server.port}{FW_PATH}"}
    rig = env.rig()
    rig.run(server.url("/go"), env.image.md5, env.image.size)
    _assert_failed(rig, OtaCode.DENIED)
    assert "redirect" in rig.events.last["reason"]
    assert len(server.requests) == 1


def test_a_redirect_to_a_host_the_policy_refuses_is_refused(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    server = env.serve(Behaviour(body=env.image.body))
    server.behaviour.redirects = {"/go": f"https://localhost:{server.port}{FW_PATH}?{SECRET}"}
    rig = env.rig(allowed_hosts=("127.0.0.1",))  # the server's certificate is good for localhost too
    rig.run(server.url("/go"), env.image.md5, env.image.size)
    _assert_failed(rig, OtaCode.DENIED)
    assert rig.events.last["reason"] == "redirect refused: the target has a host that ota_allowed_hosts does not allow"
    assert len(server.requests) == 1
    _assert_no_secret(rig, caplog)


def test_by_default_a_name_that_resolves_to_loopback_is_not_connected_to(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A public-looking name whose DNS answer is a loopback (or LAN) address: the address the
    connection would go to is checked, so the server is never reached."""
    server = env.serve(Behaviour(body=env.image.body))
    resolve = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: resolve("127.0.0.1", port, *a, **k))
    rig = env.rig(allowed_hosts=())
    rig.run(f"https://firmware.example:{server.port}{FW_PATH}", env.image.md5, env.image.size)
    _assert_failed(rig, OtaCode.DENIED)
    assert rig.events.last["reason"] == f"the host resolves to {NOT_PUBLIC}"
    assert server.requests == []

    listed = env.rig(allowed_hosts=("firmware.example",))  # a listed name may resolve anywhere
    listed.run(f"https://firmware.example:{server.port}{FW_PATH}", env.image.md5, env.image.size)
    assert listed.events.states[-1] == "fail"  # the certificate is not for that name ...
    assert listed.events.last["reason"] == "TLS certificate verification failed"
    assert len(server.requests) == 0  # ... but the connection was made (the handshake failed)


def test_a_recorded_job_whose_host_is_no_longer_allowed_fails(env: Env) -> None:
    server = env.serve(Behaviour(body=env.image.body))
    _record_job(env, server.url(), 0)
    rig = env.rig(allowed_hosts=("fw.example.com",))
    rig.manager.start()
    rig.submit.join()
    _assert_failed(rig, OtaCode.DENIED)
    assert server.requests == []


def test_redirect_loop_is_cut_off(env: Env) -> None:
    server = env.serve(Behaviour(body=env.image.body))
    server.behaviour.redirects = {"/loop": "/loop"}
    rig = env.rig()
    rig.run(server.url("/loop"), env.image.md5, env.image.size)
    _assert_failed(rig, OtaCode.DENIED)
    assert rig.events.last["reason"] == "too many redirects"
    assert len(server.requests) == 6  # the request and 5 redirects


def test_unknown_ca_is_refused(env: Env) -> None:
    server = env.serve(Behaviour(body=env.image.body), issuer=trustme.CA())
    rig = env.rig()
    rig.run(server.url(), env.image.md5, env.image.size)
    _assert_failed(rig, OtaCode.DENIED)
    assert "certificate" in rig.events.last["reason"]
    assert server.requests == []


@pytest.mark.parametrize(
    ("status", "code"),
    [(404, OtaCode.NOT_FOUND), (410, OtaCode.NOT_FOUND), (401, OtaCode.DENIED), (403, OtaCode.DENIED)],
)
def test_http_errors_map_to_tencent_codes(env: Env, status: int, code: OtaCode) -> None:
    server = env.serve(Behaviour(body=env.image.body, status=status))
    rig = env.rig()
    rig.run(server.url(), env.image.md5, env.image.size)
    _assert_failed(rig, code)
    assert str(status) in rig.events.last["reason"]
    assert len(server.requests) == 1  # not retried


def test_server_errors_are_retried_with_backoff_then_time_out(env: Env) -> None:
    server = env.serve(Behaviour(body=env.image.body, status=503))
    delays: List[float] = []
    rig = env.rig(retries=3, sleep=delays.append, backoff=1.0, backoff_max=3.0)
    rig.run(server.url(), env.image.md5, env.image.size)
    _assert_failed(rig, OtaCode.TIMEOUT)
    assert len(server.requests) == 4
    assert len(delays) == 3
    for delay, nominal in zip(delays, [1.0, 2.0, 3.0]):
        assert nominal / 2 <= delay <= nominal  # exponential, capped, with jitter


def test_compressed_response_is_refused(env: Env) -> None:
    server = env.serve(Behaviour(body=env.image.body, content_encoding="gzip"))
    rig = env.rig()
    rig.run(server.url(), env.image.md5, env.image.size)
    _assert_failed(rig, OtaCode.MISMATCH)
    assert "Content-Encoding" in rig.events.last["reason"]


def test_not_enough_disk_space(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    server = env.serve(Behaviour(body=env.image.body))
    monkeypatch.setattr(shutil, "disk_usage", lambda path: DiskUsage(10**9, 10**9 - 1000, 1000))
    rig = env.rig()
    rig.run(server.url(), env.image.md5, env.image.size)
    _assert_failed(rig, OtaCode.INSTALL_FAILED)
    assert rig.events.last["reason"] == "not enough disk space"
    assert server.requests == []


def test_install_failure_is_minus_5(env: Env) -> None:
    server = env.serve(Behaviour(body=env.image.body))
    rig = env.rig(firmware=FakeFirmware(fail=True))
    rig.run(server.url(), env.image.md5, env.image.size)
    assert rig.events.states[-2:] == ["burning", "fail"]
    assert rig.events.last["code"] == OtaCode.INSTALL_FAILED
    assert len(rig.firmware.calls) == 1
    assert rig.files() == []


# -- resuming ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("etag", "last_modified", "if_range"),
    [
        ('"fw-1"', None, '"fw-1"'),
        ('W/"weak"', "Tue, 01 Oct 2024 08:00:00 GMT", "Tue, 01 Oct 2024 08:00:00 GMT"),
        (None, None, None),
    ],
    ids=["strong-etag", "weak-etag-uses-last-modified", "no-validator"],
)
def test_dropped_connection_resumes_without_downloading_twice(
    env: Env, etag: str | None, last_modified: str | None, if_range: str | None
) -> None:
    server = env.serve(Behaviour(body=env.image.body, etag=etag, last_modified=last_modified, drop_after=400_000))
    rig = env.rig()
    rig.run(server.url(), env.image.md5, env.image.size)
    assert rig.events.states[-1] == "done"
    first, second = server.requests
    assert "range" not in first.headers
    assert second.headers["range"] == "bytes=400000-"
    assert second.headers.get("if-range") == if_range
    assert server.bytes_sent == env.image.size  # every byte was sent once
    assert rig.firmware.calls[0].actual_md5 == env.image.md5


def test_server_ignoring_range_starts_over(env: Env) -> None:
    server = env.serve(Behaviour(body=env.image.body, drop_after=400_000, honour_range=False))
    rig = env.rig()
    rig.run(server.url(), env.image.md5, env.image.size)
    assert rig.events.states[-1] == "done"
    assert [("range" in seen.headers) for seen in server.requests] == [False, True]
    assert server.bytes_sent == 400_000 + env.image.size
    assert rig.firmware.calls[0].actual_md5 == env.image.md5


def test_wrong_content_range_starts_over_without_range(env: Env) -> None:
    """Decision: a 206 that is not exactly what we asked for drops the partial file, and the job
    continues from byte 0 without Range (the server's ranges cannot be trusted)."""
    server = env.serve(Behaviour(body=env.image.body, drop_after=400_000, bad_content_range=True))
    rig = env.rig()
    rig.run(server.url(), env.image.md5, env.image.size)
    assert rig.events.states[-1] == "done"
    assert [("range" in seen.headers) for seen in server.requests] == [False, True, False]
    assert rig.firmware.calls[0].actual_md5 == env.image.md5
    percents = [event.data["percent"] for event in rig.events.events]
    assert percents == sorted(percents)  # the restart does not make progress go backwards


def test_range_not_satisfiable_starts_over(env: Env) -> None:
    server = env.serve(Behaviour(body=env.image.body, drop_after=400_000, range_status=416))
    rig = env.rig()
    rig.run(server.url(), env.image.md5, env.image.size)
    assert rig.events.states[-1] == "done"
    assert [("range" in seen.headers) for seen in server.requests] == [False, True, False]


# -- the retry budget ------------------------------------------------------------------------


def test_server_ignoring_range_and_dropping_fails_within_the_retry_budget(env: Env, big_image: Image) -> None:
    """Each attempt restarts at byte 0 and is dropped at 1.5 MiB: the same bytes again are no
    progress, so the retry count is not reset (it used to be: an endless download)."""
    server = env.serve(Behaviour(body=big_image.body, honour_range=False, drop_after=3 * MiB // 2, drop_times=99))
    rig = env.rig(retries=3)
    rig.run(server.url(), big_image.md5, big_image.size)
    _assert_failed(rig, OtaCode.TIMEOUT)
    assert rig.events.last["reason"] == "connection closed early"
    assert len(server.requests) == 4  # the first attempt and 3 retries
    assert server.bytes_sent == 4 * 3 * MiB // 2


def test_bytes_received_for_one_job_are_capped(env: Env, big_image: Image) -> None:
    """With retries to spare, the job still ends once it received 3 x fileSize + 1 MiB."""
    server = env.serve(Behaviour(body=big_image.body, honour_range=False, drop_after=3 * MiB // 2, drop_times=999))
    rig = env.rig(retries=100)
    rig.run(server.url(), big_image.md5, big_image.size)
    _assert_failed(rig, OtaCode.TIMEOUT)
    assert rig.events.last["reason"] == "too much data received"
    assert len(server.requests) == 7  # 6 x 1.5 MiB = 9 MiB; the 7th passes 10 MiB
    assert server.bytes_sent <= 7 * 3 * MiB // 2


def test_server_dropping_often_but_honouring_range_completes(env: Env, big_image: Image) -> None:
    """Drops every 512 KiB, 5 times, with 2 retries: progress beyond the best offset (1 MiB of
    it, over as many attempts as it takes) earns the retries back."""
    server = env.serve(Behaviour(body=big_image.body, drop_after=512 * 1024, drop_times=99))
    rig = env.rig(retries=2)
    rig.run(server.url(), big_image.md5, big_image.size)
    assert rig.events.states[-1] == "done"
    assert [seen.headers.get("range") for seen in server.requests] == [None] + [
        f"bytes={n * 512 * 1024}-" for n in range(1, 6)
    ]
    assert server.bytes_sent == big_image.size
    assert rig.firmware.calls[0].actual_md5 == big_image.md5


def _record_job(env: Env, url: str, offset: int) -> None:
    """Write the job file a killed process would have left."""
    record = {"format": 1, "phase": "downloading", "url": url, "md5": env.image.md5, "size": env.image.size}
    record.update(offset=offset, etag=None, last_modified=None, use_range=True, version_before=None)
    (env.download_dir / JOB_FILE).write_text(json.dumps(record))


def test_start_removes_temporary_files_a_crash_left_beside_the_job_file(env: Env) -> None:
    server = env.serve(Behaviour(body=env.image.body))
    _record_job(env, server.url(), 0)
    stale = [env.download_dir / f".{JOB_FILE}.0123abcd.tmp", env.download_dir / f".{JOB_FILE}.deadbeef.tmp"]
    keep = [env.download_dir / f".{JOB_FILE}.0123abcd.tmp.x", env.download_dir / ".state.json.0123abcd.tmp"]
    for path in stale + keep:
        path.write_bytes(b'{"format": 1, "pha')  # a write cut short
    rig = env.rig()
    assert all(path.exists() for path in stale)  # not in the constructor
    rig.manager.start()
    rig.submit.join()
    assert rig.events.states[-1] == "done"
    assert not any(path.exists() for path in stale)
    assert all(path.exists() for path in keep)


def test_resume_with_a_short_partial_file_starts_over(env: Env) -> None:
    server = env.serve(Behaviour(body=env.image.body))
    _record_job(env, server.url(), 500_000)  # the job file claims more than the partial file holds
    (env.download_dir / f"firmware-{env.image.md5}.bin.part").write_bytes(env.image.body[:1000])
    rig = env.rig()
    rig.manager.start()
    rig.submit.join()
    assert rig.events.states[-1] == "done"
    [seen] = server.requests
    assert "range" not in seen.headers


def test_resume_of_a_complete_partial_file_needs_no_network(env: Env) -> None:
    """Killed after the last byte was made durable but before the rename: verify and install."""
    (env.download_dir / f"firmware-{env.image.md5}.bin.part").write_bytes(env.image.body)
    _record_job(env, f"https://127.0.0.1:1/fw/camera.bin?{SECRET}", env.image.size)  # nothing listens there
    rig = env.rig()
    rig.manager.start()
    rig.submit.join()
    assert rig.events.states == ["downloading", "burning", "done"]
    assert rig.firmware.calls[0].actual_md5 == env.image.md5


def test_stalled_transfer_is_abandoned(env: Env) -> None:
    """Low-speed abort: 2 KB/s is below the configured 50 KB/s over a 0.3 s window."""
    server = env.serve(Behaviour(body=env.image.body, pause_after=100_000, trickle=(100, 0.05), pause_times=99))
    rig = env.rig(stall_min_rate=50_000, stall_window=0.3, retries=1)
    started = time.monotonic()
    rig.run(server.url(), env.image.md5, env.image.size)
    assert time.monotonic() - started < 20  # without the low-speed abort: minutes at 2 KB/s
    _assert_failed(rig, OtaCode.TIMEOUT)
    assert len(server.requests) == 2


def test_silent_server_times_out(env: Env) -> None:
    server = env.serve(Behaviour(body=env.image.body, pause_after=100_000, trickle=(0, 0.05), pause_times=99))
    rig = env.rig(timeout=0.3, retries=0)
    rig.run(server.url(), env.image.md5, env.image.size)
    _assert_failed(rig, OtaCode.TIMEOUT)


def test_trickled_response_headers_time_out(env: Env) -> None:
    """A status line, then one header byte per 0.2 s: every read is well within the 5 s socket
    timeout, but the headers' deadline ends each attempt."""
    server = env.serve(Behaviour(body=env.image.body, header_trickle=0.2))
    rig = env.rig(header_timeout=0.5, retries=1)
    started = time.monotonic()
    rig.run(server.url(), env.image.md5, env.image.size)
    assert time.monotonic() - started < 15  # without the headers' deadline: ~20 s an attempt
    _assert_failed(rig, OtaCode.TIMEOUT)
    assert rig.events.last["reason"] == "response headers timed out"
    assert len(server.requests) == 2


def test_header_deadline_does_not_limit_the_body(env: Env) -> None:
    server = env.serve(Behaviour(body=env.image.body, pause_after=100_000, trickle=(200_000, 0.1)))
    rig = env.rig(header_timeout=0.2)
    started = time.monotonic()
    rig.run(server.url(), env.image.md5, env.image.size)
    assert time.monotonic() - started > 0.4  # the body took longer than the headers' deadline
    assert rig.events.states[-1] == "done"
    assert len(server.requests) == 1


def test_close_stops_promptly_and_resume_continues(env: Env) -> None:
    server = env.serve(Behaviour(body=env.image.body, pause_after=300_000, trickle=(0, 0.05)))
    rig = env.rig(timeout=30.0)
    rig.manager.request(server.url(), env.image.md5, env.image.size)
    wait_for(lambda: rig.manager.status().received >= 300_000)
    started = time.monotonic()
    rig.manager.close()
    assert time.monotonic() - started < 10  # not the 30 s socket timeout
    rig.submit.join()
    record = json.loads((env.download_dir / JOB_FILE).read_text())
    assert record["offset"] == 300_000  # everything received was made durable on close
    assert rig.events.states[-1] == "downloading"

    again = env.rig(firmware=rig.firmware)
    again.manager.start()
    again.submit.join()
    assert again.events.states[-1] == "done"
    assert server.requests[-1].headers["range"] == "bytes=300000-"
    assert server.bytes_sent == env.image.size
    assert rig.firmware.calls[0].actual_md5 == env.image.md5


def test_close_interrupts_a_retry_pause(env: Env) -> None:
    server = env.serve(Behaviour(body=env.image.body, status=503))
    rig = env.rig(sleep=None, backoff=20.0)  # the manager's own, interruptible wait
    rig.manager.request(server.url(), env.image.md5, env.image.size)
    wait_for(lambda: len(server.requests) == 1)
    time.sleep(0.1)
    started = time.monotonic()
    rig.manager.close()
    rig.submit.join(10)
    assert time.monotonic() - started < 10  # not the 20 s backoff
    assert json.loads((env.download_dir / JOB_FILE).read_text())["phase"] == "downloading"  # resumable
    assert rig.events.states == ["downloading"]


def test_cancel_during_download(env: Env) -> None:
    server = env.serve(Behaviour(body=env.image.body, pause_after=300_000, trickle=(0, 0.05)))
    rig = env.rig(timeout=30.0)
    rig.manager.request(server.url(), env.image.md5, env.image.size)
    wait_for(lambda: rig.manager.status().received >= 300_000)
    assert rig.manager.cancel() is True
    rig.submit.join(5)
    assert rig.events.last["state"] == "fail" and rig.events.last["reason"] == "cancelled"
    assert rig.files() == []
    again = env.rig()
    again.manager.start()
    assert again.submit.threads == [] and again.events.events == []


class Tarpit:
    """A TCP server that never answers. ``accepting``: it accepts connections and stays silent
    (a TLS handshake blocks until the socket timeout); otherwise its accept queue is full, so a
    connect blocks (the kernel drops the SYNs) until the connect timeout."""

    def __init__(self, *, accepting: bool) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=0)
        self.port = self._listener.getsockname()[1]
        self.accepted: List[socket.socket] = []
        self._fillers: List[socket.socket] = []
        if accepting:
            threading.Thread(target=self._accept, daemon=True).start()
        else:
            for _ in range(4):
                filler = socket.socket()
                filler.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    filler.connect(("127.0.0.1", self.port))
                self._fillers.append(filler)

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                self.accepted.append(self._listener.accept()[0])

    def close(self) -> None:
        self._listener.close()
        for conn in self.accepted + self._fillers:
            conn.close()


@pytest.mark.parametrize("stop", ["close", "cancel"])
@pytest.mark.parametrize("phase", ["tcp-connect", "tls-handshake"])
def test_stopping_interrupts_a_connection_being_set_up(env: Env, phase: str, stop: str) -> None:
    """close() and cancel() cut a connection still connecting or in its TLS handshake."""
    tarpit = Tarpit(accepting=phase == "tls-handshake")
    try:
        rig = env.rig(timeout=30.0, header_timeout=60.0)
        rig.manager.request(f"https://127.0.0.1:{tarpit.port}/fw.bin", env.image.md5, env.image.size)
        if phase == "tls-handshake":
            wait_for(lambda: tarpit.accepted != [])
        time.sleep(0.3)  # the client is blocked in connect(), or waits for an answer to its ClientHello
        started = time.monotonic()
        if stop == "close":
            rig.manager.close(timeout=5)
        else:
            assert rig.manager.cancel() is True
        rig.submit.join(15)
        assert time.monotonic() - started < 15  # not the 30 s connect timeout or the 60 s headers' deadline
        if stop == "close":
            assert json.loads((env.download_dir / JOB_FILE).read_text())["phase"] == "downloading"  # resumable
        else:
            assert rig.events.last["state"] == "fail" and rig.events.last["reason"] == "cancelled"
    finally:
        tarpit.close()


def test_a_stop_during_the_name_lookup_is_not_lost(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """close() while the host name resolves (no socket to cut yet): the connect that follows
    must not run to its timeout."""
    tarpit = Tarpit(accepting=False)
    in_lookup, lookup_may_end = threading.Event(), threading.Event()
    resolve = socket.getaddrinfo

    def slow_lookup(*args: Any, **kwargs: Any) -> Any:
        in_lookup.set()
        lookup_may_end.wait(5)
        return resolve(*args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow_lookup)
    try:
        rig = env.rig(timeout=30.0, header_timeout=60.0)
        rig.manager.request(f"https://127.0.0.1:{tarpit.port}/fw.bin", env.image.md5, env.image.size)
        assert in_lookup.wait(5)
        started = time.monotonic()
        closer = threading.Thread(target=rig.manager.close, kwargs={"timeout": 5})
        closer.start()
        time.sleep(0.1)  # close() has found no connection to cut
        lookup_may_end.set()
        rig.submit.join(15)
        closer.join(15)
        assert time.monotonic() - started < 15  # not the 30 s socket timeout
    finally:
        tarpit.close()


def test_the_header_deadline_holds_across_addresses(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """A name with two addresses, both unreachable: the deadline ends the attempt, not each connect."""
    tarpits = [Tarpit(accepting=False), Tarpit(accepting=False)]
    resolve = socket.getaddrinfo

    def two_addresses(host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        return [info for tarpit in tarpits for info in resolve("127.0.0.1", tarpit.port, *args, **kwargs)]

    monkeypatch.setattr(socket, "getaddrinfo", two_addresses)
    try:
        rig = env.rig(timeout=3.0, header_timeout=0.5, retries=0, allowed_hosts=("firmware.example",))
        started = time.monotonic()
        rig.run("https://firmware.example/fw.bin", env.image.md5, env.image.size)
        assert time.monotonic() - started < 5  # not a 3 s connect timeout for each of the two addresses
        _assert_failed(rig, OtaCode.TIMEOUT)
    finally:
        for tarpit in tarpits:
            tarpit.close()


def test_an_address_family_the_host_lacks_is_skipped(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """A name whose first address cannot even get a socket here (an IPv6 address on an IPv4-only
    camera): the download goes on with the next address, as socket.create_connection would."""
    server = env.serve(Behaviour(body=env.image.body))
    resolve = socket.getaddrinfo

    def unsupported_first(host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        real = resolve("127.0.0.1", port, *args, **kwargs)
        _, kind, proto, name, address = real[0]
        return [(9999, kind, proto, name, address), *real]  # 9999: no such address family

    monkeypatch.setattr(socket, "getaddrinfo", unsupported_first)
    rig = env.rig(retries=0)
    rig.run(server.url(), env.image.md5, env.image.size)
    assert rig.events.states[-1] == "done"


def test_the_header_deadline_covers_the_tcp_connect(env: Env) -> None:
    tarpit = Tarpit(accepting=False)
    try:
        rig = env.rig(timeout=30.0, header_timeout=0.3, retries=0)
        started = time.monotonic()
        rig.run(f"https://127.0.0.1:{tarpit.port}/fw.bin", env.image.md5, env.image.size)
        assert time.monotonic() - started < 15  # not the 30 s socket timeout
        _assert_failed(rig, OtaCode.TIMEOUT)
    finally:
        tarpit.close()


def test_cancel_after_the_download_before_the_install_stops_the_job(env: Env) -> None:
    """cancel() in the window between the MD5 check and the switch to installing (here: from
    the worker's own current_version call) wins: no burning, no install, nothing left behind."""
    server = env.serve(Behaviour(body=env.image.body))
    rig = env.rig()
    answers: List[bool] = []
    rig.firmware.on_version = lambda: answers.append(rig.manager.cancel())
    rig.run(server.url(), env.image.md5, env.image.size)
    assert answers == [True]
    assert "burning" not in rig.events.states
    assert rig.events.last["reason"] == "cancelled"
    _assert_failed(rig, OtaCode.INSTALL_FAILED)  # no installer call, no image, no job file
    assert rig.firmware.version == "V1.0.0"
    again = env.rig(firmware=rig.firmware)
    again.manager.start()
    assert again.submit.threads == [] and again.events.events == []


def test_cancel_once_installing_has_begun_is_refused_and_the_install_recorded(env: Env) -> None:
    server = env.serve(Behaviour(body=env.image.body))
    firmware = FakeFirmware(apply=False)  # confirmed after the "reboot"
    firmware.gate = threading.Event()
    rig = env.rig(firmware=firmware)
    rig.manager.request(server.url(), env.image.md5, env.image.size)
    assert firmware.started.wait(10)
    assert rig.manager.cancel() is False
    record = json.loads((env.download_dir / JOB_FILE).read_text())
    assert (record["phase"], record["version_before"]) == ("installing", "V1.0.0")
    firmware.gate.set()
    rig.submit.join()
    assert rig.events.states[-1] == "burning" and len(firmware.calls) == 1
    assert json.loads((env.download_dir / JOB_FILE).read_text())["phase"] == "installing"
    firmware.version = "V2.0.0"  # the reboot
    again = env.rig(firmware=firmware)
    again.manager.start()
    assert again.events.states == ["done"]


def test_killed_process_resumes_from_the_job_file(env: Env) -> None:
    server = env.serve(Behaviour(body=env.image.body, pause_after=500_000, trickle=(0, 0.05)))
    image = env.image
    args = {"dir": str(env.download_dir), "ca": env.ca_file, "url": server.url(), "md5": image.md5, "size": image.size}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, json.dumps(args)])
    job_file = env.download_dir / JOB_FILE
    try:
        wait_for(lambda: json.loads(job_file.read_text())["offset"] >= 400_000, 15)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(5)
    offset = json.loads(job_file.read_text())["offset"]
    assert 400_000 <= offset <= 500_000
    part = env.download_dir / f"firmware-{env.image.md5}.bin.part"
    assert part.stat().st_size >= offset
    assert part.read_bytes()[:offset] == env.image.body[:offset]

    rig = env.rig()
    rig.manager.start()
    rig.submit.join()
    assert rig.events.events[0].data == {
        "state": "downloading",
        "percent": offset * 100 // env.image.size,
        "code": 0,
        "reason": "",
    }
    assert rig.events.states[-1] == "done"
    assert server.requests[-1].headers["range"] == f"bytes={offset}-"
    assert server.bytes_sent == 500_000 + env.image.size - offset
    assert rig.firmware.calls[0].actual_md5 == env.image.md5
    assert rig.files() == []


_CHILD = """
import json, sys
from iotvideo_signaling.ota import OtaManager

args = json.loads(sys.argv[1])
manager = OtaManager(
    download_dir=args["dir"], install=lambda path, md5, size: None, current_version=lambda: "V1",
    publish=lambda event: None, submit=lambda job: job(), ca_file=args["ca"], allowed_hosts=["127.0.0.1"],
    chunk_size=16384, fsync_every=65536, timeout=60.0,
)
manager.request(args["url"], args["md5"], args["size"])
"""


# -- concurrency ---------------------------------------------------------------------------


def test_one_job_at_a_time_and_a_slow_installer_does_not_block_request(env: Env) -> None:
    from iotvideo_signaling.errors import RequestError, ResultCode

    server = env.serve(Behaviour(body=env.image.body))
    firmware = FakeFirmware()
    firmware.gate = threading.Event()
    rig = env.rig(firmware=firmware)
    started = time.monotonic()
    rig.manager.request(server.url(), env.image.md5, env.image.size)
    assert time.monotonic() - started < 5  # request() returned while the installer still holds the job
    assert firmware.started.wait(10)
    assert rig.manager.status().state == "burning"

    rig.manager.request(server.url(query="Signature=fresh"), env.image.md5.upper(), env.image.size)  # same job: fine
    with pytest.raises(RequestError) as info:
        rig.manager.request(server.url("/other.bin"), env.image.md5, env.image.size)
    assert info.value.code is ResultCode.BUSY
    assert info.value.reason == "an upgrade is already running"

    firmware.gate.set()
    rig.submit.join()
    assert rig.events.states[-1] == "done"
    assert len(firmware.calls) == 1 and len(server.requests) == 1


def test_the_image_stays_while_the_installer_runs_and_goes_when_it_returns(env: Env) -> None:
    server = env.serve(Behaviour(body=env.image.body))
    firmware = FakeFirmware()
    firmware.gate = threading.Event()
    rig = env.rig(firmware=firmware)
    rig.manager.request(server.url(), env.image.md5, env.image.size)
    assert firmware.started.wait(10)
    assert f"firmware-{env.image.md5}.bin" in rig.files()  # the installer may read it
    firmware.gate.set()
    rig.submit.join()
    assert rig.events.states[-1] == "done"
    assert rig.files() == []


def test_pending_install_is_confirmed_after_restart(env: Env) -> None:
    server = env.serve(Behaviour(body=env.image.body))
    firmware = FakeFirmware(apply=False)  # like rauc: the new version runs after a reboot
    rig = env.rig(firmware=firmware)
    rig.run(server.url(), env.image.md5, env.image.size)
    assert rig.events.states[-1] == "burning"
    assert rig.manager.status().state == "confirming"
    assert rig.files() == [JOB_FILE]  # the installer returned: it has the image, the flash is free
    record = json.loads((env.download_dir / JOB_FILE).read_text())
    assert record["phase"] == "installing" and record["version_before"] == "V1.0.0"

    firmware.version = "V2.0.0"  # the reboot
    again = env.rig(firmware=firmware)
    again.manager.start()
    assert again.events.states == ["done"]
    assert not (env.download_dir / JOB_FILE).exists()


# -- progress events -------------------------------------------------------------------------


def test_progress_events_are_rate_limited_on_the_injected_clock(env: Env) -> None:
    server = env.serve(Behaviour(body=env.image.body))
    clock = FakeClock(0.2)
    rig = env.rig(clock=clock, chunk_size=8192, stall_min_rate=0)
    rig.run(server.url(), env.image.md5, env.image.size)
    downloading = [
        (event.data["percent"], at) for event, at in rig.events.entries if event.data["state"] == "downloading"
    ]
    assert len(downloading) > 5
    times = [at for _, at in downloading]
    assert all(later - earlier >= 1.0 for earlier, later in zip(times, times[1:]))
    percents = [percent for percent, _ in downloading]
    assert percents == sorted(percents) and len(set(percents)) == len(percents)


def test_heartbeat_while_the_download_is_slow(env: Env) -> None:
    server = env.serve(Behaviour(body=env.image.body))
    clock = FakeClock(2.0)  # each reading is 2 s later: ~100 readings per percent
    rig = env.rig(clock=clock, chunk_size=1024, stall_min_rate=0)
    rig.run(server.url(), env.image.md5, env.image.size)
    downloading = [
        (event.data["percent"], at) for event, at in rig.events.entries if event.data["state"] == "downloading"
    ]
    repeats = [a for a, b in zip(downloading, downloading[1:]) if a[0] == b[0]]
    assert repeats  # the same percentage again: a heartbeat
    times = [at for _, at in downloading]
    assert max(later - earlier for earlier, later in zip(times, times[1:])) <= 30.0 + 10 * clock.step
