"""Measurement 2: throughput and turn latency under concurrent conversations.

At each level (1, 50, 200 in the full run) that many conversations run on one worker,
each sending its turns one after the other, all at once; throughput is completed turns
over the wall time from the first message to the last reply. Each level runs
``throughput_rounds`` rounds (3 in the full run), agent and bare alternating which goes
first, and reports each one's median round: on two cores shared with the server one
round varies by about 10 % from run to run. Conversations are started before the clock
runs.

Agent conversations are spread over tenants, ``CONVERSATIONS_PER_TENANT`` each
(``bench.one_tenant`` measures one tenant at scale). Each round also reads the CPU time
the worker, the server and this process (the clients) spent on it, per turn: under
load the ratio of throughputs follows the sum of those.
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
    process_cpu_seconds,
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
        for process in agent["cpu_ms_per_turn"]:
            result.add(
                Figure(
                    f"{process} CPU/turn @{level}",
                    "ms",
                    agent["cpu_ms_per_turn"][process],
                    bare["cpu_ms_per_turn"][process],
                    "bare",
                )
            )
        result.details[f"level_{level}"] = figures
        planned = level * turns
        result.complete &= all(r["turns"] == planned for runs in rounds.values() for r in runs)
    return result


class _CpuMeter:
    """CPU time spent since it was made by the worker, the server (when the suite runs
    it) and this process (the clients driving the conversations)."""

    def __init__(self, worker: int, server: int | None) -> None:
        self._pids = {"worker": worker} | ({"server": server} if server else {})
        self._start = self._now()

    def _now(self) -> dict[str, float]:
        now = {name: process_cpu_seconds(pid) for name, pid in self._pids.items()}
        return now | {"client": time.process_time()}

    def ms_per(self, turns: int) -> dict[str, float]:
        """Milliseconds of CPU per turn of each, over ``turns`` turns."""
        now = self._now()
        return {
            name: round((now[name] - self._start[name]) * 1000 / max(turns, 1), 2) for name in now
        }


def _median_round(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The round of median throughput, with the latencies of every round, each
    round's throughput (``rounds_throughput``) and the CPU per turn of each process,
    averaged over the rounds."""
    ranked = sorted(runs, key=lambda run: run["throughput"])
    median = dict(ranked[(len(ranked) - 1) // 2])
    latencies_ms = [value for run in runs for value in run["samples"]["latency_ms"]]
    median["p50"] = percentile(latencies_ms, 50)
    median["p99"] = percentile(latencies_ms, 99)
    median["rounds_throughput"] = [round(run["throughput"], 2) for run in runs]
    median["cpu_ms_per_turn"] = {
        name: round(sum(run["cpu_ms_per_turn"][name] for run in runs) / len(runs), 2)
        for name in runs[0]["cpu_ms_per_turn"]
    }
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
    cpu = _CpuMeter(host.pid, bench.server.process.pid if bench.server.process else None)
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
    cpu_ms_per_turn = cpu.ms_per(len(latencies))
    await end_chats(chats)
    return {
        "conversations": level,
        "tenants": len(set(tenants)) if host.kind == "agent" else 0,
        "turns": len(latencies),
        "wall_s": round(wall, 3),
        "throughput": len(latencies) / wall if wall > 0 else 0.0,
        "p50": percentile(latencies, 50) * 1000,
        "p99": percentile(latencies, 99) * 1000,
        "cpu_ms_per_turn": cpu_ms_per_turn,
        "per_turn": await history_profile(bench.client, [c.id for c in chats]),
        "samples": {
            "latency_ms": [round(value * 1000, 1) for value in latencies],
            "finished_s": sorted(round(at - started, 3) for at in finished),
        },
    }
