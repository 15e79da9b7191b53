"""A worker loads the Claude and MCP SDKs only when it uses them: ``anthropic`` (with
``httpx2``) is ~60 MiB resident once imported and ``mcp`` more, against ~100 MiB for
the rest of an idle worker. Checked in a fresh interpreter, since this one has imported
everything the other tests use."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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


def _loaded(backend: str) -> dict[str, list[str]]:
    run = subprocess.run(
        [sys.executable, "-c", _PROBE, backend],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_an_offline_worker_without_mcp_servers_imports_neither_sdk() -> None:
    loaded = _loaded("offline")
    assert loaded["backend"] == [] and loaded["no_servers"] == []
    assert "mcp" in loaded["a_server"]  # a configured server loads it, at start-up


def test_a_claude_worker_imports_the_anthropic_sdk_at_start_up() -> None:
    loaded = _loaded("claude")
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
    run = subprocess.run(
        [sys.executable, "-c", _WORKER_PROBE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded = json.loads(run.stdout.strip().splitlines()[-1])
    assert loaded["worker"] == []
    assert {"asyncpg", "cryptography"} <= set(loaded["used"])
