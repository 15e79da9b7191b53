"""A worker process for the benchmark: ``python -m bench.host agent|bare``.

``agent`` runs ``worker.run_worker`` — the worker as shipped (``python worker.py``):
``AgentWorkflow``, the tenant governors, every activity, logging and tracing set up.
``bare`` runs a plain Temporal ``Worker`` with the same activities (built by
``worker.worker_resources``) and the same sandbox, serving only ``BareWorkflow``.

Both read their settings from ``AGENT_*`` variables (``bench.harness.worker_env``), so
they differ only in what they serve. Each runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from temporalio.worker import Worker

from bench.bare import BareWorkflow
from durable_agent.client import connect_with
from durable_agent.config import Settings
from durable_agent.process import exit_now
from worker import run_worker, worker_resources
from workflows import WORKFLOW_RUNNER

MAX_CACHED_WORKFLOWS = 1000
"""The shipped worker's default (``worker.serving``)."""


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
            max_cached_workflows=MAX_CACHED_WORKFLOWS,
        )
        async with worker:
            await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["agent", "bare"])
    kind = parser.parse_args().kind
    settings = Settings(_env_file=None)
    asyncio.run(run_worker(settings) if kind == "agent" else run_bare(settings))
    exit_now(0)


if __name__ == "__main__":
    main()
