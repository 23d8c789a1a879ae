"""Who gets a connection slot under attack: clients that hung up, refusals in a loop, idle holders.

Each test starts its own daemon (``serve`` as a subprocess, see test_server_harness.py) with a
small ``max_connections``; traffic only goes to loopback, and every client stops by itself.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from test_server_harness import LineClient, Served, command, running

TOO_MANY = b'{"confirmation_topic":"","result":"5","reason":"too many connections"}'
SLOTS = 4


def config(slots: int = SLOTS) -> str:
    return f"""
[device]
max_connections = {slots}
"""


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Served]:
    with running(tmp_path, "tcp://127.0.0.1:0", config=config()) as served:
        yield served


@contextlib.contextmanager
def stopped(served: Served) -> Iterator[None]:
    """The daemon is suspended (SIGSTOP): connections wait in its listen queue until it resumes."""
    served.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        served.process.send_signal(signal.SIGCONT)


def hang_up(url: str, *, reset: bool) -> None:
    """Connect and close at once: with a FIN, or with a reset (SO_LINGER 0)."""
    client = LineClient(url)
    if reset:
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()


def test_clients_that_hung_up_before_they_were_read_do_not_take_the_slots(daemon: Served) -> None:
    url = daemon.url("tcp")
    with stopped(daemon):  # the daemon accepts them all in one batch when it resumes
        for i in range(3 * SLOTS):
            hang_up(url, reset=i % 2 == 1)
        client = LineClient(url)
    with client:
        client.send(command("version", 1))
        line = client.line()
        assert line != TOO_MANY
        reply = orjson.loads(line)
        assert (reply["result"], reply["message_id"]) == ("0", 1)
    assert daemon.wait_log("closed by the client (before it was read)")


def test_refusals_in_a_loop_are_logged_once_a_while(daemon: Served) -> None:
    url = daemon.url("tcp")
    clients = [LineClient(url) for _ in range(SLOTS)]
    try:
        for attempt in range(40):
            if attempt % 10 == 0:  # the slot holders stay busy: none is idle enough to give way
                for i, client in enumerate(clients):
                    assert client.request(command("version", i))["result"] == "0"
            with LineClient(url) as extra:
                assert extra.line() == TOO_MANY
        assert daemon.log().count("refusing a tcp connection") == 1
    finally:
        for client in clients:
            client.close()
