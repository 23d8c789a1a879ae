"""A camera that does nothing, and a worker "pool" that runs jobs on the spot: the device benchmarks' test bench.

:class:`NullHardware` overrides every hook of :class:`~iotvideo_signaling.Hardware` with one that
returns a fixed value or does nothing, so a device benchmark measures request handling and not
a camera. Every topic is supported (no hook raises), PTZ has position feedback fixed at the
centre of its limits, and the SD card is always present.

:class:`InlineExecutor` is a :class:`~concurrent.futures.ThreadPoolExecutor` whose ``submit`` runs
the job at once in the calling thread; see :mod:`benchmarks.device_contenders` for why the
benchmarks measure the synchronous path and how the real pool is reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, TypeVar

from iotvideo_signaling import Hardware
from iotvideo_signaling.hardware import PtzLimits

__all__ = [
    "FIRMWARE_VERSION",
    "PTZ_LIMITS",
    "PTZ_POSITION",
    "PTZ_SPEED",
    "SIGNAL_STRENGTH",
    "InlineExecutor",
    "NullHardware",
]

T = TypeVar("T")

FIRMWARE_VERSION = "V1.04.11"
SIGNAL_STRENGTH = 50
#: ``(min_x, max_x, min_y, max_y)``.
PTZ_LIMITS: PtzLimits = (0, 3600, 0, 900)
#: Steps per second of the x and y axes.
PTZ_SPEED = (600.0, 300.0)
#: The fixed position feedback: the centre of :data:`PTZ_LIMITS`, so no press is ever blocked.
PTZ_POSITION = (1800, 450)


class NullHardware(Hardware):
    """Every hook overridden; each returns a fixed value or does nothing."""

    def get_power(self) -> str:
        return "working"

    def set_power(self, status: str) -> None:
        pass

    def set_flip(self, mode: str) -> None:
        pass

    def play_tone(self, name: str) -> None:
        pass

    def signal_strength(self) -> int:
        return SIGNAL_STRENGTH

    def firmware_version(self) -> str:
        return FIRMWARE_VERSION

    def sd_card_present(self) -> bool:
        return True

    def format_sd(self) -> None:
        pass

    def ptz_start(self, direction: str) -> None:
        pass

    def ptz_stop(self) -> None:
        pass

    def ptz_position(self) -> tuple[int, int] | None:
        return PTZ_POSITION

    def ptz_limits(self) -> PtzLimits:
        return PTZ_LIMITS

    def ptz_speed(self) -> tuple[float, float]:
        return PTZ_SPEED

    def install_firmware(self, path: str, *, md5: str, size: int) -> None:
        pass

    def record_index(self, start: int, end: int) -> list[tuple[int, int]]:
        return []

    def month_record(self, year: int, month: int) -> int:
        return 0

    def file_list(self, start: int, end: int, file_type: int) -> list[dict[str, Any]]:
        return []

    def playback(self, action: str, params: Mapping[str, str]) -> int | None:
        return 0 if action == "progress" else None


def _done() -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(None)
    return future


_DONE: Future[Any] = _done()


class InlineExecutor(ThreadPoolExecutor):
    """``submit`` runs the job now, in the caller's thread; no thread is ever started.

    Every caller in the benchmarks ignores what ``submit`` returns, so it returns one shared,
    already completed future (result None) instead of paying for a new one per job: the job's
    own cost is what counts, not the bookkeeping of a pool that is not there. An exception from
    the job propagates to the caller (the Device wraps its jobs in a guard that logs them).
    """

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="benchmarks-unused")

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        fn(*args, **kwargs)
        return _DONE
