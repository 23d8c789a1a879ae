"""What the device benchmarks compare, and how background work is measured fairly.

Three contenders answer the seed corpus (:data:`DEVICE_CORPUS`: the panel's nine requests in the
compact form its ``JSON.stringify`` sends) on :class:`~benchmarks.null_hardware.NullHardware`:

* ``handle``: :meth:`iotvideo_signaling.Device.handle`, default configuration, ``visitor=None``;
* ``floor``: :class:`benchmarks.floor.Floor` (C fused decode + dict dispatch + ``orjson.dumps``,
  no validation);
* ``stdlib``: :class:`benchmarks.stdlib_device.StdlibDevice` (``urllib.parse`` + ``json``).

Background work
---------------
``sd_format`` and ``bind_status`` hand a job to a worker pool and reply at once. Timing them with
a real pool in a tight loop measures the scheduler, not the handling: the do-nothing jobs race the
loop, so ``sd_format`` answers "5 busy" (a different, cheaper path) whenever the previous format is
still queued, ``bind_status`` piles up thousands of queued jobs per timed block, and the worker
thread competes for the GIL with the timed thread. So the **asserted measurement is the
synchronous path**: every contender submits its jobs to an
:class:`~benchmarks.null_hardware.InlineExecutor`, which runs the job at once in the calling
thread. Each message's time therefore includes submitting and running its job (the hook does
nothing) and no thread hand-off; all three contenders submit the same jobs the same way, every
``sd_format`` takes the full path (busy flag set, job run, flag cleared) and gets "0". The Device
has no public way to take an executor, so :func:`make_device` puts the inline one where the Device
keeps its pool (``Device._executor``, created lazily) and checks that it took effect.

What the thread hand-off costs is reported separately (:func:`measure_pooled`, not asserted): each
contender with a real one-thread pool, one call at a time, timed from the call to its reply (what
the panel waits for), the pool drained untimed before the next call. That cost is the same for
every contender (``ThreadPoolExecutor.submit``), so it narrows every ratio on those two topics.
"""

from __future__ import annotations

import gc
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from types import ModuleType
from typing import Callable, NamedTuple, Sequence

import orjson

from iotvideo_signaling import Device, DeviceConfig

from . import timing
from .contenders import Contender
from .corpus import CORPUS, PANEL_REQUEST_EXAMPLES, Entry
from .floor import Floor
from .null_hardware import InlineExecutor, NullHardware
from .stdlib_device import StdlibDevice

__all__ = [
    "BACKGROUND_TOPICS",
    "DEVICE_CORPUS",
    "LABELS",
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


def make_device(hardware: NullHardware, download_dir: str, *, inline: bool = True, workers: int = 2) -> Device:
    """A Device on ``hardware``, default configuration except ``download_dir`` and ``workers``.

    With ``inline``, its background jobs run at submission (see the module docstring). The
    caller owns ``download_dir`` (the OTA manager's; without one the Device would leave a fresh
    temporary directory behind).

    Raises:
        RuntimeError: the inline executor did not take effect (the Device changed how it keeps
            its pool); the benchmarks would otherwise time a real pool without saying so.
    """
    device = Device(hardware, config=DeviceConfig(download_dir=download_dir, workers=workers))
    if not inline:
        return device
    if getattr(device, "_executor", "absent") is not None:
        device.close()
        raise RuntimeError("Device no longer keeps a lazily created pool in _executor; update make_device")
    device._executor = InlineExecutor()
    for _ in range(2):  # a job still queued would make the second one busy
        reply = orjson.loads(device.handle(_SD_FORMAT))
        if reply.get("result") != "0" or type(device._executor) is not InlineExecutor:
            device.close()
            raise RuntimeError(f"background jobs of the Device do not run inline: {reply}")
    return device


@contextmanager
def device_contenders(wire_c: ModuleType) -> Iterator[list[Contender]]:
    """The three contenders on one shared :class:`NullHardware`, jobs inline; closed on exit."""
    hardware = NullHardware()
    with ExitStack() as stack:
        device = make_device(hardware, stack.enter_context(tempfile.TemporaryDirectory()))
        stack.callback(device.close)
        floor = Floor(hardware, decode=wire_c.decode_command, executor=InlineExecutor())
        reference = StdlibDevice(hardware, executor=InlineExecutor())
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


def _drain_device(device: Device) -> Callable[[], None]:
    def drain() -> None:  # one worker, FIFO: when this job has run, every earlier one has
        done = threading.Event()
        device.submit(done.set)
        done.wait()

    return drain


@contextmanager
def pooled_contenders(wire_c: ModuleType) -> Iterator[list[Pooled]]:
    """The three contenders, each with a real one-thread pool; closed (pools joined) on exit."""
    hardware = NullHardware()
    with ExitStack() as stack:
        download_dir = stack.enter_context(tempfile.TemporaryDirectory())
        device = make_device(hardware, download_dir, inline=False, workers=1)
        stack.callback(device.close)
        floor_pool = stack.enter_context(ThreadPoolExecutor(1))
        reference_pool = stack.enter_context(ThreadPoolExecutor(1))
        floor = Floor(hardware, decode=wire_c.decode_command, executor=floor_pool)
        reference = StdlibDevice(hardware, executor=reference_pool)
        yield [
            Pooled("handle", device.handle, _drain_device(device)),
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
