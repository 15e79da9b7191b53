"""Measurement 2: throughput and turn latency under concurrent conversations.

At each level (1, 50, 200 in the full run) that many conversations run on one worker,
each sending its turns one after the other, all at once; throughput is completed turns
over the wall time from the first message to the last reply. Agent and bare alternate
which goes first from level to level. Conversations are started before the clock runs.

Agent conversations are spread over tenants, ``CONVERSATIONS_PER_TENANT`` each: every
tenant's governor is one workflow that every model call of the tenant asks by update,
and the server accepts at most 10 updates in flight per workflow (its
``history.maxInFlightUpdates`` default), so one tenant cannot have more model calls in
flight than that. The hot-tenant probe then shows what happens past it: ``hot_tenant``
conversations of one tenant, one turn each, all at once.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from bench.harness import (
    TURN_FAILURES,
    AgentChat,
    BareChat,
    Bench,
    Deadline,
    Figure,
    Host,
    Result,
    history_profile,
    open_chat,
    percentile,
    prompts,
    timed_turns,
)

THROUGHPUT_TARGET = 0.95
START_CONCURRENCY = 50
"""Conversations started (and ended) at once."""
CONVERSATIONS_PER_TENANT = 8
"""Below the server's 10 updates in flight per workflow (the tenant's governor)."""
PROFILED = 10
"""Conversations per level whose histories are profiled (activities, retries)."""


async def measure(bench: Bench) -> Result:
    """Turns per second and p50/p99 latency, agent vs bare, at each concurrency level."""
    result = Result("throughput", "2. throughput and latency under concurrency (one worker)")
    deadline = bench.deadline(bench.scale.throughput_seconds)
    levels = bench.scale.concurrency
    for index, level in enumerate(levels):
        kinds = ["agent", "bare"] if index % 2 == 0 else ["bare", "agent"]
        figures = {}
        for kind in kinds:
            figures[kind] = await _level(bench, bench.hosts[kind], level, deadline, result)
        agent, bare = figures["agent"], figures["bare"]
        last = level == levels[-1]
        result.add(
            Figure(
                f"throughput @{level}",
                "turns/s",
                agent["throughput"],
                bare["throughput"],
                "bare",
                ">=" if last else None,
                THROUGHPUT_TARGET if last else None,
            )
        )
        for q in ("p50", "p99"):
            result.add(Figure(f"latency {q} @{level}", "ms", agent[q], bare[q], "bare"))
        result.details[f"level_{level}"] = figures
        planned = level * bench.scale.throughput_turns[index]
        result.complete &= all(f["turns"] == planned for f in figures.values())
    if bench.scale.hot_tenant and deadline.expired:
        result.complete = False
    elif bench.scale.hot_tenant:
        probe = await _hot_tenant(bench, bench.hosts["agent"], bench.scale.hot_tenant)
        result.details["hot_tenant"] = probe
        result.add(
            Figure(f"one tenant, {bench.scale.hot_tenant} at once: turns ok", "share", probe["ok"])
        )
    return result


async def _open(
    bench: Bench, host: Host, count: int, tenants: list[str]
) -> list[AgentChat | BareChat]:
    gate = asyncio.Semaphore(START_CONCURRENCY)

    async def opened(tenant: str) -> AgentChat | BareChat:
        async with gate:
            return await open_chat(bench.client, host, tenant=tenant)

    return list(await asyncio.gather(*(opened(tenants[i]) for i in range(count))))


async def _end(chats: list[AgentChat | BareChat]) -> None:
    gate = asyncio.Semaphore(START_CONCURRENCY)

    async def ended(chat: AgentChat | BareChat) -> None:
        async with gate:
            await chat.end()

    await asyncio.gather(*(ended(chat) for chat in chats))


async def _level(
    bench: Bench, host: Host, level: int, deadline: Deadline, result: Result
) -> dict[str, Any]:
    turns = bench.scale.throughput_turns[bench.scale.concurrency.index(level)]
    tenants = [f"{host.tenant}-{i // CONVERSATIONS_PER_TENANT}" for i in range(level)]
    chats = await _open(bench, host, level, tenants)
    problems = result.problems
    finished: list[float] = []
    started = time.perf_counter()
    runs = await asyncio.gather(
        *(
            timed_turns(
                chat,
                prompts(f"{bench.seed}/{level}/{i}"),
                turns,
                deadline,
                problems,
                finished=finished,
            )
            for i, chat in enumerate(chats)
        )
    )
    wall = time.perf_counter() - started
    latencies = [value for run in runs for value in run]
    await _end(chats)
    return {
        "conversations": level,
        "tenants": len(set(tenants)) if host.kind == "agent" else 0,
        "turns": len(latencies),
        "wall_s": round(wall, 3),
        "throughput": len(latencies) / wall if wall > 0 else 0.0,
        "p50": percentile(latencies, 50) * 1000,
        "p99": percentile(latencies, 99) * 1000,
        "per_turn": await history_profile(bench.client, [c.id for c in chats]),
        "samples": {
            "latency_ms": [round(value * 1000, 1) for value in latencies],
            "finished_s": sorted(round(at - started, 3) for at in finished),
        },
    }


async def _hot_tenant(bench: Bench, host: Host, count: int) -> dict[str, Any]:
    """``count`` conversations of one tenant send one message each, all at once."""
    chats = await _open(bench, host, count, [f"{host.tenant}-hot"] * count)
    texts = prompts(f"{bench.seed}/hot")

    async def turn(chat: AgentChat | BareChat, text: str) -> tuple[str, float]:
        started = time.perf_counter()
        try:
            reply = await chat.send(text)
        except TURN_FAILURES as e:
            return type(e).__name__, time.perf_counter() - started
        return reply.status, time.perf_counter() - started

    started = time.perf_counter()
    outcomes = await asyncio.gather(*(turn(chat, next(texts)) for chat in chats))
    wall = time.perf_counter() - started
    await _end(chats)
    statuses = Counter(status for status, _ in outcomes)
    return {
        "conversations": count,
        "ok": statuses["ok"] / count,
        "outcomes": dict(statuses),
        "wall_s": round(wall, 3),
        "p50_ms": percentile([t for _, t in outcomes], 50) * 1000,
        "max_ms": max(t for _, t in outcomes) * 1000,
        "per_turn": await history_profile(bench.client, [c.id for c in chats]),
    }
