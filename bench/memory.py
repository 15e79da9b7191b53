"""Measurement 3: worker memory with many cached, idle conversations.

A fresh agent worker process takes ``idle_conversations`` conversations of
``idle_turns`` turns each (greetings: one model call each, no tool),
which then stay open and idle (the worker keeps up to 1,000 workflows in its cache);
the resident set size of the process is read from ``/proc/<pid>/status`` before (the
baseline) and after.
A fresh bare worker does the same with ``memory_bare_conversations`` (fewer: the
suite's time goes to the agent) for the memory per cached conversation.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.harness import (
    Bench,
    Deadline,
    Figure,
    Host,
    Result,
    greetings,
    open_chat,
    timed_turns,
)

RSS_TARGET_MIB = 200.0
MIB = 1024 * 1024
CONCURRENCY = 8
"""Conversations driven at once while filling the cache: below the server's limit of
10 updates in flight per workflow, which the tenant governor would otherwise hit (see
``bench.throughput``) and spend the time retrying."""


async def measure(bench: Bench) -> Result:
    """RSS of the agent's worker with the conversations cached, against the same worker
    idle; memory per cached conversation, agent vs bare."""
    scale = bench.scale
    result = Result(
        "memory", f"3. worker RSS with {scale.idle_conversations} cached idle conversations"
    )
    deadline = bench.deadline(scale.memory_seconds)
    counts = {"agent": scale.idle_conversations, "bare": scale.memory_bare_conversations}
    found = {}
    for kind, count in counts.items():
        found[kind] = await _measure_host(bench, bench.hosts[f"{kind}-memory"], count, deadline)
        result.problems += found[kind].pop("problems")
    agent, bare = found["agent"], found["bare"]
    result.add(
        Figure(
            f"worker RSS, {agent['conversations']} idle conversations",
            "MiB",
            agent["rss_mib"],
            agent["idle_worker_mib"],
            "same worker idle",
            "<=",
            RSS_TARGET_MIB,
            "value",
        )
    )
    result.add(
        Figure(
            "RSS per cached conversation",
            "KiB",
            agent["kib_per_conversation"],
            bare["kib_per_conversation"],
            f"bare, {bare['conversations']} conversations",
        )
    )
    result.details = found
    result.complete = all(found[kind]["conversations"] == count for kind, count in counts.items())
    return result


async def _measure_host(bench: Bench, host: Host, count: int, deadline: Deadline) -> dict[str, Any]:
    problems: list[str] = []
    idle = host.rss_bytes()
    began = time.monotonic()
    opened = await _fill(bench, host, count, deadline, problems)
    filled = time.monotonic() - began
    await asyncio.sleep(1.0)  # trailing workflow tasks
    rss = host.rss_bytes()
    return {
        "conversations": opened,
        "idle_worker_mib": round(idle / MIB, 1),
        "rss_mib": round(rss / MIB, 1),
        "kib_per_conversation": round((rss - idle) / 1024 / max(1, opened), 1),
        "fill_seconds": round(filled, 1),
        "problems": problems,
    }


async def _fill(
    bench: Bench, host: Host, count: int, deadline: Deadline, problems: list[str]
) -> int:
    """Open the conversations and run their turns, ``CONCURRENCY`` at a time; how many
    were opened before the deadline."""
    gate = asyncio.Semaphore(CONCURRENCY)
    opened = 0

    async def one(index: int) -> None:
        nonlocal opened
        async with gate:
            if deadline.expired:
                return
            chat = await open_chat(bench.client, host)
            opened += 1
            texts = greetings(f"{bench.seed}/idle/{index}")
            turns = bench.scale.idle_turns
            await timed_turns(chat, texts, turns, deadline, problems, model_calls=1)

    await asyncio.gather(*(one(i) for i in range(count)))
    return opened
