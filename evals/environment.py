"""Where ``python -m evals`` runs its cases: its own Temporal dev server (in memory,
127.0.0.1, free ports), the loopback weather and search APIs, and a worker in this
process on a fresh task queue, with the model backend the worker would use.

Imported only once cases are to run: it pulls in the whole worker.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from durable_agent.client import connect_with
from durable_agent.config import Settings
from durable_agent.devserver import DevServer
from durable_agent.logs import JsonFormatter, Redactor
from durable_agent.testing.fake_tools import FakeToolServer
from evals.runner import Target
from worker import secret_values, serving, worker_resources


@asynccontextmanager
async def environment(settings: Settings) -> AsyncIterator[tuple[Target, str]]:
    """A dev server, the fake tool APIs and an in-process worker (private notes and
    blob stores in a temporary directory); yields where cases run and the worker's
    model backend (``offline`` or ``claude``)."""
    server = DevServer()
    await server.start()
    try:
        with tempfile.TemporaryDirectory(prefix="evals-") as tmp, FakeToolServer() as tools:
            settings = settings.model_copy(
                update={
                    "temporal_address": server.address,
                    "notes_db": Path(tmp) / "notes.sqlite3",
                    "blob_db": Path(tmp) / "blobs.sqlite3",
                    "weather_url": tools.base_url,
                    "geocoding_url": tools.base_url,
                    "search_url": tools.base_url,
                }
            )
            client = await connect_with(settings)
            queue = f"evals-{uuid.uuid4().hex[:10]}"
            async with (
                worker_resources(settings, client) as resources,
                serving(client, resources, queue, settings.governor_task_queue),
            ):
                yield Target(client, queue, tools), resources.backend.name
    finally:
        server.stop()


def log_to_file(path: Path, settings: Settings) -> None:
    """Send worker and workflow logs (JSON, credentials redacted) to ``path``, keeping
    stdout for results."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    handler.setFormatter(JsonFormatter(Redactor(secret_values(settings), settings.secret_patterns)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
