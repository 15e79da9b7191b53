"""Measurement 4: worker memory with many cached, idle conversations.

A fresh agent worker process takes ``idle_conversations`` conversations of
``idle_turns`` turns each (greetings: one model call each, no tool), which then stay
open and idle (the worker keeps up to 1,000 workflows in its cache); the resident set
size of the process is read from ``/proc/<pid>/status`` when it is fresh (the
baseline of the total) and after. A fresh bare worker does the same with
``memory_bare_conversations`` (fewer: the suite's time goes to the agent).

Memory per cached conversation leaves out what the first conversation costs once
(imports, connections, the sandbox's first module loads): it is the growth from the
first conversation to the last, divided by the conversations in between. Two more
workers, agent and bare, trace their heap with ``tracemalloc`` (``bench.host``) and
take ``heap_conversations`` each: the Python heap per cached conversation, without
the allocator's slack that RSS includes.
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
PER_CONVERSATION_TARGET = 1.3
"""Memory per cached conversation, agent over bare."""
MIB = 1024 * 1024
SETTLE_SECONDS = 2.0
"""Wait before each RSS reading: the trailing workflow tasks end, then the worker gives
freed heap back (``AGENT_MALLOC_TRIM_SECONDS``, every second by default), so both
readings follow a trim. Read
sooner, the reading after the first conversation could be untrimmed and the last one
trimmed, and the growth between them came out negative with ten conversations."""
CONCURRENCY = 8
"""Conversations driven at once while filling the cache: below the server's limit of
10 updates in flight per workflow, which the tenant governor would otherwise hit (see
``bench.throughput``) and spend the time retrying."""


async def measure(bench: Bench) -> Result:
    """RSS of the agent's worker with the conversations cached, against the same worker
    idle; memory (RSS and traced heap) per cached conversation, agent vs bare."""
    scale = bench.scale
    result = Result(
        "memory", f"4. worker RSS with {scale.idle_conversations} cached idle conversations"
    )
    deadline = bench.deadline(scale.memory_seconds)
    counts = {
        "agent": scale.idle_conversations,
        "bare": scale.memory_bare_conversations,
        "agent-heap": scale.heap_conversations,
        "bare-heap": scale.heap_conversations,
    }
    found = {}
    for name, count in counts.items():
        host = bench.hosts[name if name.endswith("heap") else f"{name}-memory"]
        found[name] = await _measure_host(bench, host, count, deadline)
        result.problems += found[name].pop("problems")
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
            "<=",
            PER_CONVERSATION_TARGET,
        )
    )
    heap, bare_heap = found["agent-heap"], found["bare-heap"]
    result.add(
        Figure(
            "heap per cached conversation (tracemalloc)",
            "KiB",
            heap["heap_kib_per_conversation"],
            bare_heap["heap_kib_per_conversation"],
            f"bare, {bare_heap['conversations']} conversations",
            "<=",
            PER_CONVERSATION_TARGET,
        )
    )
    result.details = found
    result.complete = all(found[name]["conversations"] == n for name, n in counts.items())
    return result


async def _measure_host(bench: Bench, host: Host, count: int, deadline: Deadline) -> dict[str, Any]:
    """Fill ``host``'s cache with ``count`` conversations: RSS (and traced heap) fresh,
    after the first conversation, and after the last."""
    problems: list[str] = []
    idle = host.rss_bytes()
    began = time.monotonic()
    first = await _fill(bench, host, 0, 1, deadline, problems)
    await asyncio.sleep(SETTLE_SECONDS)
    warm_rss = host.rss_bytes()
    warm_heap = await host.traced_bytes() if host.heap_file else 0
    rest = await _fill(bench, host, 1, count - 1, deadline, problems)
    filled = time.monotonic() - began
    await asyncio.sleep(SETTLE_SECONDS)
    rss = host.rss_bytes()
    heap = await host.traced_bytes() if host.heap_file else 0
    found: dict[str, Any] = {
        "conversations": first + rest,
        "idle_worker_mib": round(idle / MIB, 1),
        "first_conversation_mib": round(warm_rss / MIB, 1),
        "rss_mib": round(rss / MIB, 1),
        "kib_per_conversation": round((rss - warm_rss) / 1024 / max(1, rest), 1),
        "fill_seconds": round(filled, 1),
        "problems": problems,
    }
    if host.heap_file:
        found["heap_after_first_mib"] = round(warm_heap / MIB, 2)
        found["heap_mib"] = round(heap / MIB, 2)
        found["heap_kib_per_conversation"] = round((heap - warm_heap) / 1024 / max(1, rest), 1)
    return found


async def _fill(
    bench: Bench, host: Host, start: int, count: int, deadline: Deadline, problems: list[str]
) -> int:
    """Open conversations ``start`` to ``start + count`` and run their turns,
    ``CONCURRENCY`` at a time; how many were opened before the deadline."""
    gate = asyncio.Semaphore(CONCURRENCY)
    opened = 0

    async def one(index: int) -> None:
        nonlocal opened
        async with gate:
            if deadline.expired:
                return
            chat = await open_chat(bench.client, host)
            opened += 1
            texts = greetings(f"{bench.seed}/idle/{host.kind}/{index}")
            turns = bench.scale.idle_turns
            await timed_turns(chat, texts, turns, deadline, problems, model_calls=1)

    await asyncio.gather(*(one(i) for i in range(start, start + count)))
    return opened
