"""The ``governor.acquire`` activity: asks a tenant's governor workflow for a permit,
starting the governor on first use (update-with-start), with the tenant's limits
from the worker's configuration."""

from __future__ import annotations

from collections.abc import Callable

from temporalio import activity
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from durable_agent.governor import (
    GOVERNOR_ACTIVITY,
    PermitDecision,
    PermitRequest,
    TenantLimits,
    governor_id,
)
from workflows.governor import GovernorInput, TenantGovernorWorkflow


class GovernorActivities:
    """Holds the worker's Temporal client, its tenant limits and the governors' queue."""

    def __init__(
        self, client: Client, limits_for: Callable[[str], TenantLimits], task_queue: str
    ) -> None:
        self._client = client
        self._limits_for = limits_for
        self._task_queue = task_queue

    @activity.defn(name=GOVERNOR_ACTIVITY)
    async def acquire(self, request: PermitRequest) -> PermitDecision:
        """Ask (and if needed start) the tenant's governor; idempotent per reservation."""
        request = request.model_copy(update={"limits": self._limits_for(request.tenant)})
        start = WithStartWorkflowOperation(
            TenantGovernorWorkflow.run,
            GovernorInput(tenant=request.tenant),
            id=governor_id(request.tenant),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            task_queue=self._task_queue,
            static_summary=f"governor of tenant {request.tenant}",
        )
        decision: PermitDecision = await self._client.execute_update_with_start_workflow(
            TenantGovernorWorkflow.acquire, request, start_workflow_operation=start
        )
        return decision
