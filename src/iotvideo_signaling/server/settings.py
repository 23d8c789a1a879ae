"""The daemon's settings file: TOML loading, the ``[device]`` table, tokens and the hardware class.

A config file (all tables and keys optional)::

    [server]
    listen = ["tcp://127.0.0.1:7130", "unix:///run/camera/signaling.sock", "ws://127.0.0.1:7131"]
    state_dir = "/var/lib/iotvideo-signaling"   # default: $XDG_STATE_HOME/iotvideo-signaling
    log_level = "info"
    idle_timeout = 300.0      # s without a complete command before a connection is closed
    auth_timeout = 10.0       # s a connection has to send its AUTH line when tokens are set
    max_pending_auth = 8      # connections waiting to send their AUTH line; a new one evicts one (see hub.py)
    write_timeout = 10.0      # s a client may leave its replies unread before it is dropped
    write_buffer_size = 262144  # bytes of unread replies kept per connection before reading pauses
    allowed_origins = ["http://localhost:8080"]  # web pages ws:// accepts (default: none, only non-browsers)

    [device]                  # fields of DeviceConfig (see DEVICE_KEYS); max_connections also caps connections
    max_message_size = 16384
    max_connections = 32

    [tokens]                  # required when any listener is not on loopback
    owner = "a long random string"
    sharer = "another long random string"

    [hardware]                # kwargs of the hardware class; "class" names the class itself
    class = "my_camera.hardware:CameraHardware"   # default: SimulatedHardware(state_dir, **kwargs)
    signal_strength = 70

    [channels.1]              # an NVR: one table per channel, merged over [hardware]; each channel
    port = 1                  # is its own Device, with the state directory STATE_DIR/channel-N
    [channels.2]
    port = 2

Listen URLs are parsed by listen.py. Everything here is plain data and validation; nothing
listens or starts.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import ipaddress
import logging
import math
import os
import re
import string
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple

from ..config import DeviceConfig
from ..hardware import Hardware
from ..simulator import SimulatedHardware
from .listen import DEFAULT_LISTEN, ConfigError, ListenAddress, parse_listen

__all__ = ["DEVICE_KEYS", "DeviceKey", "Settings", "build_hardware", "default_state_dir", "load_settings"]

log = logging.getLogger(__name__)

MIN_TOKEN_LENGTH = 16
_TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + string.punctuation)
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/iotvideo-signaling``, else ``~/.local/state/iotvideo-signaling``."""
    base = os.environ.get("XDG_STATE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".local" / "state"
    return root / "iotvideo-signaling"


@dataclass(frozen=True)
class Settings:
    """Everything ``serve`` needs, from the config file and the command line.

    Attributes:
        listen: where to accept connections.
        state_dir: the simulated camera's state directory (None: :func:`default_state_dir`).
        device: limits and policy of the Device; ``max_connections`` also caps connections.
        hardware_class: ``"package.module:Class"`` (None: SimulatedHardware).
        hardware_options: keyword arguments of the hardware class.
        owner_token: the token that makes a connection an owner.
        sharer_token: the token that makes a connection a sharer.
        idle_timeout: seconds without a complete command before a connection is closed.
        auth_timeout: seconds a connection has to authenticate when tokens are set.
        max_pending_auth: connections that may wait to authenticate at once, when tokens are set;
            they do not count toward ``max_connections``, and when there are this many a new
            connection evicts the oldest from the most crowded source address (see hub.py).
        write_timeout: seconds a client may leave its replies unread (reading paused) before it
            is dropped.
        write_buffer_size: bytes of unsent replies per connection before it stops being read.
        log_level: the config file's log level (the command line's wins).
        allowed_origins: the ``Origin`` headers (``scheme://host[:port]``, as a browser sends
            them) that ``ws://`` listeners accept besides none; a handshake from any other web
            page is refused with HTTP 403 (see websocket.py and :func:`parse_origins`).
        panel: serve the panel simulator's page on every ``ws://`` listener (``serve --panel``;
            see panel.py).
        channels: an NVR's cameras: ``{channel: hardware options}``, each merged over
            ``hardware_class`` (key ``"class"``) and ``hardware_options``. Empty: one camera on
            channel 0. See :meth:`channel_numbers` and :meth:`for_channel`.
    """

    listen: tuple[ListenAddress, ...] = (DEFAULT_LISTEN,)
    state_dir: Path | None = None
    device: DeviceConfig = field(default_factory=DeviceConfig)
    hardware_class: str | None = None
    hardware_options: Mapping[str, Any] = field(default_factory=dict)
    owner_token: str | None = None
    sharer_token: str | None = None
    idle_timeout: float = 300.0
    auth_timeout: float = 10.0
    max_pending_auth: int = 8
    write_timeout: float = 10.0
    write_buffer_size: int = 256 * 1024
    log_level: str | None = None
    allowed_origins: tuple[str, ...] = ()
    panel: bool = False
    channels: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def tokens(self) -> dict[str, str]:
        """``{token: role}`` of the configured tokens; empty when connections need no token."""
        found = {}
        if self.owner_token:
            found[self.owner_token] = "owner"
        if self.sharer_token:
            found[self.sharer_token] = "sharer"
        return found

    def resolved_state_dir(self) -> Path:
        """The state directory to use."""
        return self.state_dir if self.state_dir is not None else default_state_dir()

    def channel_numbers(self) -> tuple[int, ...]:
        """The channels with a camera, lowest first: ``(0,)`` without ``[channels]``."""
        return tuple(sorted(self.channels)) if self.channels else (0,)

    def for_channel(self, channel: int) -> Settings:
        """The settings of one channel's camera: its hardware, and on an NVR its own state directory.

        Raises:
            ConfigError: the channel has no camera, or its ``class`` is not ``'package.module:Class'``.
        """
        if not self.channels:
            if channel != 0:
                raise ConfigError(f"no camera on channel {channel}")
            return self
        if channel not in self.channels:
            raise ConfigError(f"no camera on channel {channel}")
        options = {**self.hardware_options, **self.channels[channel]}
        hardware_class = _class_spec(options.pop("class", self.hardware_class), f"[channels.{channel}]")
        return dataclasses.replace(
            self,
            hardware_class=hardware_class,
            hardware_options=options,
            state_dir=self.resolved_state_dir() / f"channel-{channel}",
            channels={},
        )

    def check(self) -> None:
        """Refuse settings that would be unsafe to serve with.

        Raises:
            ConfigError: a listener's host name does not resolve, a listener is not on loopback
                and no owner token is set, or ``max_pending_auth`` is not a positive integer.
        """
        if type(self.max_pending_auth) is not int or self.max_pending_auth < 1:
            raise ConfigError("max_pending_auth must be a positive integer")
        for address in self.listen:
            address.check_host()
        exposed = [str(address) for address in self.listen if not address.loopback]
        if exposed and not self.owner_token:
            raise ConfigError(
                f"{', '.join(exposed)} is not a loopback address: set [tokens] owner (and sharer) "
                "in the config file, or listen on 127.0.0.1"
            )
        if not self.listen:
            raise ConfigError("nothing to listen on")


# -- the config file ---------------------------------------------------------------------------

_SERVER_KEYS = (
    "listen",
    "state_dir",
    "log_level",
    "idle_timeout",
    "auth_timeout",
    "max_pending_auth",
    "write_timeout",
    "write_buffer_size",
    "allowed_origins",
)
_TABLES = ("server", "device", "tokens", "hardware", "channels")


def load_settings(path: str | os.PathLike[str]) -> Settings:
    """Read and validate a TOML config file.

    Raises:
        ConfigError: the file is unreadable, is not UTF-8 TOML, or holds an unknown or invalid setting.
    """
    data = _read_toml(Path(path))
    unknown = sorted(set(data) - set(_TABLES))
    if unknown:
        raise ConfigError(f"{path}: unknown setting {unknown[0]!r} (tables: {', '.join(_TABLES)})")
    tables = {name: _table(data, name) for name in _TABLES}
    values: dict[str, Any] = {}
    values.update(_server_values(tables["server"]))
    values["device"] = _device_config(tables["device"])
    values.update(_token_values(tables["tokens"]))
    if values["owner_token"] or values["sharer_token"]:
        _warn_if_readable(Path(path))
    hardware = dict(tables["hardware"])
    values["hardware_class"] = _class_spec(hardware.pop("class", None), "[hardware]")
    values["hardware_options"] = hardware
    values["channels"] = _channels(tables["channels"])
    return Settings(**values)


def _class_spec(value: Any, table: str) -> str | None:
    if value is not None and (type(value) is not str or ":" not in value):
        raise ConfigError(f"{table} class must be a string 'package.module:Class'")
    return value


def _channels(table: Mapping[str, Any]) -> dict[int, Mapping[str, Any]]:
    """``[channels.N]`` tables: N a decimal channel number below 2**32, each a table of options."""
    channels: dict[int, Mapping[str, Any]] = {}
    for key, options in table.items():
        if not (key.isascii() and key.isdigit() and int(key) < 2**32):
            raise ConfigError(f"[channels.{key}]: a channel is a decimal number below 2**32")
        if not isinstance(options, dict):
            raise ConfigError(f"[channels.{key}] must be a table (the options of that channel's hardware)")
        _class_spec(options.get("class"), f"[channels.{key}]")
        channels[int(key)] = options
    if len(channels) != len(table):
        raise ConfigError("[channels]: a channel is listed twice (e.g. 1 and 01)")
    return channels


def _read_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib  # noqa: PLC0415 - only when a config file is given
    else:  # pragma: no cover - exercised on old Pythons only
        try:
            import tomli as tomllib  # noqa: PLC0415
        except ImportError:
            raise ConfigError(
                f"{path}: reading a config file needs Python 3.11 or newer, or the 'tomli' package"
            ) from None
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except UnicodeDecodeError as exc:
        where = f"byte 0x{exc.object[exc.start]:02x} at offset {exc.start}"
        raise ConfigError(f"{path}: not UTF-8 ({where}); save it as UTF-8, as TOML requires") from None


def _table(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"[{name}] must be a table")
    return table


def _positive_number(key: str, value: Any) -> float:
    if type(value) not in (int, float) or not 0 < value < math.inf:
        raise ConfigError(f"[server] {key} must be a positive number")
    return float(value)


def _positive_integer(key: str, value: Any) -> int:
    if type(value) is not int or value < 1:
        raise ConfigError(f"[server] {key} must be a positive integer")
    return value


def _server_values(table: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(table) - set(_SERVER_KEYS))
    if unknown:
        raise ConfigError(f"[server] unknown key {unknown[0]!r} (known: {', '.join(_SERVER_KEYS)})")
    values: dict[str, Any] = {}
    if "listen" in table:
        urls = table["listen"]
        if not isinstance(urls, list) or not urls or not all(isinstance(url, str) for url in urls):
            raise ConfigError("[server] listen must be a non-empty list of URLs")
        values["listen"] = tuple(parse_listen(url) for url in urls)
    if "state_dir" in table:
        if type(table["state_dir"]) is not str or not table["state_dir"]:
            raise ConfigError("[server] state_dir must be a path")
        values["state_dir"] = Path(table["state_dir"]).expanduser()
    if "log_level" in table:
        level = table["log_level"]
        if type(level) is not str or level.lower() not in LOG_LEVELS:
            raise ConfigError(f"[server] log_level must be one of {', '.join(LOG_LEVELS)}")
        values["log_level"] = level.lower()
    for key in ("idle_timeout", "auth_timeout", "write_timeout"):
        if key in table:
            values[key] = _positive_number(key, table[key])
    for key in ("max_pending_auth", "write_buffer_size"):
        if key in table:
            values[key] = _positive_integer(key, table[key])
    if "allowed_origins" in table:
        values["allowed_origins"] = parse_origins(table["allowed_origins"])
    return values


_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*\Z")
_HOST = re.compile(r"[a-z0-9]([a-z0-9_-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9_-]*[a-z0-9])?)*\Z")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_ORIGIN_FORM = "scheme://host[:port] as a browser sends it in its Origin header, e.g. 'http://localhost:8080'"


def parse_origins(value: Any) -> tuple[str, ...]:
    """``[server] allowed_origins``: a list of web origins, each exactly as a browser writes it.

    A browser's ``Origin`` header is the page's ``scheme://host[:port]``: scheme and host in
    lower case, no path, no trailing slash, the port left out when it is the scheme's default.
    The header is compared as a string, so an entry written any other way would never match;
    it is refused here with the form to write instead. ``"null"`` (the shared origin of
    sandboxed and ``file://`` pages, whatever site they come from) and wildcards are refused.

    Raises:
        ConfigError: ``value`` is not a list of such strings.
    """
    if type(value) not in (list, tuple) or not all(type(item) is str for item in value):
        raise ConfigError(f"[server] allowed_origins must be a list of strings, each {_ORIGIN_FORM}")
    return tuple(dict.fromkeys(_origin(item) for item in value))


def _origin(text: str) -> str:
    def refuse(why: str) -> ConfigError:
        return ConfigError(f"[server] allowed_origins: {text!r} {why}")

    if text == "null":
        raise refuse("is the origin every sandboxed or file:// page shares, whatever its site: it cannot be allowed")
    if "*" in text:
        raise refuse(f"is a pattern: list each origin, {_ORIGIN_FORM}")
    scheme, separator, rest = text.partition("://")
    if not separator or not _SCHEME.match(scheme.lower()):
        raise refuse(f"is not an origin: write {_ORIGIN_FORM}")
    if any(char in rest for char in "/?#"):
        raise refuse(f"has a path: an origin is only {_ORIGIN_FORM} (not even a trailing '/')")
    if "@" in rest:
        raise refuse(f"holds user information: an origin is only {_ORIGIN_FORM}")
    try:
        from urllib.parse import urlsplit  # noqa: PLC0415 - only with allowed_origins

        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise refuse(f"is not an origin ({exc}): write {_ORIGIN_FORM}") from None
    host = parts.hostname or ""
    if rest.startswith("["):
        try:
            host = f"[{ipaddress.IPv6Address(host).compressed}]"
        except ValueError:
            raise refuse("has an invalid IPv6 address") from None
    elif not host.isascii():
        raise refuse("has a host name that is not ASCII: write its punycode (xn--) form")
    elif not _HOST.match(host):
        raise refuse(f"has no valid host name: write {_ORIGIN_FORM}")
    if port == 0:
        raise refuse("has port 0, which no page is served from")
    scheme = scheme.lower()
    if port == _DEFAULT_PORTS.get(scheme):
        port = None
    canonical = f"{scheme}://{host}" + (f":{port}" if port is not None else "")
    if canonical != text:
        raise refuse(f"is not how a browser writes this origin: write {canonical!r}")
    return text


class DeviceKey(NamedTuple):
    """How one key of ``[device]`` is read from TOML.

    Attributes:
        expected: what the value must be, as the error message says it (``"an integer"``).
        accepts: whether a TOML value has the right type.
        convert: the DeviceConfig value made of an accepted TOML value.
    """

    expected: str
    accepts: Callable[[Any], bool]
    convert: Callable[[Any], Any]


_INTEGER = DeviceKey("an integer", lambda value: type(value) is int, int)
_NUMBER = DeviceKey("a number", lambda value: type(value) in (int, float), float)
_STRING = DeviceKey("a string", lambda value: type(value) is str, str)
_STRINGS = DeviceKey(
    "a list of strings", lambda value: type(value) is list and all(type(item) is str for item in value), tuple
)

#: Every key ``[device]`` may hold: a field of DeviceConfig, and how its TOML value is read. The
#: ranges and the rules across fields are DeviceConfig.check()'s. A key left out keeps the
#: field's default (None, which TOML cannot write, for ptz_move_cap_s, download_dir and ca_file).
DEVICE_KEYS: Mapping[str, DeviceKey] = {
    "max_message_size": _INTEGER,
    "max_connections": _INTEGER,
    "max_firmware_size": _INTEGER,
    "ptz_move_cap_s": _NUMBER,
    "ptz_step": _INTEGER,
    "download_dir": _STRING,
    "ca_file": _STRING,
    "ota_allowed_hosts": _STRINGS,
    "sharer_denied_topics": _STRINGS,
    "default_role": _STRING,
    "workers": _INTEGER,
}


def _device_config(table: Mapping[str, Any]) -> DeviceConfig:
    """A DeviceConfig from ``[device]``: each value read by :data:`DEVICE_KEYS`, then checked."""
    values: dict[str, Any] = {}
    for key, value in table.items():
        reader = DEVICE_KEYS.get(key)
        if reader is None:
            raise ConfigError(f"[device] unknown key {key!r} (known: {', '.join(DEVICE_KEYS)})")
        if not reader.accepts(value):
            raise ConfigError(f"[device] {key} must be {reader.expected}")
        values[key] = reader.convert(value)
    config = DeviceConfig(**values)
    try:
        config.check()
    except ValueError as exc:
        raise ConfigError(f"[device] {exc}") from None
    return config


def _token_values(table: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(table) - {"owner", "sharer"})
    if unknown:
        raise ConfigError(f"[tokens] unknown key {unknown[0]!r} (known: owner, sharer)")
    values: dict[str, Any] = {"owner_token": None, "sharer_token": None}
    for role in ("owner", "sharer"):
        token = table.get(role)
        if token is None:
            continue
        if type(token) is not str or len(token) < MIN_TOKEN_LENGTH or not set(token) <= _TOKEN_CHARS:
            raise ConfigError(
                f"[tokens] {role} must be at least {MIN_TOKEN_LENGTH} printable ASCII characters without spaces"
            )
        values[f"{role}_token"] = token
    if values["sharer_token"] and not values["owner_token"]:
        raise ConfigError("[tokens] a sharer token needs an owner token too")
    if values["owner_token"] and values["owner_token"] == values["sharer_token"]:
        raise ConfigError("[tokens] owner and sharer must be different tokens")
    return values


def _warn_if_readable(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:  # pragma: no cover - it was just read
        return
    if mode & 0o077:
        log.warning("%s holds tokens and is readable by other users; chmod 600 it", path)


# -- the hardware ------------------------------------------------------------------------------


def build_hardware(settings: Settings) -> Hardware:
    """Construct the configured hardware.

    Without ``[hardware] class`` it is ``SimulatedHardware(state_dir, **options)``; with one, the
    class is imported and called with the options as keyword arguments only, plus
    ``state_dir=`` when a state directory is set (``--state-dir`` or ``[server] state_dir``) and
    the constructor has a ``state_dir`` parameter. When it has none, that directory only holds
    the firmware downloads; with ``[device] download_dir`` set too it would hold nothing, and the
    combination is refused.

    The options are checked against the constructor's signature before the call, so a wrong
    option and an exception raised inside the constructor are told apart; the latter's traceback
    is logged at debug level.

    Raises:
        ConfigError: the class cannot be imported, is not a Hardware, does not take the options
            or the state directory, or its constructor raised.
    """
    options = dict(settings.hardware_options)
    if settings.hardware_class is None:
        cls: type[Hardware] = SimulatedHardware
        args: tuple[Any, ...] = (settings.resolved_state_dir(),)
        name = "SimulatedHardware"
    else:
        cls = _import_class(settings.hardware_class)
        args = ()
        name = settings.hardware_class
    try:
        signature: inspect.Signature | None = inspect.signature(cls)
    except (TypeError, ValueError):  # no signature to check: the call itself will tell
        signature = None
    if settings.hardware_class is not None and settings.state_dir is not None:
        _add_state_dir(name, signature, settings, options)
    if signature is not None:
        try:
            signature.bind(*args, **options)
        except TypeError as exc:
            raise ConfigError(f"[hardware] {name} does not take these options: {exc}") from None
    try:
        return cls(*args, **options)
    except Exception as exc:  # whatever a vendor's constructor raises, reported as such
        log.debug("[hardware] %s raised in its constructor", name, exc_info=True)
        raise ConfigError(
            f"[hardware] {name} could not start: {type(exc).__name__}: {exc} "
            "(the traceback is logged with --log-level debug)"
        ) from None


def _add_state_dir(
    name: str, signature: inspect.Signature | None, settings: Settings, options: dict[str, Any]
) -> None:
    """Pass the configured state directory to a hardware class that takes one, or refuse it."""
    state_dir = settings.resolved_state_dir()
    parameter = signature.parameters.get("state_dir") if signature is not None else None
    if parameter is not None and parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
        if "state_dir" in options:
            raise ConfigError(
                "the state directory is set twice, as [hardware] state_dir and as --state-dir "
                "(or [server] state_dir): keep one"
            )
        options["state_dir"] = state_dir
    elif settings.device.download_dir is not None:
        raise ConfigError(
            f"[hardware] {name} has no state_dir parameter and [device] download_dir is set, so the state "
            f"directory {state_dir} would not be used: drop --state-dir (or [server] state_dir), "
            "or give the class a state_dir parameter"
        )
    else:
        log.info(
            "%s has no state_dir parameter: the state directory %s only holds the firmware downloads",
            name,
            state_dir,
        )


def _import_class(spec: str) -> type[Hardware]:
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"[hardware] class {spec!r}: cannot import {module_name!r} ({exc})") from None
    found: Any = module
    for part in attribute.split("."):
        found = getattr(found, part, None)
    if not (isinstance(found, type) and issubclass(found, Hardware)):
        raise ConfigError(f"[hardware] class {spec!r} is not a subclass of iotvideo_signaling.Hardware")
    return found
