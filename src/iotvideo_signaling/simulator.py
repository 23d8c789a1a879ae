"""SimulatedHardware: a virtual camera, the embedded default.

Power, image flip, firmware version and PTZ position persist across restarts in
``<state_dir>/state.json`` (written atomically; a corrupt file is kept beside, see
:class:`~iotvideo_signaling.state.StateFile`). :meth:`SimulatedHardware.start` checks that the
directory is writable, so a read-only one is reported once at start-up. The SD card is the directory
``<state_dir>/sdcard``: formatting really empties it, and touches nothing outside it. Prompt
tones are appended to ``<state_dir>/tones.log``. Nothing here needs real hardware, so the daemon,
the demo and the tests run anywhere.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

from ._simfirmware import read_image_version
from ._virtual_motor import VirtualMotor
from .hardware import Hardware, PtzLimits
from .state import StateFile

__all__ = ["SimulatedHardware"]

log = logging.getLogger(__name__)

DEFAULT_VERSION = "V1.0.0"
#: Recordings named with a later time are skipped: no request can ask for them (``inner.py``
#: bounds times the same way), and every time listed stays a 64-bit JSON integer.
_MAX_TIME = 2**40


class SimulatedHardware(Hardware):
    """A virtual camera whose state lives under ``state_dir``.

    Args:
        state_dir: directory for the state file, the virtual SD card and the tone log.
        signal_strength: the Wi-Fi signal to report, 0-100.
        sd_card: whether a (virtual) SD card is inserted.
        ptz_limits: ``(min_x, max_x, min_y, max_y)`` of the virtual motor.
        ptz_speed: steps per second of the x and y axes.
        format_delay: seconds a format takes (to exercise "busy").
        clock: monotonic clock of the virtual motor.
    """

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        *,
        signal_strength: int = 80,
        sd_card: bool = True,
        ptz_limits: PtzLimits = (0, 3600, 0, 900),
        ptz_speed: tuple[float, float] = (600.0, 300.0),
        format_delay: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.sd_dir = self.state_dir / "sdcard"
        self.tone_log = self.state_dir / "tones.log"
        self.signal = signal_strength
        self.sd_card = sd_card
        self.format_delay = format_delay
        min_x, max_x, min_y, max_y = ptz_limits
        self._state = StateFile(
            self.state_dir / "state.json",
            {
                "power": "working",
                "flip": "normal",
                "version": DEFAULT_VERSION,
                "ptz_x": (min_x + max_x) // 2,
                "ptz_y": (min_y + max_y) // 2,
            },
            choices={"power": ("working", "standby"), "flip": ("normal", "flip")},
        )
        if sd_card:
            self.sd_dir.mkdir(exist_ok=True)
        self._tone_lock = threading.Lock()
        self._told_bad_time = False  # a recording's time this platform cannot convert was logged
        self.motor = VirtualMotor(
            limits=ptz_limits,
            speed=ptz_speed,
            clock=clock,
            position=(self._state.get("ptz_x"), self._state.get("ptz_y")),
            on_stop=self._motor_stopped,
        )

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Remove temporary files a crash left beside the state file and check that the state
        directory is writable (called by ``Device.start()``).

        A directory that is not is reported here, in one line: the camera still answers, but
        changes of power and image flip answer 7 (device error) until it is writable again.
        """
        self._state.remove_stale_temporaries()  # left by a crash in the middle of a write
        try:
            self._state.check_writable()
        except OSError as exc:
            log.warning(
                "state directory %s is not writable (%s): power, image flip and PTZ position will not be saved",
                self.state_dir, exc,
            )

    # -- state ---------------------------------------------------------------------------------

    @property
    def flip(self) -> str:
        """The persisted image orientation."""
        return str(self._state.get("flip"))

    def snapshot(self) -> dict[str, Any]:
        """All persisted values."""
        return self._state.snapshot()

    def get_power(self) -> str:
        return str(self._state.get("power"))

    def set_power(self, status: str) -> None:
        self._state.update(power=status)

    def set_flip(self, mode: str) -> None:
        self._state.update(flip=mode)

    def signal_strength(self) -> int:
        return self.signal

    def firmware_version(self) -> str:
        return str(self._state.get("version"))

    def play_tone(self, name: str) -> None:
        with self._tone_lock, open(self.tone_log, "a", encoding="utf-8") as log_file:
            log_file.write(f"{time.time():.3f} {name}\n")

    def tones(self) -> list[str]:
        """Names of the tones played so far, oldest first."""
        try:
            lines = self.tone_log.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        return [line.split(" ", 1)[1] for line in lines if " " in line]

    # -- SD card -------------------------------------------------------------------------------

    def sd_card_present(self) -> bool:
        return self.sd_card and self.sd_dir.is_dir()

    def format_sd(self) -> None:
        if not self.sd_card_present():
            raise OSError("no SD card")
        if self.sd_dir.is_symlink():  # never empty whatever a link would point at
            raise OSError("the SD card directory is a symbolic link")
        if self.format_delay:
            time.sleep(self.format_delay)
        with os.scandir(self.sd_dir) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    import shutil  # noqa: PLC0415 - rarely: a directory on the simulated card

                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)

    # -- PTZ: a virtual motor whose position persists when it stops --------------------------

    def ptz_start(self, direction: str) -> None:
        self.motor.start(direction)

    def ptz_stop(self) -> None:
        self.motor.stop()

    def ptz_position(self) -> tuple[int, int] | None:
        return self.motor.position()

    def ptz_limits(self) -> PtzLimits:
        return self.motor.limits()

    def ptz_speed(self) -> tuple[float, float]:
        return self.motor.speed()

    def _motor_stopped(self, position: tuple[int, int]) -> None:
        try:
            self._state.update(ptz_x=position[0], ptz_y=position[1])
        except OSError as exc:  # the motor did stop: only the position is not saved
            log.warning("cannot save the PTZ position %s: %s", position, exc)

    # -- firmware: a simulated image names the version it installs ----------------------------

    def install_firmware(self, path: str, *, md5: str, size: int) -> None:
        """Install a simulated image; the simulated reboot is instant, so ``version`` changes at once."""
        version = read_image_version(path)
        if version is None:
            raise ValueError("not a simulated firmware image")
        log.info("simulated install of firmware %s (%d bytes)", version, size)
        self._state.update(version=version)

    # -- recordings: files under the virtual SD card -------------------------------------------

    def _recordings(self) -> list[tuple[int, int, str, int]]:
        """``(start, end, name, size)`` of ``record/<start>-<end>.mp4`` files on the SD card."""
        found = []
        folder = self.sd_dir / "record"
        if not folder.is_dir():
            return []
        for path in folder.glob("*-*.mp4"):
            start, _, end = path.stem.partition("-")
            if not (start.isascii() and start.isdigit() and end.isascii() and end.isdigit()):
                continue
            if max(int(start), int(end)) > _MAX_TIME:
                continue
            try:
                info = path.stat()  # follows links: a dangling one, or a file just deleted, is skipped
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                found.append((int(start), int(end), path.name, info.st_size))
        return sorted(found)

    def record_index(self, start: int, end: int) -> list[tuple[int, int]]:
        return [(a, b) for a, b, _, _ in self._recordings() if a <= end and b >= start]

    def month_record(self, year: int, month: int) -> int:
        mask = 0
        for a, _, name, _ in self._recordings():
            day = self._local_time(a, name)  # the camera's calendar, as the panel shows it
            if day is not None and (day.tm_year, day.tm_mon) == (year, month):
                mask |= 1 << (day.tm_mday - 1)
        return mask

    def _local_time(self, stamp: int, name: str) -> time.struct_time | None:
        """``time.localtime(stamp)``, or None where the platform cannot convert it (32-bit
        ``time_t`` after January 2038 on armhf); logged once."""
        try:
            return time.localtime(stamp)
        except (OverflowError, OSError, ValueError) as exc:
            if not self._told_bad_time:
                self._told_bad_time = True
                log.warning(
                    "recording %s: this platform cannot convert its time (%s); such recordings are left out of"
                    " month records",
                    name, exc,
                )
            return None

    def file_list(self, start: int, end: int, file_type: int) -> list[dict[str, Any]]:
        if file_type != 0:
            return []
        return [
            {"file_type": 0, "file_name": name, "file_size": size, "start_time": a, "end_time": b}
            for a, b, name, size in self._recordings()
            if a <= end and b >= start
        ]

    def playback(self, action: str, params: Mapping[str, str]) -> int | None:
        return 0 if action == "progress" else None
