"""Resilience on the real dev server: selective retries, circuit breakers, graceful
degradation, budgets, the tenant governor and the turn deadline."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from durable_agent.breaker import BreakerConfig
from durable_agent.budget import BudgetLimits
from durable_agent.client import start_conversation
from durable_agent.contract import (
    GOVERNOR_QUERY_STATE,
    SIGNAL_FORCE_BREAKER,
    WORKFLOW_REVISION,
    BreakerCommand,
    ConversationInput,
    ConversationLimits,
)
from durable_agent.governor import GovernorState, TenantLimits, governor_id
from durable_agent.testing.fake_anthropic import FakeAnthropicServer
from durable_agent.testing.fake_tools import FakeToolServer
from durable_agent.testing.faults import Fault
from durable_agent.testing.responders import offline_responder
from tests.conftest import claude_worker
from tests.helpers import eventually, history_events, start_as_written, warm_up
from workflows.agent import MODEL_RETRY_POLICY
from workflows.versions import TIMERLESS_REVISION


@pytest.fixture
def claude(anthropic_server: FakeAnthropicServer) -> FakeAnthropicServer:
    """The session's fake Messages API, answering as the offline planner."""
    anthropic_server.reset()
    anthropic_server.responder = offline_responder
    return anthropic_server


def model_calls(server: FakeAnthropicServer) -> list[dict[str, Any]]:
    return [r.body for r in server.requests if r.path == "/v1/messages"]


async def test_model_attempts_never_exceed_the_declared_maximum(
    client: Client, tmp_path: Path, tool_server: FakeToolServer, claude: FakeAnthropicServer
) -> None:
    claude.faults.always = Fault(status=529, retry_after=0.05)
    async with claude_worker(client, tmp_path, tool_server, claude) as queue:
        conversation = await start_conversation(client, task_queue=queue)
        reply = await conversation.send_message("What is 1 + 1?")
        assert reply.status == "degraded" and reply.degraded == ["model"]
        assert len(model_calls(claude)) == MODEL_RETRY_POLICY.maximum_attempts == 6
        status = await conversation.status()
        assert status.last_error and "overloaded (529)" in status.last_error


async def test_model_breaker_opens_degrades_half_opens_and_closes(
    client: Client, tmp_path: Path, tool_server: FakeToolServer, claude: FakeAnthropicServer
) -> None:
    config = ConversationInput(
        breakers=BreakerConfig(failure_threshold=2, cooldown_seconds=2, success_threshold=1)
    )
    claude.faults.always = Fault(status=500, retry_after=0.01)
    async with claude_worker(client, tmp_path, tool_server, claude) as queue:
        conversation = await start_conversation(client, config, task_queue=queue)
        for _ in range(2):  # two turns whose model call fails through every retry
            reply = await conversation.send_message("What is 2 + 2?")
            assert reply.status == "degraded"
        status = await conversation.status()
        assert status.breakers["model"].state == "open" and status.degraded == ["model"]

        calls = len(model_calls(claude))
        reply = await conversation.send_message("What is 2 + 2?")
        assert reply.status == "degraded" and "Try again in about" in reply.text
        assert len(model_calls(claude)) == calls  # open: the model was not called

        claude.faults.clear()
        # Ask until the cooldown has passed on the workflow's clock: until then the open
        # breaker answers without calling the model.
        reply = await eventually(
            lambda: conversation.send_message("What is 2 + 2?"),
            until=lambda r: r.status == "ok",
            interval=0.2,
        )
        assert "4" in reply.text  # the half-open probe succeeded
        status = await conversation.status()
        assert status.breakers["model"].state == "closed" and status.degraded == []
        assert status.breakers["model"].opened_count == 1


async def test_optional_tool_down_is_withheld_and_the_model_still_answers(
    client: Client, tmp_path: Path, tool_server: FakeToolServer, claude: FakeAnthropicServer
) -> None:
    config = ConversationInput(
        breaker_overrides={"tool:web_search": BreakerConfig(failure_threshold=1)}
    )
    tool_server.faults.always = Fault(status=429, retry_after=0.01, path="/search")
    async with claude_worker(client, tmp_path, tool_server, claude) as queue:
        conversation = await start_conversation(client, config, task_queue=queue)
        first = await conversation.send_message("Search for durable execution")
        assert first.status == "ok" and first.tool_calls[0].outcome == "error"
        assert (await conversation.status()).degraded == ["tool:web_search"]

        second = await conversation.send_message("Search for temporal and what is 3 * 3?")
        assert second.status == "ok" and "9" in second.text
        assert second.degraded == ["tool:web_search"]  # answered without it: the reply says so
        assert [c.name for c in second.tool_calls] == ["calculator"]
        request = model_calls(claude)[-2]  # the first call of the second turn
        assert "web_search" not in {t["name"] for t in request["tools"]}
        [system] = request["system"]  # one text block, marked for the prompt cache
        assert "temporarily unavailable: web_search" in system["text"]


async def test_critical_tool_down_gives_a_degraded_reply_until_it_recovers(
    client: Client, task_queue: str
) -> None:
    conversation = await start_conversation(client, task_queue=task_queue)
    await conversation.handle.signal(
        SIGNAL_FORCE_BREAKER, BreakerCommand(dependency="tool:save_note", mode="open")
    )
    reply = await conversation.send_message("Remember that breakers work")
    assert reply.status == "degraded" and reply.degraded == ["tool:save_note"]
    assert reply.tool_calls[0].outcome == "unavailable"
    status = await conversation.status()
    assert status.breakers["tool:save_note"].forced == "open"

    await conversation.handle.signal(
        SIGNAL_FORCE_BREAKER, BreakerCommand(dependency="tool:save_note", mode="closed")
    )
    reply = await conversation.send_message("Remember that breakers work")
    assert reply.status == "ok" and reply.tool_calls[0].outcome == "ok"
    await conversation.handle.signal(
        SIGNAL_FORCE_BREAKER, BreakerCommand(dependency="tool:save_note", mode="auto")
    )
    status = await conversation.status()
    assert status.breakers["tool:save_note"].forced is None
    assert status.breakers["tool:save_note"].state == "closed" and status.degraded == []

    await conversation.handle.signal(
        SIGNAL_FORCE_BREAKER, BreakerCommand(dependency="tool:teleport", mode="open")
    )
    status = await conversation.status()
    assert status.last_error and "unknown dependency 'tool:teleport'" in status.last_error


async def test_budget_exhausted_mid_turn_clamps_then_stops(
    client: Client, tmp_path: Path, tool_server: FakeToolServer, claude: FakeAnthropicServer
) -> None:
    # Room for one model call of at least 64 output tokens, not two.
    config = ConversationInput(
        limits=ConversationLimits(conversation=BudgetLimits(output_tokens=70))
    )
    async with claude_worker(client, tmp_path, tool_server, claude) as queue:
        conversation = await start_conversation(client, config, task_queue=queue)
        reply = await conversation.send_message("What is 6 * 7?")
        assert reply.status == "budget_exceeded"
        assert reply.detail and "output_tokens" in reply.detail
        assert [(c.name, c.outcome) for c in reply.tool_calls] == [("calculator", "ok")]
        calls = model_calls(claude)
        assert len(calls) == 1 and calls[0]["max_tokens"] == 70  # clamped from 1024

        status = await conversation.status()
        assert status.budget is not None
        spent = status.budget.spent.usage.output_tokens
        assert spent <= 70 and status.budget.remaining.output_tokens == 70 - spent
        again = await conversation.send_message("What is 1 + 1?")
        assert again.status == "budget_exceeded" and len(model_calls(claude)) == 1


async def test_dollar_budget_is_priced_per_model(
    client: Client, tmp_path: Path, tool_server: FakeToolServer, claude: FakeAnthropicServer
) -> None:
    config = ConversationInput(
        model="claude-sonnet-4-6",
        limits=ConversationLimits(conversation=BudgetLimits(usd=Decimal("0.05"))),
    )
    async with claude_worker(client, tmp_path, tool_server, claude) as queue:
        conversation = await start_conversation(client, config, task_queue=queue)
        reply = await conversation.send_message("What is 6 * 7?")
        assert reply.status == "ok" and reply.cost_usd > 0
        u = reply.usage
        expected = (Decimal(u.input_tokens) * 3 + Decimal(u.output_tokens) * 15) / 1_000_000
        assert reply.cost_usd == expected  # $3 / $15 per million tokens
        status = await conversation.status()
        assert status.cost_usd == expected and status.budget is not None
        assert status.budget.remaining.usd == Decimal("0.05") - expected

        tight = await start_conversation(
            client,
            ConversationInput(
                limits=ConversationLimits(conversation=BudgetLimits(usd=Decimal("0.0001")))
            ),
            task_queue=queue,
        )
        refused = await tight.send_message("What is 6 * 7?")
        assert refused.status == "budget_exceeded" and refused.detail and "usd" in refused.detail


async def test_tenant_rate_limit_makes_calls_wait(
    client: Client, tmp_path: Path, tool_server: FakeToolServer, claude: FakeAnthropicServer
) -> None:
    tenant = f"rate-{uuid.uuid4().hex[:6]}"
    limits = {tenant: TenantLimits(daily_usd=None, model_calls_per_minute=60, burst=1)}
    async with claude_worker(client, tmp_path, tool_server, claude, tenant_limits=limits) as queue:
        conversation = await start_conversation(
            client, ConversationInput(tenant=tenant), task_queue=queue
        )
        started = time.monotonic()
        reply = await conversation.send_message("What is 5 + 5?")  # two model calls
        assert reply.status == "ok" and "10" in reply.text
        assert time.monotonic() - started >= 0.9  # the second call waited for a token
        governor = client.get_workflow_handle(governor_id(tenant))

        async def governor_state() -> GovernorState:
            return await governor.query(GOVERNOR_QUERY_STATE, result_type=GovernorState)

        # The settle signal is sent without waiting (async-settle-v1): poll until it lands.
        state = await eventually(governor_state, until=lambda s: not s.reservations)
        assert state.granted == 2 and state.denied >= 1
        assert "TIMER_STARTED" in await history_events(conversation.handle)


async def test_tenant_daily_budget_stops_every_conversation_of_the_tenant(
    client: Client, tmp_path: Path, tool_server: FakeToolServer, claude: FakeAnthropicServer
) -> None:
    tenant = f"poor-{uuid.uuid4().hex[:6]}"
    limits = {tenant: TenantLimits(daily_usd=Decimal("0.05"), model_calls_per_minute=None)}
    async with claude_worker(client, tmp_path, tool_server, claude, tenant_limits=limits) as queue:
        config = ConversationInput(tenant=tenant, model="claude-sonnet-4-6")
        first = await start_conversation(client, config, task_queue=queue)
        assert (await first.send_message("What is 1 + 1?")).status == "ok"
        conversations = [first]
        governor = client.get_workflow_handle(governor_id(tenant))

        async def governor_state() -> GovernorState:
            return await governor.query(GOVERNOR_QUERY_STATE, result_type=GovernorState)

        # The first conversation holds a lease: part of the day is lent to it.
        assert (await governor_state()).committed_usd() > 0
        replies = []
        for _ in range(15):  # bounded: each turn spends, the day's budget runs out
            conversations.append(await start_conversation(client, config, task_queue=queue))
            # Budget lent to other leases is waited for (budget_held), not refused.
            replies.append(await conversations[-1].send_message("What is 2 + 2?"))
            if replies[-1].status != "ok":
                break
        assert replies[-1].status == "budget_exceeded"
        assert replies[-1].detail and "daily budget" in replies[-1].detail
        assert replies[-1].budget_scope == "tenant" and replies[-1].retry_after_seconds

        # Ending the conversations reports their leases: exactly what they spent counts,
        # and it is within the day's budget.
        for conversation in conversations:
            await conversation.end()
        state = await eventually(governor_state, until=lambda s: not s.leases)
        spent = sum([(await c.status()).cost_usd for c in conversations], Decimal(0))
        assert state.spent_usd == spent <= limits[tenant].daily_usd


@pytest.mark.parametrize("revision", [WORKFLOW_REVISION, TIMERLESS_REVISION - 1])
async def test_turn_deadline_cancels_in_flight_work(
    client: Client, task_queue: str, tool_server: FakeToolServer, revision: int
) -> None:
    """The deadline stops the slow tool call: runs of the current revision by the call's
    own schedule-to-close timeout (no timer), older runs by the deadline's timer, which
    cancels the call."""
    await warm_up(client, task_queue)
    tool_server.faults.add(Fault(delay=30.0, path="/v1/forecast"))
    input = ConversationInput(turn_timeout_seconds=4, revision=revision)
    conversation = await start_as_written(client, input, task_queue)
    started = time.monotonic()
    reply = await conversation.send_message("What's the weather in Sydney?")
    assert reply.status == "timeout" and time.monotonic() - started < 15
    events = await history_events(conversation.handle)
    history = await conversation.handle.fetch_history()
    deadline_timers = [
        e
        for e in history.events
        if e.HasField("timer_started_event_attributes")
        and e.user_metadata.summary.data.startswith(b'"turn deadline')
    ]
    if revision >= TIMERLESS_REVISION:
        assert "ACTIVITY_TASK_TIMED_OUT" in events and not deadline_timers
    else:
        assert "ACTIVITY_TASK_CANCEL_REQUESTED" in events and deadline_timers
    transcript = (await conversation.transcript()).messages
    assert [m.role for m in transcript] == ["user", "assistant", "user", "assistant"]
    assert "not run: the turn was stopped" in transcript[2].model_dump_json()  # tool_result
    assert transcript[3].text() == reply.text  # what the user was told

    after = await conversation.send_message("What is 7 * 6?")
    assert after.status == "ok" and "42" in after.text
