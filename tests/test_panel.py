"""The panel simulator in a real browser: headless Chromium driven by Selenium.

The daemon runs as ``serve --panel`` (a subprocess, real sockets); the browser is Debian's
``chromium-headless-shell`` (or ``chromium``) with its matching ``chromedriver``. Without them the
browser tests skip; with ``IOTVIDEO_SIGNALING_REQUIRE_BROWSER=1`` (CI) they fail instead.

What the page sent is read from the page itself: every test page gets a wrapper around
``WebSocket.prototype.send`` that records each message with ``performance.now()``, and the PTZ
buttons' ``pointerup`` times; timings are measured inside the browser, where a timer cannot fire
early (the upper bounds scale with ``IOTVIDEO_SIGNALING_TIME_FACTOR`` for slow machines).

A screenshot of the page goes to ``$IOTVIDEO_SIGNALING_ARTIFACTS`` (CI keeps that folder beside its
logs), else to the test's temporary directory.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, NoReturn

import orjson
import pytest
import trustme

from iotvideo_signaling._simfirmware import make_image
from iotvideo_signaling.server.panel import CSP
from ota_helpers import Behaviour, FirmwareServer, make_ca_file
from test_server_harness import OWNER_TOKEN, LineClient, Served, command, run_cli, start_server

TRUE = {"1", "true", "yes", "on"}
TIME_FACTOR = float(os.environ.get("IOTVIDEO_SIGNALING_TIME_FACTOR", "1") or "1")
WAIT = 10.0 * TIME_FACTOR  # the longest wait for anything the page should show

pytestmark = pytest.mark.slow


def _required() -> bool:
    return os.environ.get("IOTVIDEO_SIGNALING_REQUIRE_BROWSER", "").strip().lower() in TRUE


def _missing(why: str) -> NoReturn:
    if _required():
        pytest.fail(f"IOTVIDEO_SIGNALING_REQUIRE_BROWSER is set but {why}")
    pytest.skip(why)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- the browser -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    """One headless Chromium for the module (each test opens its pages in it)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed (pip install -e '.[test]')")
    browser = os.environ.get("IOTVIDEO_SIGNALING_CHROMIUM") or next(
        filter(None, map(shutil.which, ("chromium-headless-shell", "chromium", "chromium-browser"))), None
    )
    chromedriver = shutil.which("chromedriver")
    if browser is None or chromedriver is None:
        _missing("no headless Chromium and chromedriver (apt-get install chromium-headless-shell chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    arguments = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000")
    for argument in arguments:  # --no-sandbox: CI runs as root
        options.add_argument(argument)
    chrome = webdriver.Chrome(options=options, service=Service(chromedriver))
    chrome.set_script_timeout(WAIT)
    chrome.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORDER})
    try:
        yield chrome
    finally:
        chrome.quit()


#: Runs in every page before its own scripts (CDP Page.addScriptToEvaluateOnNewDocument).
RECORDER = """
window.__sent = [];
window.__pointerUps = [];
const send = WebSocket.prototype.send;
WebSocket.prototype.send = function (data) {
  window.__sent.push([performance.now(), String(data)]);
  return send.call(this, data);
};
document.addEventListener("pointerup", (event) => {
  if (event.target.closest && event.target.closest("button.ptz")) window.__pointerUps.push(performance.now());
}, true);
"""


class Page:
    """The panel page in the browser, with what it sent recorded."""

    def __init__(self, driver: Any, url: str) -> None:
        self.driver = driver
        driver.get(url)
        self.wait(lambda: self.text("link") in ("connected", "token needed"))

    def text(self, element_id: str) -> str:
        return str(self.driver.execute_script(f"return document.getElementById({element_id!r}).textContent"))

    def wait(self, condition: Callable[[], Any], timeout: float = WAIT) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"the page did not get there in {timeout:g} s; it shows: {self.text('link')!r}")
            time.sleep(0.05)

    def control(self, topic: str) -> Any:
        """The one button (or form control) whose accessible name contains ``topic``."""
        from selenium.webdriver.common.by import By

        found = [
            element
            for element in self.driver.find_elements(By.CSS_SELECTOR, "button, input, select, textarea")
            if topic in (element.accessible_name or "")
        ]
        assert len(found) == 1, [element.accessible_name for element in found]
        return found[0]

    def sent(self) -> list[tuple[float, str]]:
        return [(float(at), str(data)) for at, data in self.driver.execute_script("return window.__sent")]

    def log_items(self) -> list[str]:
        return [str(item) for item in self.driver.execute_script(
            "return [...document.querySelectorAll('[role=log] li')].map((li) => li.textContent)"
        )]  # fmt: skip

    def reply_shown(self, topic: str, before: int) -> str:
        """The first log line after the ``before`` first ones that shows ``topic``'s result code."""

        def shown() -> str | None:
            for item in self.log_items()[before:]:
                if item.startswith(topic) and "result " in item:
                    return item
            return None

        return str(self.wait(shown))

    def click(self, topic: str) -> str:
        before = len(self.log_items())
        self.control(topic).click()
        return self.reply_shown(topic.split(maxsplit=1)[0], before)

    def hold(self, name: str, seconds: float) -> None:
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(self.driver).click_and_hold(self.control(name)).pause(seconds).release().perform()

    def screenshot(self, name: str, tmp_path: Path) -> Path:
        folder = Path(os.environ.get("IOTVIDEO_SIGNALING_ARTIFACTS") or tmp_path)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        self.driver.save_screenshot(str(path))
        return path


def panel_url(served: Served) -> str:
    return served.url("ws").replace("ws://", "http://", 1) + "/"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = start_server(tmp_path, ("tcp://127.0.0.1:0", "ws://127.0.0.1:0"), extra=("--panel",))
    try:
        yield server
    finally:
        server.stop()


def ptz_commands(page: Page) -> list[tuple[float, str]]:
    found = []
    for at, data in page.sent():
        if '"topic":"ptz"' in data:
            found.append((at, orjson.loads(data.partition("cmd=")[2])["data"]["cmd"]))
    return found


# -- without a browser: the HTTP side ------------------------------------------------------------


def test_the_page_is_served_with_a_restrictive_csp(served: Served) -> None:
    with urllib.request.urlopen(panel_url(served), timeout=10) as response:
        assert response.headers["Content-Security-Policy"] == CSP
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        page = response.read().decode()
    assert '<script src="panel.js" defer></script>' in page
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from elsewhere
    with urllib.request.urlopen(panel_url(served) + "panel.json", timeout=10) as response:
        assert json.loads(response.read())["auth"] is False
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(panel_url(served) + "etc/passwd", timeout=10)
    assert missing.value.code == 404
    assert "the panel simulator is at http://127.0.0.1:" in served.log()


def test_panel_without_a_ws_listener_adds_one_on_a_free_loopback_port(tmp_path: Path) -> None:
    config = '[server]\nlisten = ["tcp://127.0.0.1:0"]\n'  # (the default tcp port may be taken here)
    server = start_server(tmp_path, None, config=config, extra=("--panel",))
    try:
        ws_urls = [url for url in server.urls if url.startswith("ws://127.0.0.1:")]
        assert len(ws_urls) == 1 and not ws_urls[0].endswith(":0")
        page = ws_urls[0].replace("ws://", "http://") + "/"
        assert f"the panel simulator is at {page}" in server.log()
        with urllib.request.urlopen(page, timeout=10) as response:
            assert b"panel.js" in response.read()
    finally:
        server.stop()


def test_panel_without_a_ws_listener_on_the_command_line_is_refused(tmp_path: Path) -> None:
    result = run_cli("serve", "--panel", "--listen", "tcp://127.0.0.1:0", "--state-dir", str(tmp_path))
    assert result.returncode == 2
    assert "--panel needs a ws:// listener" in result.stderr


# -- in the browser ------------------------------------------------------------------------------


def test_every_control_sends_its_topic_and_shows_the_reply(driver: Any, served: Served, tmp_path: Path) -> None:
    page = Page(driver, panel_url(served))
    page.wait(lambda: page.text("version") != "?")  # the page asked for the status on connecting
    assert page.text("power") == "working"
    assert page.text("version") == "V1.0.0"
    for topic in ("get_status", "version", "intercom", "Mirror_flip flip", "Mirror_flip normal", "sd_format",
                  "bind_status", "set_status standby", "set_status working"):  # fmt: skip
        item = page.click(topic)
        assert "result " in item, item
    assert "result 0" in page.click("get_device_st")  # an inner_define command: the reply is an array
    assert "status 0 (accepted)" in page.text("admission")
    before = len(page.log_items())
    page.control("upgrade_cancel").click()
    assert "result 0" in page.reply_shown("upgrade_cancel", before)
    page.control("Send the raw command").click()  # the box holds an inner_define command
    page.wait(lambda: any(item.startswith("raw") and "result 0" in item for item in page.log_items()))
    for name in ("ptz up", "ptz down", "ptz left", "ptz right"):
        page.hold(name, 0.1)
    page.wait(lambda: len([c for _, c in ptz_commands(page) if c.endswith("_press")]) == 4)
    assert page.driver.find_element("css selector", "[role=log]").tag_name == "ol"
    message_ids = [orjson.loads(data.partition("cmd=")[2])["message_id"] for _, data in page.sent() if "cmd={" in data]
    assert message_ids == list(range(1, len(message_ids) + 1))  # a counter, as the panel's
    page.screenshot("panel.png", tmp_path)


def test_holding_ptz_up_moves_the_camera_and_the_release_follows_500_ms_later(driver: Any, served: Served) -> None:
    page = Page(driver, panel_url(served))
    with LineClient(served.url("tcp")) as client:
        start = client.request(command("ptz", 1, cmd="ptz_release_pre"))["current_y"]
        page.hold("ptz up", 1.5)
        page.wait(lambda: any(c == "ptz_release_pre" for _, c in ptz_commands(page)[1:]))
        time.sleep(0.2)
        end = client.request(command("ptz", 2, cmd="ptz_release_pre"))["current_y"]
    assert end > start  # the simulated motor moved up
    (press_at, press), (release_at, release) = ptz_commands(page)[-2:]
    assert (press, release) == ("ptz_up_press", "ptz_release_pre")
    (up_at,) = page.driver.execute_script("return window.__pointerUps")
    assert 0.45 <= (release_at - up_at) / 1000 <= 1.0 * TIME_FACTOR
    assert (up_at - press_at) / 1000 >= 1.4


def test_a_press_within_500_ms_of_a_release_cancels_the_release(driver: Any, served: Served) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    page = Page(driver, panel_url(served))
    page.wait(lambda: ptz_commands(page))  # the refresh's release
    first = len(ptz_commands(page))
    up, right = page.control("ptz up"), page.control("ptz right")
    chain = ActionChains(driver).click_and_hold(up).pause(0.2).release().pause(0.15)
    chain.click_and_hold(right).pause(0.2).release().perform()
    page.wait(lambda: len(ptz_commands(page)) >= first + 3)
    time.sleep(0.8 * TIME_FACTOR)  # a second release would come within 0.5 s
    assert [c for _, c in ptz_commands(page)[first:]] == ["ptz_up_press", "ptz_right_press", "ptz_release_pre"]


def test_a_hidden_page_releases_at_once(driver: Any, served: Served) -> None:
    page = Page(driver, panel_url(served))
    page.wait(lambda: ptz_commands(page))
    first = len(ptz_commands(page))
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).click_and_hold(page.control("ptz left")).perform()
    page.wait(lambda: len(ptz_commands(page)) == first + 1)
    hidden_at = driver.execute_script(
        "Object.defineProperty(document, 'visibilityState', {value: 'hidden', configurable: true});"
        "document.dispatchEvent(new Event('visibilitychange')); return performance.now();"
    )
    page.wait(lambda: len(ptz_commands(page)) == first + 2)
    at, release = ptz_commands(page)[-1]
    assert release == "ptz_release_pre"
    assert at - hidden_at < 100  # at once, not after 500 ms: the same task sends it
    ActionChains(driver).release().perform()


def test_flip_and_standby_change_the_simulated_camera(driver: Any, served: Served) -> None:
    import websockets.sync.client as websockets_sync

    page = Page(driver, panel_url(served))
    with websockets_sync.connect(served.url("ws"), compression=None, open_timeout=10) as watcher:
        page.click("Mirror_flip flip")
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + WAIT
        while not any(e["kind"] == "flip" for e in events) and time.monotonic() < deadline:
            message = orjson.loads(watcher.recv(timeout=WAIT))
            if "event" in message:
                events.append(message["event"])
        assert {"kind": "flip", "mode": "flip"} in [{"kind": e["kind"], **e["data"]} for e in events]
    page.wait(lambda: page.text("flip") == "flip")
    page.click("set_status standby")
    sent = run_cli("send", "--to", served.url("tcp"), "get_status")
    assert orjson.loads(sent.stdout)["status"] == "standby"
    page.wait(lambda: page.text("power") == "standby")


def test_an_upgrade_shows_progress_to_100_and_the_new_version(driver: Any, tmp_path: Path) -> None:
    ca = trustme.CA()
    image = tmp_path / "image.bin"
    size = 3 * 1024 * 1024
    md5 = make_image(image, "V2.0.0", size)
    firmware = FirmwareServer(ca.issue_cert("127.0.0.1"), Behaviour(body=image.read_bytes()))
    config = f'[device]\nca_file = "{make_ca_file(ca, tmp_path)}"\nota_allowed_hosts = ["127.0.0.1"]\n'
    server = start_server(tmp_path, ("ws://127.0.0.1:0",), config=config, extra=("--panel",))
    try:
        page = Page(driver, panel_url(server))
        page.wait(lambda: page.text("version") == "V1.0.0")
        page.control("url").send_keys(firmware.url())
        page.control("md5").send_keys(md5)
        page.control("fileSize").send_keys(str(size))
        before = len(page.log_items())
        page.control("Start the upgrade").click()
        assert "result 0" in page.reply_shown("upgrade", before)
        page.wait(lambda: page.text("version") == "V2.0.0", timeout=60 * TIME_FACTOR)
        assert driver.execute_script("return document.getElementById('upgrade-progress').value") == 100
        assert page.text("upgrade-state").startswith("done 100%")
        events = [item for item in driver.execute_script(
            "return [...document.querySelectorAll('#events li')].map((li) => li.textContent)"
        ) if item.startswith("upgrade")]  # fmt: skip
        assert any('"state":"downloading"' in item for item in events), events
    finally:
        server.stop()
        firmware.stop()


class _OtherSite(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><title>another site</title>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_page_of_another_origin_cannot_open_the_websocket(driver: Any, served: Served) -> None:
    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OtherSite)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        driver.get(f"http://127.0.0.1:{other.server_address[1]}/")
        outcome = driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            f"const ws = new WebSocket({served.url('ws')!r} + '/');"
            "ws.onopen = () => done('opened'); ws.onclose = () => done('closed');"
        )
    finally:
        other.shutdown()
        other.server_close()
    assert outcome == "closed"
    assert served.wait_log(f"Origin 'http://127.0.0.1:{other.server_address[1]}' is not in")


def test_the_page_reconnects_when_the_daemon_restarts(driver: Any, tmp_path: Path) -> None:
    port = _free_port()
    listen = (f"ws://127.0.0.1:{port}",)
    first = start_server(tmp_path / "a", listen, extra=("--panel",))
    try:
        page = Page(driver, f"http://127.0.0.1:{port}/")
    finally:
        first.stop()
    page.wait(lambda: "reconnecting" in page.text("link"))
    second = start_server(tmp_path / "b", listen, extra=("--panel",))
    try:
        page.wait(lambda: page.text("link") == "reconnected", timeout=WAIT + 5)
        assert "result 0" in page.click("get_status")
    finally:
        second.stop()


def test_with_tokens_the_page_asks_for_one_and_sends_auth_first(driver: Any, tmp_path: Path) -> None:
    config = f'[tokens]\nowner = "{OWNER_TOKEN}"\n'
    server = start_server(tmp_path, ("ws://127.0.0.1:0",), config=config, extra=("--panel",))
    try:
        page = Page(driver, panel_url(server))
        driver.execute_script("sessionStorage.clear()")
        assert page.text("link") == "token needed"
        page.control("Token").send_keys("wrong-token-0123456789")
        page.control("Sign in (AUTH)").click()
        page.wait(lambda: page.text("link").startswith("token refused"))
        page.wait(lambda: page.text("link") == "token needed")  # after the daemon closed, a new connection
        page.control("Token").clear()
        page.control("Token").send_keys(OWNER_TOKEN)
        page.control("Sign in (AUTH)").click()
        page.wait(lambda: page.text("link") in ("connected", "reconnected"))
        assert "result 0" in page.click("get_status")
        first_messages = [data for _, data in page.sent() if data.startswith("AUTH ")]
        assert first_messages == ["AUTH wrong-token-0123456789", f"AUTH {OWNER_TOKEN}"]
    finally:
        server.stop()


class FakeDaemon:
    """The page's files and a WebSocket that answers as told: for a daemon that misbehaves.

    ``answers`` maps a topic to the raw text to answer with, or to None for no answer at all.
    """

    def __init__(self, answers: dict[str, str | None]) -> None:
        self.answers = answers
        self.url = ""
        self._ready = threading.Event()
        self._stop: Any = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10)

    def _run(self) -> None:
        import asyncio

        from websockets.asyncio.server import ServerConnection, serve

        from iotvideo_signaling.server.panel import PanelPage
        from iotvideo_signaling.server.websocket import _http_response

        page = PanelPage(auth_required=False)

        async def handler(ws: ServerConnection) -> None:
            async for message in ws:
                request = orjson.loads(str(message).partition("cmd=")[2] or "{}")
                topic, message_id = request.get("topic", ""), request.get("message_id")
                echo = orjson.dumps({"confirmation_topic": topic, "result": "0", "message_id": message_id}).decode()
                answer = self.answers.get(topic, echo)
                if answer is not None:
                    await ws.send(answer)

        def process_request(ws: ServerConnection, request: Any) -> Any:
            if request.headers.get("Upgrade", "").lower() == "websocket":
                return None
            return _http_response(page, request.path)

        async def main() -> None:
            loop = asyncio.get_running_loop()
            self._stop = loop.create_future()
            async with serve(handler, "127.0.0.1", 0, process_request=process_request) as server:
                self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
                self._ready.set()
                await self._stop

        asyncio.run(main())

    def close(self) -> None:
        loop = self._stop.get_loop()
        loop.call_soon_threadsafe(self._stop.set_result, None)
        self._thread.join(10)


def test_replies_are_cut_at_a_nul_bad_json_is_shown_and_silence_times_out(driver: Any) -> None:
    fake = FakeDaemon(
        {
            "get_status": '{"confirmation_topic":"get_status","result":"0","status":"standby","user_num":2}\u0000junk',
            "version": "this is not JSON",
            "intercom": None,  # never answered
        }
    )
    try:
        page = Page(driver, fake.url)
        page.wait(lambda: page.text("power") == "standby")  # parsed up to the NUL
        items = page.log_items()
        assert any(item.startswith("get_status") and "result 0" in item for item in items), items
        assert any(item.startswith("version") and "the reply is not JSON" in item for item in items), items
        started = time.monotonic()
        timed_out = page.wait(
            lambda: [i for i in page.log_items() if i.startswith("intercom") and "no reply within 7.5 s" in i],
            timeout=7.5 + WAIT,
        )
        assert timed_out
        assert time.monotonic() - started < 7.5 + WAIT
    finally:
        fake.close()
