"""Process helpers for our command-line entry points and the worker process."""

from __future__ import annotations

import asyncio
import ctypes
import gc
import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import NoReturn


def exit_now(code: int) -> NoReturn:
    """Flush and leave at once. The Temporal SDK's runtime can crash while the
    interpreter finalises (sdk-python #300: rc 134/139 about 1 run in 8); skipping
    finalisation avoids it."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def malloc_trimmer() -> Callable[[], object] | None:
    """glibc's ``malloc_trim(0)``, which gives the free pages of every malloc arena back
    to the OS; None where the C library has none (musl, macOS)."""
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


async def return_free_memory(every_seconds: float) -> None:
    """Every ``every_seconds``, give freed heap memory back to the OS, until cancelled.

    A worker's workflow tasks and activities allocate and free constantly, much of it in
    the malloc arenas of the SDK core's threads; glibc keeps freed pages resident for
    reuse, so an idle worker held ~12 KiB per cached conversation it no longer needed
    (300 cached conversations: 156 -> 152.5 MiB RSS after one trim; ``make bench``'s
    memory measurement, issue 13). A trim took 0.1-0.5 ms there (the GIL is released
    during it). Nothing to do where the C library has no ``malloc_trim``."""
    trim = malloc_trimmer() if every_seconds > 0 else None
    if trim is None:
        return
    while True:
        await asyncio.sleep(every_seconds)
        trim()


def settle_heap(gen0_threshold: int) -> None:
    """Once the process has started (imported its modules, built its workers): move every
    object alive now out of the cyclic garbage collector's reach (``gc.freeze``) and let
    ``gen0_threshold`` allocations (Python's default 700; 0 keeps the default) pass
    between its young-generation passes.

    A loaded worker allocates many short-lived objects (payloads, activations, futures);
    with Python's defaults it ran a young pass every ~700 of them and, every ~100 passes,
    a full pass over every object of the process, imported modules included. Start-up
    objects live as long as the process, so freezing them only makes the full passes
    shorter; a larger young generation lets more objects die before a pass promotes
    them. Measured in ``make bench`` (200 conversations, issue 13): see docs/benchmarks.md."""
    gc.collect()
    gc.freeze()
    if gen0_threshold > 0:
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(gen0_threshold, gen1, gen2)


@asynccontextmanager
async def freeing_memory(every_seconds: float) -> AsyncIterator[None]:
    """``return_free_memory`` in the background while the block runs (the worker, and
    the benchmark's bare host so that memory compares like with like)."""
    trimming = asyncio.create_task(return_free_memory(every_seconds))
    try:
        yield
    finally:
        trimming.cancel()
        await asyncio.wait([trimming])
