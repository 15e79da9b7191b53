"""Measurement 2: throughput and turn latency under concurrent conversations.

At each level (1, 50, 200 in the full run) that many conversations run on one worker,
each sending its turns one after the other, all at once; throughput is completed turns
over the wall time from the first message to the last reply. Each level runs
``throughput_rounds`` rounds (3 in the full run), agent and bare alternating which goes
first, and reports each one's median round: on two cores shared with the server one
round varies by about 10 % from run to run. Conversations are started before the clock
runs.

Agent conversations are spread over tenants, ``CONVERSATIONS_PER_TENANT`` each: every
tenant's governor is one workflow that every model call of the tenant asks by update,
and the server accepts at most 10 updates in flight per workflow (its
``history.maxInFlightUpdates`` default), so one tenant cannot have more model calls in
flight than that (with today's governor; ``bench.one_tenant`` measures one tenant at
scale).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.breakdown import history_profile
from bench.harness import (
    AgentChat,
    BareChat,
    Bench,
    Deadline,
    Figure,
    Host,
    Result,
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


async def measure(bench: Bench) -> Result:
    """Turns per second and p50/p99 latency, agent vs bare, at each concurrency level:
    ``throughput_rounds`` rounds each, agent and bare alternating which goes first; the
    median round's throughput of each, and latencies over every round."""
    result = Result("throughput", "2. throughput and latency under concurrency (one worker)")
    deadline = bench.deadline(bench.scale.throughput_seconds)
    levels = bench.scale.concurrency
    for index, level in enumerate(levels):
        turns = bench.scale.throughput_turns[index]
        rounds: dict[str, list[dict[str, Any]]] = {"agent": [], "bare": []}
        for each in range(bench.scale.throughput_rounds):
            kinds = ["agent", "bare"] if (index + each) % 2 == 0 else ["bare", "agent"]
            for kind in kinds:
                rounds[kind].append(
                    await run_level(bench, bench.hosts[kind], level, turns, deadline, result)
                )
        figures = {kind: _median_round(runs) for kind, runs in rounds.items()}
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
        planned = level * turns
        result.complete &= all(r["turns"] == planned for runs in rounds.values() for r in runs)
    return result


def _median_round(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The round of median throughput, with the latencies of every round and each
    round's throughput (``rounds_throughput``)."""
    ranked = sorted(runs, key=lambda run: run["throughput"])
    median = dict(ranked[(len(ranked) - 1) // 2])
    latencies_ms = [value for run in runs for value in run["samples"]["latency_ms"]]
    median["p50"] = percentile(latencies_ms, 50)
    median["p99"] = percentile(latencies_ms, 99)
    median["rounds_throughput"] = [round(run["throughput"], 2) for run in runs]
    return median


async def open_chats(
    bench: Bench, host: Host, count: int, tenants: list[str]
) -> list[AgentChat | BareChat]:
    """``count`` conversations on ``host``, of ``tenants[i]`` each, started
    ``START_CONCURRENCY`` at a time."""
    gate = asyncio.Semaphore(START_CONCURRENCY)

    async def opened(tenant: str) -> AgentChat | BareChat:
        async with gate:
            return await open_chat(bench.client, host, tenant=tenant)

    return list(await asyncio.gather(*(opened(tenants[i]) for i in range(count))))


async def end_chats(chats: list[AgentChat | BareChat]) -> None:
    """End the conversations, ``START_CONCURRENCY`` at a time."""
    gate = asyncio.Semaphore(START_CONCURRENCY)

    async def ended(chat: AgentChat | BareChat) -> None:
        async with gate:
            await chat.end()

    await asyncio.gather(*(ended(chat) for chat in chats))


async def run_level(
    bench: Bench, host: Host, level: int, turns: int, deadline: Deadline, result: Result
) -> dict[str, Any]:
    """``level`` conversations on ``host``, ``turns`` turns each, all at once:
    throughput, p50/p99 latency, the per-turn profile and the samples."""
    tenants = [f"{host.tenant}-{i // CONVERSATIONS_PER_TENANT}" for i in range(level)]
    chats = await open_chats(bench, host, level, tenants)
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
    await end_chats(chats)
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
