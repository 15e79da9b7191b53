"""A turn's deadline without a timer (``workflows.deadline``, runs of
``TIMERLESS_REVISION``): every activity of the turn is capped at the time left, a step
cut at the deadline ends the turn with a ``timeout`` reply (not a dependency's failure),
concurrent calls stop together, and the next turn runs normally."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from pathlib import Path

from temporalio.api.enums.v1 import EventType, RetryState
from temporalio.client import Client, WorkflowHandle

from durable_agent.client import start_conversation
from durable_agent.contract import GOVERNOR_QUERY_STATE, ConversationInput
from durable_agent.governor import GovernorState, TenantLimits, governor_id
from durable_agent.testing.fake_anthropic import FakeAnthropicServer
from durable_agent.testing.fake_tools import FakeToolServer
from durable_agent.testing.faults import Fault
from durable_agent.testing.responders import offline_responder
from tests.conftest import claude_worker
from tests.helpers import eventually, warm_up

CLOSED = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED,
}


async def _deadline_timers_and_open_activities(handle: WorkflowHandle) -> tuple[int, int]:
    """Timers the turn deadline started, and activities scheduled but never closed (nor
    asked to cancel)."""
    history = await handle.fetch_history()
    timers, open_activities = 0, set()
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
            timers += event.user_metadata.summary.data.startswith(b'"turn deadline')
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            open_activities.add(event.event_id)
        elif event.event_type in CLOSED:
            attributes = next(
                getattr(event, field)
                for field in (
                    "activity_task_completed_event_attributes",
                    "activity_task_failed_event_attributes",
                    "activity_task_timed_out_event_attributes",
                    "activity_task_cancel_requested_event_attributes",
                )
                if event.HasField(field)
            )
            open_activities.discard(attributes.scheduled_event_id)
    return timers, len(open_activities)


async def test_a_model_call_cut_at_the_deadline_is_a_timeout_not_a_model_failure(
    client: Client,
    tmp_path: Path,
    tool_server: FakeToolServer,
    anthropic_server: FakeAnthropicServer,
) -> None:
    """The call is cut off at the deadline; the tenant's lease is charged nothing for it
    (the governor, told when the conversation ends, has nothing spent)."""
    anthropic_server.reset()
    anthropic_server.responder = offline_responder
    anthropic_server.faults.always = Fault(delay=30.0)
    tenant = f"deadline-{uuid.uuid4().hex[:6]}"
    limits = {tenant: TenantLimits(daily_usd=Decimal("5"), model_calls_per_minute=None)}
    async with claude_worker(
        client, tmp_path, tool_server, anthropic_server, tenant_limits=limits
    ) as queue:
        conversation = await start_conversation(
            client,
            ConversationInput(tenant=tenant, turn_timeout_seconds=3),
            task_queue=queue,
        )
        started = time.monotonic()
        reply = await conversation.send_message("What is 2 + 2?")
        assert reply.status == "timeout" and time.monotonic() - started < 15
        model = (await conversation.status()).breakers["model"]
        assert model.consecutive_failures == 0 and model.window_calls == 0  # not its fault
        assert await _deadline_timers_and_open_activities(conversation.handle) == (0, 0)

        anthropic_server.faults.always = None
        after = await conversation.send_message("What is 6 * 7?")
        assert after.status == "ok" and "42" in after.text
        await conversation.end()
        await conversation.result()
        governor = client.get_workflow_handle(governor_id(tenant))

        async def governor_state() -> GovernorState:
            return await governor.query(GOVERNOR_QUERY_STATE, result_type=GovernorState)

        # Only the second turn's two calls were paid for: the lease came back with them.
        state = await eventually(governor_state, until=lambda s: not s.leases)
        assert Decimal(0) < state.spent_usd == after.cost_usd


async def test_a_model_failing_until_its_retries_no_longer_fit_is_a_timeout(
    client: Client,
    tmp_path: Path,
    tool_server: FakeToolServer,
    anthropic_server: FakeAnthropicServer,
) -> None:
    """Overloaded (529) on every attempt: the server stops retrying once the next
    backoff (1 s, 2 s, 4 s …) would pass the call's schedule-to-close, the time left, a
    little before the deadline. That is the turn running out of time, as on the timer
    path, where the timer would cancel the call: no breaker failure."""
    anthropic_server.reset()
    anthropic_server.responder = offline_responder
    anthropic_server.faults.always = Fault(status=529)
    async with claude_worker(client, tmp_path, tool_server, anthropic_server) as queue:
        conversation = await start_conversation(
            client, ConversationInput(turn_timeout_seconds=5), task_queue=queue
        )
        reply = await conversation.send_message("What is 2 + 2?")
        assert reply.status == "timeout", reply
        model = (await conversation.status()).breakers["model"]
        assert model.consecutive_failures == 0 and model.window_calls == 0
        history = await conversation.handle.fetch_history()
        failed = [
            e.activity_task_failed_event_attributes
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED
        ]
        assert [f.retry_state for f in failed] == [RetryState.RETRY_STATE_TIMEOUT]


async def test_concurrent_tool_calls_stop_together_at_the_deadline(
    client: Client, task_queue: str, tool_server: FakeToolServer
) -> None:
    await warm_up(client, task_queue)
    tool_server.faults.add(Fault(delay=30.0, path="/v1/forecast"))
    tool_server.faults.add(Fault(delay=30.0, path="/v1/forecast"))
    conversation = await start_conversation(
        client, ConversationInput(turn_timeout_seconds=6), task_queue=task_queue
    )
    started = time.monotonic()
    reply = await conversation.send_message("Sydney weather and Paris weather, please")
    assert reply.status == "timeout" and time.monotonic() - started < 20
    transcript = (await conversation.transcript()).messages
    results = [b for b in transcript[2].content if b.type == "tool_result"]
    assert len(results) == 2 and all(r.content == "not run: the turn was stopped" for r in results)
    assert await _deadline_timers_and_open_activities(conversation.handle) == (0, 0)
    status = await conversation.status()
    assert status.breakers["tool:get_weather"].consecutive_failures == 0

    after = await conversation.send_message("What is 7 * 6?")
    assert after.status == "ok" and "42" in after.text


async def test_a_local_activity_capped_below_its_own_timeout_runs(
    client: Client, task_queue: str
) -> None:
    """The calculator's own start-to-close is 5 s; a turn of 4.5 s caps its
    schedule-to-close below that, and the call still runs."""
    await warm_up(client, task_queue)
    conversation = await start_conversation(
        client,
        ConversationInput(tools=["calculator"], turn_timeout_seconds=4.5),
        task_queue=task_queue,
    )
    reply = await conversation.send_message("What is 6 * 7?")
    assert reply.status == "ok" and "42" in reply.text
    assert [c.outcome for c in reply.tool_calls] == ["ok"]
    assert await _deadline_timers_and_open_activities(conversation.handle) == (0, 0)
