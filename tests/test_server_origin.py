"""The ``Origin`` check of ``ws://`` listeners: web pages the config does not list are refused (403).

A browser lets a page from any site open a WebSocket to a loopback address; without tokens such
a connection would be an owner. The daemon runs as a subprocess on port 0 (see
test_server_harness.py) and is driven with the real ``websockets`` client, which sends an
``Origin`` header only when asked to, as a page's browser always does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from iotvideo_signaling import Device, SimulatedHardware
from iotvideo_signaling.server import ConfigError, Daemon, Settings, parse_listen, throttle, websocket
from test_server_harness import LineClient, Served, command, run_cli, start_server

websockets_sync = pytest.importorskip("websockets.sync.client")
from websockets.exceptions import InvalidStatus  # noqa: E402 - after the skip when websockets is missing

ALLOWED = "http://localhost:8080"
CONFIG = f"""
[server]
listen = ["tcp://127.0.0.1:0", "ws://127.0.0.1:0"]
allowed_origins = ["{ALLOWED}", "https://panel.example.com"]
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One daemon without tokens (every client an owner) that allows two origins."""
    server = start_server(tmp_path_factory.mktemp("origin"), config=CONFIG)
    yield server
    assert server.stop() == 0, server.log()


def ws_request(url: str, raw: bytes, origin: str | None) -> Any:
    """One command over ``ws://`` with ``origin`` as the Origin header (None: no header)."""
    with websockets_sync.connect(url, origin=origin, compression=None, open_timeout=5) as ws:
        ws.send(raw.decode())
        return orjson.loads(ws.recv(timeout=5))


def camera_status(served: Served) -> tuple[str, int]:
    """``(status, user_num)`` asked over tcp://, which has no origins: user_num counts this client."""
    with LineClient(served.url("tcp")) as client:
        reply = client.request(command("get_status", 1))
    assert reply["result"] == "0", reply
    return reply["status"], int(reply["user_num"])


def settled_status(served: Served) -> tuple[str, int]:
    """:func:`camera_status` once the previous tests' clients are gone (their release may lag)."""
    deadline = time.monotonic() + 5
    while (status := camera_status(served))[1] != 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    return status


def refused_lines(served: Served, origin: str) -> list[str]:
    return [line for line in served.log().splitlines() if f"Origin {origin!r} is not in" in line]


def test_a_client_without_origin_is_served(served: Served) -> None:
    reply = ws_request(served.url("ws"), command("get_status", 7), origin=None)
    assert (reply["confirmation_topic"], reply["result"], reply["message_id"]) == ("get_status", "0", 7)


def test_send_sends_no_origin_and_is_served(served: Served) -> None:
    result = run_cli("send", "--to", served.url("ws"), "get_status")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "http://localhost:8081",  # another local port: the case of the issue
        "https://localhost:8080",  # the allowed host and port, another scheme
        "http://127.0.0.1:8080",  # the same page under another name is another origin
        "http://localhost:8080/",  # no browser sends this; the match is exact
        "HTTP://LOCALHOST:8080",
        "null",  # sandboxed iframes and file:// pages
        "",
    ],
)
def test_a_page_of_another_origin_is_refused_with_403_and_changes_nothing(served: Served, origin: str) -> None:
    assert settled_status(served) == ("working", 1)
    with pytest.raises(InvalidStatus) as refused:
        ws_request(served.url("ws"), command("set_status", 1, status="standby"), origin=origin)
    assert refused.value.response.status_code == 403
    assert camera_status(served) == ("working", 1)  # not in standby, and no ws:// client left behind
    assert served.wait_log(f"Origin {origin!r} is not in [server] allowed_origins")
    assert not refused_lines(served, ALLOWED)


@pytest.mark.parametrize("origin", [ALLOWED, "https://panel.example.com"])
def test_a_page_of_an_allowed_origin_is_served(served: Served, origin: str) -> None:
    url = served.url("ws")
    try:
        reply = ws_request(url, command("set_status", 2, status="standby"), origin=origin)
        assert (reply["confirmation_topic"], reply["result"]) == ("set_status", "0"), reply
        assert camera_status(served)[0] == "standby"
    finally:
        ws_request(url, command("set_status", 3, status="working"), origin=None)
    assert camera_status(served)[0] == "working"
    assert not refused_lines(served, origin)


def test_a_page_retrying_in_a_loop_is_logged_once(served: Served) -> None:
    for _ in range(20):
        with pytest.raises(InvalidStatus):
            ws_request(served.url("ws"), command("get_status"), origin="http://retrying.example")
    with pytest.raises(InvalidStatus):
        ws_request(served.url("ws"), command("get_status"), origin="http://another.example")
    assert served.wait_log("Origin 'http://another.example' is not in")
    lines = refused_lines(served, "http://retrying.example")
    assert len(lines) == 1, lines
    assert " INFO " in lines[0]
    assert "refused a WebSocket from 127.0.0.1 to ws://127.0.0.1:" in lines[0]
    assert "(HTTP 403)" in lines[0]


# -- in-process --------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_refusals_are_logged_at_most_once_per_origin_and_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    refusals = websocket.OriginRefusals(clock)
    peer, local = ("127.0.0.1", 50000), ("::1", 7131, 0, 0)
    caplog.set_level(logging.INFO, logger=websocket.__name__)

    def lines() -> list[str]:
        found = [record.getMessage() for record in caplog.records]
        assert all(record.levelno == logging.INFO for record in caplog.records)
        caplog.clear()
        return found

    refusals.refused("http://evil.example", peer, local)
    assert lines() == [
        "refused a WebSocket from 127.0.0.1 to ws://[::1]:7131 (HTTP 403): "
        "Origin 'http://evil.example' is not in [server] allowed_origins"
    ]
    for _ in range(3):
        clock.now += throttle.REFUSAL_LOG_INTERVAL / 4
        refusals.refused("http://evil.example", peer, local)
    assert lines() == []
    refusals.refused("http://other.example", peer, local)  # another origin has its own line
    assert len(lines()) == 1
    clock.now += throttle.REFUSAL_LOG_INTERVAL / 4
    refusals.refused("http://evil.example", peer, local)
    [line] = lines()
    assert line.endswith("Origin 'http://evil.example' is not in [server] allowed_origins; 3 more since its last line")
    clock.now += throttle.REFUSAL_LOG_INTERVAL
    refusals.refused("http://evil.example", peer, local)
    [line] = lines()
    assert line.endswith("allowed_origins")  # nothing was left out since the last line


def test_refusal_log_remembers_a_bounded_number_of_origins(caplog: pytest.LogCaptureFixture) -> None:
    refusals = websocket.OriginRefusals(FakeClock())
    peer = local = ("127.0.0.1", 1)
    caplog.set_level(logging.INFO, logger=websocket.__name__)
    refusals.refused("http://flood.example", peer, local)
    for i in range(websocket.REFUSAL_LOG_ORIGINS * 2):
        refusals.refused(f"http://site-{i}.example", peer, local)
        refusals.refused("http://flood.example", peer, local)  # the most recent: never forgotten
    assert len(refusals._logged) == websocket.REFUSAL_LOG_ORIGINS
    assert sum("flood.example" in record.getMessage() for record in caplog.records) == 1
    caplog.clear()
    refusals.refused("http://site-0.example", peer, local)  # forgotten long ago: logged again
    assert len(caplog.records) == 1


def test_a_long_origin_is_cut_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=websocket.__name__)
    websocket.OriginRefusals().refused("http://" + "a" * 5000 + "\nINFO forged line", ("127.0.0.1", 1), None)
    [record] = caplog.records
    message = record.getMessage()
    assert "\n" not in message
    assert len(message) < 400


@pytest.mark.parametrize("origins", [("http://localhost:8080/",), "http://localhost:8080", ("null",)])
def test_an_embedder_s_bad_allowed_origins_stop_the_ws_listener(tmp_path: Path, origins: Any) -> None:
    settings = Settings(listen=(parse_listen("ws://127.0.0.1:0"),), allowed_origins=origins)

    async def start() -> None:
        with Device(SimulatedHardware(tmp_path)) as device:
            daemon = Daemon(device, settings)
            await daemon.start()
            await daemon.stop()  # only when the test fails

    with pytest.raises(ConfigError, match=r"\[server\] allowed_origins"):
        asyncio.run(start())
