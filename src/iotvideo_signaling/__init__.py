"""Device side of the Tencent Lianlian IoT Video standard-panel signaling protocol.

Parse what the panel sends, answer it correctly, and drive the camera's hardware hooks::

    from iotvideo_signaling import Device, SimulatedHardware

    with Device(SimulatedHardware("/var/lib/camera")) as device:  # start(): PTZ stop, OTA resume
        reply = device.handle(b'action=user_define&channel=0&cmd={"topic":"get_status","message_id":1}')
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._command import Command
from ._wire import implementation, parse_command
from .device import Device, DeviceConfig, TokenHandler, TopicHandler
from .errors import RequestError, ResultCode, SignalingError, WireError
from .events import Event
from .hardware import Hardware
from .jobs import InlineJobs, WorkerPool
from .protocol import MISSING, Field, Request
from .sessions import Admission

if TYPE_CHECKING:
    from .installer import CommandInstaller, InstallError
    from .ota import OtaStatus
    from .ota_report import OtaReporter
    from .ptz import PtzRefused
    from .scheduling import ManualClock
    from .simulator import SimulatedHardware

__all__ = [
    "MISSING",
    "Admission",
    "Command",
    "CommandInstaller",
    "Device",
    "DeviceConfig",
    "Event",
    "Field",
    "Hardware",
    "InlineJobs",
    "InstallError",
    "ManualClock",
    "OtaReporter",
    "OtaStatus",
    "PtzRefused",
    "Request",
    "RequestError",
    "ResultCode",
    "SignalingError",
    "SimulatedHardware",
    "TokenHandler",
    "TopicHandler",
    "WireError",
    "WorkerPool",
    "implementation",
    "parse_command",
]

__version__ = "0.1.0"

# Loaded on first use, so a camera daemon pays at import only for what it uses (the simulator
# pulls in pathlib, shutil and the state store; the PTZ module its timer machinery).
_LAZY = {
    "SimulatedHardware": "simulator",
    "ManualClock": "scheduling",
    "PtzRefused": "ptz",
    "CommandInstaller": "installer",
    "InstallError": "installer",
    "OtaReporter": "ota_report",
    "OtaStatus": "ota",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
