"""Upgrade progress as Tencent IoT Explorer ``$ota/report`` payloads, for a daemon's own MQTT client."""

from __future__ import annotations

from typing import Callable, Dict, Optional, Union

import orjson

from .events import Event

__all__ = ["OtaReporter", "ota_report_payload", "ota_version_payload"]

#
# Payloads of the ``$ota/report/${productID}/${deviceName}`` MQTT topic, as documented in
# TencentCloud/tencentcloud-iot-explorer-sdk-embedded-c, docs/设备固件升级.md ("report_progress"
# with state downloading/burning/done/fail; percent only while downloading; result_code -1..-5;
# every value a string) and emitted by that SDK's IOT_OTA_ReportProgress.

_INSTALL_FAILED = -5  # ota.OtaCode.INSTALL_FAILED, for a failure event without a code
_REPORT_STATES = ("downloading", "burning", "done", "fail")


def ota_report_payload(event: Event, version: str) -> Optional[bytes]:
    """The ``report_progress`` JSON for an ``upgrade`` event, or None for any other event.

    Args:
        event: a device event.
        version: the firmware version being installed (the target of the upgrade); when it is
            not known, the running version.
    """
    state = event.data.get("state") if event.kind == "upgrade" else None
    if state not in _REPORT_STATES:
        return None
    progress: Dict[str, str] = {"state": str(state)}
    if state == "downloading":
        progress["percent"] = str(int(event.data.get("percent", 0)))
    failed = state == "fail"
    progress["result_code"] = str(int(event.data.get("code", _INSTALL_FAILED))) if failed else "0"
    progress["result_msg"] = str(event.data.get("reason", ""))[:200] if failed else ""
    return orjson.dumps({"type": "report_progress", "report": {"progress": progress, "version": version}})


def ota_version_payload(version: str) -> bytes:
    """The ``report_version`` JSON that announces the running firmware version."""
    return orjson.dumps({"type": "report_version", "report": {"version": version}})


class OtaReporter:
    """A device-event subscriber that forwards upgrade progress to ``$ota/report``.

    No MQTT dependency: ``send(topic, payload)`` is the daemon's own publish function.

    Args:
        send: publishes one message.
        product_id: the product ID of the device in IoT Explorer.
        device_name: the device name in IoT Explorer.
        version: the target version, or a function returning it (called per event).
    """

    def __init__(
        self,
        send: Callable[[str, bytes], object],
        *,
        product_id: str,
        device_name: str,
        version: Union[str, Callable[[], str]],
    ) -> None:
        self._send = send
        self.topic = f"$ota/report/{product_id}/{device_name}"
        self._version = version

    def __call__(self, event: Event) -> None:
        if event.kind != "upgrade":
            return
        version = self._version() if callable(self._version) else self._version
        payload = ota_report_payload(event, version)
        if payload is not None:
            self._send(self.topic, payload)

    def report_version(self, version: str) -> None:
        """Publish ``report_version`` (at start-up, and after an upgrade)."""
        self._send(self.topic, ota_version_payload(version))
