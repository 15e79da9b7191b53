"""Measurement 1: what the agent adds to one step.

A turn is one model call that asks for one calculator call, the tool call, and the
final model call. Three variants run the same turns (seeded messages):

* **agent**: ``AgentWorkflow`` through ``send_message``, on the shipped worker;
* **bare**: ``BareWorkflow`` (``bench.bare``), the same activities and the same update
  per turn, no agent logic — the baseline of the targets;
* **asyncio**: the same loop calling the activity functions directly (in an
  ``ActivityEnvironment``, no server) — what Temporal itself costs, for reference.

Agent and bare alternate round by round, each round a fresh conversation, so drift on
a shared machine hits both. Worker CPU is the worker process's own CPU time
(``/proc/<pid>/stat``) over its rounds, trailing work included. The per-turn history
of every measured conversation of each (``bench.breakdown``: workflow tasks, activities,
signals, timers, upserts, milliseconds by activity) says where the difference comes
from.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from temporalio import activity
from temporalio.testing import ActivityEnvironment

from bench.bare import run_turn
from bench.breakdown import history_profile
from bench.harness import (
    Bench,
    Figure,
    Result,
    open_chat,
    percentile,
    prompts,
)
from bench.harness import timed_turns as timed
from durable_agent.activity_models import (
    MODEL_ACTIVITY,
    ModelRequest,
    ModelResponse,
    ToolCall,
    ToolResult,
)
from durable_agent.client import connect
from durable_agent.config import Settings
from durable_agent.tools.registry import CALCULATOR
from worker import worker_resources

LATENCY_TARGET = 1.05
CPU_TARGET = 1.5
TASKS_OVER_BARE = 1
"""Workflow tasks per turn the agent may take beyond the bare baseline's."""


async def measure(bench: Bench) -> Result:
    """Turn latency and worker CPU per turn: agent vs bare (vs plain asyncio)."""
    result = Result("step_overhead", "1. agent step overhead (model → calculator → model)")
    scale, deadline = bench.scale, bench.deadline(bench.scale.step_seconds)
    hosts = {kind: bench.hosts[kind] for kind in ("agent", "bare")}
    texts = prompts(f"{bench.seed}/overhead")
    latencies: dict[str, list[float]] = {kind: [] for kind in hosts}
    cpu = dict.fromkeys(hosts, 0.0)
    chats: dict[str, list[str]] = {kind: [] for kind in hosts}
    for host in hosts.values():  # sandbox imports, first connections
        chat = await open_chat(bench.client, host)
        await timed(chat, texts, scale.warmup_turns, deadline, result.problems)
        await chat.end()
    for round_ in range(scale.overhead_rounds):
        order = list(hosts) if round_ % 2 == 0 else list(reversed(hosts))
        for kind in order:
            host = hosts[kind]
            chat = await open_chat(bench.client, host)
            before = await host.settle()
            latencies[kind] += await timed(
                chat, texts, scale.overhead_turns, deadline, result.problems
            )
            cpu[kind] += await host.settle() - before
            await chat.end()
            chats[kind].append(chat.id)
    planned = scale.overhead_rounds * scale.overhead_turns
    result.complete = all(len(values) == planned for values in latencies.values())
    asyncio_latencies, asyncio_cpu = await _plain_asyncio(
        bench, prompts(f"{bench.seed}/overhead"), sum(map(len, latencies.values())) // 2
    )

    p50 = {kind: percentile(values, 50) * 1000 for kind, values in latencies.items()}
    per_turn = {kind: cpu[kind] * 1000 / max(1, len(latencies[kind])) for kind in hosts}
    result.add(
        Figure("turn latency p50", "ms", p50["agent"], p50["bare"], "bare", "<=", LATENCY_TARGET)
    )
    result.add(
        Figure(
            "worker CPU per turn",
            "ms",
            per_turn["agent"],
            per_turn["bare"],
            "bare",
            "<=",
            CPU_TARGET,
        )
    )
    breakdown = {kind: await history_profile(bench.client, ids) for kind, ids in chats.items()}
    tasks = {kind: found["workflow_tasks"] for kind, found in breakdown.items()}
    result.add(
        Figure(
            "workflow tasks per turn",
            "tasks",
            tasks["agent"],
            tasks["bare"],
            "bare",
            "<=",
            tasks["bare"] + TASKS_OVER_BARE,
            "value",
        )
    )
    asyncio_p50 = percentile(asyncio_latencies, 50) * 1000
    result.add(
        Figure("bare turn latency p50 vs asyncio", "ms", p50["bare"], asyncio_p50, "asyncio")
    )
    result.details = {
        "turns": {kind: len(values) for kind, values in latencies.items()},
        "latency_ms": {
            kind: _summary(values)
            for kind, values in [*latencies.items(), ("asyncio", asyncio_latencies)]
        },
        "samples_ms": {
            kind: [round(value * 1000, 1) for value in values]
            for kind, values in [*latencies.items(), ("asyncio", asyncio_latencies)]
        },
        "cpu_ms_per_turn": {**per_turn, "asyncio (driver process)": asyncio_cpu},
        "history_per_turn": breakdown,
    }
    return result


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(values, 50) * 1000, 2),
        "p99": round(percentile(values, 99) * 1000, 2),
        "mean": round(sum(values) / len(values) * 1000, 2) if values else float("nan"),
    }


async def _plain_asyncio(
    bench: Bench, texts: Iterator[str], turns: int
) -> tuple[list[float], float]:
    """The turn loop on the activity functions themselves: latencies, and the CPU
    milliseconds per turn of this process."""
    settings = Settings(
        _env_file=None,
        model_backend="offline",
        notes_db=bench.workdir / "asyncio-notes.sqlite3",
        blob_db=bench.workdir / "asyncio-blobs.sqlite3",
    )
    client = await connect(bench.server.address)
    env = ActivityEnvironment()
    latencies = []
    async with worker_resources(settings, client) as resources:
        model = _activity(resources.activities, MODEL_ACTIVITY)
        tool = _activity(resources.activities, CALCULATOR.activity_name)

        async def call_model(request: ModelRequest) -> ModelResponse:
            response: ModelResponse = await env.run(model, request)
            return response

        async def call_tool(call: ToolCall) -> ToolResult:
            tool_result: ToolResult = await env.run(tool, call)
            return tool_result

        started_cpu = time.process_time()
        for turn in range(1, max(1, turns) + 1):
            started = time.perf_counter()
            await run_turn(next(texts), turn, "asyncio-baseline", call_model, call_tool)
            latencies.append(time.perf_counter() - started)
        cpu_ms = (time.process_time() - started_cpu) * 1000 / len(latencies)
    return latencies, cpu_ms


def _activity(activities: list[Callable[..., Any]], name: str) -> Callable[..., Any]:
    for fn in activities:
        definition = activity._Definition.from_callable(fn)  # the name it registers under
        if definition is not None and definition.name == name:
            return fn
    raise LookupError(f"the worker registers no activity {name!r}")
