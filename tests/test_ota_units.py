"""OTA pieces that need no network: validation, job bookkeeping, resume decisions, reports,
the command installer and the simulated firmware images."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotvideo_signaling._simfirmware import MAGIC, make_image, read_image_version
from iotvideo_signaling.errors import RequestError, ResultCode
from iotvideo_signaling.events import Event
from iotvideo_signaling.installer import CommandInstaller, InstallError
from iotvideo_signaling.ota import JOB_FILE, OtaCode, OtaManager
from iotvideo_signaling.ota_report import OtaReporter, ota_report_payload, ota_version_payload
from ota_helpers import SECRET, EventLog, FakeFirmware, make_body

URL = f"https://fw.example.com/camera/v2.bin?Expires=1700000000&{SECRET}"
MD5 = "0123456789abcdef0123456789abcdef"
MAX = 128 * 1024 * 1024


class QueuedSubmit:
    """``submit`` that keeps the job functions; the test runs them (or not)."""

    def __init__(self) -> None:
        self.jobs: List[Callable[[], None]] = []

    def __call__(self, job: Callable[[], None]) -> None:
        self.jobs.append(job)


def _manager(
    directory: Path,
    *,
    firmware: Optional[FakeFirmware] = None,
    submit: Optional[Callable[[Callable[[], None]], object]] = None,
    publish: Optional[Callable[[Event], None]] = None,
    **options: Any,
) -> Tuple[OtaManager, EventLog, FakeFirmware]:
    events = EventLog()
    firmware = firmware or FakeFirmware()
    manager = OtaManager(
        download_dir=directory,
        install=firmware.install,
        current_version=firmware.current_version,
        publish=publish or events,
        submit=submit or QueuedSubmit(),
        **options,
    )
    return manager, events, firmware


def _record(directory: Path) -> Dict[str, Any]:
    data: Dict[str, Any] = json.loads((directory / JOB_FILE).read_text())
    return data


# -- importing -------------------------------------------------------------------------------


def test_importing_ota_loads_no_network_or_asyncio_modules() -> None:
    code = (
        "import sys, iotvideo_signaling\n"
        "before = set(sys.modules)\n"
        "import iotvideo_signaling.ota, iotvideo_signaling._simfirmware\n"
        "forbidden = {'ssl', 'http', 'http.client', 'urllib.request', 'asyncio'}\n"
        "lazy = {'hashlib', 'socket', 'subprocess'}\n"
        "print(sorted(forbidden & set(sys.modules)), sorted(lazy & (set(sys.modules) - before)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[] []"


# -- the lifecycle ---------------------------------------------------------------------------

_CONSTRUCT = """
import json, os, sys, threading
from iotvideo_signaling.ota import OtaManager

download_dir = sys.argv[1]
seen = []
def audit(event, args):
    if event.split(".")[0] in ("open", "os", "shutil", "socket", "subprocess", "tempfile"):
        seen.append(event)
sys.addaudithook(audit)
real_stat, real_start = os.stat, threading.Thread.start
def stat(path, *args, **kwargs):
    seen.append("os.stat")
    return real_stat(path, *args, **kwargs)
def start(thread):
    seen.append("thread")
    real_start(thread)
os.stat, threading.Thread.start = stat, start
calls = []
threads = threading.active_count()
OtaManager(
    download_dir=download_dir, install=lambda *args: calls.append("install"),
    current_version=lambda: calls.append("version") or "V1", publish=calls.append, submit=calls.append,
    ca_file=os.path.join(download_dir, "ca.pem"),
)
os.stat, threading.Thread.start = real_stat, real_start
print(json.dumps([seen, calls, threading.active_count() - threads]))
"""


def test_constructing_a_manager_does_no_io_and_starts_no_thread(tmp_path: Path) -> None:
    download_dir = tmp_path / "missing" / "ota"
    result = subprocess.run(
        [sys.executable, "-c", _CONSTRUCT, str(download_dir)], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == [[], [], 0]  # no file event, no stat, no hook called, no thread
    assert os.listdir(tmp_path) == []


def test_the_context_manager_starts_and_closes(tmp_path: Path) -> None:
    _write_record(tmp_path, phase="installing", offset=1000, version_before="V1.0.0")
    manager, events, _ = _manager(tmp_path, firmware=FakeFirmware("V2.0.0"))
    with manager as entered:
        assert entered is manager
        assert events.states == ["done"]  # start() decided the pending install
    with pytest.raises(RequestError, match="shutting down"):
        manager.request(URL, MD5, 1000)


def test_start_acts_once(tmp_path: Path) -> None:
    submit = QueuedSubmit()
    manager, _, _ = _manager(tmp_path, submit=submit)
    manager.start()  # nothing recorded
    _write_record(tmp_path)
    manager.start()
    assert submit.jobs == [] and manager.status().state == "idle"


def test_start_after_close_does_nothing(tmp_path: Path) -> None:
    _write_record(tmp_path, offset=500)
    submit = QueuedSubmit()
    manager, _, _ = _manager(tmp_path, submit=submit)
    manager.close()
    manager.start()
    assert submit.jobs == [] and _record(tmp_path)["offset"] == 500  # kept for the next process


# -- request(): validation -------------------------------------------------------------------

BAD_URLS = [
    ("http://fw.example.com/v2.bin?" + SECRET, "https"),
    ("ftp://fw.example.com/v2.bin?" + SECRET, "https"),
    ("file:///etc/passwd", "https"),
    ("//fw.example.com/v2.bin?" + SECRET, "https"),
    ("", "https"),
    ("https:///v2.bin?" + SECRET, "host"),
    ("https://admin:TOPSECRET@fw.example.com/v2.bin", "credentials"),
    ("https://fw.example.com:99999/v2.bin?" + SECRET, "valid"),
    ("https://fw.example.com/v 2.bin?" + SECRET, "ASCII"),
    ("https://fw.example.com/v2.bin?\n" + SECRET, "ASCII"),
    ("https://fw.exämple.com/v2.bin?" + SECRET, "ASCII"),
    ("https://fw.example.com/" + "a" * 2030 + "?" + SECRET, "2048"),
]


@pytest.mark.parametrize(("url", "word"), BAD_URLS)
def test_bad_urls_are_refused_with_code_4_without_echo(tmp_path: Path, url: str, word: str) -> None:
    manager, events, _ = _manager(tmp_path)
    with pytest.raises(RequestError) as info:
        manager.request(url, MD5, 1000)
    assert info.value.code is ResultCode.INVALID_PARAMETER
    assert word in info.value.reason and "'url'" in info.value.reason
    assert "TOPSECRET" not in info.value.reason and "example" not in info.value.reason
    assert len(info.value.reason) <= 64
    assert events.events == [] and not (tmp_path / JOB_FILE).exists()


@pytest.mark.parametrize("url", [None, 5, b"https://fw.example.com/v2.bin", ["https://x"]])
def test_url_must_be_a_string(tmp_path: Path, url: object) -> None:
    manager, _, _ = _manager(tmp_path)
    with pytest.raises(RequestError, match="'url' must be a string") as info:
        manager.request(url, MD5, 1000)
    assert info.value.code is ResultCode.INVALID_PARAMETER


NOT_PUBLIC_HOSTS = [
    "127.0.0.1", "127.255.0.9", "[::1]", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
    "[fe80::1]", "[fd00::1]", "0.0.0.0", "[::]", "224.0.0.251", "[ff02::1]", "100.64.0.1",
    "[::ffff:192.168.1.1]", "localhost", "LOCALHOST.", "cam.localhost",
]


@pytest.mark.parametrize("host", NOT_PUBLIC_HOSTS)
def test_by_default_a_loopback_private_or_link_local_host_is_refused(tmp_path: Path, host: str) -> None:
    manager, _, _ = _manager(tmp_path)
    with pytest.raises(RequestError, match="non-public address") as info:
        manager.request(f"https://{host}:8443/fw.bin?{SECRET}", MD5, 1000)
    assert info.value.code is ResultCode.INVALID_PARAMETER
    assert host.lower().strip("[].") not in str(info.value) and "TOPSECRET" not in str(info.value)
    assert not (tmp_path / JOB_FILE).exists()


@pytest.mark.parametrize("host", ["127.1", "2130706433", "0x7f.0.0.1", "017700000001"])
def test_a_host_that_resolvers_read_as_a_disguised_address_is_refused(tmp_path: Path, host: str) -> None:
    manager, _, _ = _manager(tmp_path)
    with pytest.raises(RequestError, match="neither a name nor a plain IP address") as info:
        manager.request(f"https://{host}/fw.bin", MD5, 1000)
    assert info.value.code is ResultCode.INVALID_PARAMETER


def test_allowed_hosts_allow_only_what_they_list(tmp_path: Path) -> None:
    manager, _, _ = _manager(tmp_path, allowed_hosts=("fw.example.com", "*.cdn.example.net", "192.168.1.10"))
    for url in ("https://FW.example.com/a.bin", "https://eu.cdn.example.net/a.bin", "https://192.168.1.10/a.bin"):
        assert manager._problem(url, MD5, 1000) is None, url
    for url in (
        "https://cdn.example.net/a.bin",  # *.x matches names under x, not x itself
        "https://evil.example.com/a.bin",
        "https://fw.example.com.evil.org/a.bin",
        "https://192.168.1.11/a.bin",
        "https://8.8.8.8/a.bin",
    ):
        assert manager._problem(url, MD5, 1000) == "'url' has a host that ota_allowed_hosts does not allow", url


def test_device_config_refuses_bad_host_patterns() -> None:
    from iotvideo_signaling import DeviceConfig

    DeviceConfig(ota_allowed_hosts=("fw.example.com", "*.example.net", "::1", "10.0.0.1")).check()
    for bad in (("https://fw.example.com",), ("*",), ("fw.example.com:443",), ("127.1",), "fw.example.com"):
        with pytest.raises(ValueError, match="ota_allowed_hosts"):
            DeviceConfig(ota_allowed_hosts=bad).check()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url",
    [
        "HTTPS://FW.example.com/v2.bin?x=1",
        "https://fw.example.com/" + "a" * (2048 - len("https://fw.example.com/")),
        "https://[2606:4700::1111]:8443/fw",
    ],
)
def test_acceptable_urls(tmp_path: Path, url: str) -> None:
    manager, _, _ = _manager(tmp_path)
    manager.request(url, MD5, 1000)
    assert manager.status().state == "downloading"


@pytest.mark.parametrize("md5", ["", "abc", "g" * 32, "0" * 31, "0" * 33, " " + "0" * 31, "0" * 32 + "\n", None, 12])
def test_bad_md5(tmp_path: Path, md5: object) -> None:
    manager, _, _ = _manager(tmp_path)
    with pytest.raises(RequestError, match="'md5' must be 32 hexadecimal digits") as info:
        manager.request(URL, md5, 1000)
    assert info.value.code is ResultCode.INVALID_PARAMETER


def test_md5_is_normalised_to_lower_case(tmp_path: Path) -> None:
    manager, _, _ = _manager(tmp_path)
    manager.request(URL, MD5.upper(), 1000)
    assert manager.status().md5 == MD5
    assert _record(tmp_path)["md5"] == MD5


@pytest.mark.parametrize("size", [0, -1, True, False, 1.0, 1000.5, "1000", None, MAX + 1])
def test_bad_file_size(tmp_path: Path, size: object) -> None:
    manager, _, _ = _manager(tmp_path)
    with pytest.raises(RequestError, match=f"'fileSize' must be an integer from 1 to {MAX}") as info:
        manager.request(URL, MD5, size)
    assert info.value.code is ResultCode.INVALID_PARAMETER


@pytest.mark.parametrize("size", [1, MAX])
def test_file_size_limits_are_inclusive(tmp_path: Path, size: int) -> None:
    manager, _, _ = _manager(tmp_path)
    manager.request(URL, MD5, size)
    assert manager.status().size == size


def test_max_firmware_size_is_configurable(tmp_path: Path) -> None:
    manager, _, _ = _manager(tmp_path, max_firmware_size=4096)
    with pytest.raises(RequestError, match="from 1 to 4096"):
        manager.request(URL, MD5, 4097)


def test_constructor_checks_its_limits(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="positive"):
        _manager(tmp_path, chunk_size=0)
    with pytest.raises(ValueError, match="retries"):
        _manager(tmp_path, retries=-1)
    with pytest.raises(ValueError, match="timeouts"):
        _manager(tmp_path, header_timeout=0)


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/fw/camera.bin", f"firmware-{MD5}.bin"),
        ("/fw/V1.04.11.raucb", f"firmware-{MD5}.raucb"),
        ("/fw/update.tar.gz", f"firmware-{MD5}.tar.gz"),
        ("/fw/update", f"firmware-{MD5}.bin"),
        ("/fw/.hidden", f"firmware-{MD5}.bin"),
        ("/fw/evil.part", f"firmware-{MD5}.bin"),
        ("/fw/x.%2e%2e", f"firmware-{MD5}.bin"),
        ("/fw/x.averylongextension", f"firmware-{MD5}.bin"),
        ("/", f"firmware-{MD5}.bin"),
    ],
)
def test_image_names_come_from_the_md5_and_a_plain_extension(path: str, name: str) -> None:
    from iotvideo_signaling._ota_job import IMAGE, image_name

    assert image_name(f"https://fw.example.com{path}?{SECRET}", MD5) == name
    assert IMAGE.fullmatch(name) and IMAGE.fullmatch(name + ".part")


# -- request(): one job at a time ------------------------------------------------------------


def test_accepted_job_is_recorded_privately_and_submitted(tmp_path: Path) -> None:
    submit = QueuedSubmit()
    manager, _, _ = _manager(tmp_path / "new", submit=submit)
    manager.request(URL, MD5, 1000)
    assert len(submit.jobs) == 1
    record = _record(tmp_path / "new")
    assert (record["url"], record["md5"], record["size"], record["offset"]) == (URL, MD5, 1000, 0)
    assert stat.S_IMODE((tmp_path / "new" / JOB_FILE).stat().st_mode) == 0o600  # it holds the signed URL
    status = manager.status()
    assert (status.state, status.url, status.received) == ("downloading", "https://fw.example.com/camera/v2.bin", 0)


def test_same_job_is_acknowledged_and_takes_the_fresh_signature(tmp_path: Path) -> None:
    submit = QueuedSubmit()
    manager, _, _ = _manager(tmp_path, submit=submit)
    manager.request(URL, MD5, 1000)
    fresh = "https://FW.example.com/camera/v2.bin?Expires=1800000000&Signature=NEW"
    manager.request(fresh, MD5.upper(), 1000)
    assert len(submit.jobs) == 1
    assert _record(tmp_path)["url"] == fresh


@pytest.mark.parametrize(
    ("url", "md5"),
    [
        ("https://fw.example.com/camera/v3.bin", MD5),
        ("https://other.example.com/camera/v2.bin", MD5),
        (URL, "f" * 32),
    ],
)
def test_a_different_job_is_busy(tmp_path: Path, url: str, md5: str) -> None:
    manager, _, _ = _manager(tmp_path)
    manager.request(URL, MD5, 1000)
    with pytest.raises(RequestError) as info:
        manager.request(url, md5, 1000)
    assert info.value.code is ResultCode.BUSY
    assert info.value.reason == "an upgrade is already running"
    assert _record(tmp_path)["url"] == URL


def test_a_refusing_pool_is_a_device_error(tmp_path: Path) -> None:
    def refuse(job: Callable[[], None]) -> None:
        raise RuntimeError("cannot schedule new futures after shutdown")

    manager, _, _ = _manager(tmp_path, submit=refuse)
    with pytest.raises(RequestError) as info:
        manager.request(URL, MD5, 1000)
    assert info.value.code is ResultCode.DEVICE_ERROR
    assert manager.status().state == "idle"
    assert not (tmp_path / JOB_FILE).exists()


def test_requests_after_close_are_refused(tmp_path: Path) -> None:
    manager, _, _ = _manager(tmp_path)
    manager.close()
    manager.close()
    with pytest.raises(RequestError) as info:
        manager.request(URL, MD5, 1000)
    assert info.value.code is ResultCode.DEVICE_ERROR


# -- cancel() ------------------------------------------------------------------------------


def test_cancel_a_queued_job(tmp_path: Path) -> None:
    submit = QueuedSubmit()
    manager, events, firmware = _manager(tmp_path, submit=submit)
    manager.request(URL, MD5, 1000)
    assert manager.cancel() is True
    assert [dict(event.data) for event in events.events] == [
        {"state": "fail", "percent": 0, "code": OtaCode.INSTALL_FAILED, "reason": "cancelled"}
    ]
    assert os.listdir(tmp_path) == []
    submit.jobs[0]()  # the pool runs it late: nothing happens
    assert len(events.events) == 1 and firmware.calls == []
    assert manager.cancel() is False
    manager.request(URL, MD5, 1000)  # a new job is accepted
    assert manager.status().state == "downloading"


def test_cancel_a_recorded_job_before_start(tmp_path: Path) -> None:
    first, _, _ = _manager(tmp_path)
    first.request(URL, MD5, 1000)
    (tmp_path / f"firmware-{MD5}.bin.part").write_bytes(b"x" * 100)
    submit = QueuedSubmit()
    after_restart, events, _ = _manager(tmp_path, submit=submit)
    assert after_restart.cancel() is True
    assert os.listdir(tmp_path) == []
    after_restart.start()
    assert submit.jobs == [] and events.events == []


def test_nothing_to_cancel(tmp_path: Path) -> None:
    manager, _, _ = _manager(tmp_path)
    assert manager.cancel() is False


# -- start() -------------------------------------------------------------------------------


def _write_record(directory: Path, **fields: Any) -> None:
    record = {
        "format": 1,
        "phase": "downloading",
        "url": URL,
        "md5": MD5,
        "size": 1000,
        "offset": 0,
        "etag": None,
        "last_modified": None,
        "use_range": True,
        "version_before": None,
    }
    record.update(fields)
    (directory / JOB_FILE).write_text(json.dumps(record))


@pytest.mark.parametrize(
    ("running", "state", "code", "reason"),
    [("V2.0.0", "done", OtaCode.OK, ""), ("V1.0.0", "fail", OtaCode.INSTALL_FAILED, "the new firmware did not start")],
)
def test_start_decides_a_pending_install(tmp_path: Path, running: str, state: str, code: OtaCode, reason: str) -> None:
    _write_record(tmp_path, phase="installing", offset=1000, version_before="V1.0.0")
    image = tmp_path / f"firmware-{MD5}.bin"
    image.write_bytes(b"\0" * 1000)
    submit = QueuedSubmit()
    manager, events, _ = _manager(tmp_path, firmware=FakeFirmware(running), submit=submit)
    manager.start()
    assert [dict(event.data) for event in events.events] == [
        {"state": state, "percent": 100, "code": code, "reason": reason}
    ]
    assert submit.jobs == []
    assert not (tmp_path / JOB_FILE).exists()
    assert not image.exists()  # the installer rebooted before it returned: removed either way
    assert manager.status().state == state


def test_start_with_unreadable_version_is_a_failure(tmp_path: Path) -> None:
    _write_record(tmp_path, phase="installing", offset=1000, version_before="V1.0.0")

    def no_version() -> str:
        raise OSError("version file missing")

    events = EventLog()
    manager = OtaManager(
        download_dir=tmp_path,
        install=FakeFirmware().install,
        current_version=no_version,
        publish=events,
        submit=QueuedSubmit(),
    )
    manager.start()
    assert events.last["state"] == "fail" and events.last["code"] == OtaCode.INSTALL_FAILED


def test_start_continues_a_download_in_the_background(tmp_path: Path) -> None:
    _write_record(tmp_path, offset=500, etag='"e"')
    submit = QueuedSubmit()
    manager, events, _ = _manager(tmp_path, submit=submit)
    manager.start()
    manager.start()  # twice: still one job
    assert len(submit.jobs) == 1
    status = manager.status()
    assert (status.state, status.percent, status.received) == ("downloading", 50, 500)
    manager.request(URL, MD5, 1000)  # the same job: acknowledged
    with pytest.raises(RequestError):
        manager.request("https://fw.example.com/other.bin", MD5, 1000)
    assert events.events == []  # the worker publishes when it runs


def test_events_carry_the_injected_wall_clock(tmp_path: Path) -> None:
    """A complete partial file needs no network: downloading, burning and done, each stamped by
    ``wall_clock`` (the monotonic ``clock`` only paces the progress events)."""
    (tmp_path / "source").mkdir()
    body, md5 = make_body(tmp_path / "source", "V2.0.0", 4096)
    (tmp_path / f"firmware-{md5}.bin.part").write_bytes(body)
    _write_record(tmp_path, md5=md5, size=len(body), offset=len(body))
    readings = iter([1_700_000_000.0, 1_700_000_001.5, 1_700_000_003.0])
    manager, events, _ = _manager(
        tmp_path, submit=lambda job: job(), wall_clock=lambda: next(readings), clock=lambda: 7.0
    )
    manager.start()
    assert [(event.data["state"], event.time) for event in events.events] == [
        ("downloading", 1_700_000_000.0),
        ("burning", 1_700_000_001.5),
        ("done", 1_700_000_003.0),
    ]


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"[]",
        json.dumps({"format": 2}).encode(),
        json.dumps(
            {"format": 1, "phase": "downloading", "url": "http://x/y", "md5": MD5, "size": 10, "offset": 0}
        ).encode(),
        json.dumps({"format": 1, "phase": "downloading", "url": URL, "md5": MD5, "size": 10, "offset": 11}).encode(),
        json.dumps({"format": 1, "phase": "installing", "url": URL, "md5": MD5, "size": 10, "offset": 10}).encode(),
        json.dumps(
            {"format": 1, "phase": "downloading", "url": URL, "md5": MD5, "size": MAX + 1, "offset": 0}
        ).encode(),
    ],
    ids=["corrupt", "array", "format", "http", "offset", "no-version", "too-big"],
)
def test_start_discards_an_unusable_job_file(tmp_path: Path, content: bytes) -> None:
    (tmp_path / JOB_FILE).write_bytes(content)
    submit = QueuedSubmit()
    manager, events, _ = _manager(tmp_path, submit=submit)
    manager.start()
    assert submit.jobs == [] and events.events == []
    assert not (tmp_path / JOB_FILE).exists()


def test_a_broken_subscriber_does_not_break_the_manager(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def broken(event: Event) -> None:
        raise RuntimeError("subscriber bug")

    _write_record(tmp_path, phase="installing", offset=1000, version_before="V1.0.0")
    manager, _, _ = _manager(tmp_path, firmware=FakeFirmware("V2.0.0"), publish=broken)
    with caplog.at_level(logging.WARNING):
        manager.start()
    assert manager.status().state == "done"
    assert "subscriber failed" in caplog.text


# -- $ota/report payloads ------------------------------------------------------------------


def _event(**data: Any) -> Event:
    return Event("upgrade", {"percent": 0, "code": 0, "reason": "", **data}, 0.0)


@pytest.mark.parametrize(
    ("event", "payload"),
    [
        (
            _event(state="downloading", percent=10),
            b'{"type":"report_progress","report":{"progress":{"state":"downloading","percent":"10",'
            b'"result_code":"0","result_msg":""},"version":"0.2"}}',
        ),
        (
            _event(state="burning", percent=100),
            b'{"type":"report_progress","report":{"progress":{"state":"burning",'
            b'"result_code":"0","result_msg":""},"version":"0.2"}}',
        ),
        (
            _event(state="done", percent=100),
            b'{"type":"report_progress","report":{"progress":{"state":"done",'
            b'"result_code":"0","result_msg":""},"version":"0.2"}}',
        ),
        (
            _event(state="fail", percent=40, code=-4, reason="MD5 mismatch"),
            b'{"type":"report_progress","report":{"progress":{"state":"fail",'
            b'"result_code":"-4","result_msg":"MD5 mismatch"},"version":"0.2"}}',
        ),
    ],
    ids=["downloading", "burning", "done", "fail"],
)
def test_report_payloads_follow_tencent_iot_explorer(event: Event, payload: bytes) -> None:
    assert ota_report_payload(event, "0.2") == payload


def test_report_payload_ignores_other_events() -> None:
    assert ota_report_payload(Event("ptz", {"state": "downloading"}), "1") is None
    assert ota_report_payload(_event(state="confirming"), "1") is None


def test_reporter_publishes_to_the_ota_report_topic() -> None:
    sent: List[Tuple[str, bytes]] = []
    versions = iter(["V2", "V3"])
    reporter = OtaReporter(
        lambda topic, payload: sent.append((topic, payload)),
        product_id="ABCDEFGHIJ",
        device_name="cam01",
        version=lambda: next(versions),
    )
    reporter(_event(state="downloading", percent=5))
    reporter(Event("power", {"status": "standby"}))
    reporter(_event(state="done", percent=100))
    reporter.report_version("V3")
    assert [topic for topic, _ in sent] == ["$ota/report/ABCDEFGHIJ/cam01"] * 3
    assert [json.loads(payload)["report"]["version"] for _, payload in sent] == ["V2", "V3", "V3"]
    assert sent[-1][1] == ota_version_payload("V3") == b'{"type":"report_version","report":{"version":"V3"}}'


# -- CommandInstaller ------------------------------------------------------------------------


def test_command_installer_runs_the_argv_without_a_shell(tmp_path: Path) -> None:
    out = tmp_path / "args.json"
    script = "import json, sys; open(sys.argv[1], 'w').write(json.dumps(sys.argv[2:]))"
    installer = CommandInstaller(
        [sys.executable, "-c", script, str(out), "{path}", "md5={md5}", "{size}", "a;b $(x) {0}"]
    )
    installer("/data/fw image.bin", MD5, 1234)
    assert json.loads(out.read_text()) == ["/data/fw image.bin", f"md5={MD5}", "1234", "a;b $(x) {0}"]


def test_command_installer_default_is_rauc() -> None:
    assert CommandInstaller().argv("/data/firmware.raucb", MD5, 1) == ["rauc", "install", "/data/firmware.raucb"]
    assert CommandInstaller().timeout == 600
    with pytest.raises(ValueError, match="sequence"):
        CommandInstaller("rauc install {path}")


def test_command_installer_failure_raises(caplog: pytest.LogCaptureFixture) -> None:
    installer = CommandInstaller([sys.executable, "-c", "print('bundle signature invalid'); raise SystemExit(3)"])
    with caplog.at_level(logging.WARNING), pytest.raises(InstallError, match="status 3"):
        installer("/x", MD5, 1)
    assert "bundle signature invalid" in caplog.text


def test_command_installer_missing_command_raises() -> None:
    with pytest.raises(InstallError, match="cannot run"):
        CommandInstaller(["/nonexistent/bin/installer", "{path}"])("/x", MD5, 1)


def test_command_installer_timeout_kills_the_process_group() -> None:
    # The child starts a grandchild that holds the output pipe: unless the whole group is killed,
    # collecting the output would wait for the grandchild.
    script = (
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n"
        "time.sleep(30)\n"
    )
    installer = CommandInstaller([sys.executable, "-c", script], timeout=0.5)
    started = time.monotonic()
    with pytest.raises(InstallError, match="timed out"):
        installer("/x", MD5, 1)
    assert time.monotonic() - started < 15  # not the 30 s the child and grandchild sleep


# -- simulated firmware ------------------------------------------------------------------------


def test_simulated_image_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "fw.bin"
    md5 = make_image(path, "V1.05.00", 100_000)
    data = path.read_bytes()
    assert len(data) == 100_000
    assert data.startswith(b"IOTVIDEO-SIM-FIRMWARE V1.05.00\n")
    assert md5 == hashlib.md5(data).hexdigest()
    assert read_image_version(path) == "V1.05.00"


def test_simulated_images_are_deterministic(tmp_path: Path) -> None:
    a, md5_a = make_body(tmp_path, "V1", 70_000)
    (tmp_path / "again").mkdir()
    b, md5_b = make_body(tmp_path / "again", "V1", 70_000)
    c, _ = make_body(tmp_path, "V2", 70_000)
    d, _ = make_body(tmp_path, "V1", 70_001)
    assert (a, md5_a) == (b, md5_b)
    assert a[100:] != c[100:]
    assert a[100:] != d[100:70_000]


def test_smallest_image_is_the_header(tmp_path: Path) -> None:
    header = MAGIC + b"V1\n"
    make_image(tmp_path / "fw", "V1", len(header))
    assert (tmp_path / "fw").read_bytes() == header
    assert read_image_version(tmp_path / "fw") == "V1"
    with pytest.raises(ValueError, match="size"):
        make_image(tmp_path / "fw", "V1", len(header) - 1)


@pytest.mark.parametrize("version", ["", "V 1", "x" * 65, "Vä", "V1\n", 1])
def test_bad_simulated_versions(tmp_path: Path, version: Any) -> None:
    with pytest.raises(ValueError, match="version"):
        make_image(tmp_path / "fw", version, 1000)


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:-1],
        lambda data: data + b"\0",
        lambda data: data[:-1] + bytes([data[-1] ^ 1]),
        lambda data: data.replace(b"IOTVIDEO", b"IOTVIDEX", 1),
        lambda data: data.replace(b"V3.1\n", b"V3.2\n", 1),
        lambda data: b"",
        lambda data: os.urandom(len(data)),
    ],
    ids=["truncated", "extended", "flipped", "magic", "version", "empty", "random"],
)
def test_damaged_images_are_not_images(tmp_path: Path, damage: Callable[[bytes], bytes]) -> None:
    path = tmp_path / "fw"
    make_image(path, "V3.1", 200_000)
    path.write_bytes(damage(path.read_bytes()))
    assert read_image_version(path) is None


@settings(max_examples=40, deadline=None)
@given(version=st.from_regex(r"[\x21-\x7e]{1,64}", fullmatch=True), extra=st.integers(0, 140_000))
def test_any_valid_image_reads_back(tmp_path_factory: pytest.TempPathFactory, version: str, extra: int) -> None:
    path = tmp_path_factory.mktemp("sim") / "fw"
    size = len(MAGIC) + len(version) + 1 + extra
    md5 = make_image(path, version, size)
    assert path.stat().st_size == size
    assert read_image_version(path) == version
    assert hashlib.md5(path.read_bytes()).hexdigest() == md5


def test_a_stop_during_the_resume_rehash_keeps_the_recorded_offset(tmp_path: Path) -> None:
    """close() while the kept prefix is re-hashed: the job file must still say 500, not 0."""
    _write_record(tmp_path, offset=500)
    submit = QueuedSubmit()
    manager, _, _ = _manager(tmp_path, submit=submit)
    manager.start()
    [job] = submit.jobs
    (tmp_path / f"firmware-{manager.status().md5}.bin.part").write_bytes(b"\0" * 500)
    manager._stop.set()  # what close() sets, arriving while the worker re-hashes
    job()
    assert json.loads((tmp_path / JOB_FILE).read_text())["offset"] == 500


@pytest.mark.parametrize("stop", ["close", "cancel"])
def test_a_stop_before_the_connection_exists_cuts_it_as_soon_as_it_does(tmp_path: Path, stop: str) -> None:
    """The transfer hands over its interrupt only once it has a socket: a stop that came first
    (during the name lookup or the TCP connect) must still cut that socket at once."""
    manager, _, _ = _manager(tmp_path)
    manager.request(URL, MD5, 1000)
    job = manager._job
    assert job is not None
    job.running = True  # as the worker marks it (the pool here never runs the job)
    hooks = manager._hooks(job)
    cut: list[str] = []
    hooks.set_interrupt(lambda: cut.append("before"))
    assert cut == []  # no stop yet: only kept
    if stop == "close":
        manager.close(timeout=0)
    else:
        assert manager.cancel() is True
    assert cut == ["before"]  # the stop used the interrupt it found
    hooks.set_interrupt(lambda: cut.append("after"))
    assert cut == ["before", "after"]  # one handed over after the stop is used at once
