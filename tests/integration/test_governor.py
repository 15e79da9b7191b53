"""The tenant governor as a workflow: it continues-as-new itself, carrying its state."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from durable_agent.governor import (
    GovernorState,
    PermitRequest,
    Settlement,
    TenantLimits,
    governor_id,
)
from durable_agent.testing.fake_tools import FakeToolServer
from tests.conftest import make_settings
from tests.helpers import eventually, running_worker
from workflows.governor import GovernorInput, TenantGovernorWorkflow


async def test_governor_continues_as_new_with_its_state(
    client: Client, tmp_path: Path, tool_server: FakeToolServer
) -> None:
    settings = make_settings(
        tmp_path, tool_server, governor_task_queue=f"gov-{uuid.uuid4().hex[:8]}"
    )
    tenant = f"can-{uuid.uuid4().hex[:6]}"
    limits = TenantLimits(daily_usd=Decimal("10"), model_calls_per_minute=None)
    start = WithStartWorkflowOperation(
        TenantGovernorWorkflow.run,
        GovernorInput(tenant=tenant, max_requests_per_run=3),
        id=governor_id(tenant),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        task_queue=settings.governor_task_queue,
    )
    async with running_worker(client, settings, f"unused-{uuid.uuid4().hex[:6]}"):
        first = await client.execute_update_with_start_workflow(
            TenantGovernorWorkflow.acquire,
            PermitRequest(tenant=tenant, conversation_id="c", reservation_id="c/1/0",
                          reserved_usd=Decimal("1"), limits=limits),
            start_workflow_operation=start,
        )  # fmt: skip
        assert first.granted
        handle = client.get_workflow_handle(governor_id(tenant))
        first_run = (await handle.describe()).run_id
        await handle.signal(
            TenantGovernorWorkflow.settle,
            Settlement(reservation_id="c/1/0", actual_usd=Decimal("0.25")),
        )
        for n in range(1, 5):  # past the per-run limit of 3 messages
            decision = await handle.execute_update(
                TenantGovernorWorkflow.acquire,
                PermitRequest(tenant=tenant, conversation_id="c", reservation_id=f"c/1/{n}",
                              reserved_usd=Decimal("1")),
            )  # fmt: skip
            assert decision.granted

        latest = client.get_workflow_handle(governor_id(tenant))
        described = await eventually(latest.describe, until=lambda d: d.run_id != first_run)
        assert described.run_id != first_run
        state = await latest.query(TenantGovernorWorkflow.state)
        assert isinstance(state, GovernorState)
        assert state.granted == 5 and state.spent_usd == Decimal("0.25")
        assert set(state.reservations) == {f"c/1/{n}" for n in range(1, 5)}
        assert state.limits == limits  # carried over, not reset to the defaults
