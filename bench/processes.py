"""``python worker.py`` as a child process, for crash tests and soaks that ``kill -9`` it."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from durable_agent.devserver import DevServer
from durable_agent.testing.fake_tools import FakeToolServer

ROOT = Path(__file__).resolve().parent.parent
"""The repository root, where ``worker.py`` lives."""


@asynccontextmanager
async def worker_process(
    server: DevServer,
    task_queue: str,
    notes_db: Path,
    tools: FakeToolServer,
    *,
    log_file: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python worker.py`` as a separate process, as in production: the offline model,
    ``notes_db`` as the notes store, ``tools`` as the weather and search APIs, and any
    other ``AGENT_*`` settings in ``env``. Its output goes to ``log_file`` (appended) if
    given, else to ours. Killed on exit if still up."""
    environment = {
        **os.environ,
        "AGENT_MODEL_BACKEND": "offline",
        "AGENT_NOTES_DB": str(notes_db),
        "AGENT_BLOB_DB": str(notes_db.with_name("blobs.sqlite3")),
        "AGENT_WEATHER_URL": tools.base_url,
        "AGENT_GEOCODING_URL": tools.base_url,
        "AGENT_SEARCH_URL": tools.base_url,
        "AGENT_LOG_LEVEL": "WARNING",
        "AGENT_METRICS_PORT": "0",  # several test workers share one machine
        "AGENT_HEALTH_PORT": "0",
        **(env or {}),
    }
    log = log_file.open("ab") if log_file is not None else None
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "worker.py", "--server", server.address, "--task-queue", task_queue,
            cwd=ROOT, env=environment, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
        )  # fmt: skip
        try:
            yield process
        finally:
            await stop(process)
    finally:
        if log is not None:
            log.close()


async def wait_polling(
    client: Client, task_queue: str, process: asyncio.subprocess.Process, timeout: float = 30.0
) -> None:
    """Wait until ``process`` polls ``task_queue`` for workflow tasks (its identity is
    ``pid@host``, the SDK's default); fail if it exits or ``timeout`` passes first."""
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise RuntimeError(f"worker {process.pid} exited with {process.returncode}")
        response = await client.workflow_service.describe_task_queue(request)
        if any(p.identity.startswith(f"{process.pid}@") for p in response.pollers):
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"worker {process.pid} not polling {task_queue!r} after {timeout:.0f}s")


async def stop(process: asyncio.subprocess.Process, grace: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds. A graceful stop hands cached
    workflows back at once; a kill would leave them on its sticky queue (~10 s) for
    whoever runs next."""
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            process.kill()
            await process.wait()
