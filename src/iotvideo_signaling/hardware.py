"""The hardware hooks an integrator overrides.

Subclass :class:`Hardware` and override what your camera can do. A hook left alone raises
``NotImplementedError("<hook name>")``, which the :class:`~iotvideo_signaling.Device` answers
with result ``"3"`` and a reason that names the hook (``not supported by this camera (no
format_sd hook)``), logged once per hook; an override may raise the same for a model that lacks
the feature. Any other exception from a hook answers ``"7"`` (device error) and is logged as a
warning. Hooks may block: the Device calls slow ones (SD format, firmware install,
tone) from its worker threads, never while holding its lock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["Hardware", "PtzLimits", "implemented_hooks"]

#: ``(min_x, max_x, min_y, max_y)`` of the pan/tilt end stops, in motor steps.
PtzLimits = tuple[int, int, int, int]


class Hardware:
    """Base class of the hooks; each raises NotImplementedError until overridden.

    Except ``ptz_position`` (None: no position feedback), ``start`` (no start-up work) and
    ``close`` (nothing to release).
    """

    # -- power, image, tone, signal, version ---------------------------------------------

    def get_power(self) -> str:
        """Return ``"working"`` or ``"standby"`` (privacy mode: no video, no motion).

        Read at ``Device.start()`` and by ``Device.refresh_power()``. If it raises, or returns
        anything else, the Device fails closed: it treats the camera as in standby until the
        state is known again. A camera that changes power by itself (a physical privacy switch)
        tells the Device with ``Device.power_changed(status)``, or has it re-read this hook with
        ``Device.refresh_power()``. Without this hook the camera starts as working (or as
        ``power_changed`` said).
        """
        raise NotImplementedError("get_power")

    def set_power(self, status: str) -> None:
        """Switch to ``"working"`` or ``"standby"``; persist it across restarts (``get_power``
        reads it after a restart). It may call ``Device.power_changed()`` itself."""
        raise NotImplementedError("set_power")

    def set_flip(self, mode: str) -> None:
        """Set image orientation to ``"normal"`` or ``"flip"``; persist it across restarts."""
        raise NotImplementedError("set_flip")

    def play_tone(self, name: str) -> None:
        """Play a prompt tone (``"bind_success"`` after binding). Called from a worker thread."""
        raise NotImplementedError("play_tone")

    def signal_strength(self) -> int:
        """Wi-Fi signal strength, 0-100."""
        raise NotImplementedError("signal_strength")

    def firmware_version(self) -> str:
        """The running firmware version, e.g. ``"V1.04.11"``."""
        raise NotImplementedError("firmware_version")

    # -- SD card ---------------------------------------------------------------------------

    def sd_card_present(self) -> bool:
        """True when an SD card is inserted and usable."""
        raise NotImplementedError("sd_card_present")

    def format_sd(self) -> None:
        """Format the SD card; may take long. Called from a worker thread."""
        raise NotImplementedError("format_sd")

    # -- PTZ motor -------------------------------------------------------------------------

    def ptz_start(self, direction: str) -> None:
        """Start moving continuously: ``"up"``, ``"down"``, ``"left"`` or ``"right"``. Must not block."""
        raise NotImplementedError("ptz_start")

    def ptz_stop(self) -> None:
        """Stop the motor. Must succeed when the motor is already stopped."""
        raise NotImplementedError("ptz_stop")

    def ptz_position(self) -> tuple[int, int] | None:
        """Return ``(x, y)`` from position feedback, or None when the motor has none."""
        return None

    def ptz_limits(self) -> PtzLimits:
        """Return ``(min_x, max_x, min_y, max_y)``."""
        raise NotImplementedError("ptz_limits")

    def ptz_speed(self) -> tuple[float, float]:
        """Return the speed of the x and y axes in steps per second (for estimates and the move cap)."""
        raise NotImplementedError("ptz_speed")

    # -- firmware --------------------------------------------------------------------------

    def install_firmware(self, path: str, *, md5: str, size: int) -> None:
        """Install a verified firmware image; raise on failure. Called from a worker thread.

        The file at ``path`` has been checked against ``md5`` and ``size`` before this call. It
        is removed once this returns (or raises): copy it if it is needed later. An installer
        that reboots into the new image without returning leaves it until the next start.
        """
        raise NotImplementedError("install_firmware")

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start-up work (open the device, check storage); called first by ``Device.start()``.

        The constructor should do no I/O: this is the place for it. It runs once, before the
        Device reads the power state; if it raises, ``Device.start()`` raises too and a later
        start calls it again. The default does nothing (leaving it alone is fine).
        """

    def close(self) -> None:
        """Release resources and persist pending state; called last by ``Device.close()``.

        The default does nothing (unlike the hooks above, leaving it alone is fine).
        """

    # -- recordings (inner_define) ---------------------------------------------------------

    def record_index(self, start: int, end: int) -> list[tuple[int, int]]:
        """Recorded video spans ``(start, end)`` in unix seconds overlapping ``[start, end]``."""
        raise NotImplementedError("record_index")

    def month_record(self, year: int, month: int) -> int:
        """Bitmask of the days (bit 0 = day 1) of a month that have recordings."""
        raise NotImplementedError("month_record")

    def file_list(self, start: int, end: int, file_type: int) -> list[dict[str, Any]]:
        """Files (0 video, 1 picture) with ``file_name``, ``file_size``, ``start_time``, ``end_time``."""
        raise NotImplementedError("file_list")

    def playback(self, action: str, params: Mapping[str, str]) -> int | None:
        """Control playback: ``pause``, ``resume``, ``seek``, ``progress``.

        Returns the playback position in milliseconds for ``progress``, else None.
        """
        raise NotImplementedError("playback")


def implemented_hooks(hardware: Hardware) -> frozenset[str]:
    """The hooks ``hardware``'s class overrides: the camera's abilities (a topic without its hook
    answers "unsupported" before reading its fields)."""
    base = vars(Hardware)
    return frozenset(
        name for name in base if not name.startswith("_") and getattr(type(hardware), name, None) is not base[name]
    )
