"""User tools end to end: a module named in settings is loaded by the worker, offered to
the model, called as its own activity; a bad module stops the worker process."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from durable_agent.client import start_conversation
from durable_agent.contract import ConversationInput
from durable_agent.testing.fake_anthropic import FakeAnthropicServer
from durable_agent.testing.fake_tools import FakeToolServer
from durable_agent.testing.responders import ScriptedResponder
from tests.conftest import claude_worker
from tests.helpers import history_events, run_command


def _message(n: int, content: list[dict[str, Any]], stop: str) -> dict[str, Any]:
    return {
        "id": f"msg_{n}", "type": "message", "role": "assistant", "content": content,
        "stop_reason": stop, "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5},
    }  # fmt: skip


@pytest.fixture
async def queue(
    client: Client, tmp_path: Path, tool_server: FakeToolServer
) -> AsyncIterator[tuple[str, ScriptedResponder]]:
    script = ScriptedResponder(
        [
            _message(
                1,
                [{"type": "tool_use", "id": "toolu_1", "name": "lookup_order",
                  "input": {"order_id": "A-2"}}],
                "tool_use",
            ),
            _message(2, [{"type": "text", "text": "It is waiting for stock."}], "end_turn"),
        ]
    )  # fmt: skip
    with FakeAnthropicServer(responder=script) as claude:
        async with claude_worker(
            client, tmp_path, tool_server, claude, tool_modules="tests.user_tools.orders"
        ) as queue:
            yield queue, script


async def test_a_user_tool_module_from_settings_is_live(
    client: Client, queue: tuple[str, ScriptedResponder]
) -> None:
    task_queue, script = queue
    conversation = await start_conversation(
        client, ConversationInput(tools=["lookup_order", "calculator"]), task_queue=task_queue
    )
    reply = await conversation.send_message("Where is order A-2?")
    (used,) = reply.tool_calls
    assert (used.name, used.outcome) == ("lookup_order", "ok")
    assert used.result == "order A-2: waiting for stock"
    offered = {t["name"]: t for t in script.bodies[0]["tools"]}
    assert offered.keys() == {"lookup_order", "calculator"}
    assert offered["lookup_order"]["description"] == "Look up an order's status."
    assert "ACTIVITY_TASK_COMPLETED" in await history_events(conversation.handle)
    await conversation.end()


async def test_a_bad_tool_module_stops_the_worker(tmp_path: Path) -> None:
    env = os.environ | {
        "AGENT_TOOL_MODULES": "tests.user_tools.orders,tests.user_tools.broken",
        "AGENT_TEMPORAL_ADDRESS": "127.0.0.1:9",  # never reached
        "AGENT_HEALTH_PORT": "0",
        "AGENT_METRICS_PORT": "0",
        "AGENT_LOG_FORMAT": "text",
    }
    code, _, err = await run_command(sys.executable, "worker.py", env=env, timeout=60)
    assert code == 1
    assert "tool module 'tests.user_tools.broken' failed to import" in err
    assert "ModuleNotFoundError" in err
