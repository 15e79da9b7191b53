"""Measurement 7 (``--tuning``, not in the default run): worker settings by measurement.

For each setting in ``SETTINGS`` a fresh agent worker (``bench.host`` with
``BENCH_WORKER_OPTIONS``), warmed up by one conversation, runs the throughput levels
``tuning_concurrency`` (1, 50, 200 in the full run): turns/s and p50 latency, each
against the SDK's defaults measured in the same run. Settings are ``Worker`` keyword arguments;
``workflow_task_pollers`` and ``activity_task_pollers`` take a number (a simple
maximum) or ``"auto"`` (the SDK's autoscaling poller).
"""

from __future__ import annotations

import json
from typing import Any

from bench.harness import Bench, Figure, Result, open_chat, prompts, timed_turns, worker_host
from bench.host import WORKER_OPTIONS
from bench.throughput import run_level

DEFAULTS = "SDK defaults"
SETTINGS: dict[str, dict[str, Any]] = {
    DEFAULTS: {},
    "workflow task slots 20": {"max_concurrent_workflow_tasks": 20},
    "workflow task slots 400": {"max_concurrent_workflow_tasks": 400},
    "activity slots 400": {"max_concurrent_activities": 400},
    "pollers 16/16": {"workflow_task_pollers": 16, "activity_task_pollers": 16},
    "pollers autoscaling": {"workflow_task_pollers": "auto", "activity_task_pollers": "auto"},
    "sticky cache 100": {"max_cached_workflows": 100},
}
"""Settings swept, by name (the SDK's defaults: 100 slots each, 5 pollers each, 1,000
cached workflows)."""


async def measure(bench: Bench) -> Result:
    """Turns/s and p50 at each level for each setting, against the SDK's defaults."""
    scale = bench.scale
    result = Result("tuning", "7. worker tuning: turns/s and p50 by worker setting (agent)")
    deadline = bench.deadline(scale.tuning_seconds)
    found: dict[str, dict[int, dict[str, Any]]] = {}
    for name in scale.tuning_settings:
        options = SETTINGS[name]
        workdir = bench.workdir / f"tuning-{len(found)}"
        workdir.mkdir(exist_ok=True)
        env = {WORKER_OPTIONS: json.dumps(options)}
        async with worker_host(bench.server, bench.client, "agent", workdir, env) as host:
            warmup = await open_chat(bench.client, host)  # sandbox imports, connections
            await timed_turns(warmup, prompts("tuning"), scale.warmup_turns, deadline, [])
            await warmup.end()
            found[name] = {}
            for level, turns in zip(scale.tuning_concurrency, scale.tuning_turns, strict=True):
                if deadline.expired:
                    result.complete = False
                    break
                measured = await run_level(bench, host, level, turns, deadline, result)
                measured.pop("samples")
                found[name][level] = measured
    base = found.get(DEFAULTS, {})
    for name, levels in found.items():
        for level, measured in levels.items():
            default = base.get(level, {})
            for key, unit in (("throughput", "turns/s"), ("p50", "ms")):
                result.add(
                    Figure(
                        f"{name} @{level}: {'throughput' if key == 'throughput' else 'p50'}",
                        unit,
                        measured[key],
                        default.get(key) if name != DEFAULTS else None,
                        DEFAULTS,
                    )
                )
    result.details = {
        "settings": {name: SETTINGS[name] for name in found},
        "levels": {name: {str(k): v for k, v in levels.items()} for name, levels in found.items()},
    }
    return result
