"""The value both wire backends produce: :class:`Command`, one parsed command string.

No ``from __future__ import annotations`` here: NamedTuple would compile every string
annotation at import time.
"""

from typing import NamedTuple, Optional, Tuple

__all__ = ["Command"]


class Command(NamedTuple):
    """One parsed command string (docs/protocol.md §2).

    A tuple underneath, so both backends build it cheaply and it is immutable and
    comparable. Exactly one of ``cmd`` and ``payload`` is set.

    Attributes:
        action: ``"user_define"`` or ``"inner_define"``.
        channel: the ``channel`` parameter, 0 when absent.
        cmd: the ``cmd`` token when it is not JSON (``"wx_call_start"``, ``"get_device_st"``).
        payload: the bytes of the JSON text when ``cmd`` is JSON.
        params: every other parameter, decoded, in input order.
    """

    action: str
    channel: int
    cmd: Optional[str]
    payload: Optional[bytes]
    params: Tuple[Tuple[str, str], ...]
