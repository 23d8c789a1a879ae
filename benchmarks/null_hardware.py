"""A camera that does nothing, and a worker "pool" that runs jobs on the spot: the device benchmarks' test bench.

:class:`NullCamera` has every hook the panel's nine topics call, each returning a fixed value or
doing nothing, so a device benchmark measures request handling and not a camera. PTZ position
feedback is fixed at the centre of its limits, so no press is ever blocked, and the SD card is
always present. It is plain Python and imports nothing from ``iotvideo_signaling``: the floor and
the stdlib reference use it as it is, and :meth:`Device.handle` gets the same hooks through
:class:`benchmarks.device_contenders.NullHardware`, which adds the library's base class.

:class:`InlineExecutor` is a :class:`~concurrent.futures.ThreadPoolExecutor` whose ``submit`` runs
the job at once in the calling thread, for the floor and the stdlib reference (the Device gets
the library's own ``InlineJobs``); see :mod:`benchmarks.device_contenders` for why the benchmarks
measure the synchronous path and how the real pool is reported.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Optional, TypeVar

__all__ = [
    "FIRMWARE_VERSION",
    "PTZ_LIMITS",
    "PTZ_POSITION",
    "SIGNAL_STRENGTH",
    "InlineExecutor",
    "NullCamera",
]

T = TypeVar("T")

FIRMWARE_VERSION = "V1.04.11"
SIGNAL_STRENGTH = 50
#: ``(min_x, max_x, min_y, max_y)``.
PTZ_LIMITS = (0, 3600, 0, 900)
#: The fixed position feedback: the centre of :data:`PTZ_LIMITS`.
PTZ_POSITION = (1800, 450)


class NullCamera:
    """The hooks of the nine panel topics, with the signatures of ``iotvideo_signaling.Hardware``."""

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

    def ptz_position(self) -> Optional[tuple[int, int]]:
        return PTZ_POSITION

    def ptz_limits(self) -> tuple[int, int, int, int]:
        return PTZ_LIMITS


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
    the job propagates to the caller.
    """

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="benchmarks-unused")

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        fn(*args, **kwargs)
        return _DONE
