"""Health probes: a worker process's live/ready/deep, readiness following the Temporal
server down and back, the model endpoint check, and the HTTP edges of the server."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from bench.processes import worker_process
from durable_agent.client import connect, start_conversation
from durable_agent.devserver import DevServer, free_port
from durable_agent.health import (
    DEEP,
    LIVE,
    READY,
    Health,
    OfflineModelProbe,
    model_probe,
    serve_health,
)
from durable_agent.testing.fake_anthropic import FakeAnthropicServer
from durable_agent.testing.fake_tools import FakeToolServer
from durable_agent.testing.faults import Fault
from tests.conftest import make_settings
from tests.helpers import eventually, running_worker

Answer = tuple[int, dict[str, Any]] | None
"""Status and JSON body of a probe; None when nothing answered."""


async def probe(port: int, path: str, method: str = "GET") -> Answer:
    try:
        async with httpx.AsyncClient(timeout=5.0, trust_env=False) as http:
            response = await http.request(method, f"http://127.0.0.1:{port}{path}")
    except httpx.TransportError:
        return None
    return response.status_code, response.json() if response.content else {}


async def stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM a worker process and wait for its clean exit. A worker killed instead
    would leave what it cached (e.g. the shared tenant governor) on its sticky queue,
    stalling the tests after this one for the sticky timeout."""
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 30) == 0


def status(code: int) -> Callable[[Answer], bool]:
    """``until`` for :func:`eventually`: the probe answered ``code``."""
    return lambda answer: answer is not None and answer[0] == code


async def test_probes_of_a_worker_process(
    temporal_server: DevServer, tool_server: FakeToolServer, tmp_path: Path
) -> None:
    port = free_port()
    queue = f"health-{uuid.uuid4().hex[:10]}"
    env = {"AGENT_HEALTH_PORT": str(port)}
    notes_db = tmp_path / "notes.db"
    async with worker_process(temporal_server, queue, notes_db, tool_server, env=env) as worker:
        ready = await eventually(lambda: probe(port, READY), until=status(200), timeout=30)
        assert ready == (200, {"status": "ok"})
        assert await probe(port, LIVE) == (200, {"status": "ok"})
        assert await probe(port, DEEP) == (200, {"status": "ok", "model": "offline"})
        assert await probe(port, "/health") == (404, {"status": "not found"})
        await stop(worker)


async def test_ready_follows_the_temporal_server_down_and_back(
    tool_server: FakeToolServer, tmp_path: Path
) -> None:
    server = DevServer(db_file=tmp_path / "temporal.sqlite3")  # kept across the restart
    await server.start()
    port = free_port()
    queue = f"health-{uuid.uuid4().hex[:10]}"
    env = {"AGENT_HEALTH_PORT": str(port)}
    try:
        notes_db = tmp_path / "notes.db"
        async with worker_process(server, queue, notes_db, tool_server, env=env) as worker:
            await eventually(lambda: probe(port, READY), until=status(200), timeout=30)

            await asyncio.to_thread(server.stop)
            down = await eventually(lambda: probe(port, READY), until=status(503), timeout=15)
            assert down is not None and down[1]["reason"].startswith("Temporal ")
            assert await probe(port, LIVE) == (200, {"status": "ok"})

            await server.start()  # same port, same database
            await eventually(lambda: probe(port, READY), until=status(200), timeout=30)
            # Ready meant it: the worker serves a turn.
            client = await connect(server.address)
            conversation = await start_conversation(client, task_queue=queue)
            reply = await asyncio.wait_for(conversation.send_message("What is 2 + 2?"), 30)
            assert reply.status == "ok" and "4" in reply.text
            await stop(worker)
    finally:
        await asyncio.to_thread(server.stop)


async def test_deep_checks_the_model_endpoint_without_leaking_the_key(
    client: Client,
    tool_server: FakeToolServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = f"sk-ant-canary-{uuid.uuid4().hex}"
    caplog.set_level(logging.INFO, logger="durable_agent.health")
    with FakeAnthropicServer() as claude:  # our own: the test stops it
        settings = make_settings(
            tmp_path,
            tool_server,
            model_backend="claude",
            anthropic_base_url=claude.base_url,
            ANTHROPIC_API_KEY=key,
        )
        health = Health(model_probe(settings), cache_seconds=0.1)
        queue = f"health-{uuid.uuid4().hex[:10]}"
        port = free_port()
        answers: list[Answer] = []

        async def deep() -> Answer:
            answers.append(await probe(port, DEEP))
            return answers[-1]

        async with serve_health(health, "127.0.0.1", port):
            async with running_worker(client, settings, queue) as worker:
                health.serving(client, [worker])
                assert await eventually(deep, until=status(200)) == (
                    200,
                    {"status": "ok", "model": "claude"},
                )
                # A listing with the key, never a (billable) message.
                assert {(r.method, r.path) for r in claude.requests} == {("GET", "/v1/models")}
                assert key in json.dumps(claude.requests[0].headers)

                claude.faults.always = Fault(status=500)
                assert await eventually(deep, until=status(503)) == (
                    503,
                    {
                        "status": "unavailable",
                        "reason": "model endpoint answered HTTP 500",
                        "model": "claude",
                    },
                )
                assert await probe(port, READY) == (200, {"status": "ok"})  # Temporal is fine

                claude.faults.clear()
                await eventually(deep, until=status(200))
                claude.stop()
                down = await eventually(deep, until=status(503))
                assert down is not None and down[1]["reason"] == "model endpoint unreachable"

            # The worker has shut down: not polling any more.
            stopped = await probe(port, READY)
            assert stopped is not None and stopped[0] == 503
            assert stopped[1]["reason"].startswith("not polling task queue")

    assert key not in json.dumps(answers) and key not in caplog.text
    assert "not ready: not polling task queue" in caplog.text


async def test_http_edges_and_the_phases_of_a_worker() -> None:
    health = Health(OfflineModelProbe())
    async with serve_health(health, "127.0.0.1", free_port()) as port:
        assert port is not None
        # Before the workers start, and after a shutdown begins: alive, not ready.
        assert await probe(port, LIVE) == (200, {"status": "ok"})
        assert await probe(port, READY) == (503, {"status": "unavailable", "reason": "starting"})
        assert await probe(port, f"{LIVE}?verbose=1") == (200, {"status": "ok"})
        assert await probe(port, LIVE, "HEAD") == (200, {})
        assert await probe(port, LIVE, "POST") == (405, {"status": "method not allowed"})
        assert await _raw(port, b"hello\r\n\r\n") == b"HTTP/1.1 400 Bad Request"
        assert await _raw(port, b"GET /" + b"x" * 10_000 + b" HTTP/1.1\r\n\r\n") == (
            b"HTTP/1.1 400 Bad Request"
        )
        health.stopping()
        assert await probe(port, DEEP) == (
            503,
            {"status": "unavailable", "reason": "shutting down", "model": "offline"},
        )
    assert await probe(port, LIVE) is None  # closed with the block
    async with serve_health(health, "127.0.0.1", 0) as off:
        assert off is None  # port 0: no probes


async def _raw(port: int, request: bytes) -> bytes:
    """The status line the server answers to raw ``request`` bytes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return (await asyncio.wait_for(reader.readline(), 5.0)).rstrip()
    finally:
        writer.close()
