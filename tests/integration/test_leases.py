"""Tenant leases (lean-turn-v1): a conversation spends a lease from its tenant's
governor in its own state; the governor hears of it once per lease, not per call, and
gets back what was not spent when the lease expires, the conversation ends or it is
cancelled. A tenant without limits never reaches a governor. (The offline model costs
nothing; spend against a lease is checked on the Claude path in test_resilience.py.)"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError
from temporalio.service import RPCError

from durable_agent.client import Conversation, start_conversation
from durable_agent.contract import GOVERNOR_QUERY_STATE, ConversationInput
from durable_agent.governor import GovernorState, TenantLimits, governor_id
from durable_agent.testing.fake_tools import FakeToolServer
from tests.conftest import make_settings
from tests.helpers import eventually, running_worker

LIMITED = TenantLimits(daily_usd=Decimal("10"), model_calls_per_minute=600, burst=60)


@asynccontextmanager
async def worker(
    client: Client, tmp_path: Path, tool_server: FakeToolServer, tenant: str, **overrides: object
) -> AsyncIterator[str]:
    settings = make_settings(
        tmp_path,
        tool_server,
        tenant_limits={tenant: overrides.pop("limits", LIMITED)},
        governor_task_queue=f"gov-{uuid.uuid4().hex[:8]}",
        **overrides,
    )
    queue = f"lease-{uuid.uuid4().hex[:8]}"
    async with running_worker(client, settings, queue):
        yield queue


async def governor_state(client: Client, tenant: str) -> GovernorState:
    state: GovernorState = await client.get_workflow_handle(governor_id(tenant)).query(
        GOVERNOR_QUERY_STATE, result_type=GovernorState
    )
    return state


async def lease_markers(conversation: Conversation) -> int:
    """Local-activity markers of ``governor.lease`` across every run."""
    count = 0
    history = await conversation.handle.fetch_history()
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            count += b"governor.lease" in event.marker_recorded_event_attributes.SerializeToString()
        assert event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED or (
            event.activity_task_scheduled_event_attributes.activity_type.name != "governor.acquire"
        )
    return count


def new_tenant() -> str:
    return f"lease-{uuid.uuid4().hex[:8]}"


async def test_one_lease_serves_many_model_calls_and_ending_reports_it(
    client: Client, tmp_path: Path, tool_server: FakeToolServer
) -> None:
    tenant = new_tenant()
    async with worker(client, tmp_path, tool_server, tenant) as queue:
        conversation = await start_conversation(
            client, ConversationInput(tenant=tenant), task_queue=queue
        )
        for n in range(3):  # six model calls
            assert (await conversation.send_message(f"What is {n} + 1?")).status == "ok"
        assert await lease_markers(conversation) == 1
        state = await governor_state(client, tenant)
        assert len(state.leases) == 1 and state.spent_usd == 0 and state.granted == 1
        (held,) = state.leases.values()
        assert held.calls == 16 and held.usd is not None and held.usd >= Decimal("0.50")

        await conversation.end()
        await conversation.handle.result()
        state = await eventually(
            lambda: governor_state(client, tenant), until=lambda s: not s.leases
        )
        status = await conversation.status()
        assert state.spent_usd == status.cost_usd
        # 16 calls were taken from the bucket and the 10 unused came back: 6 are gone
        # (the bucket refills at 10 a second, so it may be fuller than 54 by now).
        assert state.bucket_tokens >= 54


async def test_a_lease_runs_out_and_is_renewed_reporting_the_old_one(
    client: Client, tmp_path: Path, tool_server: FakeToolServer
) -> None:
    tenant = new_tenant()
    async with worker(client, tmp_path, tool_server, tenant, governor_lease_calls=3) as queue:
        conversation = await start_conversation(
            client, ConversationInput(tenant=tenant), task_queue=queue
        )
        for n in range(4):  # eight model calls: leases of 3, 3 and 2 used
            assert (await conversation.send_message(f"What is {n} * 3?")).status == "ok"
        assert await lease_markers(conversation) == 3
        state = await governor_state(client, tenant)
        assert state.granted == 3 and len(state.leases) == 1 and state.leased_calls == 9
        await conversation.end()


async def test_an_idle_conversation_reports_its_lease_when_it_expires(
    client: Client, tmp_path: Path, tool_server: FakeToolServer
) -> None:
    tenant = new_tenant()
    async with worker(client, tmp_path, tool_server, tenant, governor_lease_seconds=1.0) as queue:
        conversation = await start_conversation(
            client, ConversationInput(tenant=tenant), task_queue=queue
        )
        assert (await conversation.send_message("What is 2 + 2?")).status == "ok"
        cost = (await conversation.status()).cost_usd
        state = await eventually(
            lambda: governor_state(client, tenant), until=lambda s: not s.leases
        )
        assert state.spent_usd == cost
        # The next turn takes a new lease.
        assert (await conversation.send_message("What is 3 + 3?")).status == "ok"
        assert await lease_markers(conversation) == 2
        await conversation.end()


async def test_cancelling_a_conversation_reports_its_lease(
    client: Client, tmp_path: Path, tool_server: FakeToolServer
) -> None:
    tenant = new_tenant()
    async with worker(client, tmp_path, tool_server, tenant) as queue:
        conversation = await start_conversation(
            client, ConversationInput(tenant=tenant), task_queue=queue
        )
        assert (await conversation.send_message("What is 2 + 2?")).status == "ok"
        cost = (await conversation.status()).cost_usd
        await conversation.cancel()
        with pytest.raises(WorkflowFailureError):
            await conversation.handle.result()
        state = await eventually(
            lambda: governor_state(client, tenant), until=lambda s: not s.leases
        )
        assert state.spent_usd == cost


async def test_the_lease_crosses_continue_as_new(
    client: Client, tmp_path: Path, tool_server: FakeToolServer
) -> None:
    tenant = new_tenant()
    async with worker(client, tmp_path, tool_server, tenant) as queue:
        conversation = await start_conversation(
            client,
            ConversationInput(tenant=tenant, continue_as_new_after_turns=1),
            task_queue=queue,
        )
        first_run = (await conversation.handle.describe()).run_id
        assert (await conversation.send_message("What is 2 + 2?")).status == "ok"
        assert (await conversation.send_message("What is 3 + 3?")).status == "ok"
        assert (await conversation.handle.describe()).run_id != first_run
        status = await conversation.status()
        assert status.runs >= 2
        state = await governor_state(client, tenant)
        assert state.granted == 1 and len(state.leases) == 1  # one lease, both runs
        await conversation.end()
        state = await eventually(
            lambda: governor_state(client, tenant), until=lambda s: not s.leases
        )
        assert state.spent_usd == (await conversation.status()).cost_usd


async def test_a_tenant_without_limits_never_reaches_a_governor(
    client: Client, tmp_path: Path, tool_server: FakeToolServer
) -> None:
    tenant = new_tenant()
    unlimited = TenantLimits(daily_usd=None, model_calls_per_minute=None)
    async with worker(client, tmp_path, tool_server, tenant, limits=unlimited) as queue:
        conversation = await start_conversation(
            client, ConversationInput(tenant=tenant), task_queue=queue
        )
        for n in range(2):
            assert (await conversation.send_message(f"What is {n} + 5?")).status == "ok"
        assert await lease_markers(conversation) == 1
        with pytest.raises(RPCError, match="not found"):
            await client.get_workflow_handle(governor_id(tenant)).describe()
        await conversation.end()


async def test_concurrent_conversations_of_one_tenant_share_governor_updates(
    client: Client, tmp_path: Path, tool_server: FakeToolServer
) -> None:
    tenant = new_tenant()
    async with worker(client, tmp_path, tool_server, tenant) as queue:
        conversations = await asyncio.gather(
            *(
                start_conversation(client, ConversationInput(tenant=tenant), task_queue=queue)
                for _ in range(40)
            )
        )
        replies = await asyncio.gather(*(c.send_message("What is 6 * 7?") for c in conversations))
        assert [r.status for r in replies] == ["ok"] * 40, [r.detail for r in replies]
        assert all("42" in r.text for r in replies)
        state = await governor_state(client, tenant)
        assert state.granted >= 40  # more when some waited for lent budget to come back
        # At most one lease update per tenant in flight from a worker: the forty
        # requests went in fewer updates (the server allows ten in flight at once).
        history = await client.get_workflow_handle(governor_id(tenant)).fetch_history()
        updates = [
            e
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
        ]
        # Requests refused while the burst was lent out are asked again: count those too.
        requests = state.granted + state.denied
        assert 1 <= len(updates) < requests, (len(updates), state.granted, state.denied)
        await asyncio.gather(*(c.end() for c in conversations))


async def test_idle_conversations_holding_leases_do_not_starve_a_new_one(
    client: Client, tmp_path: Path, tool_server: FakeToolServer
) -> None:
    """Lent calls count against the tenant's burst until their lease expires, used or
    not; leases granted once half the burst is lent last at most the bucket's refill
    time, so a new conversation is not kept waiting by idle ones for a lease's 60 s."""
    tenant = new_tenant()
    limits = TenantLimits(daily_usd=Decimal("10"), model_calls_per_minute=120, burst=8)
    refill_seconds = limits.burst / (120 / 60)  # 4 s
    async with worker(client, tmp_path, tool_server, tenant, limits=limits) as queue:
        idle = await asyncio.gather(
            *(
                start_conversation(client, ConversationInput(tenant=tenant), task_queue=queue)
                for _ in range(6)
            )
        )
        replies = await asyncio.gather(*(c.send_message("What is 6 * 7?") for c in idle))
        assert [r.status for r in replies] == ["ok"] * 6, [r.detail for r in replies]
        # The six sit idle, holding leases (a long one of half the burst among them).
        state = await governor_state(client, tenant)
        assert max(held.calls or 0 for held in state.leases.values()) == limits.burst // 2

        newcomer = await start_conversation(
            client, ConversationInput(tenant=tenant), task_queue=queue
        )
        started = time.monotonic()
        reply = await newcomer.send_message("What is 2 + 3?")  # two model calls
        waited = time.monotonic() - started
        assert reply.status == "ok" and "5" in reply.text
        # At most one short lease, then a call's refill per model call (0.5 s each).
        assert waited < refill_seconds + 2 * 0.5 + 2.0, waited
        await asyncio.gather(*(c.end() for c in [*idle, newcomer]))
