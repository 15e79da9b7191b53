"""A turn's deadline, kept without a timer when the turn's own steps bound it.

A turn may work ``turn_timeout_seconds`` of workflow time, not counting time spent
waiting for a person (``within_deadline``). Runs before revision 4 race the turn against
a timer: a timer started and cancelled every turn (two commands, two events). Runs of
revision 4 (``TIMERLESS_REVISION``) keep the deadline as a time (``TurnClock``) and
make every step unable to outlast it: each activity the turn schedules gets a
schedule-to-close timeout of at most the time left (``TurnClock.step``), so it ends at
the deadline (the server ends an activity, the SDK core a local one), and no step
starts with no time left. A step cut off that way is the turn running out of time
(``Step.check``): a ``timeout`` reply, never a breaker's failure; its concurrent steps
are cancelled with it (``cancelling_siblings``). Only a wait no activity timeout bounds
(a person's approval, a sub-agent's child workflow, the tenant's rate limit) arms the
timer (``TurnClock.arm``), before the wait begins and for the rest of that turn.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, RetryState

from workflows.approvals import ApprovalDesk, within_deadline

_R = TypeVar("_R")

MIN_STEP_SECONDS = 0.001
"""Less time left than this and a step does not start: the turn is over."""
LOCAL_BACKOFF_INSIDE = timedelta(days=1)
"""A local activity's ``local_retry_threshold`` while the deadline is timerless: longer
than any backoff, which therefore waits inside the local activity, bounded by its
schedule-to-close, instead of as a workflow timer (``Step.local_retry_threshold``)."""


@dataclass(frozen=True)
class Step:
    """The timeouts of one activity of a turn, and how to tell, when it fails, whether
    the turn's deadline cut it off."""

    clock: TurnClock
    timeout: timedelta | None
    """Its schedule-to-close timeout: its own, or the time left if that is sooner."""
    timerless: bool = False
    """Whether the deadline was timerless when it started (else a timer enforces it)."""
    bound: bool = False
    """Whether the time left (not its own timeout) is its schedule-to-close."""

    @property
    def local_retry_threshold(self) -> timedelta | None:
        """For a local activity: backoffs up to this wait inside the local activity,
        longer ones as a workflow timer (the SDK's default, ``None``: one minute). While
        the deadline is timerless every backoff waits inside, where the
        schedule-to-close timeout still runs, so no backoff timer outlives the turn."""
        return LOCAL_BACKOFF_INSIDE if self.timerless else None

    def check(self, error: ActivityError) -> None:
        """Raise ``TimeoutError`` if ``error`` is the turn's deadline cutting the step
        off, not its dependency failing: the time left was its schedule-to-close and it
        has passed, or the server gave up retrying because the next attempt would not
        start before it (``RetryState.TIMEOUT``); or the step was cancelled because a
        concurrent step was cut off (``cancelling_siblings``)."""
        if not self.timerless:
            return  # the timer cancels it, as in runs before revision 4
        cut = self.bound and (self.clock.left() <= 0 or error.retry_state == RetryState.TIMEOUT)
        task = asyncio.current_task()
        if cut or (task is not None and task.cancelling()):
            raise self.clock.passed()


class TurnClock:
    """The deadline of one turn: armed (a timer enforces it, as in runs before revision
    4) or timerless (the steps' timeouts do)."""

    def __init__(self, seconds: float, *, timerless: bool) -> None:
        self.seconds = seconds
        self._armed = not timerless
        self._ends = _now() + seconds if timerless else 0.0

    def left(self) -> float:
        """Seconds of the turn left (meaningful only while timerless)."""
        return self._ends - _now()

    def step(self, own: timedelta | None) -> Step:
        """The timeouts of an activity starting now whose own schedule-to-close is
        ``own``: the time left if that is sooner. Raises ``TimeoutError`` when no time
        is left."""
        if self._armed:
            return Step(self, own)
        left = self.left()
        if left < MIN_STEP_SECONDS:
            raise self.passed()
        if own is not None and own.total_seconds() <= left:
            return Step(self, own, timerless=True)
        return Step(self, timedelta(seconds=left), timerless=True, bound=True)

    def arm(self) -> None:
        """Enforce the rest of the deadline with a timer (``bound``) from now on, before a
        wait no step timeout can bound. Raises ``TimeoutError`` when no time is left."""
        if not self._armed and self.left() < MIN_STEP_SECONDS:
            raise self.passed()
        self._armed = True

    def passed(self) -> TimeoutError:
        """What ends the turn when its deadline has passed."""
        return TimeoutError(f"turn deadline of {self.seconds:g}s passed")

    async def bound(self, loop: asyncio.Future[_R], desk: ApprovalDesk) -> _R:
        """``loop`` (the turn's work), within the deadline: waited for without a timer
        while timerless; once armed, with ``within_deadline`` for the time left (armed
        from the start: exactly as runs before revision 4)."""
        if self._armed:
            return await within_deadline(loop, self.seconds, desk)
        try:
            await workflow.wait_condition(lambda: loop.done() or self._armed)
        except BaseException:  # the workflow is cancelled: so is its turn
            if not loop.done():
                loop.cancel()
                loop.add_done_callback(_retrieved)
            raise
        if loop.done():
            return loop.result()
        return await within_deadline(loop, self.left(), desk)


async def cancelling_siblings(*steps: asyncio.Future[_R]) -> list[_R]:
    """The results of concurrent ``steps``; when one runs out of the turn's time
    (``TimeoutError``), the rest are cancelled (and awaited) before it goes on, as a turn
    stopped by its timer cancels them."""
    try:
        return list(await asyncio.gather(*steps))
    except TimeoutError:
        for step in steps:
            step.cancel()
        await workflow.wait(list(steps))
        for step in steps:
            _retrieved(step)  # the first one is the error that goes on
        raise


def _retrieved(future: asyncio.Future[Any]) -> None:
    """Retrieve the outcome of a done future nobody waits for any more (no "exception
    was never retrieved")."""
    if not future.cancelled():
        future.exception()


def _now() -> float:
    return workflow.now().timestamp()
