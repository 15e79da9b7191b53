"""Process helpers for our command-line entry points."""

from __future__ import annotations

import os
import sys
from typing import NoReturn


def exit_now(code: int) -> NoReturn:
    """Flush and leave at once. The Temporal SDK's runtime can crash while the
    interpreter finalises (sdk-python #300: rc 134/139 about 1 run in 8); skipping
    finalisation avoids it."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
