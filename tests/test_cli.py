"""The command line: help, argument handling, ``send``'s shorthands and exit statuses, the demo."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from iotvideo_signaling import __version__, implementation
from iotvideo_signaling.cli import build_commands, main
from iotvideo_signaling.demo import run_demo
from test_server_harness import run_cli, start_server

P = b"action=user_define&channel=0&cmd="


# -- help --------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["serve"], ["send"], ["demo"], ["make-firmware"]])
def test_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: iotvideo-signaling")
    if command == ["serve"]:
        assert "[tokens]" in out and "package.module:Class" in out and "--ready-file" in out
    if command == ["send"]:
        assert "upgrade URL MD5 SIZE" in out


def test_python_dash_m_and_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout == f"iotvideo-signaling {__version__} (wire backend: {implementation})\n"


def test_version_names_the_pure_python_backend() -> None:
    result = run_cli("--version", env={"IOTVIDEO_SIGNALING_NO_EXTENSIONS": "1"})
    assert result.returncode == 0
    assert result.stdout == f"iotvideo-signaling {__version__} (wire backend: python)\n"


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage:" in capsys.readouterr().err


def test_unknown_option_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--port", "1"])
    assert exited.value.code == 2


# -- serve argument errors (refused before anything starts) ------------------------------------


def test_serve_reports_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[device]\nmax_connections = -1\n", encoding="utf-8")
    assert main(["serve", "--config", str(config)]) == 2
    assert "max_connections must be a positive integer" in capsys.readouterr().err
    assert main(["serve", "--listen", "udp://127.0.0.1:1"]) == 2
    assert "listen URL 'udp://127.0.0.1:1'" in capsys.readouterr().err


def test_serve_reports_a_config_file_that_is_not_utf8(tmp_path: Path) -> None:
    config = tmp_path / "latin1.toml"
    config.write_bytes('[hardware]\nname = "cam\xe9ra"\n'.encode("latin-1"))
    result = run_cli("serve", "--config", str(config))
    assert result.returncode == 2
    why = "not UTF-8 (byte 0xe9 at offset 22); save it as UTF-8, as TOML requires"
    assert result.stderr == f"iotvideo-signaling serve: error: {config}: {why}\n"  # one line, no traceback


def test_serve_refuses_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--state-dir", str(tmp_path), "--listen", f"tcp://127.0.0.1:{port}")
    assert result.returncode == 2
    assert f"cannot listen on tcp://127.0.0.1:{port}" in result.stderr


def test_serve_warns_at_start_on_the_pure_python_backend(tmp_path: Path) -> None:
    env = {**os.environ, "IOTVIDEO_SIGNALING_NO_EXTENSIONS": "1"}
    served = start_server(tmp_path, ("tcp://127.0.0.1:0",), env=env)
    assert served.stop() == 0
    log = served.log()  # read after the stop: "listening on" is logged after the ready file is written
    (line,) = [line for line in log.splitlines() if "wire backend" in line]
    assert " WARNING iotvideo_signaling.server.process: running on the pure-Python wire backend" in line
    assert "IOTVIDEO_SIGNALING_NO_EXTENSIONS is set" in line
    assert log.index("wire backend") < log.index("listening on")


def test_the_backend_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    from iotvideo_signaling import _wire
    from iotvideo_signaling.server.process import backend_warning

    monkeypatch.setattr(_wire, "implementation", "c")
    assert backend_warning() is None
    monkeypatch.setattr(_wire, "implementation", "python")
    monkeypatch.setattr(_wire, "NO_EXTENSIONS", False)  # the extension was not built
    warning = backend_warning()
    assert warning is not None
    assert "C extension was not built" in warning and "C compiler" in warning
    assert "IOTVIDEO_SIGNALING_REQUIRE_EXTENSIONS=1" in warning


# -- serve with a vendor's Hardware, as the README shows it -----------------------------------

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_block(first_line: str) -> str:
    """The README's code block whose first line is ``first_line``."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n{first_line}\n") + 1
    return text[start : text.index("\n```", start) + 1]


def with_pythonpath(directory: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(directory), os.environ.get("PYTHONPATH")]))}


def test_the_readme_hardware_example_serves(tmp_path: Path) -> None:
    (tmp_path / "my_camera.py").write_text(readme_block("# my_camera.py"), encoding="utf-8")
    config = readme_block("# camera.toml")
    assert 'class = "my_camera:MyCamera"' in config
    served = start_server(tmp_path, ("tcp://127.0.0.1:0",), config=config, env=with_pythonpath(tmp_path))
    try:  # the README's commands, with the harness's --state-dir and port
        readme = README.read_text(encoding="utf-8")
        assert "PYTHONPATH=/opt/my-camera iotvideo-signaling serve --config camera.toml --state-dir" in readme
        assert '\niotvideo-signaling send get_status "set_status standby" "Mirror_flip flip" version\n' in readme
        commands = ("get_status", "set_status standby", "Mirror_flip flip", "version")
        sent = run_cli("send", "--to", served.url("tcp"), *commands)
    finally:
        assert served.stop() == 0
    assert sent.returncode == 0, sent.stdout + sent.stderr
    replies = [orjson.loads(line) for line in sent.stdout.splitlines()]
    assert replies[0]["signal_strength"] == 90 and replies[0]["status"] == "working"
    assert replies[3]["info"] == "V1.2.0"
    # --state-dir (the harness passes one) reached the class as state_dir=
    saved = orjson.loads((served.state_dir / "my_camera.json").read_bytes())
    assert saved == {"power": "standby", "flip": "flip"}


BUGGY_HARDWARE = """
from iotvideo_signaling import Hardware


class Buggy(Hardware):
    def __init__(self, port="/dev/ttyS1"):
        self.port = port
        self.speed = int(self.port)  # the vendor's bug: a ValueError inside the constructor
"""


@pytest.mark.parametrize("level", ["info", "debug"])
def test_serve_shows_a_constructor_traceback_only_in_debug(tmp_path: Path, level: str) -> None:
    (tmp_path / "buggy_hw.py").write_text(BUGGY_HARDWARE, encoding="utf-8")
    config = tmp_path / "camera.toml"
    config.write_text('[hardware]\nclass = "buggy_hw:Buggy"\n', encoding="utf-8")
    result = run_cli(
        "serve", "--config", str(config), "--listen", "tcp://127.0.0.1:0", "--log-level", level,
        env=with_pythonpath(tmp_path),
    )  # fmt: skip
    assert result.returncode == 2
    error = (
        "iotvideo-signaling serve: error: [hardware] buggy_hw:Buggy could not start: ValueError: invalid literal "
        "for int() with base 10: '/dev/ttyS1' (the traceback is logged with --log-level debug)"
    )
    assert result.stderr.splitlines()[-1] == error
    if level == "debug":
        assert "Traceback (most recent call last)" in result.stderr
        assert "self.speed = int(self.port)" in result.stderr
    else:
        assert "Traceback" not in result.stderr


def test_serve_refuses_a_state_dir_nothing_would_use(tmp_path: Path) -> None:
    (tmp_path / "buggy_hw.py").write_text(BUGGY_HARDWARE, encoding="utf-8")
    config = tmp_path / "camera.toml"
    text = f'[device]\ndownload_dir = "{tmp_path}"\n[hardware]\nclass = "buggy_hw:Buggy"\n'
    config.write_text(text, encoding="utf-8")
    result = run_cli("serve", "--config", str(config), "--state-dir", str(tmp_path), env=with_pythonpath(tmp_path))
    assert result.returncode == 2
    error = "iotvideo-signaling serve: error: [hardware] buggy_hw:Buggy has no state_dir parameter and [device] "
    assert result.stderr.splitlines()[-1].startswith(error + "download_dir is set")  # after any backend warning


# -- send: building commands -------------------------------------------------------------------


def built(*arguments: str) -> list[bytes]:
    return build_commands(arguments, itertools.count(1))


def test_shorthands() -> None:
    assert built("get_status", "version", "sd_format", "bind_status", "intercom") == [
        P + b'{"topic":"get_status","message_id":1,"user":"owner"}',
        P + b'{"topic":"version","message_id":2,"data":{}}',
        P + b'{"topic":"sd_format","message_id":3}',
        P + b'{"topic":"bind_status","message_id":4,"status":"success"}',
        P + b'{"topic":"intercom","message_id":5}',
    ]
    assert built("ptz", "ptz_up_press", "ptz up", "ptz release", "Mirror_flip flip", "set_status", "standby") == [
        P + b'{"topic":"ptz","message_id":1,"data":{"cmd":"ptz_up_press"}}',
        P + b'{"topic":"ptz","message_id":2,"data":{"cmd":"ptz_up_press"}}',
        P + b'{"topic":"ptz","message_id":3,"data":{"cmd":"ptz_release_pre"}}',
        P + b'{"topic":"Mirror_flip","message_id":4,"data":{"mode":"flip"}}',
        P + b'{"topic":"set_status","message_id":5,"data":{"status":"standby"}}',
    ]
    url = "https://example.com/fw.bin?a=1&sig=x%2By"
    assert built("upgrade", url, "0123456789abcdef0123456789ABCDEF", "3137536") == [
        P
        + b'{"topic":"upgrade","message_id":1,"data":{"url":"https://example.com/fw.bin?a=1&sig=x%2By",'
        + b'"md5":"0123456789abcdef0123456789ABCDEF","fileSize":3137536}}'
    ]


def test_inner_commands_take_name_value_words() -> None:
    assert built("get_device_st", "get_device_st type=voice", "get_month_record", "time=202401", "version") == [
        b"action=inner_define&channel=0&cmd=get_device_st&type=live&quality=standard",
        b"action=inner_define&channel=0&cmd=get_device_st&type=voice&quality=standard",
        b"action=inner_define&channel=0&cmd=get_month_record&time=202401",
        P + b'{"topic":"version","message_id":1,"data":{}}',
    ]
    assert built("playback_seek progress=1&2") == [b"action=inner_define&channel=0&cmd=playback_seek&progress=1%262"]


def test_json_objects_are_wrapped_like_the_panel_does() -> None:
    assert built('{"topic": "intercom"}', '{"topic":"version","message_id":"mine"}', '{"topic":"x", "data": {}}') == [
        P + b'{"topic":"intercom","message_id":1}',
        P + b'{"topic":"version","message_id":"mine"}',
        P + b'{"topic":"x","data":{},"message_id":2}',
    ]
    # not JSON, or not an object: sent as it is, for the device to judge
    assert built("{broken", '{"a":1} trailing') == [b"{broken", b'{"a":1} trailing']


def test_full_command_strings_are_sent_as_they_are() -> None:
    raw = 'action=user_define&cmd={"topic":"get_status"}&channel=0'
    assert built(raw, "action=inner_define&cmd=x y") == [raw.encode(), b"action=inner_define&cmd=x y"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["zoom"], "unknown command 'zoom'"),
        (["[1]"], "unknown command"),
        (["ptz"], "ptz needs DIRECTION"),
        (["upgrade", "https://h/f", "abc"], "upgrade needs URL MD5 SIZE"),
        (["upgrade", "https://h/f", "abc", "big"], "SIZE must be a number"),
        (["ptz sideways"], "ptz DIRECTION 'sideways' is not one of: up, down, left, right, release, stop"),
        (["ptz", "ptz_up"], "ptz DIRECTION 'ptz_up' is not one of"),
        (["Mirror_flip", "upside-down"], "Mirror_flip MODE 'upside-down' is not one of: normal, flip"),
        (["set_status off"], "set_status STATUS 'off' is not one of: working, standby"),
        (["get_device_st type=video"], "get_device_st type 'video' is not one of: live, voice, playback"),
        (["get_device_st", "quality=4k"], "get_device_st quality '4k' is not one of: standard, high, super"),
    ],
)
def test_send_usage_errors(arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match=message):
        built(*arguments)
    assert main(["send", "--to", "tcp://127.0.0.1:1", *arguments]) == 2
    assert message.split("'", maxsplit=1)[0] in capsys.readouterr().err


def test_a_bad_shorthand_is_refused_before_connecting(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert main(["send", "--to", f"tcp://127.0.0.1:{port}", "version", "ptz sideways"]) == 2
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
    assert capsys.readouterr().err == (
        "iotvideo-signaling send: error: ptz DIRECTION 'sideways' is not one of: up, down, left, right, release, "
        "stop, ptz_up_press, ptz_down_press, ptz_left_press, ptz_right_press, ptz_release_pre\n"
    )
    # sent as they are: the device judges a full command string or a JSON object
    sideways = '{"topic":"ptz","data":{"cmd":"sideways"}}'
    assert built(sideways) == [P + b'{"topic":"ptz","data":{"cmd":"sideways"},"message_id":1}']


@pytest.mark.parametrize("timeout", ["-1", "0", "-0.5", "nan", "inf", "soon"])
def test_send_refuses_a_timeout_that_is_not_positive(timeout: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["send", "--timeout", timeout, "--to", "tcp://127.0.0.1:1", "version"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"error: argument --timeout: '{timeout}'" in err
    assert "timed out" not in err


def test_send_calls_its_target_the_to_url(capsys: pytest.CaptureFixture[str]) -> None:
    for url, why in [
        ("tcp://127.0.0.1", "give HOST:PORT, e.g. tcp://127.0.0.1:7130"),
        ("tcp://127.0.0.1:0", "the port must be a number from 1 to 65535"),
        ("http://127.0.0.1:7130", "use tcp://HOST:PORT, ws://HOST:PORT, unix:///PATH or bridge:///PATH"),
    ]:
        assert main(["send", "--to", url, "version"]) == 2
        assert capsys.readouterr().err == f"iotvideo-signaling send: error: --to URL {url!r}: {why}\n"


def _no_such_host(*args: object, **kwargs: object) -> Any:
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


@pytest.mark.parametrize("scheme", ["tcp", "ws"])
def test_send_says_a_host_cannot_be_resolved(
    scheme: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _no_such_host)
    assert main(["send", "--to", f"{scheme}://camera.invalid:7130", "version"]) == 1
    assert capsys.readouterr().err == (
        f"iotvideo-signaling send: error: cannot connect to {scheme}://camera.invalid:7130: "
        "cannot resolve the host 'camera.invalid' (Name or service not known)\n"
    )


def test_serve_says_a_host_cannot_be_resolved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _no_such_host)
    listen = ["--listen", "tcp://127.0.0.1:0", "--listen", "ws://camera.invalid:7131"]
    assert main(["serve", "--state-dir", str(tmp_path), *listen]) == 2
    err = capsys.readouterr().err
    assert err == (
        "iotvideo-signaling serve: error: ws://camera.invalid:7131: cannot resolve the host 'camera.invalid' "
        "(Name or service not known)\n"
    )
    assert "loopback" not in err


def test_send_without_a_server_fails_with_1(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: connections are refused
        assert main(["send", "--to", f"tcp://127.0.0.1:{port}", "--timeout", "2", "version"]) == 1
    assert f"cannot connect to tcp://127.0.0.1:{port}" in capsys.readouterr().err
    assert main(["send", "--to", "unix:///nonexistent/x.sock", "version"]) == 1
    assert main(["send", "--to", "udp://127.0.0.1:1", "version"]) == 2


# -- demo --------------------------------------------------------------------------------------


def test_demo_in_process(tmp_path: Path) -> None:
    lines: list[str] = []
    assert run_demo(str(tmp_path), lines.append) == 0
    text = "\n".join(lines)
    topics = ("get_status", "version", "Mirror_flip", "set_status", "ptz", "sd_format", "bind_status", "intercom")
    for topic in topics:
        assert f'"topic":"{topic}"' in text
    assert "cmd=get_device_st" in text
    assert "upgrade" in text
    assert lines[-1].endswith("0 unexpected")
    for line in lines:
        if line.startswith("   < ") and line[5:].startswith("{"):
            orjson.loads(line[5:])  # every reply printed is the JSON the device sent


def test_demo_command_exits_0() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "iotvideo_signaling", "demo"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 unexpected" in result.stdout
    assert "UNEXPECTED" not in result.stdout


def test_demo_without_trustme_skips_the_upgrade_and_says_how_to_get_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setitem(sys.modules, "trustme", None)  # import trustme raises ImportError
    lines: list[str] = []
    assert run_demo(str(tmp_path), lines.append) == 0
    text = "\n".join(lines)
    assert 'skipped: trustme is not installed; for this step: pip install "iotvideo-signaling[demo]"' in text
    assert '"topic":"upgrade"' not in text
    assert lines[-1].endswith(" 1 skipped, 0 unexpected")
    assert main(["demo"]) == 0
    assert 'for this step: pip install "iotvideo-signaling[demo]"' in capsys.readouterr().out
    assert any("iotvideo-signaling[demo]" in record.getMessage() for record in caplog.records)


def test_make_firmware_writes_an_image_the_simulator_installs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import hashlib

    from iotvideo_signaling import SimulatedHardware

    path = tmp_path / "fw.bin"
    assert main(["make-firmware", str(path), "--firmware-version", "V9.9.9", "--size", "4096"]) == 0
    printed = orjson.loads(capsys.readouterr().out)
    data = path.read_bytes()
    assert printed == {"path": str(path), "version": "V9.9.9", "md5": hashlib.md5(data).hexdigest(), "fileSize": 4096}
    assert len(data) == 4096
    hw = SimulatedHardware(tmp_path / "cam")
    hw.install_firmware(str(path), md5=printed["md5"], size=4096)
    assert hw.firmware_version() == "V9.9.9"


def test_make_firmware_refuses_a_bad_version(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["make-firmware", str(tmp_path / "fw.bin"), "--firmware-version", "has space"]) == 2
    assert "version" in capsys.readouterr().err


def test_make_firmware_takes_no_version_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--version`` is the program's; the image's version is ``--firmware-version``."""
    with pytest.raises(SystemExit) as exited:
        main(["make-firmware", str(tmp_path / "fw.bin"), "--version", "V9.9.9"])
    assert exited.value.code == 2
    assert "the following arguments are required: --firmware-version" in capsys.readouterr().err
    assert not (tmp_path / "fw.bin").exists()
