"""A virtual pan/tilt motor for the simulated camera.

The motor runs at constant speed in one direction at a time. Its position is integrated over the
(injected) clock from where the current run started, clamped to the limits, and read as whole
steps; it never leaves the limits. Like a real motor that reached its end stop, a run that hits a
limit stays "moving" until :meth:`VirtualMotor.stop` is called. Directions follow
:data:`iotvideo_signaling.ptz.DIRECTIONS`: ``right`` and ``up`` move toward ``max_x``/``max_y``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from .hardware import PtzLimits
from .ptz import DIRECTIONS

__all__ = ["VirtualMotor"]


class VirtualMotor:
    """Integer pan/tilt position driven by start/stop over a clock; thread-safe.

    Args:
        limits: ``(min_x, max_x, min_y, max_y)`` in steps.
        speed: steps per second of the x and y axes (> 0).
        clock: monotonic seconds (a :class:`~iotvideo_signaling.ptz.ManualClock` in tests).
        position: where the motor starts, clamped to the limits; None for the centre.
        on_stop: called with the final ``(x, y)`` each time a running motor stops, in the thread
            that called :meth:`stop`, outside the motor's lock (the simulated hardware persists
            the position there). Also settable as the attribute ``on_stop``.
    """

    def __init__(
        self,
        *,
        limits: PtzLimits = (0, 3600, 0, 900),
        speed: tuple[float, float] = (600.0, 300.0),
        clock: Callable[[], float] = time.monotonic,
        position: tuple[int, int] | None = None,
        on_stop: Callable[[tuple[int, int]], None] | None = None,
    ) -> None:
        min_x, max_x, min_y, max_y = (int(v) for v in limits)
        if min_x > max_x or min_y > max_y:
            raise ValueError(f"limits {limits!r}: a minimum is above its maximum")
        sx, sy = (float(v) for v in speed)
        if not all(s > 0 and math.isfinite(s) for s in (sx, sy)):
            raise ValueError(f"speed {speed!r}: speeds must be positive")
        self._limits: PtzLimits = (min_x, max_x, min_y, max_y)
        self._speed = (sx, sy)
        self._clock = clock
        if position is None:
            position = ((min_x + max_x) // 2, (min_y + max_y) // 2)
        self._x = min(max(int(position[0]), min_x), max_x)
        self._y = min(max(int(position[1]), min_y), max_y)
        self._direction: str | None = None
        self._started_at = 0.0
        self._lock = threading.Lock()
        self.on_stop = on_stop

    @property
    def moving(self) -> str | None:
        """The direction of the current run, or None when stopped."""
        with self._lock:
            return self._direction

    def start(self, direction: str) -> None:
        """Run continuously in ``direction``; changes the direction of a running motor at once."""
        if direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {direction!r}")
        with self._lock:
            if self._direction == direction:
                return
            now = self._clock()
            self._x, self._y = self._position_at(now)
            self._direction = direction
            self._started_at = now

    def stop(self) -> None:
        """Stop; does nothing when already stopped."""
        with self._lock:
            if self._direction is None:
                return
            self._x, self._y = self._position_at(self._clock())
            self._direction = None
            final = (self._x, self._y)
            callback = self.on_stop
        if callback is not None:
            callback(final)

    def position(self) -> tuple[int, int]:
        """The current ``(x, y)`` in whole steps, always within the limits."""
        with self._lock:
            return self._position_at(self._clock())

    def limits(self) -> PtzLimits:
        """``(min_x, max_x, min_y, max_y)``."""
        return self._limits

    def speed(self) -> tuple[float, float]:
        """Steps per second of the x and y axes."""
        return self._speed

    def _position_at(self, now: float) -> tuple[int, int]:
        if self._direction is None:
            return self._x, self._y
        dx, dy = DIRECTIONS[self._direction]
        elapsed = max(0.0, now - self._started_at)
        min_x, max_x, min_y, max_y = self._limits
        x = self._x + dx * self._speed[0] * elapsed
        y = self._y + dy * self._speed[1] * elapsed
        return round(min(max(x, min_x), max_x)), round(min(max(y, min_y), max_y))
