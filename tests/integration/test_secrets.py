"""Secrets never leak: a canary API key, echoed back by a careless Messages API in its
error bodies, appears nowhere — not in workflow history (inputs, failures and their
causes), not in replies or queries, not in the worker's log lines or metrics — while
the fake server shows it really was sent (so the search could find it)."""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from durable_agent.client import connect, start_conversation
from durable_agent.devserver import DevServer, free_port
from durable_agent.logs import JsonFormatter
from durable_agent.telemetry import metrics_runtime
from durable_agent.testing.fake_anthropic import FakeAnthropicServer
from durable_agent.testing.fake_tools import FakeToolServer
from durable_agent.testing.faults import Fault
from durable_agent.testing.responders import offline_responder
from tests.conftest import make_settings
from tests.helpers import running_worker
from worker import redactor
from workflows.replay import export_history

CANARY = "sk-ant-canary-" + uuid.uuid4().hex


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Every log line of this process, formatted as the worker formats them."""
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield lines
    root.removeHandler(handler)
    root.setLevel(old_level)


async def test_a_key_echoed_in_errors_stays_out_of_history_logs_and_metrics(
    temporal_server: DevServer,
    tmp_path: Path,
    tool_server: FakeToolServer,
    anthropic_server: FakeAnthropicServer,
    logs: io.StringIO,
) -> None:
    settings = make_settings(
        tmp_path,
        tool_server,
        model_backend="claude",
        anthropic_base_url=anthropic_server.base_url,
        ANTHROPIC_API_KEY=CANARY,
    )
    logging.getLogger().handlers[-1].setFormatter(JsonFormatter(redactor(settings)))
    anthropic_server.reset()
    anthropic_server.responder = offline_responder
    port = free_port()
    client: Client = await connect(
        temporal_server.address, runtime=metrics_runtime(f"127.0.0.1:{port}")
    )
    queue = f"secrets-{uuid.uuid4().hex[:8]}"
    async with running_worker(client, settings, queue):
        conversation = await start_conversation(client, task_queue=queue)
        # Overloaded twice (retried) with the key in the body, then served.
        for _ in range(2):
            anthropic_server.faults.add(Fault(status=529, retry_after=0.1, message="bad {auth}"))
        ok = await conversation.send_message("What is 2 + 2?")
        # Refused with the key in the body: a model_error reply.
        anthropic_server.faults.add(Fault(status=400, message="invalid key: {auth}"))
        refused = await conversation.send_message("What is 3 + 3?")
        status = await conversation.status()
        transcript = await conversation.transcript()
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
        history = await export_history(client, conversation.id)

    assert ok.status == "ok" and refused.status == "model_error"
    assert "invalid key: [REDACTED]" in (refused.detail or "")  # the message kept its sense
    # The control: the key really went out, and came back in the error bodies.
    sent = [r.headers for r in anthropic_server.requests if r.path == "/v1/messages"]
    assert any(CANARY in (h.get("x-api-key", "") + h.get("authorization", "")) for h in sent)
    # Nowhere it could be kept:
    for where, text in {
        "history": history,
        "reply": ok.model_dump_json() + refused.model_dump_json(),
        "status": status.model_dump_json(),
        "transcript": transcript.model_dump_json(),
        "logs": logs.getvalue(),
        "metrics": metrics,
    }.items():
        assert CANARY not in text, where
        assert CANARY[len("sk-ant-") :] not in text, where  # not even the key's tail
    assert "ModelRequestInvalid" in history  # the failure itself is recorded, redacted
    assert "[REDACTED]" in history
