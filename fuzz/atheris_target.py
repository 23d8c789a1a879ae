"""One harness under atheris (libFuzzer): ``python -m fuzz.atheris_target HARNESS [libFuzzer flags] [DIR ...]``.

``fuzz/run`` starts it with the ASan runtime preloaded and the kernel built with
``-fsanitize=address,undefined,fuzzer-no-link``, so libFuzzer sees the C kernel's edges; the
library's Python modules are instrumented by atheris as they are imported here, so it sees the
Python twin's branches too. Everything after the harness name goes to libFuzzer as it is.
"""

from __future__ import annotations

import sys

import atheris

_NAMES = ("parse_command", "decode_command", "loads", "device", "bridge")


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in _NAMES:
        sys.exit(f"usage: python -m fuzz.atheris_target {{{','.join(_NAMES)}}} [libFuzzer flags] [corpus dirs]")
    name = sys.argv.pop(1)
    with atheris.instrument_imports(include=["iotvideo_signaling"]):
        import iotvideo_signaling._ota_base  # noqa: F401, PLC0415 - imported on first use, by config.check
        from fuzz import harnesses  # noqa: PLC0415 - imported under instrumentation
        from fuzz.sanitized import require_from_env  # noqa: PLC0415

    require_from_env()
    harnesses.quiet_logs()
    assert tuple(harnesses.HARNESSES) == _NAMES
    atheris.Setup(sys.argv, harnesses.HARNESSES[name].run)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
