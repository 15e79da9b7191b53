"""Prompt caching on the Claude path: a 20-turn conversation reads its transcript from the
prompt cache (the loopback fake keeps one, as the API does) and costs a fraction of the
same conversation sent without cache breakpoints."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.client import Client

from durable_agent.client import start_conversation
from durable_agent.contract import DEFAULT_SYSTEM_PROMPT, ConversationInput, Reply, Usage
from durable_agent.testing.fake_anthropic import FakeAnthropicServer
from durable_agent.testing.fake_tools import FakeToolServer
from durable_agent.testing.prompt_cache import MAX_BREAKPOINTS, breakpoint_count
from durable_agent.testing.responders import offline_responder
from tests.conftest import claude_worker

# A production-sized system prompt: caching pays only for prefixes of at least the
# model's minimum (1,024 tokens for Sonnet), and the default prompt plus five tools is less.
HOUSE_RULES = "\n".join(
    f"Rule {i}: check every figure twice, cite the tool that produced it, and say plainly "
    "when a tool failed or a fact could not be verified; never guess a number."
    for i in range(1, 41)
)
SYSTEM_PROMPT = f"{DEFAULT_SYSTEM_PROMPT}\n\n{HOUSE_RULES}"
CITIES = ("Paris", "Tokyo", "Berlin", "London")
QUESTIONS = [
    f"What's the weather in {CITIES[n // 5]}?" if n % 5 == 4 else f"What is {n + 2} * {n + 7}?"
    for n in range(20)
]


@pytest.fixture(scope="module")
def fake_claude() -> Iterator[FakeAnthropicServer]:
    with FakeAnthropicServer(responder=offline_responder) as server:
        yield server


async def _converse(
    client: Client,
    tmp_path: Path,
    tool_server: FakeToolServer,
    fake_claude: FakeAnthropicServer,
    *,
    prompt_caching: bool,
) -> list[Reply]:
    async with claude_worker(
        client, tmp_path, tool_server, fake_claude, prompt_caching=prompt_caching
    ) as queue:
        conversation = await start_conversation(
            client, ConversationInput(system_prompt=SYSTEM_PROMPT), task_queue=queue
        )
        replies = [await conversation.send_message(q) for q in QUESTIONS]
        status = await conversation.status()
    assert [r.status for r in replies] == ["ok"] * len(QUESTIONS)
    assert status.cost_usd == sum((r.cost_usd for r in replies), Decimal(0))
    return replies


def _input(usage: Usage) -> int:
    return usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens


async def test_a_long_conversation_reads_its_transcript_from_the_cache(
    client: Client, tmp_path: Path, tool_server: FakeToolServer, fake_claude: FakeAnthropicServer
) -> None:
    fake_claude.reset()
    baseline = await _converse(client, tmp_path, tool_server, fake_claude, prompt_caching=False)
    sent = [r.body for r in fake_claude.requests if r.path == "/v1/messages"]
    assert sent and all(breakpoint_count(body) == 0 for body in sent)

    fake_claude.reset()
    cached = await _converse(client, tmp_path, tool_server, fake_claude, prompt_caching=True)
    sent = [r.body for r in fake_claude.requests if r.path == "/v1/messages"]
    assert len(sent) == 2 * len(QUESTIONS)  # a tool call and an answer per turn
    assert all(breakpoint_count(body) == MAX_BREAKPOINTS for body in sent[2:])

    # The same conversation either way: the same prompts, only billed differently.
    assert [r.text for r in cached] == [r.text for r in baseline]
    assert [_input(r.usage) for r in cached] == [_input(r.usage) for r in baseline]
    assert all(r.usage.cache_read_input_tokens == 0 for r in baseline)

    for reply in cached[1:]:
        fraction = reply.usage.cache_read_input_tokens / _input(reply.usage)
        assert fraction >= 0.9, (reply.turn, reply.usage)
    cost = sum((r.cost_usd for r in cached), Decimal(0))
    without = sum((r.cost_usd for r in baseline), Decimal(0))
    assert cost <= without / 4, (cost, without)
