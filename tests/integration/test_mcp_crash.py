"""kill -9 the worker while an MCP tool call is in flight; another worker finishes the
turn exactly once, with no gap in the transcript."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench.processes import worker_process
from durable_agent.client import start_conversation
from durable_agent.contract import ConversationInput, ToolResultBlock, ToolUseBlock
from durable_agent.devserver import DevServer
from durable_agent.testing.fake_tools import FakeToolServer
from tests.helpers import eventually
from tests.integration.test_mcp_activities import stdio_desk


async def test_worker_killed_during_an_mcp_call(
    client: Client, temporal_server: DevServer, tool_server: FakeToolServer, tmp_path: Path
) -> None:
    task_queue = f"mcp-crash-{uuid.uuid4().hex[:10]}"
    state = tmp_path / "desk-state"
    state.mkdir()
    # A short heartbeat timeout: the killed attempt is retried within seconds.
    desk = stdio_desk(state, heartbeat_seconds=2.0)
    env = {"AGENT_MCP_SERVERS": json.dumps({"desk": desk.model_dump(exclude_defaults=True)})}
    started = state / "slow-started"
    conversation = await start_conversation(
        client, ConversationInput(toolsets=["desk"]), task_queue=task_queue
    )
    # The offline planner calls an MCP tool when the message names it.
    message = 'use desk__slow {"seconds": 4}'

    async with worker_process(
        temporal_server, task_queue, tmp_path / "notes.sqlite3", tool_server, env=env
    ) as first:
        turn = asyncio.create_task(conversation.send_message(message))
        await eventually(_exists(started), timeout=30)  # the call is in flight
        first.send_signal(signal.SIGKILL)
        await first.wait()
        assert not turn.done()
    started.unlink()

    async with worker_process(
        temporal_server, task_queue, tmp_path / "notes.sqlite3", tool_server, env=env
    ):
        reply = await asyncio.wait_for(turn, timeout=90)
        messages = (await conversation.transcript()).messages
        status = await conversation.status()

    assert started.exists()  # the second worker called the tool again
    (call,) = reply.tool_calls
    assert (call.name, call.outcome, call.result) == ("desk__slow", "ok", "slept 4.0")
    # No gap: one tool_use, its one result, one answer.
    assert [m.role for m in messages] == ["user", "assistant", "user", "assistant"]
    (use,) = [b for b in messages[1].content if isinstance(b, ToolUseBlock)]
    (result,) = [b for b in messages[2].content if isinstance(b, ToolResultBlock)]
    assert result.tool_use_id == use.id and "slept 4.0" in result.content
    assert status.turns == 1 and status.tool_calls == 1 and status.model_calls == 2

    history = await conversation.handle.fetch_history()
    scheduled = {
        e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    # History records one started event per activity, with its final attempt.
    attempts = sorted(
        (scheduled[e.activity_task_started_event_attributes.scheduled_event_id],
         e.activity_task_started_event_attributes.attempt)
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    )  # fmt: skip
    assert [a for a in attempts if a[0].startswith(("mcp.", "model."))] == [
        ("mcp.call_tool", 2),  # the killed attempt timed out on its heartbeat
        ("mcp.list_tools", 1),
        ("model.invoke", 1),
        ("model.invoke", 1),
    ]


def _exists(path: Path):  # type: ignore[no-untyped-def]
    async def probe() -> bool:
        return path.exists()

    return probe
