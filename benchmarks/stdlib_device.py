"""The whole request handling done plainly with the standard library: the baseline of the device benchmarks.

What an integrator would write without this library, *if* they got it right (PROTOCOL.md §3-§6):

* the wire layer of :mod:`benchmarks.stdlib_reference` (``urllib.parse`` + ``json``, correct on a
  raw ``&`` inside the JSON, trailing-comma retry); it decodes the payload while locating it, so
  the payload is decoded once, as :meth:`iotvideo_signaling.Device.handle` does;
* the envelope checks: a JSON object, a ``message_id`` that is an integer within ±(2**53-1) or a
  string of at most 128 characters (echoed with its type, also in the error replies that follow),
  a non-empty string ``topic``, a ``data`` object when present;
* per-topic field validation (its own table, :data:`FIELDS`, with the rules of
  ``iotvideo_signaling.protocol.FIELDS``: ``data`` first, then the top level) and the upgrade
  checks of the OTA manager (https URL, 32 hex digits of MD5, ``fileSize`` from 1 to the size cap);
* the sharer policy, the power state, and dispatch to the same :class:`~iotvideo_signaling.Hardware`
  hooks; background jobs (SD format, prompt tone) go to an executor;
* replies built with plain ``json.dumps`` (default arguments) of dicts in the order
  ``confirmation_topic``, ``result``, the topic's fields, ``message_id``; error replies with
  ``reason`` in place of the fields.

On the benchmark corpus its replies parse to exactly what :meth:`Device.handle` returns
(``test_stdlib_device.py`` checks). It is a baseline, not a second implementation: a valid
``upgrade`` is acknowledged and not carried out (no downloader here), PTZ trusts the hardware's
position feedback (no estimate, no move cap, no timers), only ``get_device_st`` of the
``inner_define`` commands is answered (the others get ``406``), and error reasons are close to
the library's but not guaranteed equal. Malformed commands answer ``1`` (``2`` for bad JSON).
"""

from __future__ import annotations

import json
import re
import threading
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, Callable, NamedTuple, Optional, Union
from urllib.parse import urlsplit

from iotvideo_signaling import Command, Hardware

from . import stdlib_reference

__all__ = ["FIELDS", "FieldSpec", "StdlibDevice"]

MAX_SAFE_INT = 2**53 - 1
MAX_MESSAGE_ID_LEN = 128
MAX_TOPIC_ECHO = 64
MAX_URL = 2048
MAX_REASON = 200
_MISSING: Any = object()
_MD5 = re.compile(r"[0-9a-fA-F]{32}")


class FieldSpec(NamedTuple):
    """One request field: JSON type, allowed values, whether required, limits."""

    name: str
    kind: type = str
    choices: Optional[tuple[str, ...]] = None
    required: bool = True
    max_len: Optional[int] = None
    minimum: Optional[int] = None


PTZ_COMMANDS = {
    "ptz_up_press": "up",
    "ptz_down_press": "down",
    "ptz_left_press": "left",
    "ptz_right_press": "right",
    "ptz_release_pre": None,
}
LEGACY_PTZ = {"ptz_left": "left", "ptz_right": "right", "ptz_up": "up", "ptz_down": "down"}

FIELDS: dict[str, tuple[FieldSpec, ...]] = {
    "get_status": (FieldSpec("user", choices=("owner", "sharer"), required=False),),
    "version": (),
    "upgrade": (
        FieldSpec("url", max_len=MAX_URL),
        FieldSpec("md5", max_len=64),
        FieldSpec("fileSize", int, minimum=1),
    ),
    "Mirror_flip": (FieldSpec("mode", choices=("normal", "flip")),),
    "set_status": (FieldSpec("status", choices=("working", "standby")),),
    "ptz": (FieldSpec("cmd", choices=tuple(PTZ_COMMANDS)),),
    "sd_format": (),
    "bind_status": (FieldSpec("status", choices=("success",)),),
    "intercom": (),
}

SHARER_REASONS = {
    "upgrade": "sharers may not upgrade the firmware",
    "sd_format": "sharers may not format the SD card",
    "set_status": "sharers may not switch the camera on or off",
}


class Refused(Exception):
    """A request that gets an error reply with ``code`` and ``reason``."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _quote(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    if len(text) > 32:
        text = text[:29] + "..."
    while len(text.encode("utf-8", "replace")) > 60:
        text = text[:-4] + "..."
    return "'" + text + "'"


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _dumps(body: Any) -> bytes:
    # Plain json.dumps: with default arguments it reuses the json module's cached C encoder
    # (custom separators would build a new encoder per call). ASCII output, same JSON value.
    return json.dumps(body).encode()


def _error(topic: str, code: str, reason: str, message_id: Any = _MISSING) -> bytes:
    body: dict[str, Any] = {"confirmation_topic": topic, "result": code, "reason": reason[:MAX_REASON]}
    if message_id is not _MISSING:
        body["message_id"] = message_id
    return _dumps(body)


def _read(spec: FieldSpec, body: dict[str, Any], data: dict[str, Any]) -> Any:
    """The value of one field, from ``data`` first, else the top level; Refused("4") if invalid."""
    value = data.get(spec.name, _MISSING)
    if value is _MISSING:
        value = body.get(spec.name, _MISSING)
    name = spec.name
    if value is _MISSING:
        if spec.required:
            raise Refused("4", f"missing '{name}'")
        return None
    is_kind = _is_int(value) if spec.kind is int else isinstance(value, spec.kind)
    if spec.choices is not None:
        if is_kind and value in spec.choices:
            return value
        quoted = [f"'{c}'" for c in spec.choices]
        text = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
        raise Refused("4", f"'{name}' must be {text if len(text) < 120 else 'one of the documented values'}")
    if not is_kind:
        raise Refused("4", f"'{name}' must be {'a string' if spec.kind is str else 'an integer'}")
    if spec.max_len is not None and len(value) > spec.max_len:
        raise Refused("4", f"'{name}' is longer than {spec.max_len} characters")
    if spec.minimum is not None and value < spec.minimum:
        raise Refused("4", f"'{name}' must be at least {spec.minimum}")
    return value


def _url_problem(url: str) -> Optional[str]:
    if not url.isascii() or any(c <= " " or c == "\x7f" for c in url):
        return "'url' must be ASCII without spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "'url' is not a valid URL"
    if parts.scheme != "https":
        return "'url' must be an https URL"
    if not parts.hostname:
        return "'url' has no host"
    if parts.username is not None or parts.password is not None:
        return "'url' must not carry credentials"
    return None


Handler = Callable[[dict[str, Any], dict[str, Any], Optional[str]], Optional[dict[str, Any]]]


class StdlibDevice:
    """The stdlib baseline of :class:`iotvideo_signaling.Device`: ``handle(raw, visitor=None) -> bytes``.

    Args:
        hardware: the hooks to call.
        executor: runs the background jobs (None: a 2-thread pool started on first use).
        max_size: longest accepted command in bytes.
        max_connections: most streaming visitors (``get_device_st`` answers 405 beyond).
        max_firmware_size: largest accepted ``fileSize``.
        default_role: the role of a visitor without a session.
        sharer_denied_topics: topics a sharer gets error 6 for.
    """

    def __init__(
        self,
        hardware: Hardware,
        /,
        *,
        executor: Optional[Executor] = None,
        max_size: int = stdlib_reference.DEFAULT_MAX_SIZE,
        max_connections: int = 32,
        max_firmware_size: int = 128 * 1024 * 1024,
        default_role: str = "owner",
        sharer_denied_topics: tuple[str, ...] = ("upgrade", "sd_format", "set_status"),
    ) -> None:
        self.hardware = hardware
        self.max_size = max_size
        self.max_connections = max_connections
        self.max_firmware_size = max_firmware_size
        self.default_role = default_role
        self.denied = frozenset(sharer_denied_topics)
        self.sessions: dict[str, str] = {}
        self.streaming: set[str] = set()
        self.talker: Optional[str] = None
        self._executor = executor
        self._own_executor = executor is None
        self._lock = threading.Lock()
        self._formatting = False
        self._ptz_direction: Optional[str] = None  # the move in progress
        self._ptz_last: Optional[str] = None  # the last direction moved, for ``apex``
        try:
            power = hardware.get_power()
        except NotImplementedError:
            power = "working"
        self.power = power if power in ("working", "standby") else "working"
        self._topics: dict[str, Handler] = {
            "get_status": self._get_status,
            "version": self._version,
            "upgrade": self._upgrade,
            "Mirror_flip": self._mirror_flip,
            "set_status": self._set_status,
            "ptz": self._ptz,
            "sd_format": self._sd_format,
            "bind_status": self._bind_status,
            "intercom": self._intercom,
        }

    def close(self) -> None:
        """Wait for background jobs of the executor this object started (if any)."""
        if self._own_executor and self._executor is not None:
            self._executor.shutdown(wait=True)

    def open_session(self, visitor: str, role: Optional[str] = "owner") -> None:
        """A peer connected with ``role`` (``"owner"``, ``"sharer"``, or None for the default)."""
        self.sessions[visitor] = role or self.default_role

    def role(self, visitor: Optional[str]) -> str:
        """The role from the visitor's session, else the default role."""
        return self.sessions.get(visitor, self.default_role) if visitor is not None else self.default_role

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` in the background."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(2)
        self._executor.submit(job)

    # -- the entry point -----------------------------------------------------------------

    def handle(self, raw: Union[bytes, str], /, *, visitor: Optional[str] = None) -> bytes:
        """Answer one command string with one JSON reply."""
        try:
            command, value = stdlib_reference.decode_command(raw, max_size=self.max_size)
        except json.JSONDecodeError:
            return _error("", "2", "invalid JSON")
        except (ValueError, TypeError):  # UnicodeDecodeError is a ValueError
            return _error("", "1", "malformed command")
        if command.action == "inner_define":
            return self._inner(command, visitor)
        if command.payload is None:
            return self._token(command)

        if not isinstance(value, dict):
            return _error("", "4", "the payload must be a JSON object")
        topic = value.get("topic")
        shown = topic if isinstance(topic, str) and len(topic) <= MAX_TOPIC_ECHO else ""
        message_id = value.get("message_id", _MISSING)
        if message_id is _MISSING:
            pass
        elif _is_int(message_id):
            if not -MAX_SAFE_INT <= message_id <= MAX_SAFE_INT:
                return _error(shown, "4", "'message_id' is out of range")
        elif isinstance(message_id, str):
            if len(message_id) > MAX_MESSAGE_ID_LEN:
                return _error(shown, "4", f"'message_id' is longer than {MAX_MESSAGE_ID_LEN} characters")
        else:
            return _error(shown, "4", "'message_id' must be an integer or a string")
        if not isinstance(topic, str) or not topic:
            return _error("", "4", "missing 'topic'", message_id)
        data = value.get("data", {})
        if not isinstance(data, dict):
            return _error(shown, "4", "'data' must be an object", message_id)

        handler = self._topics.get(topic)
        if handler is None:
            return _error(shown, "3", f"unknown topic {_quote(topic)}", message_id)
        if topic in self.denied and self.role(visitor) == "sharer":
            return _error(topic, "6", SHARER_REASONS.get(topic, f"sharers may not use {_quote(topic)}"), message_id)
        try:
            fields = handler(value, data, visitor)
        except Refused as exc:
            return _error(topic, exc.code, exc.reason, message_id)
        except NotImplementedError:
            return _error(topic, "3", "not supported by this camera", message_id)
        except Exception:  # noqa: BLE001 - a failing hook is a device error
            return _error(topic, "7", "device error", message_id)
        body: dict[str, Any] = {"confirmation_topic": topic, "result": "0"}
        if fields:
            body.update(fields)
        if message_id is not _MISSING:
            body["message_id"] = message_id
        return _dumps(body)

    def _token(self, command: Command) -> bytes:
        token = command.cmd or ""
        direction = LEGACY_PTZ.get(token)
        if direction is None:
            return _error("", "3", f"unknown command {_quote(token)}")
        try:
            if self.power == "standby":
                raise Refused("8", "camera is in standby")
            fields = self._ptz_move(direction)
        except Refused as exc:
            return _error("ptz", exc.code, exc.reason)
        except NotImplementedError:
            return _error("ptz", "3", "not supported by this camera")
        except Exception:  # noqa: BLE001
            return _error("ptz", "7", "device error")
        return _dumps({"confirmation_topic": "ptz", "result": "0", **fields})

    # -- topics --------------------------------------------------------------------------

    def _get_status(self, body: dict[str, Any], data: dict[str, Any], visitor: Optional[str]) -> dict[str, Any]:
        _read(FIELDS["get_status"][0], body, data)
        signal = int(self.hardware.signal_strength())
        count = self._viewers(visitor)[0]
        return {"status": self.power, "user_num": count, "signal_strength": max(0, min(100, signal))}

    def _version(self, body: dict[str, Any], data: dict[str, Any], visitor: Optional[str]) -> dict[str, Any]:
        return {"info": str(self.hardware.firmware_version())}

    def _upgrade(self, body: dict[str, Any], data: dict[str, Any], visitor: Optional[str]) -> None:
        url, md5, size = (_read(spec, body, data) for spec in FIELDS["upgrade"])
        self._require("install_firmware")
        problem = _url_problem(url)
        if problem is not None:
            raise Refused("4", problem)
        if not _MD5.fullmatch(md5):
            raise Refused("4", "'md5' must be 32 hexadecimal digits")
        if size > self.max_firmware_size:
            raise Refused("4", f"'fileSize' must be an integer from 1 to {self.max_firmware_size}")
        # Accepted. A real camera would now download, verify and install in the background.

    def _mirror_flip(self, body: dict[str, Any], data: dict[str, Any], visitor: Optional[str]) -> None:
        self.hardware.set_flip(_read(FIELDS["Mirror_flip"][0], body, data))

    def _set_status(self, body: dict[str, Any], data: dict[str, Any], visitor: Optional[str]) -> None:
        status = _read(FIELDS["set_status"][0], body, data)
        self.hardware.set_power(status)
        self.power = status
        if status == "standby" and self._ptz_direction is not None:
            self.hardware.ptz_stop()
            self._ptz_direction = None

    def _ptz(self, body: dict[str, Any], data: dict[str, Any], visitor: Optional[str]) -> dict[str, Any]:
        cmd = _read(FIELDS["ptz"][0], body, data)
        if self.power == "standby":
            raise Refused("8", "camera is in standby")
        self._require("ptz_start")
        direction = PTZ_COMMANDS[cmd]
        if direction is None:
            if self._ptz_direction is not None:
                self.hardware.ptz_stop()
                self._ptz_direction = None
            return self._ptz_report()
        return self._ptz_move(direction)

    def _sd_format(self, body: dict[str, Any], data: dict[str, Any], visitor: Optional[str]) -> None:
        self._require("format_sd")
        if not self.hardware.sd_card_present():
            raise Refused("7", "no SD card")
        with self._lock:
            if self._formatting:
                raise Refused("5", "the SD card is already being formatted")
            self._formatting = True
        try:
            self.submit(self._format_job)
        except Exception:
            with self._lock:
                self._formatting = False
            raise

    def _format_job(self) -> None:
        try:
            self.hardware.format_sd()
        finally:
            with self._lock:
                self._formatting = False

    def _bind_status(self, body: dict[str, Any], data: dict[str, Any], visitor: Optional[str]) -> None:
        _read(FIELDS["bind_status"][0], body, data)
        self._require("play_tone")
        self.submit(self._tone_job)

    def _tone_job(self) -> None:
        self.hardware.play_tone("bind_success")

    def _intercom(self, body: dict[str, Any], data: dict[str, Any], visitor: Optional[str]) -> dict[str, Any]:
        return {"status": "unused" if self.talker is None else "using"}

    # -- helpers -------------------------------------------------------------------------

    def _require(self, hook: str) -> None:
        if getattr(type(self.hardware), hook) is getattr(Hardware, hook):
            raise NotImplementedError(hook)

    def _viewers(self, visitor: Optional[str]) -> tuple[int, bool]:
        present = visitor in self.streaming
        return len(self.streaming) + (0 if present else 1), present

    def _ptz_move(self, direction: str) -> dict[str, Any]:
        self._require("ptz_start")
        if direction != self._ptz_direction and not self._ptz_blocked(direction):
            if self._ptz_direction is not None:
                self.hardware.ptz_stop()
            self.hardware.ptz_start(direction)
            self._ptz_direction = direction
        self._ptz_last = direction
        return self._ptz_report()

    def _ptz_position(self) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
        min_x, max_x, min_y, max_y = (int(v) for v in self.hardware.ptz_limits())
        position = self.hardware.ptz_position()
        x, y = ((min_x + max_x) // 2, (min_y + max_y) // 2) if position is None else position
        return (min(max(round(x), min_x), max_x), min(max(round(y), min_y), max_y)), (min_x, max_x, min_y, max_y)

    def _ptz_blocked(self, direction: str) -> bool:
        (x, y), (min_x, max_x, min_y, max_y) = self._ptz_position()
        left = {"right": max_x - x, "left": x - min_x, "up": max_y - y, "down": y - min_y}[direction]
        return left <= 0

    def _ptz_report(self) -> dict[str, Any]:
        (x, y), (min_x, max_x, min_y, max_y) = self._ptz_position()
        apex = self._ptz_last is not None and self._ptz_blocked(self._ptz_last)
        return {
            "apex": "yes" if apex else "no",
            "current_x": x,
            "current_y": y,
            "max_x": max_x,
            "max_y": max_y,
            "min_x": min_x,
            "min_y": min_y,
        }

    # -- inner_define (only get_device_st) -------------------------------------------------

    def _inner(self, command: Command, visitor: Optional[str]) -> bytes:
        if command.cmd != "get_device_st":
            return _dumps({"status": "406"})
        params: dict[str, str] = {}
        for name, value in command.params:
            params.setdefault(name, value)
        kind = params.get("type")
        if kind not in ("live", "voice", "playback") or params.get("quality", "standard") not in (
            "standard",
            "high",
            "super",
        ):
            return _dumps([{"status": "404"}])
        count, streaming = self._viewers(visitor)
        if self.power == "standby":
            status = "1"
        elif not streaming and count > self.max_connections:
            status = "405"
        elif kind == "voice" and self.talker not in (None, visitor):
            status = "1"
        elif kind == "playback" and type(self.hardware).record_index is Hardware.record_index:
            status = "406"
        else:
            status = "0"
        return _dumps([{"status": status, "appConnectNum": str(count)}])
