"""The nine panel topics answered plainly with the standard library: the baseline of the device benchmarks.

What an integrator would write without this library, *if* they got it right (PROTOCOL.md §3-§5),
importing nothing from ``iotvideo_signaling``: the wire layer of :mod:`benchmarks.stdlib_reference`
(``urllib.parse`` + ``json``, correct on a raw ``&`` inside the JSON, the payload decoded once);
the envelope checks (a JSON object, ``message_id`` an integer within ±(2**53-1) or a string of at
most 128 characters, echoed with its type, a non-empty string ``topic``, ``data`` an object); each
topic's fields from ``data`` first, then the top level (:data:`FIELDS`), and the upgrade checks
(https URL without credentials, 32 hex digits of MD5, ``fileSize`` from 1 to the cap); the sharer
policy, the standby rule of ``ptz``, one SD format at a time; the hooks of a
:class:`~benchmarks.null_hardware.NullCamera`, background jobs on an executor; replies from plain
``json.dumps``, keys in the protocol's order, a short ``reason`` in error replies.

It is a baseline, not a second implementation: a valid ``upgrade`` is acknowledged and not carried
out, PTZ trusts the camera's position feedback (no estimate, no move cap), and commands without a
JSON payload (``cmd`` tokens, ``inner_define``) get error 3. ``test_stdlib_device.py`` checks that
its result codes and fields agree with :meth:`Device.handle`'s.
"""

from __future__ import annotations

import json
import re
import threading
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, Callable, Optional, Union
from urllib.parse import urlsplit

from . import stdlib_reference
from .null_hardware import NullCamera

__all__ = ["FIELDS", "StdlibDevice"]

MAX_SAFE_INT = 2**53 - 1
_MD5 = re.compile(r"[0-9a-fA-F]{32}")
_MISSING: Any = object()
SHARER_DENIED = ("upgrade", "sd_format", "set_status")
PRESS = {"ptz_up_press": "up", "ptz_down_press": "down", "ptz_left_press": "left", "ptz_right_press": "right"}

#: topic -> its fields: (name, type, allowed values or None, required).
FIELDS: dict[str, tuple[tuple[str, type, Optional[tuple[str, ...]], bool], ...]] = {
    "get_status": (("user", str, ("owner", "sharer"), False),),
    "upgrade": (("url", str, None, True), ("md5", str, None, True), ("fileSize", int, None, True)),
    "Mirror_flip": (("mode", str, ("normal", "flip"), True),),
    "set_status": (("status", str, ("working", "standby"), True),),
    "ptz": (("cmd", str, (*PRESS, "ptz_release_pre"), True),),
    "bind_status": (("status", str, ("success",), True),),
}


class Refused(Exception):
    """``Refused(code, reason)``: a request that gets an error reply."""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _reply(topic: str, result: str, fields: Optional[dict[str, Any]], message_id: Any) -> bytes:
    body: dict[str, Any] = {"confirmation_topic": topic, "result": result}
    if fields:
        body.update(fields)
    if message_id is not _MISSING:
        body["message_id"] = message_id
    return json.dumps(body).encode()  # default arguments: the json module's cached C encoder


def _error(topic: str, code: str, reason: str, message_id: Any = _MISSING) -> bytes:
    return _reply(topic, code, {"reason": reason}, message_id)


class StdlibDevice:
    """``handle(raw, visitor=None) -> bytes`` for the nine panel topics.

    Args:
        camera: the hooks to call.
        executor: runs the background jobs (None: a 2-thread pool started on first use).
        max_firmware_size: largest accepted ``fileSize``.

    ``streaming`` (visitors with a live stream) and ``talker`` (the visitor using the intercom)
    are for the integrator's stream and talk callbacks to keep up to date.
    """

    def __init__(
        self, camera: NullCamera, /, *, executor: Optional[Executor] = None, max_firmware_size: int = 128 << 20
    ) -> None:
        self.camera = camera
        self.max_firmware_size = max_firmware_size
        self.roles: dict[str, str] = {}
        self.streaming: set[str] = set()
        self.talker: Optional[str] = None
        self.power = camera.get_power()
        self._executor = executor
        self._own_executor = executor is None
        self._formatting = threading.Lock()  # held from an accepted format to the end of its job
        self._ptz_moving: Optional[str] = None
        self._ptz_last: Optional[str] = None
        self._topics: dict[str, Callable[[dict[str, Any], Optional[str]], Optional[dict[str, Any]]]] = {
            "get_status": self._get_status,
            "version": lambda fields, visitor: {"info": str(self.camera.firmware_version())},
            "upgrade": self._upgrade,
            "Mirror_flip": lambda fields, visitor: self.camera.set_flip(fields["mode"]),
            "set_status": self._set_status,
            "ptz": self._ptz,
            "sd_format": self._sd_format,
            "bind_status": lambda fields, visitor: self._submit(self.camera.play_tone, "bind_success"),
            "intercom": lambda fields, visitor: {"status": "unused" if self.talker is None else "using"},
        }

    def open_session(self, visitor: str, role: str = "owner") -> None:
        """A peer connected with ``role`` (``"owner"`` or ``"sharer"``)."""
        self.roles[visitor] = role

    def close(self) -> None:
        """Wait for the jobs of the pool this object started, if any."""
        if self._own_executor and self._executor is not None:
            self._executor.shutdown(wait=True)

    def handle(self, raw: Union[bytes, str], /, *, visitor: Optional[str] = None) -> bytes:
        """Answer one command string with one JSON reply."""
        try:
            command, value = stdlib_reference.decode_command(raw)
        except json.JSONDecodeError:
            return _error("", "2", "invalid JSON")
        except (ValueError, TypeError):  # UnicodeDecodeError is a ValueError
            return _error("", "1", "malformed command")
        if command.payload is None or command.action != "user_define":
            return _error("", "3", "unknown command")
        if not isinstance(value, dict):
            return _error("", "4", "the payload must be a JSON object")
        topic = value.get("topic")
        shown = topic if isinstance(topic, str) and len(topic) <= 64 else ""
        message_id = value.get("message_id", _MISSING)
        if not (
            message_id is _MISSING
            or (_is_int(message_id) and -MAX_SAFE_INT <= message_id <= MAX_SAFE_INT)
            or (isinstance(message_id, str) and len(message_id) <= 128)
        ):
            return _error(shown, "4", "invalid 'message_id'")
        if not isinstance(topic, str) or not topic:
            return _error("", "4", "missing 'topic'", message_id)
        data = value.get("data", {})
        if not isinstance(data, dict):
            return _error(shown, "4", "'data' must be an object", message_id)
        handler = self._topics.get(topic)
        if handler is None:
            return _error(shown, "3", "unknown topic", message_id)
        if topic in SHARER_DENIED and visitor is not None and self.roles.get(visitor) == "sharer":
            return _error(topic, "6", "not permitted for sharers", message_id)
        try:
            fields = {}
            for name, kind, choices, required in FIELDS.get(topic, ()):
                found = data.get(name, value.get(name, _MISSING))
                if found is _MISSING:
                    if required:
                        raise Refused("4", f"missing '{name}'")
                    continue
                typed = _is_int(found) if kind is int else isinstance(found, kind)
                if not typed or (choices is not None and found not in choices):
                    raise Refused("4", f"invalid '{name}'")
                fields[name] = found
            return _reply(topic, "0", handler(fields, visitor), message_id)
        except Refused as exc:
            code, reason = exc.args
            return _error(topic, code, reason, message_id)
        except NotImplementedError:
            return _error(topic, "3", "not supported by this camera", message_id)
        except Exception:  # noqa: BLE001 - a failing hook is a device error
            return _error(topic, "7", "device error", message_id)

    def _submit(self, job: Callable[..., None], *args: Any) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(2)
        self._executor.submit(job, *args)

    def _get_status(self, fields: dict[str, Any], visitor: Optional[str]) -> dict[str, Any]:
        users = len(self.streaming) + (visitor not in self.streaming)
        signal = max(0, min(100, int(self.camera.signal_strength())))
        return {"status": self.power, "user_num": users, "signal_strength": signal}

    def _upgrade(self, fields: dict[str, Any], visitor: Optional[str]) -> None:
        url, md5, size = fields["url"], fields["md5"], fields["fileSize"]
        if len(url) > 2048 or not url.isascii() or any(c <= " " or c == "\x7f" for c in url):
            raise Refused("4", "invalid 'url'")
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise Refused("4", "invalid 'url'") from None
        if parts.scheme != "https" or not parts.hostname or parts.username is not None or parts.password is not None:
            raise Refused("4", "'url' must be an https URL without credentials")
        if not _MD5.fullmatch(md5):
            raise Refused("4", "'md5' must be 32 hexadecimal digits")
        if not 1 <= size <= self.max_firmware_size:
            raise Refused("4", "invalid 'fileSize'")
        # Accepted. A real camera would now download, verify and install in the background.

    def _set_status(self, fields: dict[str, Any], visitor: Optional[str]) -> None:
        self.camera.set_power(fields["status"])
        self.power = fields["status"]
        if self.power == "standby" and self._ptz_moving is not None:
            self.camera.ptz_stop()
            self._ptz_moving = None

    def _sd_format(self, fields: dict[str, Any], visitor: Optional[str]) -> None:
        if not self.camera.sd_card_present():
            raise Refused("7", "no SD card")
        if not self._formatting.acquire(blocking=False):
            raise Refused("5", "the SD card is already being formatted")
        try:
            self._submit(self._format_job)
        except BaseException:
            self._formatting.release()
            raise

    def _format_job(self) -> None:
        try:
            self.camera.format_sd()
        finally:
            self._formatting.release()

    def _ptz(self, fields: dict[str, Any], visitor: Optional[str]) -> dict[str, Any]:
        if self.power == "standby":
            raise Refused("8", "camera is in standby")
        direction = PRESS.get(fields["cmd"])
        if direction is None:
            if self._ptz_moving is not None:
                self.camera.ptz_stop()
                self._ptz_moving = None
        else:
            if direction != self._ptz_moving and self._room(direction) > 0:
                if self._ptz_moving is not None:
                    self.camera.ptz_stop()
                self.camera.ptz_start(direction)
                self._ptz_moving = direction
            self._ptz_last = direction
        (x, y), (min_x, max_x, min_y, max_y) = self._position()
        apex = self._ptz_last is not None and self._room(self._ptz_last) <= 0
        return {
            "apex": "yes" if apex else "no",
            "current_x": x,
            "current_y": y,
            "max_x": max_x,
            "max_y": max_y,
            "min_x": min_x,
            "min_y": min_y,
        }

    def _position(self) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
        min_x, max_x, min_y, max_y = (int(v) for v in self.camera.ptz_limits())
        position = self.camera.ptz_position()
        x, y = ((min_x + max_x) // 2, (min_y + max_y) // 2) if position is None else position
        return (min(max(round(x), min_x), max_x), min(max(round(y), min_y), max_y)), (min_x, max_x, min_y, max_y)

    def _room(self, direction: str) -> int:
        """Steps left before the end stop in ``direction``."""
        (x, y), (min_x, max_x, min_y, max_y) = self._position()
        return {"right": max_x - x, "left": x - min_x, "up": max_y - y, "down": y - min_y}[direction]
