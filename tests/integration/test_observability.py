"""Logs, metrics and traces of real conversations on the dev server."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio import activity, workflow

from durable_agent.client import connect, start_conversation
from durable_agent.devserver import DevServer, free_port
from durable_agent.logs import REDACTED, JsonFormatter, Redactor
from durable_agent.telemetry import metrics_runtime, tracing_interceptor
from durable_agent.testing.fake_tools import FakeToolServer
from tests.conftest import make_settings
from tests.helpers import running_worker

# Labels the SDK adds to every metric; the tests look at the agent's own.
_SDK_LABELS = {"service_name", "namespace", "task_queue", "workflow_type", "activity_type"}


def _samples(text: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of one metric in a Prometheus exposition."""
    found = {}
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match:
            labels = ",".join(p for p in match[1].split(",") if p.split("=")[0] not in _SDK_LABELS)
            found[labels] = float(match[2])
    return found


async def test_metrics_count_each_call_once_even_when_replaying(
    temporal_server: DevServer, tmp_path: Path, tool_server: FakeToolServer
) -> None:
    port = free_port()
    client = await connect(temporal_server.address, runtime=metrics_runtime(f"127.0.0.1:{port}"))
    settings = make_settings(tmp_path, tool_server)
    queue = f"metrics-{uuid.uuid4().hex[:8]}"
    # No workflow cache: every workflow task replays the whole history first.
    async with running_worker(client, settings, queue, max_cached_workflows=0):
        conversation = await start_conversation(client, task_queue=queue)
        await conversation.send_message("What's the weather in Paris and what is 2 + 2?")
        await conversation.send_message("What is 3 * 3?")
        status = await conversation.status()
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text

    model = 'model="offline-planner"'
    assert _samples(text, "durable_agent_model_requests") == {f'{model},outcome="ok"': 4}
    assert status.model_calls == 4
    tokens = _samples(text, "durable_agent_tokens")
    assert tokens[f'kind="input",{model}'] == status.usage.input_tokens
    assert tokens[f'kind="output",{model}'] == status.usage.output_tokens
    assert _samples(text, "durable_agent_tool_calls") == {
        'outcome="ok",tool="calculator"': 2,
        'outcome="ok",tool="get_weather"': 1,
    }
    assert _samples(text, "durable_agent_model_cost_usd_count") == {model: 4}
    assert _samples(text, "durable_agent_model_latency_seconds_count") == {'outcome="ok"': 4}
    weather = _samples(text, "durable_agent_tool_latency_seconds_count")
    assert weather['outcome="ok",tool="get_weather"'] == 1
    assert _samples(text, "durable_agent_breaker_state")['dependency="model"'] == 0
    assert "temporal_workflow_completed" in text or "temporal_" in text  # the SDK's own


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # the first test to trace installs one
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


async def test_a_turn_is_one_trace_with_genai_spans(
    temporal_server: DevServer,
    tmp_path: Path,
    tool_server: FakeToolServer,
    spans: InMemorySpanExporter,
) -> None:
    client = await connect(temporal_server.address, interceptors=[tracing_interceptor()])
    settings = make_settings(tmp_path, tool_server)
    queue = f"trace-{uuid.uuid4().hex[:8]}"
    tracer = trace.get_tracer("test")
    async with running_worker(client, settings, queue):
        with tracer.start_as_current_span("service request"):
            conversation = await start_conversation(client, task_queue=queue)
            await conversation.send_message("What is 6 * 7?")

    finished: list[ReadableSpan] = list(spans.get_finished_spans())
    by_name = {s.name: s for s in finished}
    assert {s.context.trace_id for s in finished} == {by_name["service request"].context.trace_id}

    def parent(span: ReadableSpan) -> ReadableSpan:
        assert span.parent is not None, span.name
        return next(s for s in finished if s.context.span_id == span.parent.span_id)

    chat = by_name["chat offline-planner"]
    chain = [chat]
    while chain[-1].name != "service request":
        chain.append(parent(chain[-1]))
    # The SDK parents workflow-side spans on the workflow's start span.
    assert [s.name for s in chain] == [
        "chat offline-planner",
        "RunActivity:model.invoke",
        "StartActivity:model.invoke",
        "StartWorkflow:AgentWorkflow",
        "service request",
    ]
    assert parent(by_name["RunWorkflow:AgentWorkflow"]).name == "StartWorkflow:AgentWorkflow"
    attributes = dict(chat.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == "offline-planner"
    assert attributes["gen_ai.response.model"] == "offline-planner"
    assert attributes["gen_ai.usage.input_tokens"] > 0
    assert attributes["gen_ai.response.finish_reasons"] in (("tool_use",), ("end_turn",))
    assert "RunActivity:tool.calculator" in by_name
    assert any(name.endswith("send_message") for name in by_name)  # the update


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Capture every record as our JSON formatter writes it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(Redactor(secrets=["canary-secret-value"])))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    workflow.logger.workflow_info_on_message = False
    activity.logger.activity_info_on_message = False
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)
    workflow.logger.workflow_info_on_message = True
    activity.logger.activity_info_on_message = True


async def test_json_logs_carry_context_once_per_call(
    client: object,
    temporal_server: DevServer,
    tmp_path: Path,
    tool_server: FakeToolServer,
    json_lines: io.StringIO,
) -> None:
    worker_client = await connect(temporal_server.address)
    settings = make_settings(tmp_path, tool_server)
    queue = f"logs-{uuid.uuid4().hex[:8]}"
    async with running_worker(worker_client, settings, queue, max_cached_workflows=0):
        conversation = await start_conversation(worker_client, task_queue=queue)
        await conversation.send_message("What is 6 * 7?")
        logging.getLogger("test").warning("leaking canary-secret-value and sk-ant-api03-abcdefgh")

    records = [json.loads(line) for line in json_lines.getvalue().splitlines()]
    mine = [r for r in records if r.get("workflow_id") == conversation.id]
    model_calls = [r for r in mine if r.get("event") == "model_call"]
    assert len(model_calls) == 2  # not repeated by the replays of an uncached worker
    for record in model_calls:
        assert record["run_id"] and record["turn"] == 1 and record["outcome"] == "ok"
        assert record["input_tokens"] > 0 and "cost_usd" in record and "latency_ms" in record
        assert record["stop_reason"] in ("tool_use", "end_turn")
    (tool_call,) = [r for r in mine if r.get("event") == "tool_call"]
    assert tool_call["tool"] == "calculator" and tool_call["outcome"] == "ok"
    activity_lines = [r for r in mine if "activity_type" in r]
    assert activity_lines and all("attempt" in r for r in activity_lines)
    (turn,) = [r for r in mine if r.get("event") == "turn"]
    assert turn["status"] == "ok" and turn["model_calls"] == 2

    leak = next(r for r in records if r["logger"] == "test")
    assert leak["message"] == f"leaking {REDACTED} and {REDACTED}"


async def test_worker_process_serves_metrics_and_writes_json_logs(
    client: object, temporal_server: DevServer, tmp_path: Path, tool_server: FakeToolServer
) -> None:
    from bench.processes import worker_process
    from tests.helpers import eventually

    port = free_port()
    log_file = tmp_path / "worker.log"
    queue = f"proc-{uuid.uuid4().hex[:8]}"
    env = {"AGENT_METRICS_PORT": str(port), "AGENT_LOG_LEVEL": "INFO", "AGENT_LOG_FORMAT": "json"}
    driver = await connect(temporal_server.address)
    async with worker_process(
        temporal_server, queue, tmp_path / "notes.sqlite3", tool_server, log_file=log_file, env=env
    ):
        conversation = await start_conversation(driver, task_queue=queue)
        await conversation.send_message("What is 5 * 5?")
        async with httpx.AsyncClient() as http:

            async def scrape() -> str:
                try:
                    return (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                except httpx.TransportError:
                    return ""

            text = await eventually(scrape, until=lambda t: "durable_agent_model_requests" in t)
    assert _samples(text, "durable_agent_tool_calls") == {'outcome="ok",tool="calculator"': 1}
    lines = [json.loads(line) for line in log_file.read_text().splitlines() if line.startswith("{")]
    events = [r for r in lines if r.get("workflow_id") == conversation.id and "event" in r]
    assert [r["event"] for r in events] == ["model_call", "tool_call", "model_call", "turn"]
