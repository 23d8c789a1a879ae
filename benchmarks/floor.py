"""The floor of the device benchmarks: the least work that still answers the seed corpus.

:class:`Floor` does what :meth:`iotvideo_signaling.Device.handle` must do at the very least, with
nothing else:

* the compiled fused wire decode, ``iotvideo_signaling._wire_c.decode_command`` (scan + orjson);
* one dict lookup of the topic to a minimal handler, which calls the same hardware hooks as the
  Device does for that topic and returns the reply's fields (or None);
* ``orjson.dumps`` of the reply dict in the protocol's key order (``confirmation_topic``,
  ``result``, the fields, ``message_id``).

There is **no validation at all**: no envelope check, no field check (handlers index the JSON
where the panel puts each field), no role policy, no lock, no events, no error handling; a
request outside the panel's examples may raise (``KeyError``, ``TypeError``). Background work
is submitted the way the Device submits it, to an executor: ``sd_format`` submits
``format_sd`` (no busy flag), ``bind_status`` submits ``play_tone("bind_success")``. ``ptz``
calls ``ptz_start`` for a press and nothing for a release, then reads ``ptz_position`` and
``ptz_limits`` for the reply (``apex`` is always ``"no"``: no end-stop bookkeeping). ``upgrade``
reads its three fields and acknowledges: on the corpus the Device refuses the request (its MD5
is redacted), so neither side starts a job.

On the panel's examples the floor's replies equal the Device's except for ``upgrade``, which the
floor accepts and the Device refuses (``test_stdlib_device.py`` checks this). Like every
contender it imports nothing from ``iotvideo_signaling``: it is handed the compiled decoder.
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Any, Callable, Optional

import orjson

from .null_hardware import NullCamera

__all__ = ["Floor"]

#: ``decode_command`` of the compiled wire module: raw bytes to ``(command, decoded payload)``.
Decode = Callable[[bytes], "tuple[Any, Any]"]
_PRESS = {"ptz_up_press": "up", "ptz_down_press": "down", "ptz_left_press": "left", "ptz_right_press": "right"}


class Floor:
    """``handle(raw) -> bytes`` with no validation; see the module docstring.

    Args:
        hardware: the hooks to call (any object with the methods of :class:`NullCamera`).
        decode: the compiled ``decode_command``.
        executor: where background jobs go.
    """

    def __init__(self, hardware: NullCamera, /, *, decode: Decode, executor: Executor) -> None:
        self._hw = hardware
        self._decode = decode
        self._submit = executor.submit
        self._power = hardware.get_power()
        self._streaming: set[str] = set()
        self._talker: Optional[str] = None
        self._handlers: dict[str, Callable[[dict[str, Any]], Optional[dict[str, Any]]]] = {
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

    def handle(self, raw: bytes) -> bytes:
        """Answer one command of the panel's examples."""
        value = self._decode(raw)[1]
        topic = value["topic"]
        fields = self._handlers[topic](value)
        body = {"confirmation_topic": topic, "result": "0"}
        if fields is not None:
            body.update(fields)
        body["message_id"] = value["message_id"]
        return orjson.dumps(body)

    def _get_status(self, value: dict[str, Any]) -> dict[str, Any]:
        return {
            "status": self._power,
            "user_num": len(self._streaming) or 1,
            "signal_strength": self._hw.signal_strength(),
        }

    def _version(self, value: dict[str, Any]) -> dict[str, Any]:
        return {"info": self._hw.firmware_version()}

    def _upgrade(self, value: dict[str, Any]) -> None:
        data = value["data"]
        data["url"], data["md5"], data["fileSize"]  # read, not checked

    def _mirror_flip(self, value: dict[str, Any]) -> None:
        self._hw.set_flip(value["data"]["mode"])

    def _set_status(self, value: dict[str, Any]) -> None:
        status = value["data"]["status"]
        self._hw.set_power(status)
        self._power = status

    def _ptz(self, value: dict[str, Any]) -> dict[str, Any]:
        direction = _PRESS.get(value["data"]["cmd"])
        hw = self._hw
        if direction is not None:
            hw.ptz_start(direction)
        x, y = hw.ptz_position() or (0, 0)
        min_x, max_x, min_y, max_y = hw.ptz_limits()
        return {
            "apex": "no",
            "current_x": x,
            "current_y": y,
            "max_x": max_x,
            "max_y": max_y,
            "min_x": min_x,
            "min_y": min_y,
        }

    def _sd_format(self, value: dict[str, Any]) -> None:
        if self._hw.sd_card_present():
            self._submit(self._hw.format_sd)

    def _bind_status(self, value: dict[str, Any]) -> None:
        self._submit(self._hw.play_tone, "bind_success")

    def _intercom(self, value: dict[str, Any]) -> dict[str, Any]:
        return {"status": "unused" if self._talker is None else "using"}
