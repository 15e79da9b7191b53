"""The governor activities: ``governor.lease`` (run as a local activity) asks a tenant's
governor for a lease, batching the concurrent requests of one worker into one update;
``governor.acquire`` (conversations recorded before leases) asks for one permit. Both
start the governor on first use (update-with-start), with the tenant's limits from the
worker's configuration.

A tenant without limits never reaches its governor: the lease activity answers with an
unlimited lease at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from temporalio import activity
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from durable_agent.governor import (
    GOVERNOR_ACTIVITY,
    LEASE_ACTIVITY,
    Lease,
    LeaseBatch,
    LeaseRequest,
    LeaseSizing,
    PermitDecision,
    PermitRequest,
    TenantLimits,
    governor_id,
    is_unlimited,
    unlimited_lease,
)
from workflows.governor import GovernorInput, TenantGovernorWorkflow

MAX_BATCH = 200
"""Lease requests sent in one update at most."""


@dataclass
class _Waiting:
    """Lease requests of one tenant waiting for the next batch."""

    requests: list[tuple[LeaseRequest, asyncio.Future[Lease]]] = field(default_factory=list)
    sender: asyncio.Task[None] | None = None


class GovernorActivities:
    """Holds the worker's Temporal client, its tenant limits and the governors' queue.

    At most one lease update per tenant is in flight from this worker: requests that
    arrive meanwhile wait and go together in the next one. So however many
    conversations a worker runs, a tenant's governor sees a handful of updates at a
    time (the server allows ten in flight per workflow), each answering many."""

    def __init__(
        self,
        client: Client,
        limits_for: Callable[[str], TenantLimits],
        task_queue: str,
        sizing: LeaseSizing | None = None,
    ) -> None:
        self._client = client
        self._limits_for = limits_for
        self._task_queue = task_queue
        self._sizing = sizing or LeaseSizing()
        self._waiting: dict[str, _Waiting] = {}

    def activities(self) -> list[Callable[..., object]]:
        """The activities to register."""
        return [self.lease, self.acquire]

    @activity.defn(name=LEASE_ACTIVITY)
    async def lease(self, request: LeaseRequest) -> Lease:
        """A lease for one conversation (reporting its previous one); idempotent per
        lease id."""
        limits = self._limits_for(request.tenant)
        if is_unlimited(limits) and request.previous is None:
            return unlimited_lease(request.lease_id, datetime.now(UTC).timestamp(), self._sizing)
        request = request.model_copy(update={"limits": limits, "sizing": self._sizing})
        waiting = self._waiting.setdefault(request.tenant, _Waiting())
        answer: asyncio.Future[Lease] = asyncio.get_running_loop().create_future()
        waiting.requests.append((request, answer))
        if waiting.sender is None:
            waiting.sender = asyncio.create_task(self._send(request.tenant, waiting))
        return await answer

    async def _send(self, tenant: str, waiting: _Waiting) -> None:
        """Send what waits, batch after batch, until nothing does."""
        try:
            while waiting.requests:
                batch = waiting.requests[:MAX_BATCH]
                del waiting.requests[:MAX_BATCH]
                try:
                    result = await self._client.execute_update_with_start_workflow(
                        TenantGovernorWorkflow.lease,
                        LeaseBatch(requests=[request for request, _ in batch]),
                        start_workflow_operation=self._start(tenant),
                    )
                except Exception as e:  # every waiting call fails alike, and retries
                    for _, answer in batch:
                        if not answer.done():
                            answer.set_exception(e)
                    continue
                for (_, answer), lease in zip(batch, result.leases, strict=True):
                    if not answer.done():
                        answer.set_result(lease)
        finally:
            waiting.sender = None
            for _, answer in waiting.requests:  # only if this task was cancelled
                answer.cancel()
            waiting.requests.clear()

    @activity.defn(name=GOVERNOR_ACTIVITY)
    async def acquire(self, request: PermitRequest) -> PermitDecision:
        """Ask (and if needed start) the tenant's governor; idempotent per reservation."""
        request = request.model_copy(update={"limits": self._limits_for(request.tenant)})
        decision: PermitDecision = await self._client.execute_update_with_start_workflow(
            TenantGovernorWorkflow.acquire,
            request,
            start_workflow_operation=self._start(request.tenant),
        )
        return decision

    def _start(self, tenant: str) -> WithStartWorkflowOperation[TenantGovernorWorkflow, None]:
        return WithStartWorkflowOperation(
            TenantGovernorWorkflow.run,
            GovernorInput(tenant=tenant),
            id=governor_id(tenant),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            task_queue=self._task_queue,
            static_summary=f"governor of tenant {tenant}",
        )
