"""The daemon's settings, config file, hardware loading, systemd notifier and reply checks (in-process)."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from iotvideo_signaling import DeviceConfig, SimulatedHardware
from iotvideo_signaling.server import (
    ConfigError,
    ListenAddress,
    Notifier,
    Settings,
    build_hardware,
    default_state_dir,
    load_settings,
    parse_listen,
)
from iotvideo_signaling.server.client import reply_ok
from iotvideo_signaling.server.listen import parse_target

OWNER = "owner-token-0123456789abcdef"
SHARER = "sharer-token-0123456789abcdef"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


# -- listen URLs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected", "loopback"),
    [
        ("tcp://127.0.0.1:7130", ListenAddress("tcp", "127.0.0.1", 7130), True),
        ("tcp://localhost:0", ListenAddress("tcp", "localhost", 0), True),
        ("tcp://[::1]:7130", ListenAddress("tcp", "::1", 7130), True),
        ("ws://127.0.0.2:80", ListenAddress("ws", "127.0.0.2", 80), True),
        ("tcp://0.0.0.0:7130", ListenAddress("tcp", "0.0.0.0", 7130), False),
        ("ws://[::]:1", ListenAddress("ws", "::", 1), False),
        ("tcp://192.168.1.10:7130", ListenAddress("tcp", "192.168.1.10", 7130), False),
        ("tcp://camera.local:7130", ListenAddress("tcp", "camera.local", 7130), False),
        ("unix:///run/camera.sock", ListenAddress("unix", path="/run/camera.sock"), True),
        ("unix://relative.sock", ListenAddress("unix", path="relative.sock"), True),
    ],
)
def test_parse_listen(url: str, expected: ListenAddress, loopback: bool) -> None:
    address = parse_listen(url)
    assert address == expected
    assert address.loopback is loopback
    assert str(address) == url


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:80", "127.0.0.1:7130", "tcp://127.0.0.1", "tcp://:7130", "tcp://127.0.0.1:65536",
     "tcp://127.0.0.1:-1", "tcp://[::1]7130", "unix://", "ws://h:1/path", "tcp://127.0.0.1:7130/"],
)  # fmt: skip
def test_parse_listen_refuses(url: str) -> None:
    with pytest.raises(ConfigError, match="listen URL"):
        parse_listen(url)


# -- the config file ---------------------------------------------------------------------------

FULL = f"""
[server]
listen = ["tcp://127.0.0.1:7000", "unix:///run/cam.sock", "ws://0.0.0.0:7001"]
state_dir = "~/camera-state"
log_level = "DEBUG"
idle_timeout = 60
auth_timeout = 2.5
max_pending_auth = 3
write_timeout = 3
write_buffer_size = 65536

[device]
max_message_size = 8192
max_connections = 4
ptz_move_cap_s = 12
sharer_denied_topics = ["upgrade"]
default_role = "sharer"
download_dir = "/var/tmp/fw"

[tokens]
owner = "{OWNER}"
sharer = "{SHARER}"

[hardware]
class = "iotvideo_signaling.simulator:SimulatedHardware"
state_dir = "/tmp/unused"
signal_strength = 42
"""


def test_full_config(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, FULL))
    assert [str(a) for a in settings.listen] == ["tcp://127.0.0.1:7000", "unix:///run/cam.sock", "ws://0.0.0.0:7001"]
    assert settings.state_dir == Path("~/camera-state").expanduser()
    assert settings.log_level == "debug"
    assert (settings.idle_timeout, settings.auth_timeout, settings.write_timeout) == (60.0, 2.5, 3.0)
    assert settings.write_buffer_size == 65536
    assert settings.max_pending_auth == 3
    assert settings.device == DeviceConfig(
        max_message_size=8192,
        max_connections=4,
        ptz_move_cap_s=12.0,
        sharer_denied_topics=("upgrade",),
        default_role="sharer",
        download_dir="/var/tmp/fw",
    )
    assert isinstance(settings.device.ptz_move_cap_s, float)
    assert settings.tokens == {OWNER: "owner", SHARER: "sharer"}
    assert settings.hardware_class == "iotvideo_signaling.simulator:SimulatedHardware"
    assert settings.hardware_options == {"state_dir": "/tmp/unused", "signal_strength": 42}
    settings.check()  # ws://0.0.0.0 is fine: there are tokens


def test_empty_config_is_the_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "")) == Settings()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[serve]\n", "unknown setting 'serve'"),
        ("server = 1\n", r"\[server\] must be a table"),
        ("[server]\nlisten = 'tcp://127.0.0.1:1'\n", "non-empty list of URLs"),
        ("[server]\nlisten = []\n", "non-empty list of URLs"),
        ("[server]\nlisten = ['udp://1.2.3.4:5']\n", "listen URL 'udp://1.2.3.4:5'"),
        ("[server]\nidle_timeout = 0\n", "idle_timeout must be a positive number"),
        ("[server]\nidle_timeout = '5'\n", "idle_timeout must be a positive number"),
        ("[server]\nidle_timeout = nan\n", "idle_timeout must be a positive number"),
        ("[server]\nwrite_timeout = inf\n", "write_timeout must be a positive number"),
        ("[server]\nwrite_buffer_size = 1.5\n", "write_buffer_size must be a positive integer"),
        ("[server]\nmax_pending_auth = 0\n", "max_pending_auth must be a positive integer"),
        ("[server]\nmax_pending_auth = 2.0\n", "max_pending_auth must be a positive integer"),
        ("[server]\nmax_pending_auth = true\n", "max_pending_auth must be a positive integer"),
        ("[server]\nlog_level = 'loud'\n", "log_level must be one of"),
        ("[server]\nport = 1\n", "unknown key 'port'"),
        ("[device]\nmax_conections = 1\n", "unknown key 'max_conections'"),
        ("[device]\nmax_connections = '32'\n", "max_connections must be an integer"),
        ("[device]\nmax_connections = true\n", "max_connections must be an integer"),
        ("[device]\nmax_connections = 0\n", "max_connections must be a positive integer"),
        ("[device]\nptz_move_cap_s = 'long'\n", "ptz_move_cap_s must be a number"),
        ("[device]\nsharer_denied_topics = 'upgrade'\n", "sharer_denied_topics must be a list of strings"),
        ("[device]\ndefault_role = 'guest'\n", "default_role must be 'owner' or 'sharer'"),
        ("[tokens]\nowner = 'short'\n", "at least 16 printable ASCII characters"),
        ("[tokens]\nowner = 'has spaces in the token'\n", "without spaces"),
        (f"[tokens]\nsharer = '{SHARER}'\n", "a sharer token needs an owner token"),
        (f"[tokens]\nowner = '{OWNER}'\nsharer = '{OWNER}'\n", "must be different"),
        ("[tokens]\nguest = 'x'\n", "unknown key 'guest'"),
        ("[hardware]\nclass = 'no_colon'\n", "package.module:Class"),
        ("not toml [\n", "not valid TOML"),
    ],
)
def test_config_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(write(tmp_path, text))


#: A valid value other than the default for every DeviceConfig field: (TOML, the field's value).
DEVICE_VALUES: dict[str, tuple[str, Any]] = {
    "max_message_size": ("4096", 4096),
    "max_connections": ("3", 3),
    "max_firmware_size": ("1048576", 1048576),
    "ptz_move_cap_s": ("7", 7.0),
    "ptz_step": ("25", 25),
    "download_dir": ("'/var/tmp/fw'", "/var/tmp/fw"),
    "ca_file": ("'/etc/ssl/camera-ca.pem'", "/etc/ssl/camera-ca.pem"),
    "ota_allowed_hosts": (
        "['fw.example.com', '*.cdn.example.com', '10.0.0.5']",
        ("fw.example.com", "*.cdn.example.com", "10.0.0.5"),
    ),
    "sharer_denied_topics": ("['upgrade', 'ptz']", ("upgrade", "ptz")),
    "default_role": ("'sharer'", "sharer"),
    "workers": ("4", 4),
}

#: A value of the wrong TOML type for every DeviceConfig field, and what the value must be.
DEVICE_WRONG_TYPES: dict[str, tuple[str, str]] = {
    "max_message_size": ("'16384'", "an integer"),
    "max_connections": ("true", "an integer"),
    "max_firmware_size": ("1.5e6", "an integer"),
    "ptz_move_cap_s": ("false", "a number"),
    "ptz_step": ("[100]", "an integer"),
    "download_dir": ("5", "a string"),
    "ca_file": ("['a.pem']", "a string"),
    "ota_allowed_hosts": ("'fw.example.com'", "a list of strings"),
    "sharer_denied_topics": ("['upgrade', 1]", "a list of strings"),
    "default_role": ("{ role = 'owner' }", "a string"),
    "workers": ("2.0", "an integer"),
}


def test_every_device_config_field_is_in_the_tests() -> None:
    assert list(DEVICE_VALUES) == list(DeviceConfig._fields)
    assert list(DEVICE_WRONG_TYPES) == list(DeviceConfig._fields)


def test_every_device_config_field_can_be_set(tmp_path: Path) -> None:
    text = "[device]\n" + "".join(f"{key} = {toml}\n" for key, (toml, _) in DEVICE_VALUES.items())
    device = load_settings(write(tmp_path, text)).device
    assert device == DeviceConfig(**{key: value for key, (_, value) in DEVICE_VALUES.items()})
    assert [type(value) for value in device] == [type(value) for _, value in DEVICE_VALUES.values()]


#: Values of the right type that DeviceConfig.check() refuses, and its message.
DEVICE_OUT_OF_RANGE = [
    ("max_message_size", "0", "max_message_size must be a positive integer, not 0"),
    ("max_connections", "-1", "max_connections must be a positive integer, not -1"),
    ("max_firmware_size", "0", "max_firmware_size must be a positive integer, not 0"),
    ("ptz_step", "0", "ptz_step must be a positive integer, not 0"),
    ("workers", "-2", "workers must be a positive integer, not -2"),
    ("ptz_move_cap_s", "0", "ptz_move_cap_s must be a positive number of seconds or None, not 0.0"),
    ("ptz_move_cap_s", "-inf", "ptz_move_cap_s must be a positive number of seconds or None, not -inf"),
    ("ptz_move_cap_s", "inf", "ptz_move_cap_s must be a positive number of seconds or None, not inf"),
    ("ptz_move_cap_s", "nan", "ptz_move_cap_s must be a positive number of seconds or None, not nan"),
    ("default_role", "'admin'", "default_role must be 'owner' or 'sharer', not 'admin'"),
    (
        "ota_allowed_hosts",
        "['fw.example.com', 'https://evil']",
        "ota_allowed_hosts: 'https://evil' is not a host name, '*.' followed by one, or an IP address",
    ),
    ("ota_allowed_hosts", "['*']", "ota_allowed_hosts: '*' is not a host name, '*.' followed by one, or an IP address"),
]


@pytest.mark.parametrize(
    ("key", "toml", "message"),
    [
        *((key, toml, f"{key} must be {expected}") for key, (toml, expected) in DEVICE_WRONG_TYPES.items()),
        *DEVICE_OUT_OF_RANGE,
    ],
)
def test_a_bad_device_value_is_one_clear_message(tmp_path: Path, key: str, toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(write(tmp_path, f"[device]\n{key} = {toml}\n"))
    assert str(refused.value) == f"[device] {message}"


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_settings(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ('[server]\nlog_level = "d\xe9bug"\n'.encode("latin-1"), "byte 0xe9 at offset 23"),
        ('[server]\nlog_level = "info"\n'.encode("utf-16"), "byte 0xff at offset 0"),  # with its BOM
    ],
)
def test_a_config_file_that_is_not_utf8_is_one_clear_message(tmp_path: Path, content: bytes, where: str) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    assert str(raised.value) == f"{path}: not UTF-8 ({where}); save it as UTF-8, as TOML requires"


def test_tokens_in_a_readable_file_are_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, f"[tokens]\nowner = '{OWNER}'\n")
    path.chmod(0o644)
    load_settings(path)
    assert "readable by other users" in caplog.text


def test_check_refuses_non_loopback_without_tokens() -> None:
    exposed = Settings(listen=(parse_listen("tcp://127.0.0.1:1"), parse_listen("ws://0.0.0.0:2")))
    with pytest.raises(ConfigError, match=r"ws://0.0.0.0:2 is not a loopback address: set \[tokens\] owner"):
        exposed.check()
    Settings(listen=exposed.listen, owner_token=OWNER).check()
    Settings(listen=(parse_listen("unix:///x.sock"), parse_listen("tcp://[::1]:0"))).check()


def test_check_says_a_listen_host_cannot_be_resolved(monkeypatch: pytest.MonkeyPatch) -> None:
    # not a host name at all: refused while encoding it, before any lookup
    with pytest.raises(ConfigError, match=r"cannot resolve the host 'a\.\.b' \(.*idna"):
        Settings(listen=(parse_listen("ws://a..b:1"),), owner_token=OWNER).check()

    looked_up: list[object] = []

    def resolver(host: str, *args: object, **kwargs: object) -> Any:
        looked_up.append(host)
        if host == "camera.lan":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.168.1.20", 7130))]
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    unresolvable = Settings(listen=(parse_listen("tcp://camera.invalid:7130"),), owner_token=OWNER)
    with pytest.raises(ConfigError) as raised:
        unresolvable.check()
    assert str(raised.value) == (
        "tcp://camera.invalid:7130: cannot resolve the host 'camera.invalid' (Name or service not known)"
    )
    with pytest.raises(ConfigError, match=r"cannot resolve the host 'camera\.invalid'"):
        Settings(listen=unresolvable.listen).check()  # not "is not a loopback address"
    with pytest.raises(ConfigError, match=r"tcp://camera\.lan:7130 is not a loopback address"):
        Settings(listen=(parse_listen("tcp://camera.lan:7130"),)).check()
    Settings(listen=(parse_listen("tcp://camera.lan:7130"),), owner_token=OWNER).check()
    assert looked_up == ["camera.invalid", "camera.invalid", "camera.lan", "camera.lan"]

    literal = ("tcp://127.0.0.1:1", "tcp://localhost:2", "ws://[::1]:3", "tcp://0.0.0.0:4", "unix:///x.sock")
    Settings(listen=tuple(parse_listen(url) for url in literal), owner_token=OWNER).check()
    assert len(looked_up) == 4  # addresses and localhost are not looked up


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("tcp://127.0.0.1", "--to URL 'tcp://127.0.0.1': give HOST:PORT, e.g. tcp://127.0.0.1:7130"),
        ("tcp://127.0.0.1:0", "--to URL 'tcp://127.0.0.1:0': the port must be a number from 1 to 65535"),
        ("udp://h:1", "--to URL 'udp://h:1': use tcp://HOST:PORT, ws://HOST:PORT, unix:///PATH or bridge:///PATH"),
        ("unix://", "--to URL 'unix://': give a socket path"),
    ],
)
def test_parse_target_calls_it_the_to_url(url: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_target(url)
    assert str(raised.value).startswith(message)
    assert parse_target("ws://[::1]:7131") == parse_listen("ws://[::1]:7131")


@pytest.mark.parametrize("value", [0, -1, True, 2.0])
def test_check_refuses_a_max_pending_auth_that_is_not_a_positive_integer(value: Any) -> None:
    with pytest.raises(ConfigError, match="max_pending_auth must be a positive integer"):
        Settings(max_pending_auth=value).check()


def test_default_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_state_dir() == tmp_path / "iotvideo-signaling"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/is/ignored")
    assert default_state_dir() == Path.home() / ".local" / "state" / "iotvideo-signaling"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert Settings().resolved_state_dir() == Path.home() / ".local" / "state" / "iotvideo-signaling"


# -- hardware ----------------------------------------------------------------------------------


def test_default_hardware_is_simulated_in_the_state_dir(tmp_path: Path) -> None:
    hardware = build_hardware(Settings(state_dir=tmp_path, hardware_options={"signal_strength": 33}))
    assert isinstance(hardware, SimulatedHardware)
    assert hardware.state_dir == tmp_path
    assert hardware.signal_strength() == 33


def test_hardware_class_from_the_config(tmp_path: Path) -> None:
    text = f"""
[hardware]
class = "iotvideo_signaling.simulator:SimulatedHardware"
state_dir = "{tmp_path / "hw"}"
sd_card = false
"""
    hardware = build_hardware(load_settings(write(tmp_path, text)))
    assert isinstance(hardware, SimulatedHardware)
    assert hardware.state_dir == tmp_path / "hw"
    assert not hardware.sd_card_present()


@pytest.mark.parametrize(
    ("spec", "options", "message"),
    [
        ("no_such_module_xyz:Camera", {}, "cannot import 'no_such_module_xyz'"),
        ("iotvideo_signaling.simulator:Nope", {}, "is not a subclass of iotvideo_signaling.Hardware"),
        ("os:path", {}, "is not a subclass"),
        ("iotvideo_signaling.simulator:SimulatedHardware", {"colour": "red"}, "does not take these options"),
    ],
)
def test_hardware_class_errors(spec: str, options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_hardware(Settings(hardware_class=spec, hardware_options=options))


VENDOR_MODULE = """
from iotvideo_signaling import Hardware


class WithStateDir(Hardware):
    def __init__(self, state_dir, colour="grey"):
        self.state_dir = state_dir
        self.colour = colour


class KeywordStateDir(Hardware):
    def __init__(self, *, state_dir=None):
        self.state_dir = state_dir


class NoStateDir(Hardware):
    def __init__(self, colour="grey"):
        self.colour = colour


class BuggyConstructor(Hardware):
    def __init__(self, port="/dev/ttyS1"):
        self.port = len(port) + "1"  # a TypeError raised inside the constructor


class MissingDevice(Hardware):
    def __init__(self, port="/dev/nonexistent-motor"):
        open(port, "rb")
"""


@pytest.fixture
def vendor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A vendor's hardware module on the Python path; returns its name."""
    (tmp_path / "vendor_hw.py").write_text(VENDOR_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "vendor_hw", raising=False)
    return "vendor_hw"


@pytest.mark.parametrize("cls", ["WithStateDir", "KeywordStateDir"])
def test_the_state_dir_is_passed_to_a_class_that_takes_one(vendor: str, cls: str, tmp_path: Path) -> None:
    hardware: Any = build_hardware(Settings(state_dir=tmp_path / "state", hardware_class=f"{vendor}:{cls}"))
    assert hardware.state_dir == tmp_path / "state"
    hardware = build_hardware(Settings(hardware_class=f"{vendor}:{cls}", hardware_options={"state_dir": "x"}))
    assert hardware.state_dir == "x"  # without --state-dir, [hardware] state_dir is the class's option


def test_the_state_dir_set_twice_is_refused(vendor: str, tmp_path: Path) -> None:
    options = {"state_dir": "x"}
    settings = Settings(state_dir=tmp_path, hardware_class=f"{vendor}:WithStateDir", hardware_options=options)
    with pytest.raises(ConfigError, match=r"set twice, as \[hardware\] state_dir and as --state-dir"):
        build_hardware(settings)


def test_a_class_without_state_dir_keeps_it_for_the_downloads(
    vendor: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="iotvideo_signaling.server.settings")
    hardware: Any = build_hardware(Settings(state_dir=tmp_path, hardware_class=f"{vendor}:NoStateDir"))
    assert hardware.colour == "grey"
    assert f"{vendor}:NoStateDir has no state_dir parameter: the state directory {tmp_path} only holds" in caplog.text
    settings = Settings(
        state_dir=tmp_path, hardware_class=f"{vendor}:NoStateDir", device=DeviceConfig(download_dir=str(tmp_path))
    )
    with pytest.raises(ConfigError) as refused:
        build_hardware(settings)
    assert str(refused.value) == (
        f"[hardware] {vendor}:NoStateDir has no state_dir parameter and [device] download_dir is set, so the state "
        f"directory {tmp_path} would not be used: drop --state-dir (or [server] state_dir), "
        "or give the class a state_dir parameter"
    )


def test_wrong_options_and_a_failing_constructor_are_told_apart(
    vendor: str, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ConfigError) as wrong:
        build_hardware(Settings(hardware_class=f"{vendor}:NoStateDir", hardware_options={"size": 3}))
    assert str(wrong.value) == (
        f"[hardware] {vendor}:NoStateDir does not take these options: got an unexpected keyword argument 'size'"
    )
    with pytest.raises(ConfigError, match="missing a required argument: 'state_dir'"):
        build_hardware(Settings(hardware_class=f"{vendor}:WithStateDir"))

    caplog.set_level("DEBUG", logger="iotvideo_signaling.server.settings")
    with pytest.raises(ConfigError) as buggy:
        build_hardware(Settings(hardware_class=f"{vendor}:BuggyConstructor"))
    assert str(buggy.value).startswith(f"[hardware] {vendor}:BuggyConstructor could not start: TypeError: ")
    assert str(buggy.value).endswith("(the traceback is logged with --log-level debug)")
    (record,) = [record for record in caplog.records if record.exc_info]
    assert record.levelname == "DEBUG" and record.exc_info is not None
    assert isinstance(record.exc_info[1], TypeError)

    with pytest.raises(ConfigError, match=r"MissingDevice could not start: FileNotFoundError: .*nonexistent-motor"):
        build_hardware(Settings(hardware_class=f"{vendor}:MissingDevice"))


# -- systemd -----------------------------------------------------------------------------------


def test_notifier_without_socket_does_nothing() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    assert notifier.notify("READY=1") is False


@pytest.mark.parametrize("abstract", [False, True])
def test_notifier_sends_datagrams(abstract: bool) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        if abstract:
            name = f"iotvideo-signaling-test-{os.getpid()}"
            sock.bind("\0" + name)
            address = "@" + name
        else:
            directory = tempfile.mkdtemp(prefix="ivs-")
            address = os.path.join(directory, "notify")
            sock.bind(address)
        sock.settimeout(2)
        notifier = Notifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "3000000"})
        assert notifier.enabled
        assert notifier.watchdog_interval == 1.5
        assert notifier.notify("READY=1", "STATUS=ok") is True
        assert sock.recv(100) == b"READY=1\nSTATUS=ok"
        if not abstract:
            os.unlink(address)
            os.rmdir(directory)
            assert notifier.notify("WATCHDOG=1") is False  # the socket is gone: logged, not raised


def test_watchdog_is_only_for_this_process() -> None:
    assert Notifier({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}).watchdog_interval == 0.5
    assert Notifier({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}).watchdog_interval is None
    assert Notifier({"WATCHDOG_USEC": "0"}).watchdog_interval is None
    assert Notifier({"WATCHDOG_USEC": "soon"}).watchdog_interval is None
    assert not Notifier({"NOTIFY_SOCKET": "vsock:2:1234"}).enabled


# -- replies -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "ok"),
    [
        (b'{"confirmation_topic":"version","result":"0","info":"V1"}', True),
        (b'{"confirmation_topic":"ptz","result":"3","reason":"no"}', False),
        (b'[{"status":"0","appConnectNum":"1"}]', True),
        (b'[{"status":"1","appConnectNum":"1"}]', False),
        (b'{"status":"406"}', False),
        (b'{"status":"0","progress":"10"}', True),
        (b'{"video_list":"3"}', True),
        (b"[]", False),
        (b"[1]", False),
        (b"not json", False),
    ],
)
def test_reply_ok(reply: bytes, ok: bool) -> None:
    assert reply_ok(reply) is ok


@pytest.mark.parametrize(
    ("peer", "source"),
    [
        (("127.0.0.1", 5000), "127.0.0.1"),
        (("::ffff:10.0.0.7", 5000, 0, 0), "10.0.0.7"),  # IPv4 through an IPv6 socket
        (("2001:db8:bad:1::1", 5000, 0, 0), "2001:db8:bad:1::/64"),
        (("2001:db8:bad:1:ffff::9", 5001, 0, 0), "2001:db8:bad:1::/64"),  # the same host's /64
        (("2001:db8:bad:2::1", 5000, 0, 0), "2001:db8:bad:2::/64"),
        (("fe80::1%eth0", 5000, 0, 2), "fe80::/64"),
        ("", ""),  # a Unix socket
        (("not-an-address", 1), "not-an-address"),
    ],
)
def test_pending_connections_are_grouped_by_source(peer: Any, source: str) -> None:
    from iotvideo_signaling.server.hub import _source

    assert _source(peer) == source


# -- [server] allowed_origins ------------------------------------------------------------------


def test_allowed_origins_default_to_none() -> None:
    assert Settings().allowed_origins == ()


def test_allowed_origins_from_the_config(tmp_path: Path) -> None:
    text = """
[server]
allowed_origins = [
    "http://localhost:8080",
    "https://panel.example.com",
    "http://127.0.0.1:3000",
    "http://[::1]:8080",
    "chrome-extension://abcdefghijklmnop",
    "http://localhost:8080",
]
"""
    assert load_settings(write(tmp_path, text)).allowed_origins == (
        "http://localhost:8080",
        "https://panel.example.com",
        "http://127.0.0.1:3000",
        "http://[::1]:8080",
        "chrome-extension://abcdefghijklmnop",
    )  # in order, the repeated one once
    assert load_settings(write(tmp_path, "[server]\nallowed_origins = []\n")).allowed_origins == ()


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("'http://localhost:8080'", r"allowed_origins must be a list of strings, each scheme://host\[:port\]"),
        ("true", "allowed_origins must be a list of strings"),
        ("['http://localhost:8080', 8080]", "allowed_origins must be a list of strings"),
        ("[['http://localhost:8080']]", "allowed_origins must be a list of strings"),
        ("{ panel = 'http://localhost:8080' }", "allowed_origins must be a list of strings"),
        ("['http://localhost:8080/']", r"'http://localhost:8080/' has a path: .*not even a trailing '/'"),
        ("['http://localhost:8080/panel/']", "'http://localhost:8080/panel/' has a path"),
        ("['http://localhost:8080?x=1']", "has a path"),
        ("['http://localhost:8080#top']", "has a path"),
        ("['localhost:8080']", "'localhost:8080' is not an origin: write scheme://host"),
        ("['//localhost:8080']", "is not an origin"),
        ("['']", "'' is not an origin"),
        ("['http://']", "'http://' has no valid host name"),
        ("['http://local host']", "has no valid host name"),
        ("['http://-camera']", "has no valid host name"),
        ("['http://user@localhost:8080']", "holds user information"),
        ("['http://localhost:99999']", "'http://localhost:99999' is not an origin"),
        ("['http://localhost:port']", "is not an origin"),
        ("['http://localhost:0']", "has port 0"),
        ("['http://[::g]:8080']", "is not an origin|has an invalid IPv6 address"),
        ("['http://caméra.local']", "not ASCII: write its punycode"),
        ("['null']", "'null' is the origin every sandboxed or file:// page shares"),
        ("['*']", "'\\*' is a pattern: list each origin"),
        ("['http://*.example.com']", "is a pattern"),
        # Written otherwise than a browser sends it: it would never match, so it is refused with the form.
        ("['HTTP://localhost:8080']", "not how a browser writes this origin: write 'http://localhost:8080'"),
        ("['http://LocalHost:8080']", "write 'http://localhost:8080'"),
        ("['http://localhost:80']", "write 'http://localhost'"),
        ("['https://panel.example.com:443']", "write 'https://panel.example.com'"),
        ("['http://localhost:08080']", "write 'http://localhost:8080'"),
        ("['http://localhost:']", "write 'http://localhost'"),
        ("['http://[0:0:0:0:0:0:0:1]:8080']", r"write 'http://\[::1\]:8080'"),
    ],
)
def test_a_bad_allowed_origins_is_one_clear_message(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as refused:
        load_settings(write(tmp_path, f"[server]\nallowed_origins = {toml}\n"))
    assert str(refused.value).startswith("[server] allowed_origins")
