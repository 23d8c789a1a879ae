"""The ``demo`` command: a simulated camera walked through every topic, the way the panel does.

:func:`run_demo` sends each step's command to an in-process Device as the panel's visitor, checks
its result and the events it causes, and writes a transcript line by line to a callable. The
upgrade step downloads a simulated image from :func:`firmware_server`, an HTTPS server on
loopback whose throwaway CA comes from ``trustme`` (the ``demo`` extra); without ``trustme``
that step is skipped and the transcript says how to install it.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, NamedTuple

import orjson

from ._simfirmware import make_image
from .cli import USER_DEFINE
from .config import DeviceConfig
from .device import Device
from .events import Event
from .simulator import SimulatedHardware

__all__ = ["DemoFirmware", "firmware_server", "run_demo"]

log = logging.getLogger(__name__)

#: How to get the demo's upgrade step (its throwaway CA comes from ``trustme``).
DEMO_INSTALL = 'pip install "iotvideo-signaling[demo]"'


def run_demo(state_dir: str, out: Callable[[str], None]) -> int:
    """Walk a simulated camera in ``state_dir`` through every topic, the way the panel would.

    Args:
        state_dir: an empty directory for the camera's state, the firmware image and the CA.
        out: called with each line of the transcript.

    Returns:
        0 when every step got its expected result, else 1.
    """
    hardware = SimulatedHardware(state_dir, format_delay=0.3)
    with firmware_server(Path(state_dir), "V2.0.0", 256 * 1024) as firmware:
        config = DeviceConfig(
            download_dir=str(Path(state_dir) / "ota"),
            ca_file=firmware.ca_file if firmware else None,
            ota_allowed_hosts=(DEMO_HOST,),  # its own loopback server: refused by default
        )
        with Device(hardware, config=config) as device:
            demo = _Demo(device, out)
            unsubscribe = device.subscribe(demo.events.put)
            try:
                _demo_steps(demo, hardware, firmware)
            finally:
                unsubscribe()
    return demo.summary()


class _Demo:
    """Sends each step's command as the panel's visitor, writes it to ``out`` and checks its result."""

    def __init__(self, device: Device, out: Callable[[str], None]) -> None:
        self.device = device
        self.out = out
        self.events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self.ids = itertools.count(1)
        self.counts = {"ok": 0, "skipped": 0, "unexpected": 0}
        self.missing: set[str] = set()  # features this build answers "not supported"
        self.history: list[Event] = []  # every event printed so far
        self._mark = 0  # where the events since the last step start in ``history``

    def step(
        self,
        title: str,
        command: dict[str, Any] | str,
        *,
        expect: str = "0",
        fields: dict[str, Any] | None = None,
        visitor: str = "panel",
        feature: str | None = None,
    ) -> Any:
        """Send one command; ``expect`` is its ``result`` (or inner ``status``), ``fields`` must match."""
        if isinstance(command, dict):
            raw = USER_DEFINE + orjson.dumps({"topic": command.pop("topic"), "message_id": next(self.ids), **command})
        else:
            raw = command.encode()
        self.show_events()
        self._mark = len(self.history)
        self.out(f"\n-- {title}")
        self.out(f"   > {raw.decode()}")
        if feature in self.missing:
            return self.skip(f"{feature} is not in this build")
        reply = self.device.handle(raw, visitor=visitor)
        self.out(f"   < {reply.decode()}")
        value = orjson.loads(reply)
        body = value[0] if isinstance(value, list) and value else value
        if not isinstance(body, dict):
            return self._verdict(False, "a JSON object")
        if feature and body.get("result") == "3" and "not supported" in str(body.get("reason")):
            self.missing.add(feature)
            return self.skip(f"{feature} is not in this build")
        got = body.get("result", body.get("status"))
        wanted = {"result" if "result" in body else "status": expect, **(fields or {})}
        self._verdict(got == expect and all(body.get(k) == v for k, v in (fields or {}).items()), wanted)
        self.show_events()
        return body

    def skip(self, why: str) -> None:
        self.out(f"   skipped: {why}")
        self.counts["skipped"] += 1

    def note(self, text: str) -> None:
        self.out(f"   ({text})")

    def check(self, ok: bool, what: str) -> None:
        """A check of the camera's state outside a reply (a persisted value, an event)."""
        self.show_events()
        self.out(f"   check: {what}")
        self._verdict(ok, what)

    def _verdict(self, ok: bool, wanted: object) -> None:
        self.counts["ok" if ok else "unexpected"] += 1
        self.out("   ok" if ok else f"   UNEXPECTED: wanted {wanted}")

    def wait_event(self, kind: str, timeout: float = 5.0, **data: Any) -> Event | None:
        """The first event of ``kind`` with ``data`` since the last step, waiting for it if need be."""

        def matches(event: Event) -> bool:
            return event.kind == kind and all(event.data.get(k) == v for k, v in data.items())

        for event in self.history[self._mark :]:
            if matches(event):
                return event
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                event = self.events.get(timeout=remaining)
            except queue.Empty:
                return None
            self._print_event(event)
            if matches(event):
                return event

    def show_events(self) -> None:
        while True:
            try:
                self._print_event(self.events.get_nowait())
            except queue.Empty:
                return

    def _print_event(self, event: Event) -> None:
        self.history.append(event)
        self.out(f"   event: {event.kind} {orjson.dumps(dict(event.data)).decode()}")

    def summary(self) -> int:
        counts = self.counts
        self.out(f"\n{counts['ok']} ok, {counts['skipped']} skipped, {counts['unexpected']} unexpected")
        return 0 if counts["unexpected"] == 0 else 1


def _demo_steps(demo: _Demo, hardware: SimulatedHardware, firmware: DemoFirmware | None) -> None:
    device = demo.device
    demo.out("The panel opens the camera page: its visitor connects as the owner and starts live view.")
    device.open_session("panel", "owner")
    device.start_stream("panel")
    demo.show_events()

    demo.step(
        "get_status: power, viewers, Wi-Fi signal",
        {"topic": "get_status", "user": "owner"},
        fields={"status": "working", "user_num": 1},
    )
    demo.step("version: the running firmware", {"topic": "version", "data": {}})
    demo.step("Mirror_flip: flip the image", {"topic": "Mirror_flip", "data": {"mode": "flip"}})
    demo.check(hardware.flip == "flip", "the flip persisted in state.json")
    demo.step("Mirror_flip: back to normal", {"topic": "Mirror_flip", "data": {"mode": "normal"}})

    demo.step("set_status: standby (privacy mode)", {"topic": "set_status", "data": {"status": "standby"}})
    demo.step("get_status in standby", {"topic": "get_status"}, fields={"status": "standby"})
    demo.step("ptz in standby is refused", {"topic": "ptz", "data": {"cmd": "ptz_up_press"}}, expect="8", feature="ptz")
    demo.step(
        "get_device_st: live view is refused in standby",
        "action=inner_define&channel=0&cmd=get_device_st&type=live&quality=high",
        expect="1",
    )
    demo.step("set_status: working again", {"topic": "set_status", "data": {"status": "working"}})

    demo.step("ptz: finger down on 'left'", {"topic": "ptz", "data": {"cmd": "ptz_left_press"}}, feature="ptz")
    if "ptz" not in demo.missing:
        demo.note("the finger is held for 0.4 s; the panel sends nothing meanwhile")
        time.sleep(0.4)
    demo.step("ptz: finger lifted", {"topic": "ptz", "data": {"cmd": "ptz_release_pre"}}, feature="ptz")
    demo.step("ptz: finger down on 'up'", {"topic": "ptz", "data": {"cmd": "ptz_up_press"}}, feature="ptz")
    demo.step(
        "ptz: slides to 'right' (redirects at once)",
        {"topic": "ptz", "data": {"cmd": "ptz_right_press"}},
        feature="ptz",
    )
    demo.step("ptz: finger lifted", {"topic": "ptz", "data": {"cmd": "ptz_release_pre"}}, feature="ptz")

    (hardware.sd_dir / "old-recording.mp4").write_bytes(b"\0" * 1024)
    demo.step("sd_format: accepted, formats in the background", {"topic": "sd_format"})
    demo.step("sd_format again while formatting: busy", {"topic": "sd_format"}, expect="5")
    done = demo.wait_event("sd_format", state="done")
    demo.check(done is not None and not any(hardware.sd_dir.iterdir()), "the format finished and emptied the card")
    device.open_session("sharer-phone", "sharer")
    demo.step("sd_format from a sharer: not permitted", {"topic": "sd_format"}, expect="6", visitor="sharer-phone")
    device.close_session("sharer-phone")

    demo.step("bind_status: play the 'bound' tone", {"topic": "bind_status", "status": "success"})
    demo.check(demo.wait_event("tone") is not None, "the tone was played")

    demo.step("intercom: is two-way talk taken?", {"topic": "intercom"}, fields={"status": "unused"})
    device.open_session("grandma", "owner")
    device.start_intercom("grandma")
    demo.show_events()
    demo.step("intercom while another visitor talks", {"topic": "intercom"}, fields={"status": "using"})
    demo.step(
        "get_device_st: voice is refused while another visitor talks",
        "action=inner_define&channel=0&cmd=get_device_st&type=voice&quality=standard",
        expect="1",
    )
    device.close_session("grandma")
    demo.step(
        "get_device_st: start live view (inner_define)",
        "action=inner_define&channel=0&cmd=get_device_st&type=live&quality=high",
        expect="0",
    )

    _demo_upgrade(demo, firmware)
    device.close_session("panel")
    demo.show_events()


def _demo_upgrade(demo: _Demo, firmware: DemoFirmware | None) -> None:
    """An OTA from the demo's local HTTPS server: accepted at once, then downloaded, verified, installed."""
    if firmware is None:
        demo.out("\n-- upgrade: firmware from a local HTTPS server")
        demo.skip(f"trustme is not installed; for this step: {DEMO_INSTALL}")
        return
    demo.step("version before the upgrade", {"topic": "version"})
    demo.step(
        "upgrade: the panel hands over a signed HTTPS URL, the MD5 and the size",
        {"topic": "upgrade", "data": {"url": firmware.url, "md5": firmware.md5.upper(), "fileSize": firmware.size}},
    )
    done = demo.wait_event("upgrade", timeout=30.0, state="done")
    demo.check(done is not None, "the image was downloaded, verified and installed")
    demo.step("version after the (simulated) reboot", {"topic": "version"}, fields={"info": firmware.version})


# -- the firmware server -----------------------------------------------------------------------


#: Where the demo serves its firmware image (and the one host its camera may upgrade from).
DEMO_HOST = "127.0.0.1"


class DemoFirmware(NamedTuple):
    """Where the demo's image is served, and what the upgrade request must say about it."""

    url: str
    md5: str
    size: int
    version: str
    ca_file: str


@contextlib.contextmanager
def firmware_server(directory: Path, version: str, size: int) -> Iterator[DemoFirmware | None]:
    """Serve a simulated image of ``version`` over HTTPS on 127.0.0.1; None without trustme."""
    try:
        import trustme  # noqa: PLC0415 - optional: the demo extra
    except ImportError:
        log.warning("trustme is not installed: the demo skips its upgrade step (%s)", DEMO_INSTALL)
        yield None
        return
    image = directory / "firmware.bin"
    md5 = make_image(image, version, size)
    body = image.read_bytes()
    ca = trustme.CA()
    ca_file = directory / "demo-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(DEMO_HOST).configure_cert(context)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/firmware.bin":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("demo firmware server: " + format, *args)

    httpd = ThreadingHTTPServer((DEMO_HOST, 0), Handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        url = f"https://{DEMO_HOST}:{httpd.server_address[1]}/firmware.bin?sign=demo&expires=0"
        yield DemoFirmware(url, md5, size, version, str(ca_file))
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
