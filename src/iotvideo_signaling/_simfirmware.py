"""Simulated firmware images, for the simulator and the tests.

An image is a file whose first line is ``IOTVIDEO-SIM-FIRMWARE <version>\\n``, padded to its size
with filler derived from the version and the size (SHAKE-256 blocks), so the same
``(version, size)`` always gives the same bytes and MD5, and a truncated, extended or edited
image is recognised as not being one.
"""

from __future__ import annotations

import os
import re
from typing import Iterator, Optional, Union

__all__ = ["MAGIC", "make_image", "read_image_version"]

#: The first bytes of every simulated image.
MAGIC = b"IOTVIDEO-SIM-FIRMWARE "

_VERSION = re.compile(r"[\x21-\x7e]{1,64}")
_BLOCK = 64 * 1024
_MAX_HEADER = len(MAGIC) + 64 + 1

PathLike = Union[str, "os.PathLike[str]"]


def _header(version: str) -> bytes:
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise ValueError("version must be 1-64 printable ASCII characters without spaces")
    return MAGIC + version.encode("ascii") + b"\n"


def _filler(version: str, size: int) -> Iterator[bytes]:
    """The endless filler stream of an image of ``size`` bytes, in blocks."""
    import hashlib  # noqa: PLC0415 - keep the package import light

    index = 0
    while True:
        seed = f"{version}\n{size}\n{index}".encode("ascii")
        yield hashlib.shake_256(seed).digest(_BLOCK)
        index += 1


def make_image(path: PathLike, version: str, size: int) -> str:
    """Write a simulated firmware image and return its MD5 (lower-case hex).

    Args:
        path: where to write the image (replaced if it exists).
        version: the version the image installs, e.g. ``"V1.05.00"``: 1-64 printable ASCII
            characters without spaces.
        size: the file size in bytes; at least the length of the header line.

    Raises:
        ValueError: ``version`` is not acceptable or ``size`` is too small for the header.
    """
    import hashlib  # noqa: PLC0415

    header = _header(version)
    if isinstance(size, bool) or not isinstance(size, int) or size < len(header):
        raise ValueError(f"size must be an integer of at least {len(header)} bytes")
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "wb") as handle:
        handle.write(header)
        digest.update(header)
        left = size - len(header)
        for block in _filler(version, size):
            if left <= 0:
                break
            piece = block[:left]
            handle.write(piece)
            digest.update(piece)
            left -= len(piece)
    return digest.hexdigest()


def read_image_version(path: PathLike) -> Optional[str]:
    """The version a simulated image installs, or None when the file is not a valid image.

    The whole file is checked: header line, then every filler byte for the file's size.

    Raises:
        OSError: the file cannot be read.
    """
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        line = handle.readline(_MAX_HEADER)
        if not line.startswith(MAGIC) or not line.endswith(b"\n"):
            return None
        try:
            version = line[len(MAGIC) : -1].decode("ascii")
        except UnicodeDecodeError:
            return None
        if not _VERSION.fullmatch(version):
            return None
        left = size - len(line)
        for block in _filler(version, size):
            if left <= 0:
                break
            want = block[:left]
            if handle.read(len(want)) != want:
                return None
            left -= len(want)
        if handle.read(1):  # the file grew while we read it
            return None
    return version
