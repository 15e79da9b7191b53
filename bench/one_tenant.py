"""Measurement 3: one tenant at scale.

``one_tenant`` conversations (200 in the full run) of **one** tenant on one worker
each send ``one_tenant_turns`` calculator turns one after the other, all
conversations at once; then the bare baseline does the same on its worker. The
agent's worker gives tenants limits (``LIMITED``) far above what the burst uses: a
tenant without limits may skip the governor altogether, and the point is to measure
the path a limited tenant takes, not to hit its limits. Whatever
the agent does per tenant (a governor workflow asked by update today, leases spent
in workflow state tomorrow) must not be a single-workflow bottleneck:

* **failed or degraded turns** (target 0): a turn that raised or timed out, or replied
  with a status other than ``ok``, a ``degraded`` list, or not the two model calls
  the message asks for;
* **server-side update rejections** (target 0): calls the server's frontend turned
  away during the agent's burst (``bench.server_metrics``: the SDK retries them
  quietly, so only the server sees them). Needs a server started by the suite (it
  opens a metrics port); the dev server's log is counted too when there is one.

Throughput and p50 latency are compared with bare at the same concurrency.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from bench import server_metrics
from bench.breakdown import history_profile
from bench.harness import (
    TURN_FAILURES,
    AgentChat,
    BareChat,
    Bench,
    Deadline,
    Figure,
    Host,
    Result,
    percentile,
    prompts,
)
from bench.throughput import end_chats, open_chats
from durable_agent.contract import Reply

LIMITED = {
    "AGENT_TENANT_MODEL_CALLS_PER_MINUTE": "600000",
    "AGENT_TENANT_BURST": "100000",
    "AGENT_TENANT_DAILY_USD": "1000000",
}
"""Settings of the agent's worker here: limits on, never reached."""
PROFILED = 20
"""Conversations of each burst whose histories are profiled (retries show there)."""


async def measure(bench: Bench) -> Result:
    """Failed or degraded turns and server-side rejections with one tenant's
    conversations all at once; throughput and p50 against bare."""
    count, turns = bench.scale.one_tenant, bench.scale.one_tenant_turns
    result = Result(
        "one_tenant", f"3. one tenant with limits, {count} conversations at once (one worker)"
    )
    deadline = bench.deadline(bench.scale.one_tenant_seconds)
    before = await _rejections(bench)
    logged = server_metrics.log_rejections(bench.server.log_file)
    agent = await _burst(bench, bench.hosts["agent-limited"], count, turns, deadline)
    rejected = await _rejections(bench)
    bare = await _burst(bench, bench.hosts["bare"], count, turns, deadline)
    name = f"one tenant @{count}"
    result.add(
        Figure(
            f"{name}: failed or degraded turns", "turns", agent["bad"], None, "", "<=", 0, "value"
        )
    )
    if before is not None and rejected is not None:
        rejected -= before
        result.add(
            Figure(
                f"{name}: server update rejections",
                "calls",
                sum(rejected.values()),
                None,
                "",
                "<=",
                0,
                "value",
            )
        )
    result.add(
        Figure(f"{name}: throughput", "turns/s", agent["throughput"], bare["throughput"], "bare")
    )
    result.add(Figure(f"{name}: latency p50", "ms", agent["p50"], bare["p50"], "bare"))
    after_log = server_metrics.log_rejections(bench.server.log_file)
    result.details = {
        "agent": agent,
        "bare": bare,
        "server_rejections": dict(rejected) if rejected is not None else "no metrics port",
        "server_log_rejections": (
            after_log - logged if after_log is not None and logged is not None else "no log"
        ),
    }
    result.complete = all(r["turns"] == count * turns for r in (agent, bare))
    return result


async def _rejections(bench: Bench) -> Counter[str] | None:
    if bench.metrics_url is None:
        return None
    return await server_metrics.scrape(bench.metrics_url)


async def _burst(
    bench: Bench, host: Host, count: int, turns: int, deadline: Deadline
) -> dict[str, Any]:
    """``count`` conversations of one tenant, ``turns`` turns each, all at once."""
    chats = await open_chats(bench, host, count, [f"{host.tenant}-one"] * count)
    outcomes: Counter[str] = Counter()
    latencies: list[float] = []

    async def converse(index: int, chat: AgentChat | BareChat) -> None:
        texts = prompts(f"{bench.seed}/one/{index}")
        for turn in range(turns):
            if deadline.expired:
                return
            started = time.perf_counter()
            try:
                outcome = verdict(await chat.send(next(texts)))
            except TURN_FAILURES as e:
                outcome = type(e).__name__
            outcomes[outcome] += 1
            if outcome != "ok":  # the conversation may be stuck behind this turn
                outcomes["not sent after a failed turn"] += turns - turn - 1
                return
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(converse(i, chat) for i, chat in enumerate(chats)))
    wall = time.perf_counter() - started
    await end_chats(chats)
    return {
        "conversations": count,
        "turns": sum(outcomes.values()),
        "bad": sum(outcomes.values()) - outcomes["ok"],
        "outcomes": dict(outcomes),
        "wall_s": round(wall, 3),
        "throughput": len(latencies) / wall if wall > 0 else 0.0,
        "p50": percentile(latencies, 50) * 1000,
        "max_ms": max(latencies, default=0.0) * 1000,
        "per_turn": await history_profile(bench.client, [c.id for c in chats[:PROFILED]]),
    }


def verdict(reply: Reply, model_calls: int = 2) -> str:
    """``ok``, or what made the turn failed or degraded."""
    if reply.status != "ok":
        return f"status {reply.status}"
    if reply.degraded:
        return f"degraded: {', '.join(sorted(reply.degraded))}"
    if reply.model_calls != model_calls:
        return f"{reply.model_calls} model calls"
    return "ok"
