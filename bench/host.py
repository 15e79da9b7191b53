"""A worker process for the benchmark: ``python -m bench.host agent|bare``.

``agent`` runs ``worker.run_worker`` — the worker as shipped (``python worker.py``):
``AgentWorkflow``, the tenant governors, every activity, logging and tracing set up.
``bare`` runs a plain Temporal ``Worker`` with the same activities (built by
``worker.worker_resources``) and the same sandbox, serving only ``BareWorkflow``.

Both read their settings from ``AGENT_*`` variables (``bench.harness.worker_env``), so
they differ only in what they serve. Each runs until SIGTERM or SIGINT. Two more
variables serve the benchmark alone:

* ``BENCH_HEAP_FILE``: trace the heap with ``tracemalloc``; on SIGUSR1, collect garbage
  and write the bytes traced now to that file;
* ``BENCH_WORKER_OPTIONS``: JSON keyword arguments for the conversations' ``Worker``
  (``max_concurrent_workflow_tasks``, ``max_cached_workflows``, ...), for the tuning
  sweep. The shipped worker takes no such settings: they are applied by wrapping the
  ``Worker`` class that ``worker.serving`` builds.
"""

from __future__ import annotations

# isort: off
# First, before anything imports temporalio: its API packages then load without the
# gRPC stubs the SDK never uses (~9 MiB resident; durable_agent.imports).
from durable_agent.imports import load_temporal_api_without_grpc

load_temporal_api_without_grpc()
# isort: on

import argparse
import asyncio
import gc
import json
import logging
import os
import signal
import tracemalloc
from pathlib import Path
from types import FrameType
from typing import Any

from temporalio.worker import PollerBehaviorAutoscaling, PollerBehaviorSimpleMaximum, Worker

import worker as shipped
from bench.bare import BareWorkflow
from durable_agent.client import connect_with
from durable_agent.config import Settings
from durable_agent.process import exit_now, freeing_memory, settle_heap
from worker import run_worker, worker_resources
from workflows import WORKFLOW_RUNNER

MAX_CACHED_WORKFLOWS = 1000
"""The shipped worker's default (``worker.serving``)."""


HEAP_FILE = "BENCH_HEAP_FILE"
WORKER_OPTIONS = "BENCH_WORKER_OPTIONS"


def worker_options() -> dict[str, Any]:
    """The ``Worker`` keyword arguments of ``BENCH_WORKER_OPTIONS`` (none if unset);
    ``workflow_task_pollers`` and ``activity_task_pollers`` (a number, or ``"auto"``)
    become the SDK's poller behaviours."""
    options: dict[str, Any] = json.loads(os.environ.get(WORKER_OPTIONS) or "{}")
    for kind in ("workflow_task", "activity_task"):
        pollers = options.pop(f"{kind}_pollers", None)
        if pollers is not None:
            options[f"{kind}_poller_behavior"] = (
                PollerBehaviorAutoscaling()
                if pollers == "auto"
                else PollerBehaviorSimpleMaximum(maximum=int(pollers))
            )
    return options


def trace_heap(path: Path) -> None:
    """Trace allocations from now on; on SIGUSR1 write the bytes traced to ``path``
    (atomically: the reader waits for the file)."""
    tracemalloc.start()

    def report(signum: int, frame: FrameType | None) -> None:
        gc.collect()
        current, _peak = tracemalloc.get_traced_memory()
        partial = path.with_suffix(".partial")
        partial.write_text(str(current))
        partial.replace(path)

    signal.signal(signal.SIGUSR1, report)


def tune_shipped_worker(task_queue: str, options: dict[str, Any]) -> None:
    """Make ``worker.serving`` build the ``task_queue`` worker with ``options``."""

    def tuned(*args: Any, **kwargs: Any) -> Worker:
        if kwargs.get("task_queue") == task_queue:
            kwargs |= options
        return Worker(*args, **kwargs)

    shipped.Worker = tuned  # type: ignore[attr-defined,assignment]


async def run_bare(settings: Settings) -> None:
    """Serve ``BareWorkflow`` and the agent's activities until SIGTERM/SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    logging.basicConfig(level=settings.log_level.upper())
    client = await connect_with(settings)
    async with worker_resources(settings, client) as resources:
        worker = Worker(
            client,
            task_queue=settings.task_queue,
            workflows=[BareWorkflow],
            activities=resources.activities,
            workflow_runner=WORKFLOW_RUNNER,
            **({"max_cached_workflows": MAX_CACHED_WORKFLOWS} | worker_options()),
        )
        # The shipped worker's process settings too, so memory and CPU compare like with like.
        async with worker:
            settle_heap(settings.gc_threshold)
            async with freeing_memory(settings.malloc_trim_seconds):
                await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["agent", "bare"])
    kind = parser.parse_args().kind
    settings = Settings(_env_file=None)
    if os.environ.get(HEAP_FILE):
        trace_heap(Path(os.environ[HEAP_FILE]))
    if kind == "agent" and worker_options():
        tune_shipped_worker(settings.task_queue, worker_options())
    asyncio.run(run_worker(settings) if kind == "agent" else run_bare(settings))
    exit_now(0)


if __name__ == "__main__":
    main()
