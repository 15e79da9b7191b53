"""The Claude path end to end: the real ``anthropic`` SDK streams over real HTTP from a
loopback fake of the Messages API, inside real activities on the real dev server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.client import Client

from durable_agent.client import Conversation, start_conversation
from durable_agent.config import DEFAULT_CLAUDE_MODEL
from durable_agent.testing.fake_anthropic import FakeAnthropicServer
from durable_agent.testing.fake_tools import FakeToolServer
from durable_agent.testing.faults import Fault
from durable_agent.testing.responders import ScriptedResponder, offline_responder
from tests.conftest import claude_worker
from tests.helpers import eventually
from workflows.replay import export_history

CANARY_KEY = "sk-ant-canary-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def fake_claude() -> Iterator[FakeAnthropicServer]:
    with FakeAnthropicServer(responder=offline_responder) as server:
        yield server


@pytest.fixture
async def claude_queue(
    client: Client, tmp_path: Path, tool_server: FakeToolServer, fake_claude: FakeAnthropicServer
) -> AsyncIterator[str]:
    fake_claude.reset()
    fake_claude.responder = offline_responder
    async with claude_worker(
        client, tmp_path, tool_server, fake_claude, ANTHROPIC_API_KEY=CANARY_KEY
    ) as queue:
        yield queue


async def _start(client: Client, queue: str) -> Conversation:
    return await start_conversation(client, task_queue=queue)


def _model_requests(server: FakeAnthropicServer) -> list[dict]:
    return [r.body for r in server.requests if r.path == "/v1/messages"]


async def test_claude_path_streams_tool_use_end_to_end(
    client: Client, claude_queue: str, fake_claude: FakeAnthropicServer
) -> None:
    conversation = await _start(client, claude_queue)
    reply = await conversation.send_message("What is 7 * 6 and what's the weather in Paris?")
    assert reply.backend == "claude" and reply.model == DEFAULT_CLAUDE_MODEL
    assert sorted(c.name for c in reply.tool_calls) == ["calculator", "get_weather"]
    assert "42" in reply.text and "Paris" in reply.text

    bodies = _model_requests(fake_claude)
    assert len(bodies) == 2 and all(b["stream"] is True for b in bodies)
    assert {t["name"] for t in bodies[0]["tools"]} >= {"calculator", "save_note", "get_weather"}
    calculator = next(t for t in bodies[0]["tools"] if t["name"] == "calculator")
    assert calculator["input_schema"]["required"] == ["expression"]
    # The second call carries the tool results as tool_result blocks in a user message.
    last = bodies[1]["messages"][-1]
    assert last["role"] == "user" and {b["type"] for b in last["content"]} == {"tool_result"}
    for recorded in fake_claude.requests:
        assert recorded.headers.get("x-stainless-retry-count") == "0"  # SDK retries off

    # A note after reading the weather (untrusted content) waits for a person.
    asked = asyncio.ensure_future(conversation.send_message("Remember that Claude streamed this."))
    status = await eventually(conversation.status, until=lambda s: bool(s.pending_approvals))
    await conversation.approve(status.pending_approvals[0].call_id, by="tester")
    second = await asked
    assert [c.name for c in second.tool_calls] == ["save_note"] and second.turn == 2


async def test_api_key_never_enters_history(
    client: Client, claude_queue: str, fake_claude: FakeAnthropicServer
) -> None:
    conversation = await _start(client, claude_queue)
    await conversation.send_message("What is 1 + 2?")
    auth = fake_claude.requests[0].headers
    assert CANARY_KEY in (auth.get("x-api-key", "") + auth.get("authorization", ""))
    history = await export_history(client, conversation.id)
    assert CANARY_KEY not in history


async def test_unknown_tool_and_bad_arguments_go_back_to_the_model(
    client: Client, claude_queue: str, fake_claude: FakeAnthropicServer
) -> None:
    script = ScriptedResponder(
        [
            {
                "id": "msg_1", "type": "message", "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_a", "name": "teleport", "input": {}},
                    {"type": "tool_use", "id": "toolu_b", "name": "calculator",
                     "input": {"expr": "1+1"}},
                ],
                "stop_reason": "tool_use", "stop_sequence": None,
                "usage": {"input_tokens": 10, "output_tokens": 5},
            },
            {
                "id": "msg_2", "type": "message", "role": "assistant",
                "content": [{"type": "text", "text": "Sorry, I used the tools wrongly."}],
                "stop_reason": "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": 20, "output_tokens": 7},
            },
        ]
    )  # fmt: skip
    fake_claude.responder = script
    conversation = await _start(client, claude_queue)
    reply = await conversation.send_message("do something odd")
    outcomes = {c.name: c for c in reply.tool_calls}
    assert outcomes["teleport"].outcome == "unknown_tool"
    assert "unknown tool 'teleport'" in outcomes["teleport"].result
    assert outcomes["calculator"].outcome == "invalid_arguments"
    assert "expression: Field required" in outcomes["calculator"].result
    assert reply.text == "Sorry, I used the tools wrongly."
    assert reply.usage.input_tokens == 30 and reply.usage.output_tokens == 12

    results = script.bodies[1]["messages"][-1]["content"]
    assert [r["is_error"] for r in results] == [True, True]
    assert (await conversation.status()).state == "idle"


async def test_overloaded_is_retried_after_retry_after(
    client: Client, claude_queue: str, fake_claude: FakeAnthropicServer
) -> None:
    fake_claude.faults.add(Fault(status=529, retry_after=1.5))
    conversation = await _start(client, claude_queue)
    reply = await conversation.send_message("What is 10 - 4?")
    assert reply.status == "ok" and "6" in reply.text
    calls = [r for r in fake_claude.requests if r.path == "/v1/messages"]
    assert len(calls) == 3  # 529, then the two calls of the turn
    assert calls[1].received_at - calls[0].received_at >= 1.4


async def test_stream_cut_mid_response_is_retried(
    client: Client, claude_queue: str, fake_claude: FakeAnthropicServer
) -> None:
    fake_claude.faults.add(Fault(cut_stream_after=3))
    conversation = await _start(client, claude_queue)
    reply = await conversation.send_message("What is 9 * 9?")
    assert "81" in reply.text
    assert len(_model_requests(fake_claude)) == 3


async def test_bad_request_fails_once_and_the_turn_says_why(
    client: Client, claude_queue: str, fake_claude: FakeAnthropicServer
) -> None:
    fake_claude.faults.add(Fault(status=400))
    conversation = await _start(client, claude_queue)
    reply = await conversation.send_message("What is 2 + 2?")
    assert reply.status == "model_error"
    assert "the request is invalid" in reply.text
    assert len(_model_requests(fake_claude)) == 1  # non-retryable: one attempt
    status = await conversation.status()
    assert status.last_error and "(400)" in status.last_error

    again = await conversation.send_message("What is 2 + 2?")  # still usable
    assert again.status == "ok" and "4" in again.text


@pytest.mark.parametrize(
    ("fault", "requests", "status", "says"),
    [
        (Fault(status=429, retry_after=0.5), 3, "ok", None),
        (Fault(status=500), 3, "ok", None),
        (Fault(status=503, retry_after=0.2), 3, "ok", None),
        (Fault(drop=True), 3, "ok", None),
        (Fault(stream_error="overloaded_error"), 3, "ok", None),
        (Fault(status=401), 1, "model_error", "check ANTHROPIC_API_KEY"),
        (Fault(status=403), 1, "model_error", "may not use this model"),
        (Fault(status=404), 1, "model_error", "check the model name"),
        (Fault(status=413), 1, "model_error", "shorten the conversation"),
    ],
    ids=["429", "500", "503", "drop", "stream-overloaded", "401", "403", "404", "413"],
)
async def test_each_failure_class_end_to_end(
    client: Client,
    claude_queue: str,
    fake_claude: FakeAnthropicServer,
    fault: Fault,
    requests: int,
    status: str,
    says: str | None,
) -> None:
    fake_claude.faults.add(fault)
    conversation = await _start(client, claude_queue)
    reply = await conversation.send_message("What is 3 + 4?")
    assert reply.status == status
    assert len(_model_requests(fake_claude)) == requests  # retried once, or never
    if says:
        assert says in reply.text and reply.detail and says in reply.detail
    else:
        assert "7" in reply.text


async def test_model_timeout_is_retried(
    client: Client, tmp_path: Path, tool_server: FakeToolServer, fake_claude: FakeAnthropicServer
) -> None:
    fake_claude.reset()
    fake_claude.responder = offline_responder
    fake_claude.faults.add(Fault(delay=3.0))
    async with claude_worker(
        client, tmp_path, tool_server, fake_claude, model_timeout_seconds=0.5
    ) as queue:
        conversation = await _start(client, queue)
        reply = await conversation.send_message("What is 3 + 4?")
        assert reply.status == "ok" and "7" in reply.text
        history = await export_history(client, conversation.id)
        assert "the model call timed out" in history  # attempt 1's failure, recorded
