"""MCP servers as toolsets, through a conversation: a model (the fake Messages API
replaying a script) is offered a server's tools under namespaced names and calls them
as activities, with approvals, breakers and degradation like built-in tools. The server
is the real one in ``tests/mcp_servers`` (the ``mcp`` SDK, over stdio)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from durable_agent.breaker import BreakerConfig
from durable_agent.client import start_conversation
from durable_agent.contract import ConversationInput, SafetyPolicy
from durable_agent.testing.fake_anthropic import FakeAnthropicServer
from durable_agent.testing.fake_tools import FakeToolServer
from durable_agent.testing.responders import ScriptedResponder
from durable_agent.toolsets import McpServerConfig, StdioServer
from tests.conftest import claude_worker
from tests.helpers import eventually
from tests.integration.test_mcp_activities import stdio_desk
from workflows.replay import export_history, replayer

DESK = ConversationInput(toolsets=["desk"])


def _message(content: list[dict[str, Any]]) -> dict[str, Any]:
    stop = "tool_use" if content[0]["type"] == "tool_use" else "end_turn"
    return {
        "id": "msg_script", "type": "message", "role": "assistant", "content": content,
        "stop_reason": stop, "stop_sequence": None,
        "usage": {"input_tokens": 100, "output_tokens": 20},
    }  # fmt: skip


def script(*steps: list[dict[str, Any]]) -> ScriptedResponder:
    return ScriptedResponder([_message(step) for step in steps])


def use(name: str, **arguments: Any) -> list[dict[str, Any]]:
    return [{"type": "tool_use", "id": f"toolu_{name}", "name": name, "input": arguments}]


def say(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": text}]


@pytest.fixture
def state(tmp_path: Path) -> Path:
    path = tmp_path / "desk-state"
    path.mkdir()
    return path


async def _queue(
    client: Client,
    tmp_path: Path,
    tool_server: FakeToolServer,
    claude: FakeAnthropicServer,
    servers: dict[str, McpServerConfig],
) -> AsyncIterator[str]:
    claude.reset()
    async with claude_worker(client, tmp_path, tool_server, claude, mcp_servers=servers) as q:
        yield q
    claude.reset()


@pytest.fixture
async def desk_queue(
    client: Client,
    tmp_path: Path,
    tool_server: FakeToolServer,
    anthropic_server: FakeAnthropicServer,
    state: Path,
) -> AsyncIterator[str]:
    servers: dict[str, McpServerConfig] = {"desk": stdio_desk(state)}
    async for queue in _queue(client, tmp_path, tool_server, anthropic_server, servers):
        yield queue


async def test_the_model_is_offered_the_servers_tools_and_calls_one(
    client: Client, desk_queue: str, anthropic_server: FakeAnthropicServer
) -> None:
    responder = script(use("desk__lookup_order", order_id="A1"), say("Order A1 has shipped."))
    anthropic_server.responder = responder
    conversation = await start_conversation(client, DESK, task_queue=desk_queue)
    reply = await conversation.send_message("Where is order A1?")
    assert reply.status == "ok" and reply.text == "Order A1 has shipped."
    (call,) = reply.tool_calls
    assert (call.name, call.outcome) == ("desk__lookup_order", "ok") and "A1" in call.result
    offered = {tool["name"] for tool in responder.bodies[0]["tools"]}
    assert {"desk__lookup_order", "desk__refund_order", "calculator"} <= offered
    # The catalog is listed once: the next turn does not ask the server again.
    anthropic_server.responder = script(say("Anything else?"))
    assert (await conversation.send_message("Thanks")).status == "ok"
    history = await conversation.handle.fetch_history()
    listed = [
        e
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == "mcp.list_tools"
    ]
    assert len(listed) == 1
    # A history with MCP calls replays.
    await conversation.end()
    await conversation.handle.result()
    text = await export_history(client, conversation.id)
    from temporalio.client import WorkflowHistory

    await replayer().replay_workflow(WorkflowHistory.from_json(conversation.id, text))


async def test_a_tool_error_is_a_result_the_model_reads(
    client: Client, desk_queue: str, anthropic_server: FakeAnthropicServer
) -> None:
    anthropic_server.responder = script(use("desk__broken", reason="disk full"), say("Sorry."))
    conversation = await start_conversation(client, DESK, task_queue=desk_queue)
    reply = await conversation.send_message("Break it")
    assert reply.status == "ok"
    (call,) = reply.tool_calls
    assert call.outcome == "error" and "broken" in call.result  # the server words it


async def test_a_destructive_tool_waits_for_approval(
    client: Client, desk_queue: str, anthropic_server: FakeAnthropicServer
) -> None:
    anthropic_server.responder = script(
        use("desk__refund_order", order_id="A1", amount=5.0), say("Refunded.")
    )
    # destructiveHint maps to ``write``; this policy asks before every write.
    policy = SafetyPolicy(approval_levels=["write", "execute", "admin"])
    conversation = await start_conversation(
        client, DESK.model_copy(update={"safety": policy}), task_queue=desk_queue
    )
    reply = asyncio.ensure_future(conversation.send_message("Refund A1 by 5"))
    status = await eventually(conversation.status, until=lambda s: bool(s.pending_approvals))
    (pending,) = status.pending_approvals
    assert pending.tool == "desk__refund_order" and pending.permission == "write"
    await conversation.approve(pending.call_id, by="supervisor")
    (call,) = (await reply).tool_calls
    assert call.outcome == "ok" and call.approval and call.approval.decision == "approved"


async def test_a_server_that_is_down_degrades_the_turn_not_the_conversation(
    client: Client,
    tmp_path: Path,
    tool_server: FakeToolServer,
    anthropic_server: FakeAnthropicServer,
) -> None:
    servers: dict[str, McpServerConfig] = {
        "desk": StdioServer(command=str(tmp_path / "no-such-server"))
    }
    async for queue in _queue(client, tmp_path, tool_server, anthropic_server, servers):
        responder = script(say("The support desk is unavailable; 2 + 2 is 4."))
        anthropic_server.responder = responder
        conversation = await start_conversation(client, DESK, task_queue=queue)
        reply = await conversation.send_message("Where is order A1, and what is 2 + 2?")
        assert reply.status == "ok" and "mcp:desk" in reply.degraded
        assert "toolsets are unavailable right now: desk" in responder.bodies[0]["system"][0][
            "text"
        ] or "toolsets are unavailable right now: desk" in str(responder.bodies[0]["system"])
        offered = {tool["name"] for tool in responder.bodies[0]["tools"]}
        assert "calculator" in offered and not any(n.startswith("desk__") for n in offered)
        status = await conversation.status()
        assert status.last_error and "desk" in status.last_error
        # Each turn asks again until the server's breaker opens; then it is not asked.
        for _ in range(BreakerConfig().failure_threshold - 1):
            assert (await conversation.send_message("And now?")).status == "ok"
        status = await conversation.status()
        assert status.breakers["mcp:desk"].state == "open" and "mcp:desk" in status.degraded
        history = await conversation.handle.fetch_history()
        listings = [
            e
            for e in history.events
            if e.HasField("activity_task_scheduled_event_attributes")
            and e.activity_task_scheduled_event_attributes.activity_type.name == "mcp.list_tools"
        ]
        assert len(listings) == BreakerConfig().failure_threshold
        assert (await conversation.send_message("Still there?")).status == "ok"
        history = await conversation.handle.fetch_history()
        assert len(history.events) > 0 and sum(
            e.HasField("activity_task_scheduled_event_attributes")
            and e.activity_task_scheduled_event_attributes.activity_type.name == "mcp.list_tools"
            for e in history.events
        ) == len(listings)  # open: not asked
