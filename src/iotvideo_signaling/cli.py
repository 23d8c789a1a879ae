"""The command line: ``iotvideo-signaling serve | send | demo | make-firmware``.

* ``serve`` runs the daemon (:mod:`iotvideo_signaling.server`) on a simulated camera, or on the
  hardware class named in the config file.
* ``send`` sends commands to a running daemon and prints the replies; it exits 0 only when every
  reply reports success.
* ``demo`` walks an in-process simulated camera through every topic, the way the panel would
  (:mod:`iotvideo_signaling.demo`).
* ``make-firmware`` writes a simulated firmware image and prints its MD5 and size.

This module configures logging (the library never does) and is the only one that prints. asyncio
and the server package are imported by the commands that need them, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import logging
import math
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import orjson

from . import __version__
from ._wire import implementation
from .inner import _QUALITIES
from .protocol import FIELDS, PTZ_COMMANDS
from .sessions import STREAM_KINDS

if TYPE_CHECKING:
    from .server.settings import Settings

__all__ = ["build_commands", "main"]

PROG = "iotvideo-signaling"
DEFAULT_URL = "tcp://127.0.0.1:7130"
TOKEN_ENV = "IOTVIDEO_SIGNALING_TOKEN"  # noqa: S105 - the name of a variable, not a secret
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
USER_DEFINE = b"action=user_define&channel=0&cmd="

SERVE_EPILOG = """\
listen URLs:
  tcp://HOST:PORT   one command per line, one reply per line, in order (port 0: any free port)
  unix:///PATH      the same over a Unix socket (created with mode 0660)
  ws://HOST:PORT    one command per WebSocket message; device events pushed as {"event": {...}}
  bridge:///PATH    the device SDK's C shim in the camera app (docs/sdk-integration.md); frames of
                    docs/bridge-protocol.md over a Unix socket (mode 0660); no tokens. A daemon
                    with bridge:// listeners only runs without asyncio, in less memory.

Without --listen or a listen setting: tcp://127.0.0.1:7130. A listener that is not on loopback
needs [tokens] in the config file. With tokens, every connection on every listener starts with
the line (or message) "AUTH <token>", answered
{"confirmation_topic":"auth","result":"0","role":"owner"|"sharer"} (a wrong or missing token is
answered with result "6" and the connection is closed); without tokens every connection is an owner.

config file (TOML; every table and key is optional):
  [server]    listen = ["tcp://127.0.0.1:7130"], state_dir, log_level, idle_timeout = 300,
              auth_timeout = 10, write_timeout = 10, write_buffer_size = 262144,
              max_pending_auth = 8 (connections waiting for AUTH; when full, the oldest
              of the most crowded source address is evicted),
              allowed_origins = ["http://localhost:8080"] (web pages allowed on ws://, exactly
              scheme://host[:port]; none by default: a browser gets 403, clients without an
              Origin header are served)
  [device]    any DeviceConfig field: max_message_size, max_connections (also caps
              connections; default 32), max_firmware_size, ptz_move_cap_s, ...
  [tokens]    owner = "...", sharer = "..."   (16+ printable characters each)
  [hardware]  class = "package.module:Class" (default SimulatedHardware(state_dir)), imported
              from the Python path (PYTHONPATH); every other key is a keyword argument of
              the class, and the state directory is passed as state_dir= when the class
              takes one (without it, the directory only holds the firmware downloads)
  [channels]  an NVR: [channels.1], [channels.2], ... one table per channel, merged over
              [hardware]; each channel is its own camera with the state directory
              STATE_DIR/channel-N, reached through bridge:// (tcp/unix/ws serve the lowest)

Command-line options override the file. SIGTERM or SIGINT stops the daemon cleanly (exit 0).
With NOTIFY_SOCKET set (systemd Type=notify) it sends READY=1, WATCHDOG=1 and STOPPING=1.
"""

SEND_EPILOG = f"""\
each COMMAND is one of:
  action=...                     a full command string, sent as it is
  '{{"topic":...}}'                a JSON object, sent as the panel does:
                                 action=user_define&channel=0&cmd=<compact JSON>,
                                 with a message_id added when it has none
  a shorthand:
    get_status | version | sd_format | bind_status | intercom
    Mirror_flip normal|flip      set_status working|standby
    ptz up|down|left|right|release (or ptz_up_press ... ptz_release_pre)
    upgrade URL MD5 SIZE
    get_device_st [type=live|voice|playback] [quality=standard|high|super]
    get_record_index start_time=S end_time=S      get_month_record time=YYYYMM
    get_file_list start_time=S end_time=S file_type=0|1
    playback_pause | playback_resume | playback_progress | playback_seek progress=MS

Commands are pipelined over one connection; each reply is printed as it arrives. The exit status
is 0 only when every reply has result "0" (status "0" for inner commands), 1 otherwise, 2 for a
usage error: a shorthand that is unknown or given a value it does not take (ptz sideways) is
refused before connecting; a full command string or a JSON object is sent as it is. The token may
also come from ${TOKEN_ENV}.

examples:
  {PROG} send get_status version "ptz up" "ptz release"
  {PROG} send --to unix:///run/camera.sock Mirror_flip flip
  {PROG} send --to ws://127.0.0.1:7131 '{{"topic":"intercom"}}'
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Device side of the Tencent Lianlian IoT Video standard-panel signaling protocol.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__} (wire backend: {implementation})"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    raw = argparse.RawDescriptionHelpFormatter

    serve = commands.add_parser(
        "serve", help="run the daemon on a simulated (or configured) camera", epilog=SERVE_EPILOG, formatter_class=raw
    )
    serve.description = "Run a Device and answer the panel protocol on the listen URLs until SIGTERM."
    serve.add_argument("--config", metavar="FILE.toml", help="the config file (see below)")
    serve.add_argument(
        "--state-dir",
        metavar="DIR",
        help="the camera's state and firmware downloads (default: $XDG_STATE_HOME/iotvideo-signaling or "
        "~/.local/state/...)",
    )
    serve.add_argument(
        "--listen", metavar="URL", action="append", help="where to listen (repeatable; replaces the config's list)"
    )
    serve.add_argument("--log-level", type=str.lower, choices=LOG_LEVELS, help="default: info")
    serve.add_argument(
        "--panel",
        action="store_true",
        help="serve the panel simulator's page on the ws:// listeners (without one: on ws://127.0.0.1 at a "
        "free port); its URL is logged",
    )
    serve.add_argument(
        "--ready-file", metavar="FILE", help='write {"pid": ..., "listen": [bound URLs]} here once listening'
    )
    serve.set_defaults(run=_serve)

    send = commands.add_parser(
        "send", help="send commands to a running daemon and print the replies", epilog=SEND_EPILOG, formatter_class=raw
    )
    send.description = (
        "Send commands to a running daemon over tcp://, unix://, ws:// or bridge:// and print the replies."
    )
    send.add_argument("--to", metavar="URL", default=DEFAULT_URL, help=f"the daemon's URL (default: {DEFAULT_URL})")
    send.add_argument("--token", help=f"sent first as AUTH <token> (default: ${TOKEN_ENV})")
    send.add_argument(
        "--timeout", type=_seconds, default=10.0, metavar="S", help="seconds per reply, more than 0 (default: 10)"
    )
    send.add_argument("--log-level", type=str.lower, choices=LOG_LEVELS, help="default: warning")
    send.add_argument("commands", nargs="+", metavar="COMMAND")
    send.set_defaults(run=_send)

    demo = commands.add_parser("demo", help="walk a simulated camera through every topic")
    demo.description = (
        "Start a simulated camera in a temporary directory and send it every topic of the protocol the way the "
        "panel does, printing each request and reply. Exits 0 when every step got its expected result. The "
        "upgrade step serves an image over HTTPS with a throwaway CA from trustme: "
        'pip install "iotvideo-signaling[demo]" (without it, that step is skipped).'
    )
    demo.add_argument("--log-level", type=str.lower, choices=LOG_LEVELS, help="default: warning")
    demo.set_defaults(run=_demo)

    image = commands.add_parser("make-firmware", help="write a simulated firmware image (for upgrade tests)")
    image.description = (
        "Write a firmware image that SimulatedHardware installs (its first line names the version) and print "
        "what an upgrade request needs: the MD5 and the size. Serve it over HTTPS and send "
        "'upgrade URL MD5 SIZE' to a simulated camera."
    )
    image.add_argument("path", help="the file to write")
    image.add_argument(
        "--firmware-version",
        dest="image_version",
        metavar="VERSION",
        required=True,
        help="the version it installs, e.g. V2.0.0",
    )
    image.add_argument("--size", type=int, default=1024 * 1024, help="bytes (default: 1 MiB)")
    image.set_defaults(run=_make_firmware)
    return parser


def _seconds(text: str) -> float:
    """``send --timeout``: a finite number of seconds above 0, refused while parsing."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of seconds greater than 0")
    return value


def _make_firmware(args: argparse.Namespace) -> int:
    from ._simfirmware import make_image  # noqa: PLC0415

    try:
        md5 = make_image(args.path, args.image_version, args.size)
    except (ValueError, OSError) as exc:
        _error("make-firmware", exc)
        return 2
    print(orjson.dumps({"path": args.path, "version": args.image_version, "md5": md5, "fileSize": args.size}).decode())
    return 0


def _configure_logging(level: str) -> None:
    journal = bool(os.environ.get("JOURNAL_STREAM"))  # journald adds its own timestamps
    fmt = "%(levelname)s %(name)s: %(message)s" if journal else "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level.upper(), format=fmt, stream=sys.stderr)


def _error(command: str, message: object) -> None:
    print(f"{PROG} {command}: error: {message}", file=sys.stderr)


# -- serve -------------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    from .server import ConfigError, Settings, load_settings, parse_listen, run  # noqa: PLC0415 - asyncio

    try:
        settings = load_settings(args.config) if args.config else Settings()
        if args.listen:
            settings = dataclasses.replace(settings, listen=tuple(parse_listen(url) for url in args.listen))
        if args.state_dir:
            settings = dataclasses.replace(settings, state_dir=Path(args.state_dir).expanduser())
        if args.panel:
            settings = _with_panel(settings, explicit=bool(args.listen))
    except ConfigError as exc:
        _error("serve", exc)
        return 2
    _configure_logging(args.log_level or settings.log_level or "info")
    try:
        status = run(settings, ready_file=args.ready_file)
    except ConfigError as exc:
        _error("serve", exc)
        return 2
    if status != 0:
        # Device.close() did not finish: its worker threads would keep the interpreter from
        # exiting, and the service manager expects us gone within seconds.
        logging.shutdown()
        sys.stdout.flush()
        os._exit(status)
    return 0


def _with_panel(settings: Settings, *, explicit: bool) -> Settings:
    """``--panel``: the page on the ws:// listeners; without one, a ws:// listener on a free
    loopback port is added, unless the listeners were given on the command line."""
    from .server import ConfigError, parse_listen  # noqa: PLC0415

    if not any(address.scheme == "ws" for address in settings.listen):
        if explicit:
            raise ConfigError("--panel needs a ws:// listener among the --listen URLs (e.g. ws://127.0.0.1:7131)")
        settings = dataclasses.replace(settings, listen=(*settings.listen, parse_listen("ws://127.0.0.1:0")))
    return dataclasses.replace(settings, panel=True)


# -- send --------------------------------------------------------------------------------------


def _send(args: argparse.Namespace) -> int:
    import asyncio  # noqa: PLC0415 - only the commands that talk to a daemon need it

    from .server import ClientError, ConfigError, exchange  # noqa: PLC0415
    from .server.client import reply_ok  # noqa: PLC0415
    from .server.listen import parse_target  # noqa: PLC0415

    _configure_logging(args.log_level or "warning")
    try:
        address = parse_target(args.to)
        commands = build_commands(args.commands)
    except (ConfigError, ValueError) as exc:
        _error("send", exc)
        return 2
    token = args.token or os.environ.get(TOKEN_ENV) or None

    def show(reply: bytes) -> None:
        print(reply.decode("utf-8", "replace"), flush=True)

    try:
        replies = asyncio.run(exchange(address, commands, token=token, timeout=args.timeout, on_reply=show))
    except ClientError as exc:
        _error("send", exc)
        return 1
    return 0 if all(reply_ok(reply) for reply in replies) else 1


_PTZ_ALIASES = {
    "up": "ptz_up_press",
    "down": "ptz_down_press",
    "left": "ptz_left_press",
    "right": "ptz_right_press",
    "release": "ptz_release_pre",
    "stop": "ptz_release_pre",
}

#: shorthand -> (operand names, builder of the JSON object's fields after topic and message_id)
_SHORTHANDS: dict[str, tuple[tuple[str, ...], Callable[[list[str]], dict[str, Any]]]] = {
    "get_status": ((), lambda _: {"user": "owner"}),
    "version": ((), lambda _: {"data": {}}),
    "sd_format": ((), lambda _: {}),
    "bind_status": ((), lambda _: {"status": "success"}),
    "intercom": ((), lambda _: {}),
    "Mirror_flip": (("MODE",), lambda ops: {"data": {"mode": ops[0]}}),
    "set_status": (("STATUS",), lambda ops: {"data": {"status": ops[0]}}),
    "ptz": (("DIRECTION",), lambda ops: {"data": {"cmd": _PTZ_ALIASES.get(ops[0], ops[0])}}),
    "upgrade": (("URL", "MD5", "SIZE"), lambda ops: {"data": {"url": ops[0], "md5": ops[1], "fileSize": _int(ops[2])}}),
}
_ALIASES = {"mirror_flip": "Mirror_flip"}
#: shorthand -> the values its operands may take (None: any); anything else is refused before
#: connecting (a full command string or a JSON object sends whatever it says)
_OPERAND_CHOICES: dict[str, tuple[tuple[str, ...] | None, ...]] = {
    "Mirror_flip": (FIELDS["Mirror_flip"][0].choices,),
    "set_status": (FIELDS["set_status"][0].choices,),
    "ptz": ((*_PTZ_ALIASES, *PTZ_COMMANDS),),
}
#: inner command -> parameter -> the values it may take (other parameters are sent as they are)
_INNER_CHOICES = {"get_device_st": {"type": STREAM_KINDS, "quality": _QUALITIES}}
_INNER = {
    "get_device_st": {"type": "live", "quality": "standard"},
    "get_record_index": {},
    "get_month_record": {},
    "get_file_list": {},
    "playback_pause": {},
    "playback_resume": {},
    "playback_seek": {},
    "playback_progress": {},
}


def _int(text: str) -> int:
    if not text.isdigit():
        raise ValueError(f"upgrade SIZE must be a number of bytes, not {text!r}")
    return int(text)


def build_commands(arguments: Sequence[str], message_ids: Iterator[int] | None = None) -> list[bytes]:
    """Turn ``send``'s arguments into command strings (see ``send --help``).

    An argument with spaces that is not a command string or JSON is split into words, so
    ``"ptz up"`` and ``ptz up`` mean the same.

    Raises:
        ValueError: an unknown shorthand, a missing operand, or an operand value the shorthand
            does not take (``ptz sideways``).
    """
    ids = message_ids if message_ids is not None else itertools.count(1)
    words: list[str] = []
    for argument in arguments:
        if argument.startswith(("action=", "{")):
            words.append(argument)
        else:
            words.extend(argument.split())
    commands: list[bytes] = []
    position = 0
    while position < len(words):
        word = words[position]
        position += 1
        if word.startswith("action="):
            commands.append(word.encode())
        elif word.startswith("{"):
            commands.append(_json_command(word, ids))
        elif word in _INNER:
            params = dict(_INNER[word])
            while position < len(words) and "=" in words[position] and not words[position].startswith("action="):
                name, _, value = words[position].partition("=")
                _check_operand(word, name, value, _INNER_CHOICES.get(word, {}).get(name))
                params[name] = value
                position += 1
            from urllib.parse import quote  # noqa: PLC0415 - the daemon does not need it

            query = "".join(f"&{quote(name, safe='')}={quote(value, safe='')}" for name, value in params.items())
            commands.append(f"action=inner_define&channel=0&cmd={word}{query}".encode())
        else:
            topic = _ALIASES.get(word, word)
            if topic not in _SHORTHANDS:
                known = ", ".join([*_SHORTHANDS, *_INNER])
                raise ValueError(f"unknown command {word!r}; use action=..., a JSON object, or one of: {known}")
            operands, build = _SHORTHANDS[topic]
            given = words[position : position + len(operands)]
            if len(given) < len(operands):
                raise ValueError(f"{topic} needs {' '.join(operands)}")
            position += len(operands)
            for operand, value, choices in zip(operands, given, _OPERAND_CHOICES.get(topic, ())):
                _check_operand(topic, operand, value, choices)
            body = {"topic": topic, "message_id": next(ids), **build(given)}
            commands.append(USER_DEFINE + orjson.dumps(body))
    return commands


def _check_operand(command: str, name: str, value: str, choices: Sequence[str] | None) -> None:
    if choices is not None and value not in choices:
        raise ValueError(f"{command} {name} {value!r} is not one of: {', '.join(choices)}")


def _json_command(text: str, ids: Iterator[int]) -> bytes:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text.encode()  # sent as it is: the device answers with its own error
    if not isinstance(value, dict):
        return text.encode()
    if "message_id" not in value:
        value["message_id"] = next(ids)
    return USER_DEFINE + orjson.dumps(value)


# -- demo --------------------------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo  # noqa: PLC0415 - http.server and ssl only for the demo

    _configure_logging(args.log_level or "warning")
    import tempfile  # noqa: PLC0415 - the daemon does not need it

    with tempfile.TemporaryDirectory(prefix="iotvideo-signaling-demo-") as state_dir:
        return run_demo(state_dir, print)
