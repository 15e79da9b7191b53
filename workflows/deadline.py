"""A turn's deadline, kept without a timer when the turn's own steps bound it.

A turn may work ``turn_timeout_seconds`` of workflow time, not counting time spent
waiting for a person (``within_deadline``). Runs before revision 4 race the turn against
a timer: a timer started and cancelled every turn, two events and a command. Runs of
revision 4 (``TIMERLESS_REVISION``) keep the deadline as a time (``TurnClock``) and
make every step unable to outlast it: each activity the turn schedules gets a
schedule-to-close timeout of at most the time left (``cap``), so the server ends it at
the deadline, and a step that would start past it does not start. A step that fails
once the deadline has passed is the turn running out of time (``overran``): a
``timeout`` reply, never a breaker's failure. Only a wait the turn cannot cap (a person's
approval, a sub-agent's child workflow, the tenant's rate limit) arms the timer
(``arm``), for the rest of that turn only, before the wait begins.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TypeVar

from temporalio import workflow

from workflows.approvals import ApprovalDesk, within_deadline

_R = TypeVar("_R")

MIN_STEP_SECONDS = 0.001
"""Less time left than this and a step does not start: the turn is over."""


class TurnClock:
    """The deadline of one turn: armed (a timer enforces it, as in runs before revision
    4) or timerless (the steps' timeouts do)."""

    def __init__(self, seconds: float, *, timerless: bool) -> None:
        self.seconds = seconds
        self._armed = not timerless
        self._ends = _now() + seconds if timerless else 0.0

    @property
    def armed(self) -> bool:
        return self._armed

    def left(self) -> float:
        """Seconds of the turn left (meaningful only while timerless)."""
        return self._ends - _now()

    def cap(self, own: timedelta | None) -> timedelta | None:
        """The schedule-to-close timeout of a step starting now: ``own``, or the time
        left if that is sooner. Raises ``TimeoutError`` when no time is left."""
        if self._armed:
            return own
        left = self.left()
        if left < MIN_STEP_SECONDS:
            raise TimeoutError(f"turn deadline of {self.seconds:g}s passed")
        capped = timedelta(seconds=left)
        return capped if own is None or capped < own else own

    def overran(self) -> bool:
        """Whether a step that just failed failed because the deadline passed."""
        return not self._armed and self.left() <= 0

    def check(self) -> None:
        """Raise ``TimeoutError`` if a step that just failed ran out of the turn's time."""
        if self.overran():
            raise TimeoutError(f"turn deadline of {self.seconds:g}s passed")

    def arm(self) -> None:
        """Enforce the rest of the deadline with a timer (``bound``) from now on, before a
        wait no step timeout can bound. Raises ``TimeoutError`` when no time is left."""
        if not self._armed and self.left() < MIN_STEP_SECONDS:
            raise TimeoutError(f"turn deadline of {self.seconds:g}s passed")
        self._armed = True

    async def bound(self, loop: asyncio.Future[_R], desk: ApprovalDesk) -> _R:
        """``loop`` (the turn's work), within the deadline: waited for without a timer
        while timerless; once armed, with ``within_deadline`` for the time left."""
        try:
            if not self._armed:
                await workflow.wait_condition(lambda: loop.done() or self._armed)
                if loop.done():
                    return loop.result()
                return await within_deadline(loop, self.left(), desk)
            return await within_deadline(loop, self.seconds, desk)
        finally:
            if not loop.done():
                loop.cancel()


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
            if step.done() and not step.cancelled():
                step.exception()  # retrieved: the first one is the error that goes on
        raise


def _now() -> float:
    return workflow.now().timestamp()
