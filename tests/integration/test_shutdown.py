"""A worker process's start-up and graceful shutdown: SIGTERM during a slow tool call
lets the call finish and exits 0; invalid settings fail at start, naming the setting."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import time
import uuid
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench.processes import worker_process
from durable_agent.client import start_conversation
from durable_agent.devserver import DevServer, free_port
from durable_agent.health import READY
from durable_agent.testing.fake_tools import FakeToolServer
from durable_agent.testing.faults import Fault
from tests.helpers import eventually, run_command
from tests.integration.test_health import probe, status, stop

GRACE_SECONDS = 20.0


async def test_sigterm_lets_the_in_flight_tool_call_finish(
    client: Client, temporal_server: DevServer, tool_server: FakeToolServer, tmp_path: Path
) -> None:
    queue = f"shutdown-{uuid.uuid4().hex[:10]}"
    notes_db = tmp_path / "notes.sqlite3"
    port = free_port()
    env = {"AGENT_HEALTH_PORT": str(port), "AGENT_SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS)}
    tool_server.faults.add(Fault(delay=3.0, path="/v1/forecast"))  # slow, then answers
    conversation = await start_conversation(client, task_queue=queue)

    async with worker_process(temporal_server, queue, notes_db, tool_server, env=env) as first:
        await eventually(lambda: probe(port, READY), until=status(200), timeout=30)
        turn = asyncio.create_task(conversation.send_message("What's the weather in Paris?"))
        await eventually(lambda: _forecasts(tool_server), timeout=30)

        first.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        draining = await eventually(lambda: probe(port, READY), until=status(503), timeout=5)
        assert draining == (503, {"status": "unavailable", "reason": "shutting down"})
        assert await asyncio.wait_for(first.wait(), GRACE_SECONDS) == 0
        # It waited for the tool call (3 s from its start), not for the whole grace.
        assert time.monotonic() - signalled < GRACE_SECONDS / 2
        assert not turn.done()  # the model's answer is the next worker's job

    off = {"AGENT_HEALTH_PORT": "0"}
    async with worker_process(temporal_server, queue, notes_db, tool_server, env=off) as second:
        reply = await asyncio.wait_for(turn, timeout=30)
        await stop(second)

    assert reply.status == "ok" and "Paris" in reply.text
    assert [(c.name, c.outcome) for c in reply.tool_calls] == [("get_weather", "ok")]
    assert len(await _forecasts(tool_server)) == 1  # the tool call ran once
    history = await conversation.handle.fetch_history()
    scheduled = {
        e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    started = [
        e.activity_task_started_event_attributes
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]
    weather = [s.attempt for s in started if scheduled[s.scheduled_event_id] == "tool.get_weather"]
    assert weather == [1]  # completed on its first attempt: never retried
    types = {EventType.Name(e.event_type) for e in history.events}
    assert not types & {"EVENT_TYPE_ACTIVITY_TASK_FAILED", "EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT"}


async def _forecasts(tools: FakeToolServer) -> list[object]:
    return [r for r in tools.requests if r.path == "/v1/forecast"]


@pytest.mark.parametrize(
    ("name", "value", "setting"),
    [("AGENT_HEALTH_PORT", "abc", "health_port"),
     ("AGENT_SHUTDOWN_GRACE_SECONDS", "-1", "shutdown_grace_seconds")],
)  # fmt: skip
async def test_invalid_setting_fails_at_start_naming_it(
    name: str, value: str, setting: str
) -> None:
    key = f"sk-ant-canary-{uuid.uuid4().hex}"
    env = {"PATH": "/usr/bin:/bin", "ANTHROPIC_API_KEY": key, name: value}
    code, out, err = await run_command(sys.executable, "worker.py", env=env, timeout=30)
    assert code == 1, err
    assert f"  {setting}: " in err and key not in out + err
    assert "Traceback" not in err


async def test_health_port_in_use_fails_at_start() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"PATH": "/usr/bin:/bin", "AGENT_HEALTH_PORT": str(port), "AGENT_METRICS_PORT": "0"}
        code, _, err = await run_command(sys.executable, "worker.py", env=env, timeout=30)
    assert code == 1 and f"health probes cannot listen on 127.0.0.1:{port}" in err, err
