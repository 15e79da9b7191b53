"""Shared fixtures: a real Temporal dev server for the session, loopback fakes for the
Messages API and the tool APIs, a real PostgreSQL server (started on first use), and a
worker per test on a fresh task queue."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from durable_agent.client import connect
from durable_agent.config import Settings
from durable_agent.devserver import DevServer
from durable_agent.testing.fake_anthropic import FakeAnthropicServer
from durable_agent.testing.fake_tools import FakeToolServer
from durable_agent.testing.postgres import PostgresServer
from tests.helpers import running_worker


@pytest.fixture(scope="session")
async def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DevServer]:
    """One `temporal server start-dev` (SQLite file) for the whole session."""
    server = DevServer(db_file=tmp_path_factory.mktemp("temporal") / "temporal.sqlite3")
    await server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def client(temporal_server: DevServer) -> Client:
    return await connect(temporal_server.address)


@pytest.fixture(scope="session")
def tool_server() -> Iterator[FakeToolServer]:
    """Loopback Open-Meteo- and SearXNG-compatible APIs for the HTTP tools."""
    with FakeToolServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _clean_tool_server(tool_server: FakeToolServer) -> None:
    tool_server.reset()


@pytest.fixture(scope="session")
def anthropic_server() -> Iterator[FakeAnthropicServer]:
    """A loopback Messages API (echo responder) for the session; its users reset it."""
    with FakeAnthropicServer() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server (the ``pgserver`` wheel's binaries) for the session, started
    by the first test that needs it."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A URL on the session's PostgreSQL server whose tables no other test sees (a
    fresh schema)."""
    return postgres_server.create_schema()


@pytest.fixture
def settings(tmp_path: Path, tool_server: FakeToolServer) -> Settings:
    """Worker settings for one test: offline model, a private notes file, loopback tools."""
    return make_settings(tmp_path, tool_server)


def make_settings(tmp_path: Path, tool_server: FakeToolServer, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "model_backend": "offline",
        "notes_db": tmp_path / "notes.sqlite3",
        "blob_db": tmp_path / "blobs.sqlite3",
        "weather_url": tool_server.base_url,
        "geocoding_url": tool_server.base_url,
        "search_url": tool_server.base_url,
        "http_timeout_seconds": 5.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
async def task_queue(client: Client, settings: Settings) -> AsyncIterator[str]:
    """A fresh task queue with a running in-process worker."""
    queue = f"test-{uuid.uuid4().hex[:10]}"
    async with running_worker(client, settings, queue):
        yield queue


@asynccontextmanager
async def claude_worker(
    client: Client,
    tmp_path: Path,
    tools: FakeToolServer,
    claude: FakeAnthropicServer,
    **overrides: Any,
) -> AsyncIterator[str]:
    """A worker on the Claude path (real SDK → fake API) on a fresh task queue."""
    settings = make_settings(
        tmp_path,
        tools,
        **{
            "model_backend": "claude",
            "anthropic_base_url": claude.base_url,
            "ANTHROPIC_API_KEY": "test-key",
            **overrides,
        },
    )
    queue = f"resilience-{uuid.uuid4().hex[:10]}"
    async with running_worker(client, settings, queue):
        yield queue
