"""The built-in topics (docs/protocol.md §4): what the camera does for each request of the panel.

:class:`BuiltinTopics` holds the camera's own state (power, the SD-format and tone flags) and the
controllers it creates on first need (PTZ, OTA). Power is working, standby or unknown (``get_power``
failed), and unknown is treated as standby: privacy fails closed. Each handler takes a validated
:class:`~iotvideo_signaling.protocol.Request` and the visitor, calls the hardware hooks, and returns
the reply's fields or raises (:class:`RequestError` for a refusal, NotImplementedError for a hook
the camera lacks). No hook is called with a lock held: the state lock guards flags and
references only, and the power switch is serialised by a :class:`~iotvideo_signaling._turn.Turn`.
Slow work (SD format, tone, download) goes to the Device's :class:`~iotvideo_signaling.jobs.Jobs`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable, Optional

from ._command import Command
from ._log import logger
from ._turn import Turn
from .config import DeviceConfig
from .errors import MAX_REASON, RequestError, ResultCode
from .events import EventBus
from .hardware import Hardware
from .protocol import FIELDS, MD5_REASON, Request, is_md5, short
from .sessions import Sessions

if TYPE_CHECKING:
    from .jobs import Jobs
    from .ota import OtaManager, OtaStatus
    from .ptz import PtzController
    from .scheduling import Scheduler

__all__ = ["LEGACY_PTZ", "TOPIC_HOOKS", "BuiltinTopics", "TokenHandler", "TopicHandler", "guard_reply_fields"]

log = logger(__name__)

#: A topic handler: ``(request, visitor) -> reply fields or None``; raise RequestError to refuse.
TopicHandler = Callable[[Request, Optional[str]], Optional[Mapping[str, Any]]]
#: A ``cmd`` token handler: ``(command, visitor) -> reply fields or None``.
TokenHandler = Callable[[Command, Optional[str]], Optional[Mapping[str, Any]]]

#: Legacy one-step PTZ tokens (``cmd=ptz_left``), answered with the ``ptz`` topic's fields.
LEGACY_PTZ = {"ptz_left": "left", "ptz_right": "right", "ptz_up": "up", "ptz_down": "down"}
_PTZ_PRESS = {"ptz_up_press": "up", "ptz_down_press": "down", "ptz_left_press": "left", "ptz_right_press": "right"}
(_USER,), (_MODE,), (_POWER,), (_PTZ_CMD,), (_BIND,), (_URL, _MD5, _SIZE) = (
    FIELDS[topic] for topic in ("get_status", "Mirror_flip", "set_status", "ptz", "bind_status", "upgrade")
)
#: Built-in topics that need a hook (beyond those merely read, like ``sd_card_present``): a
#: camera without it answers 3 before the request's fields are read.
TOPIC_HOOKS = (("sd_format", "format_sd"), ("bind_status", "play_tone"), ("upgrade", "install_firmware"))
STANDBY_REASON = "camera is in standby"
#: The power state after ``get_power`` failed or answered nonsense: treated as standby.
UNKNOWN = "unknown"
UNKNOWN_POWER_REASON = "privacy state unknown: treated as standby"
_POWER_STATES = ("working", "standby")


class BuiltinTopics:
    """The nine built-in topics of one camera, and the legacy PTZ tokens.

    Args:
        hardware: the camera's hooks.
        hooks: the hooks this camera implements.
        config: the Device's limits and policy.
        sessions: viewers and the intercom, for ``get_status`` and ``intercom``.
        events: where state changes are published.
        jobs: the background pool.
        clock: monotonic clock of the PTZ controller.
        scheduler: timers of the PTZ controller (None: its own timer thread).
    """

    def __init__(
        self,
        hardware: Hardware,
        *,
        hooks: frozenset[str],
        config: DeviceConfig,
        sessions: Sessions,
        events: EventBus,
        jobs: Jobs,
        clock: Callable[[], float],
        scheduler: Optional[Scheduler],
    ) -> None:
        self._hw = hardware
        self._hooks = hooks
        self._config = config
        self._sessions = sessions
        self._events = events
        self._jobs = jobs
        self._clock = clock
        self._scheduler = scheduler
        self._lock = threading.Lock()  # guards the flags and the controller references below
        self._power = "working"  # or "standby", or UNKNOWN (fail closed: treated as standby)
        self._power_turn = Turn()  # one power switch (or read) at a time, in order, with no lock held
        self._power_failure: Optional[str] = None  # the get_power failure last logged (under the turn)
        self._formatting = False  # from an accepted sd_format to the end of its job
        self._tone_queued = False  # while a prompt tone waits for the pool
        self._ptz: Optional[PtzController] = None
        self._ota: Optional[OtaManager] = None
        self._temp_download_dir: Optional[str] = None  # removed at close
        self._closed = False

    def handlers(self) -> dict[str, TopicHandler]:
        """The dispatch table: topic -> handler (a topic whose hook is missing answers 3)."""
        table: dict[str, TopicHandler] = {
            "get_status": self.get_status,
            "version": self.version,
            "upgrade": self.upgrade,
            "Mirror_flip": self.mirror_flip,
            "set_status": self.set_status,
            "ptz": self.ptz,
            "sd_format": self.sd_format,
            "bind_status": self.bind_status,
            "intercom": self.intercom,
        }
        for topic, hook in TOPIC_HOOKS:
            if hook not in self._hooks:
                table[topic] = _unsupported(hook)
        return table

    # -- lifecycle (called by the Device) ------------------------------------------------------

    def start(self) -> None:
        """Read the power state, stop a motor that may still run, resume an upgrade."""
        if "set_power" in self._hooks and "get_power" not in self._hooks:
            log.warning("the camera has a set_power hook but no get_power: it starts as working, whatever it was")
        with self._power_turn:
            status = self._read_power()
            if status is not None:
                self._record_power(status)  # no event: this is the initial state
        if "ptz_start" in self._hooks:
            try:
                self._ptz_controller().start()  # after a crash the motor may run
            except Exception as exc:  # noqa: BLE001 - retried on the next ptz command
                log.warning("PTZ controller did not start (%s); will retry on the next ptz command", exc)
        if self._config.download_dir is not None and "install_firmware" in self._hooks:
            self._ota_manager().start()  # continue a download or confirm an install after a restart

    def close(self) -> None:
        """Stop the motor and the upgrade worker; remove a temporary download directory."""
        with self._lock:
            self._closed = True
            ptz, ota = self._ptz, self._ota
        if ptz is not None:
            ptz.close()
        if ota is not None:
            ota.close()

    def remove_temporary_files(self) -> None:
        """Remove the temporary download directory, if one was made (after the jobs ended)."""
        if self._temp_download_dir is not None:
            import shutil  # noqa: PLC0415

            shutil.rmtree(self._temp_download_dir, ignore_errors=True)

    def in_standby(self) -> bool:
        """True while the camera is in standby (privacy mode), or its power state is unknown."""
        return self._power != "working"

    # -- power ---------------------------------------------------------------------------------

    def power_changed(self, status: str) -> None:
        """The camera changed its power by itself: record ``status`` (no hook is called)."""
        if type(status) is not str or status not in _POWER_STATES:
            raise ValueError(f"status must be 'working' or 'standby', not {status!r}")
        if self._power_turn.held():  # told from inside set_power or get_power: that call records last
            changed = self._record_power(status)
        else:
            with self._power_turn:  # after a switch in progress, so the newer state wins
                changed = self._record_power(status)
        if changed:
            self._emit_power(status)

    def refresh_power(self) -> str:
        """Read ``get_power`` again and record it; the state: working, standby or unknown."""
        with self._power_turn:
            status = self._read_power()
            if status is None:
                return self._power  # no hook: the state recorded so far stands
            changed = self._record_power(status)
        if changed:
            self._emit_power(status)
        return status

    def _record_power(self, status: str) -> bool:
        """Record ``status`` (the caller holds the power turn); stop a PTZ move unless working.

        Returns:
            True when the state changed (the caller publishes it once the turn is released).
        """
        with self._lock:
            changed = self._power != status
            self._power = status  # before the stop: a press racing with it is refused
            ptz = self._ptz
        if status != UNKNOWN:
            self._power_failure = None  # known again: the next failure is news
        if status != "working" and ptz is not None:
            try:
                ptz.stop("standby")
            except Exception as exc:  # noqa: BLE001 - the power did switch; the move's timers retry
                log.warning("PTZ stop on standby failed: %s", exc)
        return changed

    def _emit_power(self, status: str) -> None:
        if status == UNKNOWN:
            self._events.emit("power", status="standby", reason="privacy state unknown")
        else:
            self._events.emit("power", status=status)

    def _read_power(self) -> Optional[str]:
        """``get_power``'s answer, UNKNOWN when it fails (logged once per distinct failure), or
        None when the camera has no such hook (nothing to read: what the Device knows stands)."""
        try:
            power = self._hw.get_power()
        except NotImplementedError:
            return None
        except Exception as exc:  # noqa: BLE001 - fail closed
            failure = f"get_power failed ({type(exc).__name__}: {exc})"
        else:
            if type(power) is str and power in _POWER_STATES:
                return power
            failure = f"get_power returned {short(power)}"
        if failure != self._power_failure:
            self._power_failure = failure
            log.warning("%s: the privacy state is unknown, treated as standby until it is known", failure)
        return UNKNOWN

    def upgrade_status(self) -> OtaStatus:
        """The state of the current (or last) upgrade; idle when there was none."""
        if self._ota is None:
            from .ota import OtaStatus  # noqa: PLC0415

            return OtaStatus()
        return self._ota.status()

    def cancel_upgrade(self) -> bool:
        """Cancel an upgrade that has not reached the installer; False if there was none."""
        if self._ota is None and self._config.download_dir is None:
            return False  # nothing recorded anywhere
        if "install_firmware" not in self._hooks:
            return False
        return self._ota_manager().cancel()

    # -- the topics ------------------------------------------------------------------------------

    def get_status(self, request: Request, visitor: Optional[str]) -> Mapping[str, Any]:
        _USER.read(request)
        signal = self._hw.signal_strength()
        if type(signal) is not int or not 0 <= signal <= 100:
            signal = max(0, min(100, int(signal)))
        power = "working" if self._power == "working" else "standby"  # unknown: standby, failing closed
        return {"status": power, "user_num": self._sessions.viewers(visitor), "signal_strength": signal}

    def version(self, request: Request, visitor: Optional[str]) -> Mapping[str, Any]:
        return {"info": str(self._hw.firmware_version())}

    def mirror_flip(self, request: Request, visitor: Optional[str]) -> None:
        mode = _MODE.read(request)
        self._hw.set_flip(mode)
        self._events.emit("flip", mode=mode)

    def set_status(self, request: Request, visitor: Optional[str]) -> None:
        status = _POWER.read(request)
        with self._power_turn:  # the hook's state and ours end up the same, whatever the races
            self._hw.set_power(status)
            changed = self._record_power(status)  # also ends an unknown state
        if changed:
            self._emit_power(status)

    def sd_format(self, request: Request, visitor: Optional[str]) -> None:
        with self._lock:  # busy first: a card being formatted may well read as absent meanwhile
            if self._formatting:
                raise RequestError("the SD card is already being formatted", code=ResultCode.BUSY)
            self._formatting = True
        try:
            present = self._hw.sd_card_present()
        except BaseException:
            self._end_format()
            raise
        if not present:
            self._end_format()
            raise RequestError("no SD card", code=ResultCode.DEVICE_ERROR)
        self._events.emit("sd_format", state="formatting")
        try:
            self._jobs.submit(self._format_job, on_drop=self._format_dropped)
        except Exception as exc:
            self._format_finished("failed", str(exc)[:MAX_REASON])
            raise

    def _format_job(self) -> None:
        try:
            self._hw.format_sd()
        except Exception as exc:  # noqa: BLE001
            log.warning("SD format failed: %s", exc)
            self._format_finished("failed", str(exc)[:MAX_REASON])
        else:
            self._format_finished("done")

    def _format_dropped(self) -> None:
        self._format_finished("failed", "device closed")

    def _end_format(self) -> None:
        with self._lock:
            self._formatting = False

    def _format_finished(self, state: str, reason: Optional[str] = None) -> None:
        self._end_format()  # before the event: a subscriber may start the next format
        if reason is None:
            self._events.emit("sd_format", state=state)
        else:
            self._events.emit("sd_format", state=state, reason=reason)

    def bind_status(self, request: Request, visitor: Optional[str]) -> None:
        _BIND.read(request)
        with self._lock:
            if self._tone_queued:
                return  # the tone already waiting will play: repeats do not pile up
            self._tone_queued = True
        try:
            self._jobs.submit(self._tone_job, on_drop=self._tone_dropped)
        except BaseException:
            self._tone_dropped()
            raise

    def _tone_job(self) -> None:
        self._tone_dropped()  # from now on a new request queues another tone
        try:
            self._hw.play_tone("bind_success")
        except Exception as exc:  # noqa: BLE001
            log.warning("prompt tone failed: %s", exc)
        else:
            self._events.emit("tone", name="bind_success")

    def _tone_dropped(self) -> None:
        with self._lock:
            self._tone_queued = False

    def intercom(self, request: Request, visitor: Optional[str]) -> Mapping[str, Any]:
        return {"status": "using" if self._sessions.intercom_in_use() else "unused"}

    def upgrade(self, request: Request, visitor: Optional[str]) -> None:
        url, md5, size = _URL.read(request), _MD5.read(request), _SIZE.read(request)
        if not is_md5(md5):  # before the manager: the panel's own example is refused here
            raise RequestError(MD5_REASON)
        self._ota_manager().request(url, md5, size)

    # -- PTZ -------------------------------------------------------------------------------------

    def ptz(self, request: Request, visitor: Optional[str]) -> Mapping[str, Any]:
        cmd = _PTZ_CMD.read(request)
        ptz = self._ptz_ready()
        if cmd == "ptz_release_pre":
            return ptz.release(visitor).fields()
        return ptz.press(_PTZ_PRESS[cmd], visitor).fields()

    def legacy_ptz(self, command: Command, visitor: Optional[str]) -> Mapping[str, Any]:
        """A legacy one-step token (``cmd=ptz_left`` ...)."""
        return self._ptz_ready().step(LEGACY_PTZ[command.cmd or ""], visitor).fields()

    def visitor_gone(self, visitor: str) -> None:
        """Stop the PTZ move ``visitor`` started, if any."""
        ptz = self._ptz
        if ptz is not None:
            ptz.visitor_gone(visitor)

    def _ptz_ready(self) -> PtzController:
        self._refuse_in_standby()
        return self._ptz or self._ptz_controller()

    def _allow_motor(self) -> bool:
        """The PTZ controller's ``allow_start``: no start in standby (or an unknown power state)."""
        self._refuse_in_standby()
        return True

    def _refuse_in_standby(self) -> None:
        power = self._power
        if power != "working":
            raise RequestError(STANDBY_REASON if power == "standby" else UNKNOWN_POWER_REASON, code=ResultCode.STANDBY)

    def _ptz_controller(self) -> PtzController:
        """The PTZ controller, created on first need; NotImplementedError without PTZ hooks."""
        ptz = self._ptz
        if ptz is not None:
            return ptz
        if "ptz_start" not in self._hooks:
            raise NotImplementedError("ptz_start")
        from .ptz import PtzController  # noqa: PLC0415 - only cameras with a motor pay for it

        with self._lock:
            if self._ptz is None:
                if self._closed:
                    raise RuntimeError("device is closed")
                self._ptz = PtzController(
                    self._hw,
                    publish=self._events.publish,
                    clock=self._clock,
                    wall_clock=self._events.wall_clock,
                    scheduler=self._scheduler,
                    move_cap_s=self._config.ptz_move_cap_s,
                    step_size=self._config.ptz_step,
                    allow_start=self._allow_motor,
                )
            return self._ptz

    # -- OTA -------------------------------------------------------------------------------------

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
                if self._closed:
                    raise RuntimeError("device is closed")
                directory = self._config.download_dir
                if directory is None:
                    import tempfile  # noqa: PLC0415

                    directory = self._temp_download_dir = tempfile.mkdtemp(prefix="iotvideo-signaling-ota-")
                hardware = self._hw
                self._ota = OtaManager(
                    download_dir=directory,
                    install=lambda path, md5, size: hardware.install_firmware(path, md5=md5, size=size),
                    current_version=hardware.firmware_version,
                    publish=self._events.publish,
                    submit=self._jobs.submit,
                    wall_clock=self._events.wall_clock,
                    ca_file=self._config.ca_file,
                    allowed_hosts=self._config.ota_allowed_hosts,
                    max_firmware_size=self._config.max_firmware_size,
                )
            return self._ota


def _unsupported(hook: str) -> TopicHandler:
    """The handler of a topic whose hook the camera lacks: NotImplementedError naming the hook."""

    def unsupported(request: Request, visitor: Optional[str]) -> None:
        raise NotImplementedError(hook)

    return unsupported


_RESERVED = frozenset({"confirmation_topic", "result", "message_id"})


def guard_reply_fields(handler: Callable[[Any, Optional[str]], Optional[Mapping[str, Any]]]) -> Any:
    """Wrap a vendor's handler so the fields it returns never replace the reply's envelope."""

    def guarded(arg: Any, visitor: Optional[str]) -> Optional[Mapping[str, Any]]:
        fields = handler(arg, visitor)
        if fields and not _RESERVED.isdisjoint(fields):
            fields = {k: v for k, v in fields.items() if k not in _RESERVED}
        return fields

    return guarded
