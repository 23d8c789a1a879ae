"""The upgrade topic end to end: Device + SimulatedHardware + a real HTTPS server (trustme CA)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import trustme

from iotvideo_signaling import Device, DeviceConfig, Event, SimulatedHardware
from iotvideo_signaling._simfirmware import make_image
from ota_helpers import Behaviour, FirmwareServer, make_ca_file, wait_for

SIZE = 300_000


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server(ca: trustme.CA, tmp_path: Path) -> Iterator[tuple[FirmwareServer, str]]:
    image = tmp_path / "image.bin"
    md5 = make_image(image, "V2.0.0", SIZE)
    srv = FirmwareServer(ca.issue_cert("127.0.0.1"), Behaviour(body=image.read_bytes()))
    yield srv, md5
    srv.stop()


def _upgrade(url: str, md5: str, size: int, message_id: Any = 5) -> bytes:
    body = {"topic": "upgrade", "message_id": message_id, "data": {"url": url, "md5": md5, "fileSize": size}}
    return b"action=user_define&channel=0&cmd=" + orjson.dumps(body)


def _events(device: Device) -> list[Event]:
    seen: list[Event] = []
    lock = threading.Lock()

    def record(event: Event) -> None:
        with lock:
            seen.append(event)

    device.subscribe(record)
    return seen


def test_good_upgrade_changes_the_version(server: tuple[FirmwareServer, str], ca: trustme.CA, tmp_path: Path) -> None:
    srv, md5 = server
    downloads = tmp_path / "ota"
    config = DeviceConfig(
        download_dir=str(downloads), ca_file=make_ca_file(ca, tmp_path), ota_allowed_hosts=("127.0.0.1",)
    )
    with Device(SimulatedHardware(tmp_path / "state"), config=config) as device:
        seen = _events(device)
        reply = orjson.loads(device.handle(_upgrade(srv.url(), md5.upper(), SIZE)))
        assert reply == {"confirmation_topic": "upgrade", "result": "0", "message_id": 5}
        wait_for(lambda: any(e.kind == "upgrade" and e.data["state"] in ("done", "fail") for e in seen))
        states = [e.data["state"] for e in seen if e.kind == "upgrade"]
        assert states[0] == "downloading" and states[-1] == "done" and "burning" in states, states
        version = orjson.loads(device.handle(b'{"topic":"version","message_id":1}'))
        assert version["info"] == "V2.0.0"
        assert list(downloads.iterdir()) == []  # the installed image does not stay on flash
    # the signed query string never reached an event
    assert all("Signature" not in orjson.dumps(e.data).decode() for e in seen)


def test_upgrade_is_refused_for_sharers_and_bad_fields(tmp_path: Path) -> None:
    with Device(SimulatedHardware(tmp_path)) as device:
        device.open_session("guest", role="sharer")
        denied = orjson.loads(device.handle(_upgrade("https://h/f.bin", "0" * 32, 10), visitor="guest"))
        assert denied["result"] == "6"
        bad = [
            ("http://h/f.bin", "0" * 32, 10),
            ("https://h/f.bin", "9D9F94E276DD57E4EA**********74DD", 10),
            ("https://h/f.bin", "0" * 32, 0),
            ("https://h/f.bin", "0" * 32, 2**40),
        ]
        for url, md5, size in bad:
            reply = orjson.loads(device.handle(_upgrade(url, md5, size)))
            assert reply["result"] == "4", (url, md5, size, reply)
            assert reply["message_id"] == 5


def test_bad_image_fails_install_and_keeps_the_version(ca: trustme.CA, tmp_path: Path) -> None:
    body = b"not a firmware image\n" * 1000
    srv = FirmwareServer(ca.issue_cert("127.0.0.1"), Behaviour(body=body))
    try:
        config = DeviceConfig(
            download_dir=str(tmp_path / "ota"), ca_file=make_ca_file(ca, tmp_path), ota_allowed_hosts=("127.0.0.1",)
        )
        with Device(SimulatedHardware(tmp_path / "state"), config=config) as device:
            seen = _events(device)
            md5 = hashlib.md5(body).hexdigest()
            assert orjson.loads(device.handle(_upgrade(srv.url(), md5, len(body))))["result"] == "0"
            wait_for(lambda: any(e.kind == "upgrade" and e.data["state"] in ("done", "fail") for e in seen))
            last = [e.data for e in seen if e.kind == "upgrade"][-1]
            assert last["state"] == "fail" and last["code"] == -5
            assert orjson.loads(device.handle(b'{"topic":"version"}'))["info"] == "V1.0.0"
    finally:
        srv.stop()


def test_by_default_an_upgrade_from_the_cameras_own_network_is_refused(
    server: tuple[FirmwareServer, str], ca: trustme.CA, tmp_path: Path
) -> None:
    srv, md5 = server
    config = DeviceConfig(download_dir=str(tmp_path / "ota"), ca_file=make_ca_file(ca, tmp_path))
    with Device(SimulatedHardware(tmp_path / "state"), config=config) as device:
        for url in (srv.url(), "https://192.168.1.1/fw.bin", "https://[fe80::1]/fw.bin", "https://localhost/fw.bin"):
            reply = orjson.loads(device.handle(_upgrade(url, md5, SIZE)))
            assert reply["result"] == "4", (url, reply)
            assert "non-public address" in reply["reason"]
    assert srv.requests == []
