"""A progress line on stderr while a load phase runs.

On a terminal it redraws one line four times a second::

    [load client] 00:42/01:30 ██████████░░░░░░░░░░  312 turns  7.4/s  3 errors  20 in flight

Elsewhere (CI, ``make … | tee``) it prints that line every ten seconds instead, so a
log gets a few lines rather than hundreds of carriage returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TextIO

WIDTH = 20
TTY_INTERVAL = 0.25
LOG_INTERVAL = 10.0


@dataclass(frozen=True)
class Counts:
    """What the line shows besides the clock."""

    turns: int
    """Replies received."""
    errors: int
    """Messages whose outcome is not ``ok``."""
    in_flight: int
    """Messages waiting for their reply."""


def render(label: str, elapsed: float, total: float, counts: Counts) -> str:
    """The progress line (no line ending)."""
    done = min(1.0, elapsed / total) if total > 0 else 1.0
    filled = round(done * WIDTH)
    bar = "█" * filled + "░" * (WIDTH - filled)
    rate = counts.turns / elapsed if elapsed > 0 else 0.0
    clock = f"{_clock(elapsed)}/{_clock(total)}" + (" draining" if elapsed > total else "")
    return (
        f"[load {label}] {clock} {bar} {counts.turns:>6} turns "
        f"{rate:5.1f}/s {counts.errors:>4} errors {counts.in_flight:>4} in flight"
    )


def _clock(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes:02d}:{rest:02d}"


@asynccontextmanager
async def progress(
    label: str, total: float, counts: Callable[[], Counts], stream: TextIO = sys.stderr
) -> AsyncIterator[None]:
    """Show the line while the ``async with`` body runs; a last one when it ends."""
    tty = stream.isatty()
    started = time.monotonic()

    def draw(final: bool = False) -> None:
        line = render(label, time.monotonic() - started, total, counts())
        if tty:
            stream.write(f"\r{line}\x1b[K" + ("\n" if final else ""))
        else:
            stream.write(line + "\n")
        stream.flush()

    async def redraw() -> None:
        while True:  # until cancelled when the body ends
            await asyncio.sleep(TTY_INTERVAL if tty else LOG_INTERVAL)
            draw()

    task = asyncio.create_task(redraw())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        draw(final=True)
