"""Device side of the Tencent Lianlian IoT Video standard-panel signaling protocol.

Parse what the panel sends, answer it correctly, and drive the camera's hardware hooks::

    from iotvideo_signaling import Device, SimulatedHardware

    device = Device(SimulatedHardware("/var/lib/camera"))
    reply = device.handle(b'action=user_define&channel=0&cmd={"topic":"get_status","message_id":1}')
"""

from __future__ import annotations

from ._command import Command
from ._wire import implementation, parse_command
from .device import Device, DeviceConfig
from .errors import RequestError, ResultCode, SignalingError, WireError
from .events import Event
from .hardware import Hardware
from .protocol import Field, Request
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
