"""What the fuzz harnesses take from the test suite: the reply oracle and the document's examples.

``tests/spec_examples.py`` is the one copy of the original document's examples and of
:func:`check_reply`, the checks every reply must pass. The test suite imports it as the top-level
module ``spec_examples`` (pytest puts ``tests/`` on the path); outside pytest this module puts
``tests/`` at the *end* of the path, so it shadows nothing, and imports it under the same name.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
if str(TESTS) not in sys.path:
    sys.path.append(str(TESTS))

from spec_examples import (  # noqa: E402 - after the path is set
    PANEL_PREFIX,
    REPLY_EXAMPLES,
    REQUEST_EXAMPLES,
    bare,
    check_reply,
    inner,
    panel,
)

__all__ = [
    "PANEL_PREFIX",
    "REPLY_EXAMPLES",
    "REQUEST_EXAMPLES",
    "ROOT",
    "TESTS",
    "bare",
    "check_reply",
    "inner",
    "panel",
]
