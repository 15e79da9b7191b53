"""The gateway as it is deployed: ``python -m durable_agent.gateway`` in its own process,
beside a second replica, against the dev server. Any replica serves any conversation;
SIGTERM ends event streams and exits cleanly; metrics and logs carry no key."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import time

import httpx
import pytest
from temporalio.client import Client

from durable_agent.config import Settings
from durable_agent.devserver import DevServer, free_port
from tests.gateway_support import key_entries, lines_of, read_events, serving, tenants
from tests.helpers import ROOT, eventually
from tests.integration.test_gateway import gateway_settings

REQUESTS = "durable_agent_gateway_requests"


async def _drain(stream: httpx.Response) -> None:
    async for _ in lines_of(stream):
        pass


@pytest.mark.slow
async def test_replicas_share_nothing_and_sigterm_is_graceful(
    client: Client, task_queue: str, settings: Settings, temporal_server: DevServer
) -> None:
    (acme,) = tenants(1)
    port, metrics_port = free_port(), free_port()
    keys = json.dumps([k.model_dump() for k in key_entries([acme])])
    env = {
        **os.environ,
        "AGENT_TEMPORAL_ADDRESS": temporal_server.address,
        "AGENT_TASK_QUEUE": task_queue,
        "AGENT_GATEWAY_KEYS": keys,
        "AGENT_GATEWAY_METRICS_PORT": str(metrics_port),
        "AGENT_GATEWAY_EVENTS_POLL_SECONDS": "0.05",
        "AGENT_LOG_FORMAT": "json",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "durable_agent.gateway",
        "--port",
        str(port),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    first = f"http://127.0.0.1:{port}"

    try:
        async with (
            httpx.AsyncClient(base_url=first, headers=acme.headers, timeout=30) as a,
            serving(gateway_settings(settings, task_queue, [acme]), client) as second,
            httpx.AsyncClient(base_url=second, headers=acme.headers, timeout=30) as b,
        ):

            async def ready() -> int:
                try:
                    return (await a.get("/health/ready")).status_code
                except httpx.TransportError:
                    return 0

            await eventually(ready, until=lambda code: code == 200, timeout=30)

            # Started on one replica, served by either: no state lives in the gateway.
            conversation = (await a.post("/v1/conversations", json={})).json()["id"]
            reply = await b.post(
                f"/v1/conversations/{conversation}/messages", json={"text": "What is 7 * 6?"}
            )
            assert reply.status_code == 200 and "42" in reply.json()["text"]
            status = (await a.get(f"/v1/conversations/{conversation}")).json()["status"]
            assert status["turns"] == 1
            async with a.stream("GET", f"/v1/conversations/{conversation}/events") as stream:
                replayed = await read_events(stream)  # the first turn, from the start
                assert replayed[0][0] == "turn_started"
                assert replayed[-1][1]["reply"] == reply.json()

                async with httpx.AsyncClient() as plain:
                    scraped = await plain.get(f"http://127.0.0.1:{metrics_port}/metrics")
                metrics = scraped.text
                requests = [m for m in metrics.splitlines() if m.startswith(REQUESTS)]
                assert any(
                    'route="/v1/conversations"' in m and 'status="201"' in m for m in requests
                )
                assert any('route="/v1/conversations/{conversation_id}"' in m for m in requests)
                assert re.search(r"durable_agent_gateway_event_streams(\{[^}]*\})? 1\b", metrics)

                # SIGTERM while a stream is open: the stream ends, the process exits.
                started = time.monotonic()
                process.send_signal(signal.SIGTERM)
                with contextlib.suppress(httpx.TransportError):  # cut, or ended: both fine
                    await asyncio.wait_for(_drain(stream), 10)
            code = await asyncio.wait_for(process.wait(), 15)
            assert code == 0 and time.monotonic() - started < 10

            # The other replica carries on alone.
            again = await b.post(
                f"/v1/conversations/{conversation}/messages", json={"text": "What is 1 + 1?"}
            )
            assert again.status_code == 200 and again.json()["turn"] == 2
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.stderr is not None
    logs = (await process.stderr.read()).decode()
    records = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert any(r.get("route") == "/v1/conversations" for r in records)  # access log
    assert acme.key not in logs and acme.key not in metrics
