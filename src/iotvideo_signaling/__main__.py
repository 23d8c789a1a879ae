"""``python -m iotvideo_signaling``: the same as the ``iotvideo-signaling`` command."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
