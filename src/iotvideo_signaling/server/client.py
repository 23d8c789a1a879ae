"""A small client of the daemon's transports: send commands, collect their replies in order.

Commands are pipelined: a writer task sends them all while the replies are read as they come, so
a long list neither waits for each round trip nor deadlocks on full socket buffers. Over
``ws://``, event messages (``{"event": ...}``) are skipped. Over ``bridge://`` the client speaks
as the C shim would (docs/bridge-protocol.md): ``HELLO``, then each command as a ``COMMAND`` frame
of visitor 0 on channel 0; that checks the daemon's side of the bridge without the camera app.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Sequence
from typing import Any, Callable

import orjson

from .listen import ListenAddress

__all__ = ["ClientError", "exchange", "reply_ok"]

_MAX_REPLY = 1024 * 1024
_EVENT_PREFIX = '{"event":'


class ClientError(Exception):
    """The exchange failed: no connection, refused token, early close or timeout."""


def reply_ok(reply: bytes) -> bool:
    """True for a success: ``result "0"``, or ``status "0"`` (inner commands), or inner data."""
    try:
        value = orjson.loads(reply)
    except orjson.JSONDecodeError:
        return False
    items = value if isinstance(value, list) else [value]
    if not items:
        return False
    for item in items:
        if not isinstance(item, dict):
            return False
        if "result" in item:
            if item["result"] != "0":
                return False
        elif "status" in item and item["status"] != "0":
            return False
    return True


async def exchange(
    address: ListenAddress,
    commands: Sequence[bytes],
    *,
    token: str | None = None,
    timeout: float = 10.0,
    on_reply: Callable[[bytes], None] | None = None,
) -> list[bytes]:
    """Send ``commands`` over one connection and return their replies, in order.

    Args:
        address: the daemon's listener.
        commands: complete command strings, without newlines.
        token: sent first as ``AUTH <token>`` when given.
        timeout: seconds to wait for the connection and for each reply.
        on_reply: called with each reply as it arrives.

    Raises:
        ClientError: see the class.
    """
    if address.scheme == "bridge":
        if token:
            raise ClientError("bridge:// takes no token: its socket's file mode decides who may connect")
        return await _exchange_bridge(address, commands, timeout, on_reply)
    if address.scheme != "ws" and any(b"\n" in command for command in commands):
        raise ClientError("a command sent over tcp:// or unix:// cannot contain a newline")
    if address.scheme == "ws":
        return await _exchange_ws(address, commands, token, timeout, on_reply)
    return await _exchange_lines(address, commands, token, timeout, on_reply)


async def _exchange_lines(
    address: ListenAddress,
    commands: Sequence[bytes],
    token: str | None,
    timeout: float,
    on_reply: Callable[[bytes], None] | None,
) -> list[bytes]:
    if address.scheme == "unix":
        opening = asyncio.open_unix_connection(address.path, limit=_MAX_REPLY)
    else:
        opening = asyncio.open_connection(address.host, address.port, limit=_MAX_REPLY)

    async def write_all(writer: asyncio.StreamWriter) -> None:
        lines = [b"AUTH " + token.encode()] if token else []
        lines.extend(commands)
        for start in range(0, len(lines), 256):
            writer.write(b"".join(line + b"\n" for line in lines[start : start + 256]))
            await writer.drain()

    async def read_one(reader: asyncio.StreamReader) -> bytes:
        line = await asyncio.wait_for(reader.readline(), timeout)
        if not line.endswith(b"\n"):
            raise ClientError(f"{address} closed the connection")
        return line[:-1]

    return await _exchange_stream(
        address, opening, timeout=timeout, write_all=write_all, read_one=read_one, count=len(commands), token=token,
        on_reply=on_reply,
    )


async def _exchange_stream(
    address: ListenAddress,
    opening: Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]],
    *,
    timeout: float,
    write_all: Callable[[asyncio.StreamWriter], Awaitable[None]],
    read_one: Callable[[asyncio.StreamReader], Awaitable[bytes]],
    count: int,
    token: str | None,
    on_reply: Callable[[bytes], None] | None,
) -> list[bytes]:
    """Connect, write everything from a task while ``count`` replies are read, close."""
    try:
        reader, writer = await asyncio.wait_for(opening, timeout)
    except (OSError, asyncio.TimeoutError) as exc:
        raise _cannot_connect(address, exc) from None
    writing = asyncio.ensure_future(write_all(writer))
    try:
        return await _collect(lambda: read_one(reader), count, token, on_reply)
    except asyncio.TimeoutError:
        raise ClientError(f"no reply from {address} within {timeout:g} s") from None
    except asyncio.IncompleteReadError:
        raise ClientError(f"{address} closed the connection") from None
    except (OSError, asyncio.LimitOverrunError) as exc:
        raise ClientError(f"connection to {address} failed: {_why(exc)}") from None
    finally:
        _cancel(writing)
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _exchange_ws(
    address: ListenAddress,
    commands: Sequence[bytes],
    token: str | None,
    timeout: float,
    on_reply: Callable[[bytes], None] | None,
) -> list[bytes]:
    try:
        from websockets.asyncio.client import connect  # noqa: PLC0415 - optional dependency
        from websockets.exceptions import WebSocketException  # noqa: PLC0415
    except ImportError:
        raise ClientError("ws:// needs the 'websockets' package: pip install 'iotvideo-signaling[server]'") from None
    try:
        ws = await connect(str(address), compression=None, max_size=_MAX_REPLY, open_timeout=timeout)
    except (OSError, asyncio.TimeoutError, WebSocketException) as exc:
        raise _cannot_connect(address, exc) from None

    async def write_all() -> None:
        if token:
            await ws.send("AUTH " + token)
        for command in commands:
            try:
                await ws.send(command.decode())
            except UnicodeDecodeError:
                await ws.send(command)  # not UTF-8: a binary message

    async def read_one() -> bytes:
        while True:
            message: Any = await asyncio.wait_for(ws.recv(), timeout)
            text = message if isinstance(message, str) else message.decode("utf-8", "replace")
            if not text.startswith(_EVENT_PREFIX):
                return text.encode()

    writing = asyncio.ensure_future(write_all())
    try:
        return await _collect(read_one, len(commands), token, on_reply)
    except asyncio.TimeoutError:
        raise ClientError(f"no reply from {address} within {timeout:g} s") from None
    except (OSError, WebSocketException) as exc:
        raise ClientError(f"connection to {address} failed: {_why(exc)}") from None
    finally:
        _cancel(writing)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), 2)


async def _exchange_bridge(
    address: ListenAddress,
    commands: Sequence[bytes],
    timeout: float,
    on_reply: Callable[[bytes], None] | None,
) -> list[bytes]:
    from .bridge import HEADER, MAX_BODY, VERSION, FrameType, frame  # noqa: PLC0415

    if any(len(command) > MAX_BODY for command in commands):
        raise ClientError(f"a command sent over bridge:// is at most {MAX_BODY} bytes")

    async def write_all(writer: asyncio.StreamWriter) -> None:
        writer.write(frame(FrameType.HELLO, b"iotvideo-signaling send", arg=VERSION))
        for ident, command in enumerate(commands, 1):
            writer.write(frame(FrameType.COMMAND, command, ident=ident))
            await writer.drain()

    async def read_frame(reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
        header = await asyncio.wait_for(reader.readexactly(HEADER.size), timeout)
        length, kind, _, _, ident, _, _ = HEADER.unpack(header)
        if length > MAX_BODY:
            raise ClientError(f"{address} sent a frame of {length} bytes")
        body = await asyncio.wait_for(reader.readexactly(length), timeout)
        if kind == FrameType.ERROR:
            raise ClientError(f"{address} answered an error: {body.decode('ascii', 'replace')}")
        return kind, ident, body

    expected = 0  # the id of the next reply; 0: the WELCOME comes first

    async def read_one(reader: asyncio.StreamReader) -> bytes:
        nonlocal expected
        if expected == 0:
            kind, _, _ = await read_frame(reader)
            if kind != FrameType.WELCOME:
                raise ClientError(f"{address} did not welcome the connection (frame type {kind})")
            expected = 1
        kind, ident, body = await read_frame(reader)
        if kind != FrameType.REPLY or ident != expected:
            raise ClientError(f"{address} answered frame type {kind} for request {ident}")
        expected += 1
        return body

    opening = asyncio.open_unix_connection(address.path)
    return await _exchange_stream(
        address, opening, timeout=timeout, write_all=write_all, read_one=read_one, count=len(commands), token=None,
        on_reply=on_reply,
    )


async def _collect(
    read_one: Callable[[], Awaitable[bytes]], count: int, token: str | None, on_reply: Callable[[bytes], None] | None
) -> list[bytes]:
    """Read the AUTH answer (when a token was sent), then ``count`` replies in order."""
    if token:
        _check_auth(await read_one())
    replies = []
    for _ in range(count):
        reply = await read_one()
        replies.append(reply)
        if on_reply is not None:
            on_reply(reply)
    return replies


def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel the writer; its error, if it had one, is the reader's too and already reported."""
    task.cancel()
    task.add_done_callback(lambda done: done.cancelled() or done.exception())


def _check_auth(reply: bytes) -> None:
    if not reply_ok(reply):
        try:
            answer = orjson.loads(reply)
            reason, result = answer.get("reason", ""), answer.get("result")
        except (orjson.JSONDecodeError, AttributeError):
            reason, result = "", None
        if result == "5":  # the token was fine (or not looked at): the daemon is full
            raise ClientError(f"the server refused the connection: {reason or 'too many connections'}")
        raise ClientError(f"the server refused the token{': ' + reason if reason else ''}")


def _cannot_connect(address: ListenAddress, exc: BaseException) -> ClientError:
    if isinstance(exc, socket.gaierror):
        return ClientError(f"cannot connect to {address}: cannot resolve the host {address.host!r} ({_why(exc)})")
    return ClientError(f"cannot connect to {address}: {_why(exc)}")


def _why(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
