"""DeviceConfig: the limits and policy of a Device.

No ``from __future__ import annotations`` here: NamedTuple would compile every string
annotation at import time.
"""

from typing import NamedTuple, Optional, Tuple

__all__ = ["DEFAULT_PTZ_STEP", "MAX_MESSAGE_SIZE_LIMIT", "DeviceConfig"]

#: Motor steps of one legacy ``ptz_left``/``ptz_right``/... command.
DEFAULT_PTZ_STEP = 100
#: The largest ``max_message_size`` (1 MiB). The panel's commands stay under 16 KiB; the limit
#: also bounds the replies and what the daemon buffers per connection, and it is a ``Py_ssize_t``
#: on every platform (``2**31`` is not one on 32-bit ARM, where every command would then fail).
MAX_MESSAGE_SIZE_LIMIT = 1 << 20


class DeviceConfig(NamedTuple):
    """Limits and policy of a :class:`Device`; every value has a safe default.

    Attributes:
        max_message_size: longest accepted command in bytes, at most
            :data:`MAX_MESSAGE_SIZE_LIMIT` (1 MiB).
        max_connections: most visitors streaming at once (``get_device_st`` answers 405 beyond).
        max_firmware_size: largest accepted ``fileSize`` of an upgrade, in bytes.
        ptz_move_cap_s: longest continuous PTZ move without a new press; None = full sweep plus
            a margin, clamped to 2-30 s.
        ptz_step: motor steps of one legacy ``ptz_left``/``ptz_right``/... command.
        download_dir: where firmware downloads and their job file live (None: a directory in
            the system's temporary directory).
        ca_file: CA bundle for firmware downloads (None: the system's store).
        ota_allowed_hosts: the hosts firmware downloads and their redirects may reach: host
            names, ``*.example.com`` (every name under example.com) and IP addresses. Empty
            (the default): every public host; IP addresses that are loopback, private,
            link-local, unspecified, multicast or otherwise not public, ``localhost`` and
            ``*.localhost`` are refused, and so is a name that resolves only to such
            addresses. Set: only the listed hosts, whatever addresses they are or resolve to
            (list an internal firmware server, or ``127.0.0.1`` for a test server, here).
        sharer_denied_topics: topics a sharer gets error 6 for.
        default_role: the role of a visitor without a session (and of ``visitor=None``).
        workers: threads of the background pool.
    """

    max_message_size: int = 16384
    max_connections: int = 32
    max_firmware_size: int = 128 * 1024 * 1024
    ptz_move_cap_s: Optional[float] = None
    ptz_step: int = DEFAULT_PTZ_STEP
    download_dir: Optional[str] = None
    ca_file: Optional[str] = None
    ota_allowed_hosts: Tuple[str, ...] = ()
    sharer_denied_topics: Tuple[str, ...] = ("upgrade", "sd_format", "set_status")
    default_role: str = "owner"
    workers: int = 2

    def check(self) -> None:
        """Raise ValueError naming the first setting that cannot work."""
        for name in ("max_message_size", "max_connections", "max_firmware_size", "ptz_step", "workers"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if self.max_message_size > MAX_MESSAGE_SIZE_LIMIT:
            raise ValueError(
                f"max_message_size must be at most {MAX_MESSAGE_SIZE_LIMIT} (1 MiB), not {self.max_message_size!r}"
            )
        cap = self.ptz_move_cap_s
        if cap is not None and (type(cap) not in (int, float) or not 0 < cap < float("inf")):
            raise ValueError(f"ptz_move_cap_s must be a positive number of seconds or None, not {cap!r}")
        if self.default_role not in ("owner", "sharer"):
            raise ValueError(f"default_role must be 'owner' or 'sharer', not {self.default_role!r}")
        if isinstance(self.sharer_denied_topics, str) or not all(
            type(topic) is str for topic in self.sharer_denied_topics
        ):
            raise ValueError("sharer_denied_topics must be a sequence of topic names")
        from ._ota_base import host_pattern_problem  # noqa: PLC0415 - keep the import light

        if isinstance(self.ota_allowed_hosts, str):
            raise ValueError("ota_allowed_hosts must be a sequence of host patterns")
        for pattern in self.ota_allowed_hosts:
            problem = host_pattern_problem(pattern)
            if problem is not None:
                raise ValueError(f"ota_allowed_hosts: {problem}")
