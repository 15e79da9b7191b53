"""Measurement 6: prompt caching on the Claude path.

A conversation of ``caching_turns`` turns runs on a worker whose model backend is
Claude (the real SDK) talking to the loopback ``FakeAnthropicServer``. The usage each
reply reports says how many input tokens were read from the prompt cache; from turn 2
on that share should be high, and the conversation's cost (``durable_agent.pricing``)
should be a fraction of what the same tokens cost uncached (the baseline: every input
token, cached or not, at the base input price).

It reads the usage the replies report, so it measures whatever the fake (and the
agent's requests) do: with no cache breakpoints, or a fake that reports no cache
usage, the share is 0 and the cost ratio 1. How many requests carried a
``cache_control`` breakpoint is reported beside it.
"""

from __future__ import annotations

import json
import random
from decimal import Decimal

from bench.harness import Bench, Figure, Result, open_chat
from durable_agent.contract import ConversationInput, Reply
from durable_agent.pricing import cost, price_for
from durable_agent.testing.fake_anthropic import FakeAnthropicServer
from durable_agent.usage import Usage

CACHE_READ_TARGET = 0.90
COST_TARGET = 0.25
MODEL = "claude-sonnet-4-6"
_TOPICS = (
    "durable execution",
    "event sourcing",
    "retry policies",
    "idempotency keys",
    "workflow versioning",
    "task queues",
    "heartbeats",
    "continue-as-new",
)


def claude_env(fake: FakeAnthropicServer) -> dict[str, str]:
    """Settings of a worker on the Claude path against ``fake``."""
    return {
        "AGENT_MODEL_BACKEND": "claude",
        "AGENT_ANTHROPIC_BASE_URL": fake.base_url,
        "ANTHROPIC_API_KEY": "bench-key",
        "AGENT_MODEL": MODEL,
    }


def message(rng: random.Random, turn: int) -> str:
    """A plain question of a few sentences (no tool would answer it)."""
    topic = rng.choice(_TOPICS)
    return (
        f"Question {turn}: in two or three sentences, how does {topic} relate to what we "
        f"discussed so far? Keep it short and mention one trade-off of {topic} that a "
        "team running agents in production should know about."
    )


def uncached(usage: Usage) -> Usage:
    """The same tokens with no prompt cache: every input token at the base price."""
    return Usage(
        input_tokens=usage.input_tokens
        + usage.cache_creation_input_tokens
        + usage.cache_read_input_tokens,
        output_tokens=usage.output_tokens,
    )


async def measure(bench: Bench, fake: FakeAnthropicServer) -> Result:
    """Share of input tokens read from cache from turn 2; cost vs no caching."""
    turns = bench.scale.caching_turns
    result = Result("caching", f"6. prompt caching over {turns} turns (Claude path, fake API)")
    deadline = bench.deadline(bench.scale.caching_seconds)
    fake.reset()
    chat = await open_chat(bench.client, bench.hosts["claude"], ConversationInput(model=MODEL))
    rng = random.Random(f"{bench.seed}/caching")
    replies: list[Reply] = []
    for turn in range(1, turns + 1):
        if deadline.expired:
            break
        reply = await chat.send(message(rng, turn))
        if reply.status != "ok":
            result.problems.append(f"turn {turn}: {reply.status}: {reply.detail}")
        replies.append(reply)
    await chat.end()
    later = replies[1:]
    read = sum(r.usage.cache_read_input_tokens for r in later)
    inputs = sum(uncached(r.usage).input_tokens for r in later)
    with_cache = sum((cost(r.usage, price_for(r.model)) for r in replies), Decimal(0))
    without = sum((cost(uncached(r.usage), price_for(r.model)) for r in replies), Decimal(0))
    result.add(
        Figure(
            "input tokens read from cache, turn ≥ 2",
            "share",
            read / inputs if inputs else 0.0,
            target_op=">=",
            target=CACHE_READ_TARGET,
            target_on="value",
        )
    )
    result.add(
        Figure(
            "conversation cost",
            "USD",
            float(with_cache),
            float(without),
            "uncached",
            "<=",
            COST_TARGET,
        )
    )
    bodies = [r.body for r in fake.requests if r.path == "/v1/messages"]
    result.details = {
        "turns": len(replies),
        "usage_by_turn": [r.usage.model_dump() for r in replies],
        "requests": len(bodies),
        "requests_with_cache_control": sum('"cache_control"' in json.dumps(b) for b in bodies),
    }
    result.complete = len(replies) == turns
    return result
