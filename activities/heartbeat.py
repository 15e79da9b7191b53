"""Heartbeating while an activity waits on something slow.

A heartbeat tells Temporal the worker is still alive (so a crashed worker's activity
is retried after ``heartbeat_timeout``, not ``start_to_close_timeout``) and is how an
activity learns it was cancelled. ``auto_heartbeat`` sends one every third of the
heartbeat timeout from a background task while the wrapped block runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from temporalio import activity

DEFAULT_HEARTBEAT_INTERVAL = timedelta(seconds=5)
"""Interval when the activity was scheduled without a heartbeat timeout."""


def heartbeat_interval() -> timedelta:
    """A third of the current activity's heartbeat timeout: two beats may be lost
    before the server gives up on the attempt."""
    timeout = activity.info().heartbeat_timeout
    return timeout / 3 if timeout else DEFAULT_HEARTBEAT_INTERVAL


@asynccontextmanager
async def auto_heartbeat() -> AsyncIterator[None]:
    """Heartbeat in the background for as long as the ``async with`` block runs.

    Must be used inside an activity. The background task is cancelled and awaited
    when the block ends, however it ends, so no heartbeat outlives the attempt.
    """
    if activity.info().is_local:  # local activities cannot heartbeat
        yield
        return
    task = asyncio.create_task(_beat(heartbeat_interval().total_seconds()))
    try:
        yield
    finally:
        task.cancel()
        # asyncio.wait, unlike awaiting the task, never swallows a cancellation of
        # the activity itself that arrives while we wait here.
        await asyncio.wait([task])


async def _beat(interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        activity.heartbeat()
