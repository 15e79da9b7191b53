"""The tenant's side of a conversation: what a model call needs from the tenant's
governor before it starts, and what the governor is told after.

Conversations recorded since ``lean-turn-v1`` hold a **lease** (see
``durable_agent.governor``) in workflow state and spend it locally: a model call costs
no round trip unless the lease ran out or expired, when one local activity reports the
old lease and takes a new one. The lease is reported (signal ``release``) when it
expires while held, and when the conversation ends or is cancelled; it crosses
continue-as-new in the carried state. Older conversations ask for a permit per call
(``governor.acquire``) and settle each by signal; that path stays for their replay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from workflows.deadline import TurnClock
from workflows.versions import ASYNC_SETTLE_PATCH

with workflow.unsafe.imports_passed_through():
    from durable_agent.contract import GOVERNOR_SIGNAL_RELEASE, GOVERNOR_SIGNAL_SETTLE
    from durable_agent.governor import (
        GOVERNOR_ACTIVITY,
        LEASE_ACTIVITY,
        HeldLease,
        Lease,
        LeaseReport,
        LeaseRequest,
        PermitDecision,
        PermitRequest,
        Settlement,
        governor_id,
    )

GOVERNOR_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=5),
    maximum_attempts=10,
)
GOVERNOR_START_TO_CLOSE = timedelta(seconds=10)
GOVERNOR_SCHEDULE_TO_CLOSE = timedelta(minutes=1)


RateLimitWait = Callable[[tuple[float, str] | None], None]
"""Told when a call starts waiting out the tenant's rate limit (until when, why) and
when the wait is over (``None``)."""


class PermitRefused(Exception):
    """The tenant's daily budget is spent: no model call until ``retry_after_seconds``."""

    def __init__(self, message: str, retry_after_seconds: float) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_seconds = retry_after_seconds


class GovernorUnavailable(Exception):
    """The governor could not be asked; money limits fail closed."""


class TenantPermits:
    """Leases (or, for older runs, permits) of one conversation's tenant."""

    def __init__(self, tenant: str, lease: HeldLease | None = None) -> None:
        self._tenant = tenant
        self._lease = lease
        self._watcher: asyncio.Task[None] | None = None
        self._signals: list[asyncio.Future[None]] = []

    def resume(self) -> None:
        """At the start of a run: watch the lease carried from the previous run."""
        if self._lease is not None and not self._lease.unlimited:
            self._watch(self._lease)

    # --- leases ---------------------------------------------------------------------------

    async def take(
        self,
        call_id: str,
        reserved_usd: Decimal,
        on_wait: RateLimitWait,
        describe: Describe,
        clock: TurnClock,
    ) -> str:
        """Set ``reserved_usd`` aside on the lease for one model call (taking a new lease
        first if need be, and waiting out the tenant's rate limit, within the turn's
        ``clock``); returns the lease id to settle the call on. Raises ``PermitRefused``
        or ``GovernorUnavailable`` (``TimeoutError`` past the turn's deadline)."""
        while True:
            lease = self._lease
            if lease is not None and lease.covers(reserved_usd, _now()):
                lease.take(reserved_usd)
                return lease.lease_id
            grant = await self._renew(call_id, reserved_usd, describe, clock)
            if grant.granted:
                self._lease = HeldLease.of(grant)
                if not self._lease.unlimited:
                    self._watch(self._lease)
                self._lease.take(reserved_usd)  # a grant always covers the call asked for
                return grant.lease_id
            if grant.reason == "daily_budget":
                raise PermitRefused(grant.message, grant.retry_after_seconds)
            on_wait((_now() + grant.retry_after_seconds, grant.message))
            clock.arm()  # a wait no step timeout bounds
            await workflow.sleep(
                timedelta(seconds=grant.retry_after_seconds),
                summary=f"tenant {self._tenant}: {grant.reason.replace('_', ' ')}",
            )
            on_wait(None)

    def settle(self, lease_id: str, reserved_usd: Decimal, actual_usd: Decimal) -> None:
        """A call on ``lease_id`` ended having cost ``actual_usd``. If the lease was
        reported meanwhile (it expired), the report already counted the worst case."""
        if self._lease is not None and self._lease.lease_id == lease_id:
            self._lease.settle(reserved_usd, actual_usd)

    def carry(self) -> HeldLease | None:
        """The lease for the next run."""
        return self._lease

    def release(self) -> None:
        """Report the lease now (the conversation ends or is cancelled)."""
        lease, self._lease = self._lease, None
        if self._watcher is not None and not self._watcher.done():
            self._watcher.cancel()
        if lease is not None and not lease.unlimited:
            self._signal(GOVERNOR_SIGNAL_RELEASE, lease.report())

    async def _renew(
        self, call_id: str, reserved_usd: Decimal, describe: Describe, clock: TurnClock
    ) -> Lease:
        held = self._lease
        info = workflow.info()
        request = LeaseRequest(
            tenant=self._tenant,
            conversation_id=info.workflow_id,
            lease_id=f"{info.workflow_id}/{call_id}",
            min_usd=reserved_usd,
            previous=held.report() if held is not None and not held.unlimited else None,
        )
        step = clock.step(GOVERNOR_SCHEDULE_TO_CLOSE)
        try:
            grant: Lease = await workflow.execute_local_activity(
                LEASE_ACTIVITY,
                request,
                result_type=Lease,
                start_to_close_timeout=GOVERNOR_START_TO_CLOSE,
                schedule_to_close_timeout=step.timeout,
                local_retry_threshold=step.local_retry_threshold,
                retry_policy=GOVERNOR_RETRY_POLICY,
                summary=f"lease for tenant {self._tenant}",
            )
        except ActivityError as e:
            step.check(e)
            raise GovernorUnavailable(describe(e)) from None
        self._lease = None  # reported in the request, granted or not
        return grant

    def _watch(self, lease: HeldLease) -> None:
        """Report ``lease`` when it expires, unless it is replaced first."""
        if self._watcher is not None and not self._watcher.done():
            self._watcher.cancel()
        self._watcher = asyncio.ensure_future(self._expire(lease))

    async def _expire(self, lease: HeldLease) -> None:
        await workflow.sleep(
            timedelta(seconds=max(0.0, lease.expires_at - _now())),
            summary=f"lease {lease.lease_id} expires",
        )
        if self._lease is lease:
            self._lease = None
            self._signal(GOVERNOR_SIGNAL_RELEASE, lease.report())

    # --- permits (runs recorded before leases) ---------------------------------------------

    async def permit(
        self, reservation: str, reserved_usd: Decimal, on_wait: RateLimitWait, describe: Describe
    ) -> None:
        """Wait for the tenant's permit for one call. Raises ``PermitRefused`` or
        ``GovernorUnavailable``."""
        request = PermitRequest(
            tenant=self._tenant,
            conversation_id=workflow.info().workflow_id,
            reservation_id=reservation,
            reserved_usd=reserved_usd,
        )
        while True:
            try:
                decision: PermitDecision = await workflow.execute_activity(
                    GOVERNOR_ACTIVITY,
                    request,
                    result_type=PermitDecision,
                    start_to_close_timeout=GOVERNOR_START_TO_CLOSE,
                    schedule_to_close_timeout=GOVERNOR_SCHEDULE_TO_CLOSE,
                    retry_policy=GOVERNOR_RETRY_POLICY,
                    summary=f"permit for tenant {self._tenant}",
                )
            except ActivityError as e:
                raise GovernorUnavailable(describe(e)) from None
            if decision.granted:
                return
            if decision.reason == "daily_budget":
                raise PermitRefused(decision.message, decision.retry_after_seconds)
            # Rate limited: wait as asked; the turn's deadline bounds the wait.
            on_wait((_now() + decision.retry_after_seconds, decision.message))
            await workflow.sleep(
                timedelta(seconds=decision.retry_after_seconds),
                summary=f"tenant {self._tenant}: rate limited",
            )
            on_wait(None)

    async def settle_permit(self, reservation: str, actual_usd: Decimal) -> None:
        """Tell the governor what a permitted call cost. Runs since ``async-settle-v1``
        do not wait for the signal's delivery (it goes out with the workflow task)."""
        settlement = Settlement(reservation_id=reservation, actual_usd=actual_usd)
        if workflow.patched(ASYNC_SETTLE_PATCH):
            self._signal(GOVERNOR_SIGNAL_SETTLE, settlement)
            return
        await self._send(GOVERNOR_SIGNAL_SETTLE, settlement)

    # --- signals to the governor -----------------------------------------------------------

    async def delivered(self) -> None:
        """Wait until every signal to the governor has been delivered."""
        await workflow.wait_condition(lambda: all(s.done() for s in self._signals))

    def _signal(self, name: str, payload: Settlement | LeaseReport) -> None:
        self._signals.append(asyncio.ensure_future(self._send(name, payload)))

    async def _send(self, name: str, payload: Settlement | LeaseReport) -> None:
        await workflow.get_external_workflow_handle(governor_id(self._tenant)).signal(name, payload)


Describe = Callable[[ActivityError], str]
"""How the conversation words an activity's failure."""


def _now() -> float:
    return workflow.now().timestamp()
