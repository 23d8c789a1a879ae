"""Device side of the Tencent Lianlian IoT Video standard-panel signaling protocol.

Parse what the panel sends, answer it correctly, and drive the camera's hardware hooks::

    from iotvideo_signaling import Device, SimulatedHardware

    device = Device(SimulatedHardware("/var/lib/camera"))
    reply = device.handle(b'action=user_define&channel=0&cmd={"topic":"get_status","message_id":1}')
"""

from __future__ import annotations

from ._command import Command
from ._wire import implementation, parse_command
from .errors import RequestError, ResultCode, SignalingError, WireError

__all__ = [
    "Command",
    "RequestError",
    "ResultCode",
    "SignalingError",
    "WireError",
    "implementation",
    "parse_command",
]

__version__ = "0.1.0"
