"""The Device: dispatch, sessions, role policy, events and background work.

``Device.handle`` is the one entry point for commands. It never raises, never returns an empty
reply and never blocks on slow work: SD format, tones and firmware downloads run on a small worker
pool after the reply. The lock guards only the Device's own state (sessions, streams, intercom,
busy flags, counters); hardware hooks are called outside it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from ._command import Command
from ._log import logger
from ._wire import decode_command
from .config import DeviceConfig
from .errors import MAX_REASON, RequestError, ResultCode, WireError
from .events import Event
from .hardware import Hardware
from .inner import DEVICE_ERROR as INNER_DEVICE_ERROR
from .inner import handle_inner
from .protocol import (
    FIELDS,
    MAX_TOPIC_ECHO,
    MD5_REASON,
    MISSING,
    EnvelopeError,
    Request,
    error_reply,
    is_md5,
    parse_request,
    reply,
    short,
)

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from .ota import OtaManager
    from .ptz import PtzController, Scheduler

__all__ = ["Device", "DeviceConfig", "TokenHandler", "TopicHandler"]

log = logger(__name__)

Buffer = Union[bytes, bytearray, memoryview, str]
#: A custom topic handler: ``(request, visitor) -> reply fields or None``; raise RequestError to refuse.
TopicHandler = Callable[[Request, Optional[str]], Optional[Mapping[str, Any]]]
#: A custom token handler: ``(command, visitor) -> reply fields or None``.
TokenHandler = Callable[[Command, Optional[str]], Optional[Mapping[str, Any]]]

ROLES = ("owner", "sharer")
_LEGACY_PTZ = {"ptz_left": "left", "ptz_right": "right", "ptz_up": "up", "ptz_down": "down"}
_PTZ_PRESS = {"ptz_up_press": "up", "ptz_down_press": "down", "ptz_left_press": "left", "ptz_right_press": "right"}
(_USER,), (_MODE,), (_POWER,), (_PTZ_CMD,), (_BIND,), (_URL, _MD5, _SIZE) = (
    FIELDS[topic] for topic in ("get_status", "Mirror_flip", "set_status", "ptz", "bind_status", "upgrade")
)
#: The longest reply, unless ``max_message_size`` is larger; a longer one becomes error 7.
MAX_REPLY_SIZE = 16384

#: Background jobs (SD format, tones, firmware download) that may wait or run at once.
MAX_QUEUED_JOBS = 16

_SHARER_REASONS = {
    "upgrade": "sharers may not upgrade the firmware",
    "sd_format": "sharers may not format the SD card",
    "set_status": "sharers may not switch the camera on or off",
}


_DEFAULT_CONFIG = DeviceConfig()


class Device:
    """A camera that answers the panel protocol.

    Args:
        hardware: the hooks of this camera (:class:`~iotvideo_signaling.SimulatedHardware` for a
            virtual one).
        config: limits and policy.
        clock: monotonic clock for PTZ timing (tests inject a fake one).
        scheduler: timer for PTZ move caps (None: a real timer thread).
    """

    def __init__(
        self,
        hardware: Hardware,
        /,
        *,
        config: DeviceConfig = _DEFAULT_CONFIG,
        clock: Callable[[], float] = time.monotonic,
        scheduler: Scheduler | None = None,
    ) -> None:
        config.check()
        self.hardware = hardware
        self.config = config
        self.max_connections = config.max_connections
        self._max_size = config.max_message_size
        # Replies stay under 16 KiB (PROTOCOL.md §1), or under the command limit if that is larger.
        self._max_reply = max(MAX_REPLY_SIZE, config.max_message_size)
        self._lock = threading.Lock()
        self._sessions: dict[str | None, str] = {}  # visitor -> role (None is never a key: get(None) misses)
        self._streaming: set[str] = set()
        self._talker: str | None = None
        self._closed = False
        self._subscribers: tuple[Callable[[Event], None], ...] = ()
        self._executor: ThreadPoolExecutor | None = None
        # Busy flags without a critical section on the request path (a ``with`` costs as much as
        # a whole field check): list.pop/append and a non-blocking acquire are each atomic.
        self._job_slots: list[None] = [None] * MAX_QUEUED_JOBS  # one per job queued or running
        self._formatting = threading.Lock()  # held from an accepted sd_format to the end of its job
        self._tone_queued = threading.Lock()  # held while a prompt tone waits for the pool
        self._power_lock = threading.Lock()
        self._denied = frozenset(config.sharer_denied_topics)
        self._default_role = config.default_role
        self._topics: dict[str, TopicHandler] = {
            "get_status": self._get_status,
            "version": self._version,
            "upgrade": self._upgrade,
            "Mirror_flip": self._mirror_flip,
            "set_status": self._set_status,
            "ptz": self._ptz_topic,
            "sd_format": self._sd_format,
            "bind_status": self._bind_status,
            "intercom": self._intercom,
        }
        self._tokens: dict[str, TokenHandler] = {name: self._legacy_ptz for name in _LEGACY_PTZ}
        self._power = self._read_power()
        self._clock = clock
        self._scheduler = scheduler
        self._ptz: PtzController | None = None
        # The hooks this camera implements (overridden in its class), for "unsupported" answers.
        self._hooks = frozenset(
            name for name in vars(Hardware) if not name.startswith("_") and _overrides(hardware, name)
        )
        # A topic whose hook this camera lacks answers 3 without reading its fields.
        for topic, hook in _TOPIC_HOOKS:
            if hook not in self._hooks:
                self._topics[topic] = _unsupported
        if "ptz_start" in self._hooks:
            try:
                self._ptz_controller()  # sends the start-up stop: after a crash the motor may run
            except Exception as exc:  # noqa: BLE001 - retried on the first ptz command
                log.warning("PTZ controller did not start (%s); will retry on the next ptz command", exc)
        self._ota: OtaManager | None = None
        self._temp_download_dir: str | None = None  # removed at close
        if config.download_dir is not None and "install_firmware" in self._hooks:
            self._ota_manager().resume()  # continue a download or confirm an install after a restart

    # -- the entry point ---------------------------------------------------------------------

    def handle(self, raw: Buffer, /, *, visitor: str | None = None) -> bytes:
        """Answer one command string with one non-empty JSON reply; never raises.

        Args:
            raw: the command as received (``bytes``, ``bytearray``, ``memoryview`` or ``str``).
            visitor: the SDK's id of the peer that sent it; its session gives its role.
        """
        try:
            command, value = decode_command(raw, max_size=self._max_size)
        except WireError as exc:
            return error_reply("", exc.code, exc.reason)
        except Exception as exc:  # noqa: BLE001 - wrong input type and the like
            return error_reply("", ResultCode.MALFORMED_COMMAND, f"unreadable command ({type(exc).__name__})")
        try:
            if command.action == "inner_define":
                out = handle_inner(self, command, visitor)
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
            if topic in self._denied and self.role(visitor) == "sharer":
                reason = _SHARER_REASONS.get(topic, f"sharers may not use {short(topic)}")
                return error_reply(topic, ResultCode.FORBIDDEN, reason, message_id)
            try:
                out = reply(topic, message_id, handler(request, visitor))
            except Exception as exc:  # noqa: BLE001 - mapped to a result code
                return _failed(topic, message_id, exc)
            return out if len(out) <= self._max_reply else _too_large(topic, message_id)
        except Exception:
            log.exception("unexpected failure while handling a command")
            return error_reply("", ResultCode.DEVICE_ERROR, "internal error")

    def _token(self, command: Command, visitor: str | None) -> bytes:
        token = command.cmd or ""
        handler = self._tokens.get(token)
        if handler is None:
            return error_reply("", ResultCode.UNKNOWN, f"unknown command {short(token)}")
        topic = "ptz" if token in _LEGACY_PTZ else token
        try:
            out = reply(topic, MISSING, handler(command, visitor))
        except Exception as exc:  # noqa: BLE001 - mapped to a result code
            return _failed(topic, MISSING, exc)
        return out if len(out) <= self._max_reply else _too_large(topic, MISSING)

    # -- extension points --------------------------------------------------------------------

    def topic(self, name: str) -> Callable[[TopicHandler], TopicHandler]:
        """Register a handler for a custom ``user_define`` topic (decorator).

        The handler gets the :class:`Request` and the visitor, returns the reply's fields (or
        None), and refuses with :class:`RequestError`. Built-in topics may be replaced too.
        """

        def register(handler: TopicHandler) -> TopicHandler:
            with self._lock:
                self._topics[name] = _envelope_guard(handler)
            return handler

        return register

    def command(self, token: str) -> Callable[[TokenHandler], TokenHandler]:
        """Register a handler for a plain ``cmd`` token such as ``wx_call_start`` (decorator)."""

        def register(handler: TokenHandler) -> TokenHandler:
            with self._lock:
                self._tokens[token] = _envelope_guard(handler)
            return handler

        return register

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback`` with every :class:`Event`; returns a function that unsubscribes."""
        with self._lock:
            self._subscribers = (*self._subscribers, callback)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = tuple(s for s in self._subscribers if s is not callback)

        return unsubscribe

    def publish(self, event: Event) -> None:
        """Deliver an event to every subscriber; a failing subscriber is logged and skipped."""
        if not event.time:
            event = Event(event.kind, event.data, time.time())
        for callback in self._subscribers:
            try:
                callback(event)
            except Exception:
                log.exception("event subscriber failed")

    def _emit(self, kind: str, **data: Any) -> None:
        if self._subscribers:
            self.publish(Event(kind, data, time.time()))

    # -- sessions, streams, intercom ---------------------------------------------------------

    def open_session(self, visitor: str, role: str | None = "owner") -> None:
        """A peer connected. ``role`` is ``"owner"``, ``"sharer"`` or None (the default role)."""
        if role is None:
            role = self.config.default_role
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        if not isinstance(visitor, str):  # (visitor=None stands for "no session": never a key)
            raise TypeError(f"visitor must be a str, not {type(visitor).__name__}")
        with self._lock:
            self._sessions[visitor] = role
        self._emit("session", visitor=visitor, state="open", role=role)

    def close_session(self, visitor: str) -> None:
        """A peer left: its stream ends, its intercom ends, its PTZ move stops."""
        with self._lock:
            known = self._sessions.pop(visitor, None) is not None
            was_streaming = visitor in self._streaming
            self._streaming.discard(visitor)
            was_talking = self._talker == visitor
            if was_talking:
                self._talker = None
        if self._ptz is not None:
            self._ptz.visitor_gone(visitor)
        if was_streaming:
            self._emit("stream", visitor=visitor, state="stopped")
        if was_talking:
            self._emit("intercom", visitor=visitor, state="unused")
        if known:
            self._emit("session", visitor=visitor, state="closed")

    def role(self, visitor: str | None) -> str:
        """The role of ``visitor``: from its session, else the configured default."""
        return self._sessions.get(visitor, self._default_role)

    def start_stream(self, visitor: str) -> None:
        """Live view started for ``visitor`` (counts in ``user_num``)."""
        with self._lock:
            new = visitor not in self._streaming
            self._streaming.add(visitor)
        if new:
            self._emit("stream", visitor=visitor, state="started")

    def stop_stream(self, visitor: str) -> None:
        """Live view stopped for ``visitor``."""
        with self._lock:
            was = visitor in self._streaming
            self._streaming.discard(visitor)
        if was:
            self._emit("stream", visitor=visitor, state="stopped")

    def start_intercom(self, visitor: str) -> bool:
        """Give the intercom to ``visitor``; False when another visitor holds it."""
        with self._lock:
            if self._talker not in (None, visitor):
                return False
            new = self._talker is None
            self._talker = visitor
        if new:
            self._emit("intercom", visitor=visitor, state="using")
        return True

    def stop_intercom(self, visitor: str) -> None:
        """``visitor`` stopped talking (nothing happens if it did not hold the intercom)."""
        with self._lock:
            was = self._talker == visitor
            if was:
                self._talker = None
        if was:
            self._emit("intercom", visitor=visitor, state="unused")

    def viewers(self, visitor: str | None) -> tuple[int, bool]:
        """``(user_num, visitor is streaming)``: streaming visitors, counting ``visitor`` once."""
        streaming = self._streaming  # set operations are atomic; no lock needed to read
        present = visitor in streaming
        return len(streaming) + (0 if present else 1), present

    def talking_elsewhere(self, visitor: str | None) -> bool:
        """True when a visitor other than ``visitor`` holds the intercom."""
        talker = self._talker
        return talker is not None and talker != visitor

    def in_standby(self) -> bool:
        """True while the camera is in standby (privacy mode)."""
        return self._power == "standby"

    def supports(self, hook: str) -> bool:
        """True when this camera's Hardware class overrides ``hook`` (e.g. ``"ptz_start"``)."""
        return hook in self._hooks

    def _require(self, hook: str) -> None:
        """Raise NotImplementedError (answer 3) when the camera does not implement ``hook``."""
        if hook not in self._hooks:
            raise NotImplementedError(hook)

    # -- background work ---------------------------------------------------------------------

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` on the Device's worker pool (started on first use).

        Raises:
            RequestError: code 5 when :data:`MAX_QUEUED_JOBS` jobs are already waiting or running.
            RuntimeError: the device is closed.
        """
        if self._closed:
            raise RuntimeError("device is closed")
        try:
            self._job_slots.pop()
        except IndexError:
            raise RequestError("too much background work is queued", code=ResultCode.BUSY) from None
        # The pool may fail *after* queueing the job (it could not start a thread) and run it
        # later anyway: whoever pops the ticket first owns the job, so it runs exactly when
        # submit() returns, and a caller that sees submit() fail may release what it holds.
        ticket = [job]
        try:
            (self._executor or self._start_executor()).submit(self._run_job, ticket)
        except BaseException:
            try:
                ticket.pop()
            except IndexError:  # a worker took it already: it runs, the submission stands
                log.warning("the worker pool failed after accepting a job", exc_info=True)
                return
            self._job_slots.append(None)
            raise

    def _start_executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._closed:
                raise RuntimeError("device is closed")
            if self._executor is None:
                from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 - lazy: import time

                self._executor = ThreadPoolExecutor(self.config.workers, thread_name_prefix="iotvideo-signaling")
            return self._executor

    def _run_job(self, ticket: list[Callable[[], None]]) -> None:
        try:
            job = ticket.pop()
        except IndexError:  # submit() took it back: it failed and its caller released what it held
            return
        if self._closed:  # close() is draining the queue: the job is dropped, not run
            self._drop(job)
            return
        try:
            job()
        except Exception:
            log.exception("background job failed")
        finally:
            self._job_slots.append(None)

    def _drop(self, job: Callable[[], None]) -> None:
        """A job close() found still queued: what it held is released, an SD format is reported failed."""
        if job == self._format_job:
            self._format_finished("failed", "device closed")
        elif job == self._tone_job:
            self._tone_queued.release()

    def close(self) -> None:
        """Stop the motor, stop background work, then close the hardware. Safe to call twice.

        Background jobs that have not started yet are dropped (an SD format waiting for the pool
        is reported failed); a running one is waited for.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            executor = self._executor
        if self._ptz is not None:
            self._ptz.close()
        if self._ota is not None:
            self._ota.close()
        if executor is not None:
            executor.shutdown(wait=True)  # jobs not started yet find the device closed: dropped
        if self._temp_download_dir is not None:
            import shutil  # noqa: PLC0415

            shutil.rmtree(self._temp_download_dir, ignore_errors=True)
        try:
            self.hardware.close()
        except Exception as exc:  # noqa: BLE001 - closing must finish
            log.warning("Hardware.close() failed: %s", exc)

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- built-in topics ---------------------------------------------------------------------

    def _read_power(self) -> str:
        try:
            power = self.hardware.get_power()
        except NotImplementedError:
            return "working"
        except Exception as exc:  # noqa: BLE001
            log.warning("cannot read the power state (%s); assuming working", exc)
            return "working"
        return power if power in ("working", "standby") else "working"

    def _get_status(self, request: Request, visitor: str | None) -> Mapping[str, Any]:
        _USER.read(request)
        streaming = self._streaming
        signal = self.hardware.signal_strength()
        if type(signal) is not int or not 0 <= signal <= 100:
            signal = max(0, min(100, int(signal)))
        return {
            "status": self._power,
            "user_num": len(streaming) + (visitor not in streaming),
            "signal_strength": signal,
        }

    def _version(self, request: Request, visitor: str | None) -> Mapping[str, Any]:
        return {"info": str(self.hardware.firmware_version())}

    def _mirror_flip(self, request: Request, visitor: str | None) -> None:
        mode = _MODE.read(request)
        self.hardware.set_flip(mode)
        if self._subscribers:
            self._emit("flip", mode=mode)

    def _set_status(self, request: Request, visitor: str | None) -> None:
        status = _POWER.read(request)
        # One switch at a time, so the hook's state and ours cannot end up different.
        # (acquire/release rather than ``with``, here and on other request paths: half the cost)
        self._power_lock.acquire()
        try:
            self.hardware.set_power(status)
            changed = self._power != status
            self._power = status  # before the stop: a press racing with it is refused (allow_start)
            if status == "standby" and self._ptz is not None:
                try:
                    self._ptz.stop("standby")
                except Exception as exc:  # noqa: BLE001 - the power did switch; the move's timers retry the stop
                    log.warning("PTZ stop on standby failed: %s", exc)
        finally:
            self._power_lock.release()
        if changed and self._subscribers:
            self._emit("power", status=status)

    def _sd_format(self, request: Request, visitor: str | None) -> None:
        # Busy first: a card being formatted may well read as absent meanwhile.
        if not self._formatting.acquire(False):
            raise RequestError("the SD card is already being formatted", code=ResultCode.BUSY)
        try:
            if not self.hardware.sd_card_present():
                raise RequestError("no SD card", code=ResultCode.DEVICE_ERROR)
        except BaseException:
            self._formatting.release()
            raise
        if self._subscribers:
            self._emit("sd_format", state="formatting")
        try:
            self.submit(self._format_job)
        except Exception as exc:
            self._format_finished("failed", str(exc)[:MAX_REASON])
            raise

    def _format_job(self) -> None:
        try:
            self.hardware.format_sd()
        except Exception as exc:  # noqa: BLE001
            log.warning("SD format failed: %s", exc)
            self._format_finished("failed", str(exc)[:MAX_REASON])
        else:
            self._format_finished("done")

    def _format_finished(self, state: str, reason: str | None = None) -> None:
        self._formatting.release()  # before the event: a subscriber may start the next format
        if reason is not None:
            self._emit("sd_format", state=state, reason=reason)
        elif self._subscribers:
            self._emit("sd_format", state=state)

    def _bind_status(self, request: Request, visitor: str | None) -> None:
        _BIND.read(request)
        if not self._tone_queued.acquire(False):
            return  # the tone already waiting will play: repeats do not pile up
        try:
            self.submit(self._tone_job)
        except BaseException:
            self._tone_queued.release()
            raise

    def _tone_job(self) -> None:
        self._tone_queued.release()
        try:
            self.hardware.play_tone("bind_success")
        except Exception as exc:  # noqa: BLE001
            log.warning("prompt tone failed: %s", exc)
        else:
            if self._subscribers:
                self._emit("tone", name="bind_success")

    def _intercom(self, request: Request, visitor: str | None) -> Mapping[str, Any]:
        return {"status": "unused" if self._talker is None else "using"}

    def _upgrade(self, request: Request, visitor: str | None) -> None:
        url, md5, size = _URL.read(request), _MD5.read(request), _SIZE.read(request)
        if not is_md5(md5):  # before the manager: the panel's own example is refused here
            raise RequestError(MD5_REASON)
        self._ota_manager().request(url, md5, size)

    def _ota_manager(self) -> OtaManager:
        """The OTA manager, created on first need.

        Without ``DeviceConfig.download_dir`` downloads go to a fresh temporary directory, so a
        download cannot resume after a restart: daemons should configure a persistent one.
        """
        ota = self._ota
        if ota is not None:
            return ota
        from .ota import OtaManager  # noqa: PLC0415 - only the upgrade path pays for it

        with self._lock:
            if self._ota is None:
                directory = self.config.download_dir
                if directory is None:
                    import tempfile  # noqa: PLC0415

                    directory = self._temp_download_dir = tempfile.mkdtemp(prefix="iotvideo-signaling-ota-")
                hardware = self.hardware
                self._ota = OtaManager(
                    download_dir=directory,
                    install=lambda path, md5, size: hardware.install_firmware(path, md5=md5, size=size),
                    current_version=hardware.firmware_version,
                    publish=self.publish,
                    submit=self.submit,
                    ca_file=self.config.ca_file,
                    max_firmware_size=self.config.max_firmware_size,
                )
            return self._ota

    # -- PTZ -----------------------------------------------------------------------------------

    def _ptz_topic(self, request: Request, visitor: str | None) -> Mapping[str, Any]:
        cmd = _PTZ_CMD.read(request)
        ptz = self._ptz_ready()
        if cmd == "ptz_release_pre":
            return ptz.release(visitor).fields()
        return ptz.press(_PTZ_PRESS[cmd], visitor).fields()

    def _legacy_ptz(self, command: Command, visitor: str | None) -> Mapping[str, Any]:
        return self._ptz_ready().step(_LEGACY_PTZ[command.cmd or ""], visitor).fields()

    def _ptz_ready(self) -> PtzController:
        if self._power == "standby":
            raise RequestError(_STANDBY_REASON, code=ResultCode.STANDBY)
        return self._ptz or self._ptz_controller()

    def _ptz_controller(self) -> PtzController:
        """The PTZ controller, created on first need; NotImplementedError without PTZ hooks."""
        ptz = self._ptz
        if ptz is not None:
            return ptz
        self._require("ptz_start")
        from .ptz import PtzController  # noqa: PLC0415 - only cameras with a motor pay for it

        def allow_start() -> bool:  # called under the controller's lock: no start after standby
            if self._power == "standby":
                raise RequestError(_STANDBY_REASON, code=ResultCode.STANDBY)
            return True

        with self._lock:
            if self._ptz is None:
                if self._closed:
                    raise RuntimeError("device is closed")
                self._ptz = PtzController(
                    self.hardware,
                    publish=self.publish,
                    clock=self._clock,
                    scheduler=self._scheduler,
                    move_cap_s=self.config.ptz_move_cap_s,
                    step_size=self.config.ptz_step,
                    allow_start=allow_start,
                )
            return self._ptz


#: Built-in topics that need a hook (beyond those that are merely read, like sd_card_present).
_TOPIC_HOOKS = (("sd_format", "format_sd"), ("bind_status", "play_tone"), ("upgrade", "install_firmware"))


def _unsupported(request: Request, visitor: str | None) -> None:
    raise NotImplementedError(request.topic)


_RESERVED = frozenset({"confirmation_topic", "result", "message_id"})


def _envelope_guard(handler: Callable[[Any, str | None], Mapping[str, Any] | None]) -> Any:
    """Wrap a vendor's handler so the fields it returns never replace the reply's envelope."""

    def guarded(arg: Any, visitor: str | None) -> Mapping[str, Any] | None:
        fields = handler(arg, visitor)
        if fields and not _RESERVED.isdisjoint(fields):
            fields = {k: v for k, v in fields.items() if k not in _RESERVED}
        return fields

    return guarded


_STANDBY_REASON = "camera is in standby"


def _too_large(topic: str, message_id: Any) -> bytes:
    log.warning("%s: the reply is longer than the reply limit; answering a device error instead", topic)
    return error_reply(topic, ResultCode.DEVICE_ERROR, "reply too large", message_id)


def _failed(topic: str, message_id: Any, exc: Exception) -> bytes:
    """The error reply for what a handler raised: its own code, 3 for a missing hook, else 7."""
    if isinstance(exc, RequestError):
        return error_reply(topic, exc.code, exc.reason, message_id)
    if isinstance(exc, NotImplementedError):
        return error_reply(topic, ResultCode.UNKNOWN, "not supported by this camera", message_id)
    log.warning("%s failed: %s", topic or "command", exc, exc_info=exc)
    return error_reply(topic, ResultCode.DEVICE_ERROR, "device error", message_id)


def _overrides(hardware: Hardware, hook: str) -> bool:
    return getattr(type(hardware), hook, None) is not getattr(Hardware, hook)

