"""Device side of the Tencent Lianlian IoT Video standard-panel signaling protocol.

Parse what the panel sends, answer it correctly, and drive the camera's hardware hooks::

    from iotvideo_signaling import Device, SimulatedHardware

    device = Device(SimulatedHardware("/var/lib/camera"))
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
from .protocol import MISSING, Field, Request

if TYPE_CHECKING:
    from .installer import CommandInstaller, InstallError
    from .ota_report import OtaReporter
    from .ptz import PtzRefused, PtzReport
    from .scheduling import ManualClock, Scheduler, ThreadScheduler
    from .simulator import SimulatedHardware

__all__ = [
    "MISSING",
    "Command",
    "CommandInstaller",
    "Device",
    "DeviceConfig",
    "Event",
    "Field",
    "Hardware",
    "InstallError",
    "ManualClock",
    "OtaReporter",
    "PtzRefused",
    "PtzReport",
    "Request",
    "RequestError",
    "ResultCode",
    "Scheduler",
    "SignalingError",
    "SimulatedHardware",
    "ThreadScheduler",
    "TokenHandler",
    "TopicHandler",
    "WireError",
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
    "PtzReport": "ptz",
    "Scheduler": "scheduling",
    "ThreadScheduler": "scheduling",
    "CommandInstaller": "installer",
    "InstallError": "installer",
    "OtaReporter": "ota_report",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
