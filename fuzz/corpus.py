"""The seed corpus, made from the tests' vectors and the original document's examples.

Nothing here is copied by hand: the commands come from ``tests/spec_examples.py`` (the document's
request and reply examples, and its helpers that frame a payload as the panel, the SDK's bare
payload or an ``inner_define`` command does), the request layer's own field table
(``protocol.FIELDS``: every topic with every allowed value), the legacy PTZ tokens, a channel on
each side of its limit, and the files in ``tests/data`` (JSONTestSuite's documents, the
WHATWG/CPython urlencoded inputs).

:func:`seeds` gives a harness's seeds in memory; ``python -m fuzz corpus DIR`` writes them, one
file per seed named by its SHA-1 as libFuzzer names its own, to ``DIR/<harness>/``. The scripts
build the corpus at run time into their work directory; none of it is committed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import orjson

from fuzz.oracle import REPLY_EXAMPLES, REQUEST_EXAMPLES, TESTS, bare, inner, panel
from iotvideo_signaling.protocol import FIELDS
from iotvideo_signaling.server.bridge import FrameType, frame
from iotvideo_signaling.topics import LEGACY_PTZ

__all__ = ["MAX_SEED", "commands", "json_documents", "seeds", "streams", "write"]

DATA = TESTS / "data"
#: Seeds longer than this are left out (``fuzz/run`` caps inputs at 4096 bytes too).
MAX_SEED = 4096
#: ``channel`` must be below this (docs/protocol.md §2.3).
CHANNEL_LIMIT = 2**32

_INNER = {
    "get_device_st": {"type": "live", "quality": "high"},
    "get_record_index": {"start_time": "1700000000", "end_time": "1700086400"},
    "get_month_record": {"time": "202402"},
    "get_file_list": {"start_time": "1700000000", "end_time": "1700086400", "file_type": "1"},
    "playback_pause": {},
    "playback_resume": {},
    "playback_seek": {"progress": "1500"},
    "playback_progress": {},
}


def json_documents() -> Iterator[bytes]:
    """JSON texts: JSONTestSuite's accepted and rejected documents, the document's examples."""
    for path in sorted((DATA / "jsontestsuite" / "test_parsing").glob("[yn]_*.json")):
        yield path.read_bytes()
    for text in (*REQUEST_EXAMPLES.values(), *REPLY_EXAMPLES.values()):
        yield text.encode()


def _requests() -> Iterator[bytes]:
    """Compact requests for every built-in topic and every allowed value of its fields."""
    for number, (topic, fields) in enumerate(FIELDS.items()):
        yield orjson.dumps({"topic": topic, "message_id": number})
        for field in fields:
            for value in field.choices or ("https://example.com/f.bin" if field.kind is str else 1024,):
                yield orjson.dumps({"topic": topic, "message_id": number, "data": {field.name: value}})


def commands() -> Iterator[bytes]:
    """Command strings, each as it reaches ``Device.handle``."""
    for text in REQUEST_EXAMPLES.values():  # the document's examples: indented, trailing commas
        yield panel(text)
        yield bare(text)
    for request in _requests():
        yield panel(request)
        yield panel(quote(request.decode(), safe=""))  # percent-encoded JSON (docs/protocol.md §2.5)
    for token in LEGACY_PTZ:
        yield f"action=user_define&channel=0&cmd={token}".encode()
    for channel in (CHANNEL_LIMIT - 1, CHANNEL_LIMIT):  # each side of the documented limit
        yield f"action=user_define&channel={channel}&cmd=ptz_left".encode()
    for cmd, params in _INNER.items():
        yield inner(cmd, **params)
    cases = json.loads((DATA / "urlencoded.json").read_text(encoding="utf-8"))["cases"]
    for case in cases:  # extra parameters, as the form-urlencoded suites write them
        yield inner("get_device_st", type="live") + b"&" + case["input"].encode("utf-8", "surrogatepass")
    for document in json_documents():
        yield panel(document)


def streams() -> Iterator[bytes]:
    """Byte streams of one bridge connection: a greeting, then commands and events."""
    hello = frame(FrameType.HELLO, b"fuzz", arg=1)
    for ident, command in enumerate(commands(), 1):
        yield hello + frame(FrameType.COMMAND, command, ident=ident, visitor=7)
    get_status = panel(b'{"topic":"get_status","message_id":1}')
    yield hello + b"".join(
        frame(kind, body, arg=arg, ident=ident, visitor=visitor, channel=channel)
        for kind, body, arg, ident, visitor, channel in (
            (FrameType.VIEWER_START, b"", 0, 0, 1, 0),
            (FrameType.STREAM_REQUEST, b"", 0, 2, 1, 0),
            (FrameType.STREAM_REQUEST, b"", 1, 3, 2, 0),
            (FrameType.TALK_START, b"", 0, 0, 2, 0),
            (FrameType.COMMAND, get_status, 0, 4, 1, 0),
            (FrameType.SET_ROLE, b"", 1, 0, 2, 0),
            (FrameType.COMMAND, panel(b'{"topic":"sd_format","message_id":2}'), 0, 5, 2, 0),
            (FrameType.COMMAND, get_status, 0, 6, 1, 1),  # a channel without a camera
            (FrameType.TALK_STOP, b"", 0, 0, 2, 0),
            (FrameType.VIEWER_STOP, b"", 0, 0, 1, 0),
            (FrameType.PEER_LOST, b"", 0, 0, 2, 0),
            (FrameType.RESYNC, b"", 0, 0, 0, 0),
            (FrameType.HELLO, b"", 1, 7, 0, 0),
            (99, b"", 0, 8, 0, 0),
        )
    )


_SOURCES = {
    "parse_command": commands,
    "decode_command": commands,
    "loads": json_documents,
    "device": commands,
    "bridge": streams,
}


def seeds(harness: str) -> list[bytes]:
    """The seeds of ``harness``, without duplicates or seeds over :data:`MAX_SEED` bytes."""
    return list(dict.fromkeys(seed for seed in _SOURCES[harness]() if len(seed) <= MAX_SEED))


def write(directory: Path, harnesses: list[str]) -> dict[str, int]:
    """Write the seeds of each harness to ``directory/<harness>/``; returns how many each has."""
    counts = {}
    for harness in harnesses:
        folder = directory / harness
        folder.mkdir(parents=True, exist_ok=True)
        found = seeds(harness)
        for seed in found:
            (folder / hashlib.sha1(seed).hexdigest()).write_bytes(seed)  # noqa: S324 - a name, as libFuzzer's
        counts[harness] = len(found)
    return counts
