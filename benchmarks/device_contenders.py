"""What the device benchmarks compare, and how background work is measured fairly.

Three contenders answer the seed corpus (:data:`DEVICE_CORPUS`: the panel's nine requests in the
compact form its ``JSON.stringify`` sends) on a do-nothing camera
(:class:`~benchmarks.null_hardware.NullCamera`):

* ``handle``: :meth:`iotvideo_signaling.Device.handle`, default configuration, ``visitor=None``,
  on :class:`NullHardware` (the same hooks, with the library's base class);
* ``floor``: :class:`benchmarks.floor.Floor` (C fused decode + dict dispatch + ``orjson.dumps``,
  no validation);
* ``stdlib``: :class:`benchmarks.stdlib_device.StdlibDevice` (``urllib.parse`` + ``json``).

Background work
---------------
``sd_format`` and ``bind_status`` hand a job to a worker pool and reply at once. Timing them with
a real pool in a tight loop measures the scheduler, not the handling: the do-nothing jobs race the
loop, so ``sd_format`` answers "5 busy" (a different, cheaper path) whenever the previous format is
still queued, ``bind_status`` fills the queue, and the worker thread competes for the GIL with the
timed thread. So the **measured path is the synchronous one**: the Device gets the library's
:class:`~iotvideo_signaling.jobs.InlineJobs` through its public ``jobs`` argument, the floor and
the stdlib reference an :class:`~benchmarks.null_hardware.InlineExecutor`; each runs the job at
once in the calling thread. Each message's time therefore includes submitting and running its
job (the hook does nothing) and no thread hand-off; every ``sd_format`` takes the full path (busy
flag set, job run, flag cleared) and gets "0".

What the thread hand-off costs is reported separately (:func:`measure_pooled`, not checked): each
contender with a real one-thread pool, one call at a time, timed from the call to its reply (what
the panel waits for), the pool drained untimed before the next call.
"""

from __future__ import annotations

import gc
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from types import ModuleType
from typing import Any, Callable, NamedTuple, Optional, Sequence

import orjson

from iotvideo_signaling import Device, DeviceConfig, Hardware
from iotvideo_signaling.jobs import InlineJobs, Jobs, WorkerPool

from . import timing
from .contenders import Contender
from .corpus import CORPUS, PANEL_REQUEST_EXAMPLES, Entry
from .floor import Floor
from .null_hardware import InlineExecutor, NullCamera
from .stdlib_device import StdlibDevice

__all__ = [
    "BACKGROUND_TOPICS",
    "DEVICE_CORPUS",
    "LABELS",
    "NullHardware",
    "Pooled",
    "device_contenders",
    "make_device",
    "measure_pooled",
    "pooled_contenders",
]

#: The seed corpus: the panel's nine requests, compact, as its ``JSON.stringify`` sends them.
DEVICE_CORPUS: tuple[Entry, ...] = tuple(entry for entry in CORPUS if entry.name in PANEL_REQUEST_EXAMPLES)
#: Topics that hand a job to the worker pool.
BACKGROUND_TOPICS = ("sd_format", "bind_status")
LABELS = {
    "handle": "`Device.handle`",
    "floor": "floor (C decode + dict dispatch + `orjson.dumps`, no validation)",
    "stdlib": "stdlib reference (`urllib.parse` + `json`)",
}
_SD_FORMAT = next(entry.raw for entry in DEVICE_CORPUS if entry.name == "sd_format")


class NullHardware(NullCamera, Hardware):
    """:class:`NullCamera` as a :class:`~iotvideo_signaling.Hardware`, with the hooks of the other commands."""

    def ptz_speed(self) -> tuple[float, float]:
        return (600.0, 300.0)

    def install_firmware(self, path: str, *, md5: str, size: int) -> None:
        pass

    def record_index(self, start: int, end: int) -> list[tuple[int, int]]:
        return []

    def month_record(self, year: int, month: int) -> int:
        return 0

    def file_list(self, start: int, end: int, file_type: int) -> list[dict[str, Any]]:
        return []

    def playback(self, action: str, params: Mapping[str, str]) -> Optional[int]:
        return 0 if action == "progress" else None


def make_device(hardware: Hardware, download_dir: str, *, jobs: Jobs) -> Device:
    """A Device on ``hardware`` with background ``jobs``, default configuration but ``download_dir``.

    The caller owns ``download_dir`` (the OTA manager's; without one the Device would leave a
    fresh temporary directory behind) and closes ``jobs`` after the Device.

    Raises:
        RuntimeError: with :class:`InlineJobs`, two SD formats in a row did not both succeed: the
            Device does not run its jobs where it was told to, and the benchmarks would time
            something else without saying so.
    """
    device = Device(hardware, config=DeviceConfig(download_dir=download_dir), jobs=jobs)
    if isinstance(jobs, InlineJobs):
        for _ in range(2):  # a job still queued would make the second one busy
            reply = orjson.loads(device.handle(_SD_FORMAT))
            if reply.get("result") != "0":
                device.close()
                raise RuntimeError(f"background jobs of the Device do not run inline: {reply}")
    return device


@contextmanager
def device_contenders(wire_c: ModuleType) -> Iterator[list[Contender]]:
    """The three contenders, each on its own do-nothing camera, jobs inline; closed on exit."""
    with ExitStack() as stack:
        jobs = InlineJobs()
        stack.callback(jobs.close)
        device = make_device(NullHardware(), stack.enter_context(tempfile.TemporaryDirectory()), jobs=jobs)
        stack.callback(device.close)
        floor = Floor(NullCamera(), decode=wire_c.decode_command, executor=InlineExecutor())
        reference = StdlibDevice(NullCamera(), executor=InlineExecutor())
        stack.callback(reference.close)
        yield [
            Contender("handle", "handle", LABELS["handle"], device.handle),
            Contender("floor", "handle", LABELS["floor"], floor.handle),
            Contender("stdlib", "handle", LABELS["stdlib"], reference.handle),
        ]


class Pooled(NamedTuple):
    """A contender with a real worker pool: ``handle`` one message, ``drain`` waits for its jobs."""

    key: str
    handle: Callable[[bytes], object]
    drain: Callable[[], None]


def _noop() -> None:
    pass


def _drain_executor(executor: ThreadPoolExecutor) -> Callable[[], None]:
    def drain() -> None:
        executor.submit(_noop).result()

    return drain


def _drain_jobs(jobs: Jobs) -> Callable[[], None]:
    def drain() -> None:  # one worker, FIFO: when this job has run, every earlier one has
        done = threading.Event()
        jobs.submit(done.set)
        done.wait()

    return drain


@contextmanager
def pooled_contenders(wire_c: ModuleType) -> Iterator[list[Pooled]]:
    """The three contenders, each with a real one-thread pool; closed (pools joined) on exit."""
    with ExitStack() as stack:
        download_dir = stack.enter_context(tempfile.TemporaryDirectory())
        jobs = WorkerPool(1)
        stack.callback(jobs.close)
        device = make_device(NullHardware(), download_dir, jobs=jobs)
        stack.callback(device.close)
        floor_pool = stack.enter_context(ThreadPoolExecutor(1))
        reference_pool = stack.enter_context(ThreadPoolExecutor(1))
        floor = Floor(NullCamera(), decode=wire_c.decode_command, executor=floor_pool)
        reference = StdlibDevice(NullCamera(), executor=reference_pool)
        yield [
            Pooled("handle", device.handle, _drain_jobs(jobs)),
            Pooled("floor", floor.handle, _drain_executor(floor_pool)),
            Pooled("stdlib", reference.handle, _drain_executor(reference_pool)),
        ]


def measure_pooled(contenders: Sequence[Pooled], messages: Sequence[tuple[str, bytes]], calls: int) -> timing.Timings:
    """Nanoseconds from call to reply, one call at a time, the pool drained (untimed) in between.

    Contenders are interleaved call by call; ``samples[key][message]`` has ``calls`` values (a
    single call is timed, so the timer's own cost, some tens of ns, is included in every value).
    """
    samples: dict[str, dict[str, list[float]]] = {c.key: {m: [] for m, _ in messages} for c in contenders}
    clock = time.perf_counter_ns
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for m, raw in messages:
            for c in contenders:  # warm up
                for _ in range(10):
                    c.handle(raw)
                    c.drain()
            for i in range(calls):
                for c in contenders if i % 2 else contenders[::-1]:
                    start = clock()
                    c.handle(raw)
                    elapsed = clock() - start
                    c.drain()
                    samples[c.key][m].append(elapsed)
    finally:
        if gc_was_enabled:
            gc.enable()
    return timing.Timings(samples)
