"""Loggers for the modules that ``import iotvideo_signaling`` loads: :mod:`logging` is imported
on the first message, not with the package (it and its imports are a third of the DESIGN.md
import budget, and a camera that logs nothing never pays for them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import logging

__all__ = ["logger"]


class _LazyLogger:
    __slots__ = ("_logger", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: Any = None

    def __getattr__(self, attribute: str) -> Any:  # only for what the slots do not hold
        logger = self._logger
        if logger is None:
            import logging  # noqa: PLC0415 - the point of this module

            logger = self._logger = logging.getLogger(self._name)
        return getattr(logger, attribute)


def logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)``, created when it is first used."""
    return cast("logging.Logger", _LazyLogger(name))
