"""Device side of the Tencent Lianlian IoT Video standard-panel signaling protocol.

Parse what the panel sends, answer it correctly, and drive the camera's hardware hooks::

    from iotvideo_signaling import Device, SimulatedHardware

    device = Device(SimulatedHardware("/var/lib/camera"))
    reply = device.handle(b'action=user_define&channel=0&cmd={"topic":"get_status","message_id":1}')
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._command import Command
from ._wire import implementation, parse_command
from .device import Device, DeviceConfig
from .errors import RequestError, ResultCode, SignalingError, WireError
from .events import Event
from .hardware import Hardware
from .protocol import Field, Request

if TYPE_CHECKING:
    from .simulator import SimulatedHardware

__all__ = [
    "Command",
    "Device",
    "DeviceConfig",
    "Event",
    "Field",
    "Hardware",
    "Request",
    "RequestError",
    "ResultCode",
    "SignalingError",
    "SimulatedHardware",
    "WireError",
    "implementation",
    "parse_command",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # SimulatedHardware pulls in pathlib, shutil and the state store: load it on first use,
    # so a camera daemon with its own Hardware does not pay for it at import.
    if name == "SimulatedHardware":
        from .simulator import SimulatedHardware  # noqa: PLC0415

        return SimulatedHardware
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
