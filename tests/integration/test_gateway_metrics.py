"""The gateway's metrics on ``prometheus-client``: its request metrics by route template,
the process's metrics and its Temporal client's ``temporal_*`` metrics, scraped from
one ``/metrics`` endpoint as ``python -m durable_agent.gateway`` serves it."""

from __future__ import annotations

import re

import httpx
from temporalio.client import Client
from temporalio.runtime import Runtime, TelemetryConfig

from durable_agent.client import connect
from durable_agent.config import Settings
from durable_agent.devserver import DevServer
from durable_agent.metrics import SdkMetrics, process_registry, serve_metrics
from tests.gateway_support import serving, tenants
from tests.integration.test_gateway import gateway_settings

REQUESTS = "durable_agent_gateway_requests_total"


async def test_metrics_endpoint_counts_requests_by_route_template(
    client: Client, task_queue: str, settings: Settings, temporal_server: DevServer
) -> None:
    (acme,) = tenants(1)
    sdk = SdkMetrics()
    # A runtime of the test's own: ``sdk_runtime`` would make it the process default.
    runtime = Runtime(telemetry=TelemetryConfig(metrics=sdk.buffer))
    gateway_client = await connect(temporal_server.address, runtime=runtime)
    registry = process_registry(sdk)
    config = gateway_settings(settings, task_queue, [acme])
    with serve_metrics(registry, "127.0.0.1", 0, sdk) as port:
        async with (
            serving(config, gateway_client, registry=registry) as url,
            httpx.AsyncClient(base_url=url, headers=acme.headers, timeout=30) as api,
        ):
            conversation = (await api.post("/v1/conversations", json={})).json()["id"]
            assert (await api.get(f"/v1/conversations/{conversation}")).status_code == 200
            assert (await api.get("/no/such/route")).status_code == 404
            async with httpx.AsyncClient() as plain:
                metrics = (await plain.get(f"http://127.0.0.1:{port}/metrics")).text

    requests = [m for m in metrics.splitlines() if m.startswith(REQUESTS + "{")]
    assert any(
        'route="/v1/conversations"' in m and 'method="POST"' in m and 'status="201"' in m
        for m in requests
    )
    assert any(
        'route="/v1/conversations/{conversation_id}"' in m and 'status="200"' in m for m in requests
    )
    assert any('route="unmatched"' in m and 'status="404"' in m for m in requests)
    # Templates only: no conversation id, raw path or key in any label.
    assert conversation not in metrics and "/no/such/route" not in metrics
    assert acme.key not in metrics
    assert re.search(r'durable_agent_gateway_request_seconds_bucket\{[^}]*le="\+Inf"', metrics)
    assert re.search(r"^durable_agent_gateway_event_streams 0\.0$", metrics, re.M)
    # The process's metrics, and the Temporal client's (bridged from the SDK core).
    assert re.search(r"^python_gc_objects_collected_total\{", metrics, re.M)
    assert re.search(r'^temporal_request\{[^}]*operation="StartWorkflowExecution"', metrics, re.M)
    assert re.search(r"^temporal_request_latency_bucket\{", metrics, re.M)
