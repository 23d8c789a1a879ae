"""The Device: the facade a camera daemon uses, its lifecycle, and the dispatch of commands.

``Device.handle`` is the one entry point for commands. It never raises, never returns an empty
reply and never blocks on slow work. The path of one command: the wire backend decodes the
bytes (``decode_command``), the request layer checks the envelope (``protocol.parse_request``),
the role policy may refuse the topic, the topic's handler (``topics.BuiltinTopics`` or a vendor's
own) reads its fields and calls the hardware, and ``protocol.reply`` builds the JSON answer.

Lifecycle: the constructor does no I/O and starts no thread. :meth:`Device.start` (or ``with``)
calls ``Hardware.start()``, reads the power state, sends the start-up PTZ stop and resumes an
upgrade; :meth:`Device.close` ends it all. A Device used before ``start()`` starts itself on
first use, exactly once.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Callable

from ._command import Command
from ._lifecycle import Lifecycle
from ._log import logger
from ._wire import decode_command
from .config import DeviceConfig
from .errors import ResultCode, WireError
from .events import Event, EventBus
from .hardware import Hardware, implemented_hooks
from .inner import DEVICE_ERROR as INNER_DEVICE_ERROR
from .inner import handle_inner
from .jobs import MAX_QUEUED_JOBS, Jobs, WorkerPool
from .protocol import (
    MAX_TOPIC_ECHO,
    MISSING,
    EnvelopeError,
    FailureReplies,
    error_reply,
    oversized_reply,
    parse_request,
    reply,
    short,
)
from .sessions import Admission, Sessions, check_visitor, sharer_refusal
from .topics import LEGACY_PTZ, BuiltinTopics, TokenHandler, TopicHandler, guard_reply_fields

if TYPE_CHECKING:
    from ._wire_py import Buffer
    from .ota import OtaStatus
    from .scheduling import Scheduler

__all__ = ["MAX_REPLY_SIZE", "Device", "DeviceConfig", "TokenHandler", "TopicHandler"]

log = logger(__name__)

#: The longest reply, unless ``max_message_size`` is larger; a longer one becomes error 7.
MAX_REPLY_SIZE = 16384

_DEFAULT_CONFIG = DeviceConfig()


class Device:
    """A camera that answers the panel protocol.

    Power (privacy mode) is read at :meth:`start`, changed by ``set_status``, and reported by a
    camera that switches it by itself through :meth:`power_changed` or :meth:`refresh_power`.
    A state that cannot be read is treated as standby: privacy fails closed.

    Args:
        hardware: the hooks of this camera (:class:`~iotvideo_signaling.SimulatedHardware` for a
            virtual one).
        config: limits and policy.
        clock: monotonic clock for PTZ timing (tests inject a fake one).
        wall_clock: seconds since the epoch, the time of every :class:`Event`.
        scheduler: timer for PTZ move caps (None: a timer thread of its own).
        jobs: the pool of background work (None: a :class:`~iotvideo_signaling.jobs.WorkerPool`
            of ``config.workers`` threads). The Device closes it in :meth:`close`.
    """

    def __init__(
        self,
        hardware: Hardware,
        /,
        *,
        config: DeviceConfig = _DEFAULT_CONFIG,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        scheduler: Scheduler | None = None,
        jobs: Jobs | None = None,
    ) -> None:
        config.check()
        self.hardware = hardware
        self.config = config
        self._max_size = config.max_message_size
        # Replies stay under 16 KiB (docs/protocol.md §1), or under the command limit if that is larger.
        self._max_reply = max(MAX_REPLY_SIZE, config.max_message_size)
        self._lock = threading.Lock()  # the dispatch tables
        self._life = Lifecycle()
        self._hardware_started = False  # Hardware.start() returned (it is not called again)
        self._events = EventBus(wall_clock)
        self._hooks = implemented_hooks(hardware)
        self._jobs: Jobs = jobs if jobs is not None else WorkerPool(config.workers, max_queued=MAX_QUEUED_JOBS)
        self._denied = frozenset(config.sharer_denied_topics)
        self._sessions = Sessions(
            events=self._events,
            default_role=config.default_role,
            max_viewers=config.max_connections,
            in_standby=self.in_standby,
            playback="record_index" in self._hooks,
        )
        self._builtins = BuiltinTopics(
            hardware,
            hooks=self._hooks,
            config=config,
            sessions=self._sessions,
            events=self._events,
            jobs=self._jobs,
            clock=clock,
            scheduler=scheduler,
        )
        self._topics: dict[str, TopicHandler] = self._builtins.handlers()
        self._tokens: dict[str, TokenHandler] = {name: self._builtins.legacy_ptz for name in LEGACY_PTZ}
        self._failures = FailureReplies()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Device:
        """Begin the Device's life: :meth:`Hardware.start`, read the power state, stop a motor
        that may still run after a crash, resume an upgrade. Idempotent, thread-safe; returns self.

        Call it at boot (or use ``with``): a Device used without it starts on first use.

        Raises:
            RuntimeError: the Device is closed.
            Exception: what ``Hardware.start()`` raised (the next start tries again).
        """
        if not self._life.begin_start():
            return self  # running, or a hook called back while starting
        try:
            if not self._hardware_started:
                self.hardware.start()
                self._hardware_started = True
            self._builtins.start()
        except BaseException:
            self._life.start_failed()
            raise
        self._life.started()
        return self

    def _started(self) -> None:
        """Start on first use; a closed Device stays closed (its requests are answered all the same)."""
        if not self._life.running and not self._life.closed:
            self.start()

    def close(self, timeout: float | None = None) -> None:
        """Stop the motor, stop background work, then close the hardware. Safe to call twice.

        Background jobs that have not started are dropped (an SD format waiting for the pool is
        reported failed); a running one is waited for, up to ``timeout`` seconds (None: no limit).
        """
        if not self._life.begin_close():
            return
        self._builtins.close()
        self._jobs.close(timeout)
        self._builtins.remove_temporary_files()
        try:
            self.hardware.close()
        except Exception as exc:  # noqa: BLE001 - closing must finish
            log.warning("Hardware.close() failed: %s", exc)

    def __enter__(self) -> Device:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the entry point -------------------------------------------------------------------------

    def handle(self, raw: Buffer, /, *, visitor: str | None = None) -> bytes:
        """Answer one command string with one non-empty JSON reply; never raises.

        Args:
            raw: the command as received (``bytes``, ``bytearray``, ``memoryview`` or ``str``).
            visitor: the SDK's id of the peer that sent it (a ``str``; None: no session); its
                session gives its role. Another type is the caller's bug: the command is refused
                with result 7 and the reason, logged as an error.
        """
        if visitor is not None and type(visitor) is not str:
            try:
                check_visitor(visitor, optional=True)
            except TypeError as exc:
                log.error("Device.handle: %s", exc)
                return error_reply("", ResultCode.DEVICE_ERROR, str(exc))
        if not self._life.running:
            try:
                self._started()
            except Exception:
                log.exception("the device did not start")
                return error_reply("", ResultCode.DEVICE_ERROR, "internal error")
        try:
            command, value = decode_command(raw, max_size=self._max_size)
        except WireError as exc:
            return error_reply("", exc.code, exc.reason)
        except Exception as exc:  # noqa: BLE001 - wrong input type and the like
            return error_reply("", ResultCode.MALFORMED_COMMAND, f"unreadable command ({type(exc).__name__})")
        try:
            if command.action == "inner_define":
                out = handle_inner(self, command, visitor, on_unsupported=self._failures.unsupported)
                return out if len(out) <= self._max_reply else INNER_DEVICE_ERROR
            if value is None:
                return self._token(command, visitor)
            try:
                request = parse_request(value)
            except EnvelopeError as exc:
                return error_reply(exc.topic, exc.code, exc.reason, exc.message_id)
            topic = request.topic
            message_id = request.message_id
            try:
                handler = self._topics[topic]
            except KeyError:
                shown = topic if len(topic) <= MAX_TOPIC_ECHO else ""
                return error_reply(shown, ResultCode.UNKNOWN, f"unknown topic {short(topic)}", message_id)
            if topic in self._denied and self._sessions.role(visitor) == "sharer":
                return error_reply(topic, ResultCode.FORBIDDEN, sharer_refusal(topic), message_id)
            try:
                out = reply(topic, message_id, handler(request, visitor))
            except Exception as exc:  # noqa: BLE001 - mapped to a result code
                return self._failures.reply(topic, message_id, exc)
            return out if len(out) <= self._max_reply else oversized_reply(topic, message_id)
        except Exception:
            log.exception("unexpected failure while handling a command")
            return error_reply("", ResultCode.DEVICE_ERROR, "internal error")

    def _token(self, command: Command, visitor: str | None) -> bytes:
        token = command.cmd or ""
        handler = self._tokens.get(token)
        if handler is None:
            return error_reply("", ResultCode.UNKNOWN, f"unknown command {short(token)}")
        topic = "ptz" if token in LEGACY_PTZ else token
        try:
            out = reply(topic, MISSING, handler(command, visitor))
        except Exception as exc:  # noqa: BLE001 - mapped to a result code
            return self._failures.reply(topic, MISSING, exc)
        return out if len(out) <= self._max_reply else oversized_reply(topic, MISSING)

    # -- extension points ------------------------------------------------------------------------

    def topic(self, name: str) -> Callable[[TopicHandler], TopicHandler]:
        """Register a handler for a custom ``user_define`` topic (decorator).

        The handler gets the :class:`Request` and the visitor, returns the reply's fields (or
        None), and refuses with :class:`RequestError`. Built-in topics may be replaced too.
        """

        def register(handler: TopicHandler) -> TopicHandler:
            with self._lock:
                self._topics[name] = guard_reply_fields(handler)
            return handler

        return register

    def command(self, token: str) -> Callable[[TokenHandler], TokenHandler]:
        """Register a handler for a plain ``cmd`` token such as ``wx_call_start`` (decorator)."""

        def register(handler: TokenHandler) -> TokenHandler:
            with self._lock:
                self._tokens[token] = guard_reply_fields(handler)
            return handler

        return register

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback`` with every :class:`Event`; returns a function that unsubscribes."""
        return self._events.subscribe(callback)

    def publish(self, event: Event) -> None:
        """Deliver a vendor's own event to every subscriber (stamped with the wall clock if it has no time)."""
        self._events.publish(event)

    # -- sessions, streams, intercom -------------------------------------------------------------

    def open_session(self, visitor: str, role: str | None = "owner") -> None:
        """A peer connected. ``role`` is ``"owner"``, ``"sharer"`` or None (the default role)."""
        self._started()
        self._sessions.open(visitor, role)

    def close_session(self, visitor: str) -> None:
        """A peer left: its stream ends, its intercom ends, its PTZ move stops."""
        self._started()
        self._builtins.visitor_gone(visitor)
        self._sessions.close(visitor)

    def role(self, visitor: str | None) -> str:
        """The role of ``visitor``: from its session, else the configured default."""
        return self._sessions.role(visitor)

    def start_stream(self, visitor: str) -> None:
        """Live view started for ``visitor`` (counts in ``user_num``)."""
        self._started()
        self._sessions.start_stream(visitor)

    def stop_stream(self, visitor: str) -> None:
        """Live view stopped for ``visitor``."""
        self._sessions.stop_stream(visitor)

    def start_intercom(self, visitor: str) -> bool:
        """Give the intercom to ``visitor``; False when another visitor holds it."""
        self._started()
        return self._sessions.start_intercom(visitor)

    def stop_intercom(self, visitor: str) -> None:
        """``visitor`` stopped talking (nothing happens if it did not hold the intercom)."""
        self._sessions.stop_intercom(visitor)

    def admit_stream(self, visitor: str | None, kind: str) -> Admission:
        """May ``visitor`` start a ``"live"``, ``"voice"`` or ``"playback"`` stream now?"""
        self._started()
        return self._sessions.admit(visitor, kind)

    # -- state -----------------------------------------------------------------------------------

    def in_standby(self) -> bool:
        """True while the camera is in standby (privacy mode), or while its power state is
        unknown (``get_power`` failed: the Device fails closed, see :meth:`refresh_power`)."""
        return self._builtins.in_standby()

    def power_changed(self, status: str) -> None:
        """The camera changed its power by itself (a physical privacy switch): record ``status``
        (``"working"`` or ``"standby"``, else ValueError) without calling ``set_power``, publish
        ``power``, stop a PTZ move on standby. Safe from any thread and from inside a power hook.
        """
        self._builtins.power_changed(status)

    def refresh_power(self) -> str:
        """Read ``Hardware.get_power`` again and record it (it is read once at :meth:`start`).

        A read that fails or answers anything but ``"working"``/``"standby"`` leaves the state
        unknown, treated as standby until a read, a ``set_status`` or :meth:`power_changed`
        succeeds (docs/decisions.md). Does not start the Device.

        Returns:
            ``"working"``, ``"standby"`` or ``"unknown"``.
        """
        return self._builtins.refresh_power()

    def supports(self, hook: str) -> bool:
        """True when this camera's Hardware class overrides ``hook`` (e.g. ``"ptz_start"``)."""
        return hook in self._hooks

    def upgrade_status(self) -> OtaStatus:
        """The state of the current (or last) firmware upgrade since start; idle if none."""
        self._started()
        return self._builtins.upgrade_status()

    def cancel_upgrade(self) -> bool:
        """Cancel an upgrade that has not reached the installer.

        Returns:
            True if one was cancelled (an ``upgrade`` event with state ``fail``, code -5 and
            reason ``cancelled`` follows), False if there was none or its install has begun.
        """
        self._started()
        return self._builtins.cancel_upgrade()

