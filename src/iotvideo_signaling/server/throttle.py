"""Log lines about something a client can repeat at will, at most one per key and interval.

A refused connection or handshake costs a client nothing and the daemon a log line; a client that
retries in a loop must not be able to fill the log (a camera's flash). :class:`ThrottledLog`
writes the first line of a key at once; later ones within ``interval`` seconds are only counted,
and the count goes with the key's next line.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

__all__ = ["REFUSAL_LOG_INTERVAL", "ThrottledLog"]

#: Seconds between two log lines about refusals of the same kind (connections, origins).
REFUSAL_LOG_INTERVAL = 60.0


class ThrottledLog:
    """At most one log line per key every ``interval`` seconds; the lines left out are counted.

    Args:
        logger: where the lines go.
        level: their level.
        interval: seconds between two lines of the same key.
        keys: keys remembered at most; the least recently seen is forgotten first (a key that
            keeps coming stays remembered, as the most recent).
        clock: monotonic seconds.
    """

    def __init__(
        self,
        logger: logging.Logger,
        level: int,
        *,
        interval: float,
        keys: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._level = level
        self._interval = interval
        self._keys = keys
        self._clock = clock
        self._logged: dict[str, tuple[float, int]] = {}  # key: (when logged, lines left out since)

    def log(self, key: str, message: str, *args: object) -> None:
        """Log ``message % args`` unless ``key`` was logged less than ``interval`` seconds ago.

        The line ends with ``; N more since its last line`` when N lines of the key were left out.
        """
        now = self._clock()
        last = self._logged.pop(key, None)
        if last is not None and now - last[0] < self._interval:
            self._logged[key] = (last[0], last[1] + 1)
            return
        while len(self._logged) >= self._keys:
            del self._logged[next(iter(self._logged))]
        self._logged[key] = (now, 0)
        if last is not None and last[1]:
            self._logger.log(self._level, message + "; %d more since its last line", *args, last[1])
        else:
            self._logger.log(self._level, message, *args)
