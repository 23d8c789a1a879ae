"""The daemon's half of the bridge (docs/bridge-protocol.md): frames, sessions, channels, the listener.

:class:`BridgePeer` is tested without a socket (frames in, frames out), including every row of the
malformed-frame table and any split of the byte stream; :class:`BridgeListener` and the bridge-only
daemon on real Unix sockets. The C shim's own tests are in test_bridge_shim.py.
"""

from __future__ import annotations

import os
import socket
import stat
import struct
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from iotvideo_signaling import Device, SimulatedHardware
from iotvideo_signaling.server import ConfigError, Settings, load_settings, parse_listen
from iotvideo_signaling.server.bridge import (
    HEADER,
    MAX_BODY,
    MAX_BRIDGE_CONNECTIONS,
    BridgeListener,
    BridgePeer,
    FrameType,
    frame,
)
from iotvideo_signaling.server.process import build_devices
from test_server_harness import LineClient, command, run_cli, running

GET_STATUS = b'{"topic":"get_status","message_id":5}'

Frame = tuple[int, int, int, int, int, bytes]  # type, arg, id, visitor, channel, body


def parse_frames(data: bytes) -> list[Frame]:
    """Split ``data`` into frames; it must hold whole frames only."""
    frames = []
    pos = 0
    while pos < len(data):
        length, kind, arg, reserved, ident, visitor, channel = HEADER.unpack_from(data, pos)
        assert reserved == 0
        body = data[pos + HEADER.size : pos + HEADER.size + length]
        assert len(body) == length
        frames.append((kind, arg, ident, visitor, channel, body))
        pos += HEADER.size + length
    return frames


HELLO = frame(FrameType.HELLO, b"test", arg=1)


class Peer:
    """A BridgePeer fed whole byte strings; answers come back parsed."""

    def __init__(self, devices: dict[int, Device], *, greet: bool = True) -> None:
        self.peer = BridgePeer(devices, "bridge-t")
        self.closed = False
        if greet:
            (welcome,) = self.send(HELLO)
            assert welcome[0] == FrameType.WELCOME

    def send(self, data: bytes) -> list[Frame]:
        result = self.peer.feed(memoryview(data))
        assert result.consumed == len(data) or result.close
        self.closed = result.close
        return parse_frames(b"".join(result.out))

    def command(self, body: bytes, *, visitor: int = 1, channel: int = 0, ident: int = 9) -> dict[str, Any]:
        (answer,) = self.send(frame(FrameType.COMMAND, body, ident=ident, visitor=visitor, channel=channel))
        assert answer[0] == FrameType.REPLY and answer[2] == ident
        reply: dict[str, Any] = orjson.loads(answer[5])
        return reply

    def event(self, kind: int, *, visitor: int = 1, channel: int = 0, arg: int = 0) -> None:
        assert self.send(frame(kind, arg=arg, visitor=visitor, channel=channel)) == []

    def stream(self, visitor: int, request_type: int, *, channel: int = 0) -> tuple[int, bytes]:
        request = frame(FrameType.STREAM_REQUEST, arg=request_type, ident=77, visitor=visitor, channel=channel)
        (answer,) = self.send(request)
        assert answer[0] == FrameType.STREAM_ANSWER and answer[2] == 77
        return answer[1], answer[5]


@pytest.fixture
def peer(device: Device) -> Peer:
    return Peer({0: device})


def status(peer: Peer, visitor: int = 1) -> dict[str, Any]:
    return peer.command(GET_STATUS, visitor=visitor)


# -- the handshake and the malformed-frame table ---------------------------------------------


def test_hello_is_answered_with_welcome_and_the_version(device: Device) -> None:
    p = Peer({0: device}, greet=False)
    (welcome,) = p.send(HELLO)
    assert welcome[:3] == (FrameType.WELCOME, 1, 0)
    assert welcome[5].startswith(b"iotvideo-signaling ")
    assert not p.closed


@pytest.mark.parametrize(
    ("first", "reason"),
    [
        (frame(FrameType.COMMAND, GET_STATUS, ident=1), b"expected HELLO"),
        (frame(FrameType.HELLO, b"x", arg=2), b"unsupported bridge protocol version 2 (this daemon speaks 1)"),
        (frame(FrameType.HELLO, b"x" * 65, arg=1), b"HELLO body longer than 64 bytes"),
    ],
)
def test_a_bad_start_is_a_fatal_error(device: Device, first: bytes, reason: bytes) -> None:
    p = Peer({0: device}, greet=False)
    assert p.send(first) == [(FrameType.ERROR, 1, 0, 0, 0, reason)]
    assert p.closed


def test_a_frame_over_the_limit_is_fatal_before_its_body_arrives(peer: Peer) -> None:
    header = HEADER.pack(MAX_BODY + 1, FrameType.COMMAND, 0, 0, 3, 0, 0)
    assert peer.send(header) == [(FrameType.ERROR, 1, 3, 0, 0, b"frame too large")]
    assert peer.closed


def test_the_largest_frame_is_accepted(peer: Peer) -> None:
    body = b'{"topic":"get_status","message_id":5,"pad":"' + b"x" * (MAX_BODY - 50) + b'"}'
    body = body[: MAX_BODY - 2] + b'"}'
    reply = peer.command(body)
    assert reply["result"] == "1"  # longer than max_message_size: the Device's own answer
    assert not peer.closed


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (HELLO, b"HELLO already received"),
        (frame(99, ident=4), b"unknown frame type 99"),
        (HEADER.pack(0, FrameType.TALK_START, 0, 1, 4, 0, 0), b"reserved bits set"),
        (frame(FrameType.COMMAND, GET_STATUS, ident=0), b"a request needs a non-zero id"),
        (frame(FrameType.STREAM_REQUEST, ident=0), b"a request needs a non-zero id"),
        (frame(FrameType.TALK_START, b"x", ident=4), b"unexpected body"),
        (frame(FrameType.STREAM_REQUEST, b"x", ident=4), b"unexpected body"),
        (frame(FrameType.SET_ROLE, arg=2, ident=4), b"bad arg 2"),
        (frame(FrameType.STREAM_REQUEST, arg=2, ident=4), b"bad arg 2"),
    ],
)
def test_a_malformed_frame_gets_an_error_and_the_connection_goes_on(peer: Peer, data: bytes, reason: bytes) -> None:
    answers = peer.send(data)
    assert [answer[:3] for answer in answers] == [(FrameType.ERROR, 0, HEADER.unpack_from(data)[4])]
    assert answers[0][5] == reason
    assert not peer.closed
    assert status(peer)["result"] == "0"


@pytest.mark.parametrize(
    "body",
    [
        GET_STATUS,
        b'action=user_define&channel=0&cmd={"topic":"get_status","message_id":5}',
        b'{"topic":"get_status","message_id":5,}',  # the original document's trailing commas
        b"",
        b"\xff\xfe garbage",
        b"action=inner_define&channel=0&cmd=get_device_st&type=live&quality=high",
    ],
)
def test_every_command_body_gets_a_json_reply(peer: Peer, body: bytes) -> None:
    (answer,) = peer.send(frame(FrameType.COMMAND, body, ident=12, visitor=2))
    assert answer[0] == FrameType.REPLY and answer[2] == 12
    assert answer[5] and b"\0" not in answer[5]
    orjson.loads(answer[5])


# -- sessions from the SDK's events ------------------------------------------------------------


def test_viewers_count_per_visitor_across_resolutions(peer: Peer) -> None:
    assert status(peer, 9)["user_num"] == 1  # (the asker counts itself once)
    peer.event(FrameType.VIEWER_START, visitor=1, arg=0)
    peer.event(FrameType.VIEWER_START, visitor=1, arg=1)  # the same visitor's second stream
    peer.event(FrameType.VIEWER_START, visitor=2, arg=0)
    assert status(peer, 9)["user_num"] == 3
    peer.event(FrameType.VIEWER_STOP, visitor=1, arg=0)
    assert status(peer, 9)["user_num"] == 3  # visitor 1 still watches its other stream
    peer.event(FrameType.VIEWER_STOP, visitor=1, arg=1)
    assert status(peer, 9)["user_num"] == 2
    peer.event(FrameType.PEER_LOST, visitor=2)
    assert status(peer, 9)["user_num"] == 1


def test_talk_back_drives_the_intercom_and_stream_admission(peer: Peer) -> None:
    intercom = b'{"topic":"intercom","message_id":1}'
    assert peer.command(intercom)["status"] == "unused"
    assert peer.stream(1, 1) == (0, b"0")
    peer.event(FrameType.TALK_START, visitor=1)
    assert peer.command(intercom, visitor=2)["status"] == "using"
    assert peer.stream(2, 1) == (1, b"1")  # someone else talks
    assert peer.stream(1, 1) == (0, b"0")  # the talker itself may
    assert peer.stream(2, 0) == (0, b"0")  # watching is another matter
    peer.event(FrameType.TALK_STOP, visitor=1)
    assert peer.stream(2, 1) == (0, b"0")


def test_standby_and_too_many_viewers_refuse_streams(peer: Peer, device: Device) -> None:
    for visitor in range(device.config.max_connections):
        peer.event(FrameType.VIEWER_START, visitor=visitor)
    assert peer.stream(100, 0) == (1, b"405")
    assert peer.stream(0, 0) == (0, b"0")  # one already watching may ask again
    assert peer.command(b'{"topic":"set_status","message_id":1,"status":"standby"}')["result"] == "0"
    assert peer.stream(0, 0) == (1, b"1")


def test_a_lost_peer_stops_its_ptz_move(device: Device) -> None:
    motor = device.hardware.motor  # type: ignore[attr-defined]
    p = Peer({0: device})
    assert p.command(b'{"topic":"ptz","message_id":3,"data":{"cmd":"ptz_up_press"}}', visitor=4)["result"] == "0"
    assert motor.moving == "up"
    p.event(FrameType.PEER_LOST, visitor=5)  # another visitor's loss changes nothing
    assert motor.moving == "up"
    p.event(FrameType.PEER_LOST, visitor=4)
    assert motor.moving is None


def test_the_end_of_a_connection_closes_its_sessions(peer: Peer, device: Device) -> None:
    peer.event(FrameType.VIEWER_START, visitor=1)
    peer.event(FrameType.TALK_START, visitor=2)
    other = Peer({0: device})
    assert status(other, 9)["user_num"] == 2
    peer.peer.close_all("closed by the shim")
    assert status(other, 9)["user_num"] == 1
    assert other.command(b'{"topic":"intercom","message_id":1}')["status"] == "unused"


def test_resync_forgets_the_sessions_and_the_replay_restores_them(peer: Peer) -> None:
    peer.event(FrameType.VIEWER_START, visitor=1)
    peer.event(FrameType.VIEWER_START, visitor=2)
    peer.event(FrameType.RESYNC)
    assert status(peer, 9)["user_num"] == 1
    peer.event(FrameType.VIEWER_START, visitor=2)
    assert status(peer, 9)["user_num"] == 2


def test_set_role_makes_a_sharer_and_sessions_start_with_the_default_role(tmp_path: Path) -> None:
    from iotvideo_signaling import DeviceConfig

    with Device(SimulatedHardware(tmp_path / "cam"), config=DeviceConfig(default_role="sharer")) as device:
        p = Peer({0: device})
        fmt = b'{"topic":"sd_format","message_id":2}'
        assert p.command(fmt, visitor=1)["result"] == "6"  # default_role applies to SDK visitors
        p.event(FrameType.SET_ROLE, visitor=1, arg=0)
        assert device.role("bridge-t:0:1") == "owner"
        p.event(FrameType.SET_ROLE, visitor=1, arg=1)
        assert p.command(fmt, visitor=1)["result"] == "6"


# -- channels ----------------------------------------------------------------------------------


def test_commands_and_events_are_routed_by_channel(tmp_path: Path) -> None:
    with Device(SimulatedHardware(tmp_path / "a")) as one, Device(SimulatedHardware(tmp_path / "b")) as two:
        p = Peer({1: one, 2: two})
        assert p.command(b'{"topic":"Mirror_flip","message_id":1,"mode":"flip"}', channel=2)["result"] == "0"
        assert one.hardware.flip == "normal"  # type: ignore[attr-defined]
        assert two.hardware.flip == "flip"  # type: ignore[attr-defined]
        p.event(FrameType.VIEWER_START, visitor=1, channel=1)
        assert p.command(GET_STATUS, visitor=9, channel=1)["user_num"] == 2
        assert p.command(GET_STATUS, visitor=9, channel=2)["user_num"] == 1
        refused = p.command(GET_STATUS, channel=0)
        assert refused == {
            "confirmation_topic": "",
            "result": "3",
            "reason": "no camera on channel 0",
            "message_id": 5,
        }
        assert p.stream(1, 0, channel=7) == (1, b"404")
        p.event(FrameType.VIEWER_START, visitor=1, channel=7)  # dropped, logged once


def test_the_nvr_config_gives_each_channel_its_own_camera(tmp_path: Path) -> None:
    config = tmp_path / "nvr.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [server]
            state_dir = "{tmp_path / "state"}"
            [hardware]
            signal_strength = 60
            [channels.1]
            [channels.2]
            signal_strength = 40
            """
        )
    )
    settings = load_settings(config)
    assert settings.channel_numbers() == (1, 2)
    devices = build_devices(settings)
    try:
        p = Peer(devices)
        assert p.command(GET_STATUS, channel=1)["signal_strength"] == 60
        assert p.command(GET_STATUS, channel=2)["signal_strength"] == 40
        assert (tmp_path / "state" / "channel-2").is_dir()
    finally:
        for device in devices.values():
            device.close()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("[channels.x]", "a channel is a decimal number"),
        ("[channels]\n1 = 5", "must be a table"),
        ("[channels.1]\nclass = 'nope'", "class must be a string"),
        ("[channels.1]\n[channels.01]", "listed twice"),
    ],
)
def test_bad_channel_tables_are_refused(tmp_path: Path, table: str, message: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(table + "\n")
    with pytest.raises(ConfigError, match=message):
        load_settings(config)


def test_a_single_camera_has_only_channel_zero() -> None:
    settings = Settings()
    assert settings.channel_numbers() == (0,)
    assert settings.for_channel(0) is settings
    with pytest.raises(ConfigError, match="no camera on channel 1"):
        settings.for_channel(1)


# -- the byte stream may be cut anywhere ----------------------------------------------------------


@given(cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_any_split_of_the_stream_gives_the_same_answers(
    tmp_path_factory: pytest.TempPathFactory, cuts: list[int]
) -> None:
    stream = b"".join(
        [
            HELLO,
            frame(FrameType.VIEWER_START, visitor=1),
            frame(FrameType.COMMAND, GET_STATUS, ident=1, visitor=2),
            frame(99, ident=2),
            frame(FrameType.STREAM_REQUEST, ident=3, visitor=2),
            frame(FrameType.COMMAND, b'{"topic":"version","message_id":"v"}', ident=4, visitor=2),
        ]
    )
    with Device(SimulatedHardware(tmp_path_factory.mktemp("cam"))) as device:
        peer = BridgePeer({0: device}, "bridge-s")
        buffer = b""
        out: list[bytes] = []
        pos = 0
        for cut in [*sorted({min(cut, len(stream)) for cut in cuts}), len(stream)]:
            buffer += stream[pos:cut]
            pos = max(pos, cut)
            result = peer.feed(memoryview(buffer))
            out.extend(result.out)
            buffer = buffer[result.consumed :]
        assert buffer == b""
        kinds = [(kind, ident) for kind, _, ident, _, _, _ in parse_frames(b"".join(out))]
        assert kinds == [
            (FrameType.WELCOME, 0),
            (FrameType.REPLY, 1),
            (FrameType.ERROR, 2),
            (FrameType.STREAM_ANSWER, 3),
            (FrameType.REPLY, 4),
        ]


# -- the listener on a real socket ---------------------------------------------------------------


class Client:
    """A blocking bridge client for tests."""

    def __init__(self, path: Path, *, hello: bool = True) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(str(path))
        if hello:
            self.sock.sendall(HELLO)
            assert self.receive()[0] == FrameType.WELCOME

    def receive(self) -> Frame:
        header = self._exactly(HEADER.size)
        if not header:
            raise EOFError
        length, kind, arg, _, ident, visitor, channel = HEADER.unpack(header)
        return kind, arg, ident, visitor, channel, self._exactly(length)

    def _exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                return data
            data += chunk
        return data

    def command(self, body: bytes, ident: int = 1, visitor: int = 1) -> dict[str, Any]:
        self.sock.sendall(frame(FrameType.COMMAND, body, ident=ident, visitor=visitor))
        answer = self.receive()
        assert answer[:3] == (FrameType.REPLY, 0, ident)
        reply: dict[str, Any] = orjson.loads(answer[5])
        return reply

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener(tmp_path: Path, device: Device) -> Iterator[BridgeListener]:
    bridge = BridgeListener(parse_listen(f"bridge://{tmp_path}/bridge.sock"), {0: device})
    bridge.start()
    try:
        yield bridge
    finally:
        bridge.stop()


def test_the_listener_answers_many_requests_in_flight(listener: BridgeListener, tmp_path: Path) -> None:
    client = Client(tmp_path / "bridge.sock")
    frames = b"".join(
        frame(FrameType.COMMAND, b'{"topic":"get_status","message_id":%d}' % n, ident=n, visitor=n % 7)
        for n in range(1, 501)
    )
    client.sock.sendall(frames)
    for n in range(1, 501):
        kind, _, ident, _, _, body = client.receive()
        assert (kind, ident, orjson.loads(body)["message_id"]) == (FrameType.REPLY, n, n)
    client.close()


def test_the_socket_is_0660_and_removed_at_stop(tmp_path: Path, device: Device) -> None:
    path = tmp_path / "bridge.sock"
    bridge = BridgeListener(parse_listen(f"bridge://{path}"), {0: device})
    bridge.start()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
    bridge.stop()
    assert not path.exists()


def test_a_live_bridge_socket_is_not_taken_over(listener: BridgeListener, tmp_path: Path, device: Device) -> None:
    second = BridgeListener(parse_listen(f"bridge://{tmp_path}/bridge.sock"), {0: device})
    with pytest.raises(ConfigError, match="another server is listening there"):
        second.start()


def test_a_dropped_connection_closes_its_sessions(listener: BridgeListener, tmp_path: Path, device: Device) -> None:
    client = Client(tmp_path / "bridge.sock")
    client.sock.sendall(frame(FrameType.VIEWER_START, visitor=3))
    assert client.command(GET_STATUS, visitor=9)["user_num"] == 2
    closed = threading.Event()
    unsubscribe = device.subscribe(lambda event: closed.set() if event.data.get("state") == "closed" else None)
    client.close()
    assert closed.wait(10)
    unsubscribe()
    assert orjson.loads(device.handle(GET_STATUS))["user_num"] == 1


def test_connections_beyond_the_limit_are_told_and_closed(listener: BridgeListener, tmp_path: Path) -> None:
    clients = [Client(tmp_path / "bridge.sock") for _ in range(MAX_BRIDGE_CONNECTIONS)]
    extra = Client(tmp_path / "bridge.sock", hello=False)
    assert extra.receive() == (FrameType.ERROR, 1, 0, 0, 0, b"too many bridge connections")
    with pytest.raises(EOFError):
        extra.receive()
    for client in clients:
        assert client.command(GET_STATUS)["result"] == "0"
        client.close()


def test_a_fatal_error_closes_the_connection(listener: BridgeListener, tmp_path: Path) -> None:
    client = Client(tmp_path / "bridge.sock", hello=False)
    client.sock.sendall(struct.pack("!I", MAX_BODY + 1) + bytes(16))
    assert client.receive()[:2] == (FrameType.ERROR, 1)
    with pytest.raises(EOFError):
        client.receive()


# -- the bridge-only daemon: no asyncio ------------------------------------------------------------


def test_a_bridge_only_daemon_runs_without_asyncio(tmp_path: Path) -> None:
    """run() in a fresh interpreter: it serves the bridge, stops on SIGTERM, and never imports asyncio."""
    script = textwrap.dedent(
        f"""
        import os, signal, socket, sys, threading, time
        from pathlib import Path
        from iotvideo_signaling.server import Settings, parse_listen, run
        ready = Path({str(tmp_path / "ready")!r})

        def client():
            while not ready.exists():
                time.sleep(0.02)
            sock = socket.socket(socket.AF_UNIX)
            sock.connect({str(tmp_path / "b.sock")!r})
            sock.sendall(bytes.fromhex({(HELLO + frame(FrameType.COMMAND, GET_STATUS, ident=1)).hex()!r}))
            data = b""
            while data.count(b"message_id") < 1:
                data += sock.recv(4096)
            print("REPLY", data[data.index(b'{{"confirmation'):].decode(), flush=True)
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=client, daemon=True).start()
        listen = (parse_listen("bridge://{tmp_path / "b.sock"}"),)
        settings = Settings(listen=listen, state_dir=Path({str(tmp_path / "st")!r}))
        status = run(settings, ready_file=ready)
        print("STATUS", status, "asyncio" in sys.modules, flush=True)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert orjson.loads(lines["REPLY"])["result"] == "0"
    assert lines["STATUS"] == "0 False"
    assert not (tmp_path / "ready").exists()
    assert not (tmp_path / "b.sock").exists()


# -- the daemon process: bridge beside our own transports, and the send client ---------------------


def test_the_daemon_serves_the_bridge_beside_tcp_and_send_speaks_bridge(tmp_path: Path) -> None:

    with running(tmp_path, "tcp://127.0.0.1:0", "bridge://{sockets}/bridge.sock") as served:
        bridge_url = served.url("bridge")
        client = Client(Path(bridge_url[len("bridge://") :]))
        client.sock.sendall(frame(FrameType.VIEWER_START, visitor=3) + frame(FrameType.TALK_START, visitor=3))
        assert client.command(GET_STATUS)["result"] == "0"  # (the events before it are applied)
        with LineClient(served.url("tcp")) as line:
            assert line.request(command("get_status", 1))["user_num"] == 2  # the SDK's viewer and this connection
            assert line.request(command("intercom", 2))["status"] == "using"
        sent = run_cli("send", "--to", bridge_url, "get_status", "version")
        assert sent.returncode == 0, sent.stderr
        replies = [orjson.loads(line) for line in sent.stdout.splitlines()]
        assert [reply["confirmation_topic"] for reply in replies] == ["get_status", "version"]
        refused = run_cli("send", "--to", bridge_url, "--token", "x" * 20, "get_status")
        assert refused.returncode != 0 and "bridge:// takes no token" in refused.stderr
        client.close()
    assert "bridge-1 connected" in served.log()
