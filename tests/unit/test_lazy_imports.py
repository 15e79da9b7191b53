"""A worker loads the Claude and MCP SDKs only when it uses them: ``anthropic`` (with
``httpx2``) is ~60 MiB resident once imported and ``mcp`` more, against ~100 MiB for
the rest of an idle worker; grpcio only for the trace exporter, httpx only for the HTTP
tools. Checked in a fresh interpreter, since this one has imported everything the other
tests use."""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import aclosing
from pathlib import Path
from typing import Any

import httpx
import pytest

from activities.tools._http_client import LazyHttpClient

ROOT = Path(__file__).resolve().parents[2]

_PROBE = """
import json, sys
from activities.mcp import McpActivities
from durable_agent.config import Settings
from durable_agent.health import model_probe
from durable_agent.toolsets import HttpServer
from worker import build_backend

HEAVY = ("anthropic", "httpx2", "mcp")
loaded = {}
settings = Settings(model_backend=sys.argv[1], anthropic_api_key="sk-test-not-a-key")
build_backend(settings)
model_probe(settings)
loaded["backend"] = [m for m in HEAVY if m in sys.modules]
McpActivities({}, None)  # no offloader: nothing is called
loaded["no_servers"] = [m for m in HEAVY if m in sys.modules]
McpActivities({"docs": HttpServer(url="http://127.0.0.1:9/mcp")}, None)
loaded["a_server"] = [m for m in HEAVY if m in sys.modules]
print(json.dumps(loaded))
"""


def _probe(code: str, *args: str) -> Any:
    """Run ``code`` in a fresh interpreter; what it printed last, as JSON."""
    run = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_an_offline_worker_without_mcp_servers_imports_neither_sdk() -> None:
    loaded = _probe(_PROBE, "offline")
    assert loaded["backend"] == [] and loaded["no_servers"] == []
    assert "mcp" in loaded["a_server"]  # a configured server loads it, at start-up


def test_a_claude_worker_imports_the_anthropic_sdk_at_start_up() -> None:
    loaded = _probe(_PROBE, "claude")
    assert {"anthropic", "httpx2"} <= set(loaded["backend"])
    assert "mcp" not in loaded["no_servers"]


_WORKER_PROBE = """
import json, sys
import worker
from durable_agent.codec import EncryptionCodec
from durable_agent.stores.blobs import open_blob_store

OPTIONAL = ("asyncpg", "cryptography", "yaml", "fastapi", "opentelemetry.sdk")
loaded = {"worker": [m for m in OPTIONAL if m in sys.modules]}
open_blob_store("postgresql://u@127.0.0.1:9/db")  # nothing connects before the first call
EncryptionCodec({"k1": bytes(32)}, "k1")
loaded["used"] = [m for m in OPTIONAL if m in sys.modules]
print(json.dumps(loaded))
"""


def test_a_worker_loads_postgres_encryption_and_yaml_only_when_used() -> None:
    """asyncpg (~3 MiB resident), cryptography (~6 MiB) and the YAML profiles: a worker
    on SQLite without encryption keys imports none of them; FastAPI (~5 MiB) it never
    imports (its health probes are plain ASGI), the OpenTelemetry SDK (~3 MiB) only
    with tracing on."""
    loaded = _probe(_WORKER_PROBE)
    assert loaded["worker"] == []
    assert {"asyncpg", "cryptography"} <= set(loaded["used"])


_GRPC_PROBE = """
import json, sys
import {entry}
import temporalio.client
from temporalio.api import workflowservice

stubs = hasattr(workflowservice.v1, "WorkflowServiceStub")
loaded = {{"start": "grpc" in sys.modules, "stubs": stubs}}
from concurrent.futures import ThreadPoolExecutor

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as pb, trace_service_pb2_grpc

from durable_agent.telemetry import configure_tracing, tracer

received = []

class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    def Export(self, request, context):
        for spans in request.resource_spans:
            received.extend(s.name for scope in spans.scope_spans for s in scope.spans)
        return pb.ExportTraceServiceResponse()

server = grpc.server(ThreadPoolExecutor(1))
trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Collector(), server)
port = server.add_insecure_port("127.0.0.1:0")
server.start()
provider = configure_tracing("probe", f"http://127.0.0.1:{{port}}")
with tracer().start_as_current_span("probe-span"):
    pass
provider.shutdown()  # exports what is pending
server.stop(0)
loaded["exported"] = received
print(json.dumps(loaded))
"""


@pytest.mark.parametrize("entry", ["worker", "durable_agent.gateway.__main__", "bench.host"])
def test_a_process_loads_grpc_only_for_the_trace_exporter(entry: str) -> None:
    """temporalio's API packages import grpcio (~9 MiB resident) for service stubs the SDK
    never uses; the worker, gateway and bench host load them without it
    (``durable_agent.imports``), and the OTLP exporter still imports it when tracing is on
    and sends its spans (to a loopback collector)."""
    loaded = _probe(_GRPC_PROBE.format(entry=entry))
    assert loaded == {"start": False, "stubs": False, "exported": ["probe-span"]}


def test_grpc_already_imported_is_left_alone() -> None:
    """Once grpc is loaded the stubs come with the API packages, as without us."""
    stubs = _probe(
        "import grpc, json\n"
        "from durable_agent.imports import load_temporal_api_without_grpc\n"
        "load_temporal_api_without_grpc()\n"
        "from temporalio.api import workflowservice\n"
        "print(json.dumps(hasattr(workflowservice.v1, 'WorkflowServiceStub')))"
    )
    assert stubs is True


_HTTP_PROBE = """
import asyncio, json, sys
import worker
from activities.tools._http_client import LazyHttpClient
from durable_agent.config import Settings

LIGHT = ("httpx", "rich", "pygments")
where = sys.argv[1]
settings = Settings(_env_file=None, notes_db=f"{where}/notes.db", blob_db=f"{where}/blobs.db")


async def main():
    loaded = {"worker": [m for m in LIGHT if m in sys.modules]}
    async with worker.worker_resources(settings, None):  # no Temporal: nothing is called
        loaded["resources"] = [m for m in LIGHT if m in sys.modules]
    LazyHttpClient(timeout_seconds=1)()
    loaded["used"] = [m for m in LIGHT if m in sys.modules]
    print(json.dumps(loaded))


asyncio.run(main())
"""


def test_a_worker_imports_httpx_only_when_an_http_tool_runs(tmp_path: Path) -> None:
    """httpx is 2-3 MiB resident, ~6 with ``rich`` and ``pygments`` installed (it then
    loads its command-line interface): the worker and its activities load none of them
    until the tools' client is first asked for."""
    loaded = _probe(_HTTP_PROBE, str(tmp_path))
    assert loaded["worker"] == [] and loaded["resources"] == []
    assert "httpx" in loaded["used"]


async def test_the_tools_http_client_is_made_on_first_use_and_closed_after() -> None:
    async with aclosing(LazyHttpClient(timeout_seconds=3)) as unused:
        pass
    assert not unused.made
    async with aclosing(LazyHttpClient(timeout_seconds=3)) as lazy:
        assert not lazy.made
        client = lazy()
        assert lazy() is client
        assert client.timeout == httpx.Timeout(3) and not client.follow_redirects
    assert client.is_closed
