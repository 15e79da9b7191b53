"""Black-box defects of the gateway (issue 14), each over real HTTP against the dev
server: bodies that cannot be stored, oversized bodies and messages, a reused
Idempotency-Key, unparseable paths, air-gapped API docs, problem type URIs, approver
identity, and a fast 503 during a Temporal outage."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from durable_agent.client import connect_with
from durable_agent.config import Settings
from durable_agent.contract import MAX_MESSAGE_CHARS, SafetyPolicy
from durable_agent.devserver import DevServer
from durable_agent.gateway import problems
from durable_agent.gateway.keys import GatewayKey, hash_key, new_key
from tests.gateway_support import RunningGateway, Tenant, key_entries, serving, tenants
from tests.helpers import eventually, history_events, saved_notes
from tests.integration.test_gateway import assert_problem, gateway_settings, start


@pytest.fixture
async def gateway(
    client: Client, task_queue: str, settings: Settings
) -> AsyncIterator[RunningGateway]:
    found = tenants(1)
    config = gateway_settings(settings, task_queue, found)
    async with serving(config, client) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        yield RunningGateway(url, found, http, extra={"client": client})


async def updates_in_history(client: Client, conversation: str) -> int:
    events = await history_events(client.get_workflow_handle(conversation))
    return sum(e.startswith("WORKFLOW_EXECUTION_UPDATE") for e in events)


async def test_a_lone_surrogate_is_a_422_problem_not_a_500(gateway: RunningGateway) -> None:
    async with gateway.as_(gateway.tenants[0]) as api:
        conversation = await start(api)
        base = f"/v1/conversations/{conversation}"
        raw = b'{"text": "hi \\ud800 there"}'
        headers = {"Content-Type": "application/json"}
        response = await api.post(f"{base}/messages", content=raw, headers=headers)
        problem = assert_problem(response, 422, "validation-error")
        assert "U+D800" in problem["detail"] and "body.text" in problem["detail"]
        started = await api.post(
            "/v1/conversations", content=b'{"system_prompt": "\\udfff"}', headers=headers
        )
        assert "U+DFFF" in assert_problem(started, 422, "validation-error")["detail"]
        decision = b'{"decision": "reject", "reason": "x\\ud83d"}'
        decided = await api.post(f"{base}/approvals/toolu_x", content=decision, headers=headers)
        assert_problem(decided, 422, "validation-error")
        # A proper pair is text like any other.
        paired = b'{"text": "hi \\ud83d\\ude00 there"}'
        reply = await api.post(f"{base}/messages", content=paired, headers=headers)
        assert reply.status_code == 200, reply.text
        assert await updates_in_history(gateway.extra["client"], conversation) == 2  # one turn


async def test_oversized_bodies_are_413_and_never_retryable(gateway: RunningGateway) -> None:
    async with gateway.as_(gateway.tenants[0]) as api:
        conversation = await start(api)
        messages = f"/v1/conversations/{conversation}/messages"
        for size in (5_000_000, 1_000_000):
            started = time.monotonic()
            response = await api.post(messages, json={"text": "a" * size})
            problem = assert_problem(response, 413, "request-too-large")
            assert "retry-after" not in response.headers and "aaaa" not in response.text
            assert "512" in problem["detail"] or "524288" in problem["detail"]
            assert time.monotonic() - started < 1.0

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as read
            yield b'{"text": "'
            for _ in range(10):
                yield b"a" * 100_000
            yield b'"}'

        chunked = await api.post(
            messages, content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert_problem(chunked, 413, "request-too-large")
        assert await updates_in_history(gateway.extra["client"], conversation) == 0


async def test_a_message_over_the_limit_is_422_before_it_is_sent(gateway: RunningGateway) -> None:
    async with gateway.as_(gateway.tenants[0]) as api:
        conversation = await start(api)
        started = time.monotonic()
        response = await api.post(
            f"/v1/conversations/{conversation}/messages",
            json={"text": "é" * (MAX_MESSAGE_CHARS + 1)},
        )
        problem = assert_problem(response, 422, "invalid-message")
        assert time.monotonic() - started < 1.0
        assert problem["detail"] == (
            f"message text has {MAX_MESSAGE_CHARS + 1} characters; the limit is {MAX_MESSAGE_CHARS}"
        )
        assert await updates_in_history(gateway.extra["client"], conversation) == 0


async def test_a_message_idempotency_key_reused_with_another_body_is_422(
    gateway: RunningGateway,
) -> None:
    async with gateway.as_(gateway.tenants[0]) as api:
        conversation = await start(api)
        messages = f"/v1/conversations/{conversation}/messages"
        key = {"Idempotency-Key": f"msg-{uuid.uuid4()}"}
        first = await api.post(messages, json={"text": "What is 6 * 7?"}, headers=key)
        assert first.status_code == 200, first.text
        again = await api.post(messages, json={"text": "What is 6 * 7?"}, headers=key)
        assert again.status_code == 200 and again.json() == first.json()
        other = await api.post(messages, json={"text": "What is 2 + 2?"}, headers=key)
        problem = assert_problem(other, 422, "idempotency-key-reused")
        assert problem["conversation_id"] == conversation
        # The same key in another conversation is another request.
        elsewhere = await start(api)
        fresh = await api.post(
            f"/v1/conversations/{elsewhere}/messages", json={"text": "What is 2 + 2?"}, headers=key
        )
        assert fresh.status_code == 200, fresh.text
        assert (await api.get(f"/v1/conversations/{conversation}")).json()["status"]["turns"] == 1


@pytest.mark.parametrize(
    "path", [b"/v1/conversations/caf\xc3\xa9", b"/v1/conversations/\xff\xfe", b"/docs\x80"]
)
async def test_raw_non_ascii_in_a_path_is_a_400_problem(
    gateway: RunningGateway, path: bytes
) -> None:
    host, port = gateway.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), raw
    assert b"content-type: application/problem+json" in head.lower()
    response = httpx.Response(400, content=body, headers={"content-type": problems.MEDIA_TYPE})
    assert "percent-encode" in assert_problem(response, 400, "bad-request")["detail"]


async def test_percent_encoded_invalid_utf8_in_a_path_is_a_problem(
    gateway: RunningGateway,
) -> None:
    async with gateway.as_(gateway.tenants[0]) as api:
        response = await api.get("/v1/conversations/%ff%fe")
        assert response.headers["content-type"].startswith(problems.MEDIA_TYPE)
        assert response.status_code in (403, 404, 422)


async def test_api_docs_load_every_asset_from_the_gateway(gateway: RunningGateway) -> None:
    for page in ("/docs", "/redoc"):
        html = await gateway.http.get(page)
        assert html.status_code == 200 and "text/html" in html.headers["content-type"]
        urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", html.text)
        assert urls, html.text
        assert not [u for u in urls if "://" in u or u.startswith("//")], urls
        for url in urls:
            asset = await gateway.http.get(url)
            assert asset.status_code == 200, url
            assert len(asset.content) > 0
    script = await gateway.http.get("/docs/assets/swagger-ui-bundle.js")
    assert b"SwaggerUIBundle" in script.content


async def test_every_problem_type_uri_resolves_to_its_description(
    gateway: RunningGateway,
) -> None:
    for kind in problems.CATALOG:
        response = await gateway.http.get(kind.uri)
        assert response.status_code == 200, kind.uri
        assert response.json() == {
            "type": kind.uri,
            "status": kind.status,
            "title": kind.title,
            "description": kind.description,
        }
    missing = await gateway.http.get("/problems/no-such-problem")
    assert "no problem type" in assert_problem(missing, 404, "not-found")["detail"]


async def test_readme_curl_examples_send_json(gateway: RunningGateway) -> None:
    from tests.helpers import ROOT

    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    text = "\n".join(path.read_text() for path in docs)
    posts = [line for line in text.splitlines() if "curl" in line and " -d " in line]
    assert posts
    for line in posts:
        assert "Content-Type: application/json" in line, line


async def test_approvals_are_recorded_as_the_api_key_and_policy_names_approvers(
    client: Client, task_queue: str, settings: Settings
) -> None:
    tenant = tenants(1)[0]
    viewer = Tenant(tenant.name, new_key())
    keys = [
        *key_entries([tenant]),
        GatewayKey(name="viewer", tenant=tenant.name, sha256=hash_key(viewer.key)),
    ]
    policy = SafetyPolicy(
        approval_tools=["save_note"], approvers=[f"{tenant.name}/{tenant.name}-svc"]
    )
    config = gateway_settings(settings, task_queue, [tenant], gateway_keys=keys, safety=policy)
    async with (
        serving(config, client) as url,
        httpx.AsyncClient(base_url=url, headers=tenant.headers, timeout=30) as api,
        httpx.AsyncClient(base_url=url, headers=viewer.headers, timeout=30) as other,
    ):
        conversation = await start(api)
        base = f"/v1/conversations/{conversation}"
        await api.post(f"{base}/messages?wait=false", json={"text": "Remember that keys decide"})
        view = await eventually(
            lambda: api.get(base), until=lambda r: bool(r.json()["status"]["pending_approvals"])
        )
        (pending,) = view.json()["status"]["pending_approvals"]
        decide = f"{base}/approvals/{pending['call_id']}"

        claimed = await api.post(decide, json={"decision": "approve", "by": "the-ceo"})
        assert "by is not accepted" in assert_problem(claimed, 422, "validation-error")["detail"]
        refused = await other.post(decide, json={"decision": "approve"})
        detail = assert_problem(refused, 403, "not-an-approver")["detail"]
        assert f"{tenant.name}/viewer" in detail
        assert await saved_notes(settings, tenant.name) == []

        decided = await api.post(decide, json={"decision": "approve", "on_behalf_of": "alice"})
        assert decided.status_code == 200, decided.text
        assert decided.json()["by"] == f"{tenant.name}/{tenant.name}-svc for alice"
        await eventually(lambda: saved_notes(settings, tenant.name))


async def test_a_temporal_outage_answers_503_within_two_seconds(
    settings: Settings, tmp_path: Any
) -> None:
    server = DevServer(db_file=tmp_path / "outage.sqlite3")
    await server.start()
    found = tenants(1)
    config = gateway_settings(settings, "none", found, temporal_address=server.address)

    async def connect() -> Client:
        return await connect_with(config)

    try:
        async with (
            serving(config, connect) as url,
            httpx.AsyncClient(base_url=url, headers=found[0].headers, timeout=30) as api,
        ):
            listed = await api.get("/v1/conversations")
            assert listed.status_code == 200, listed.text
            server.stop()
            await eventually(lambda: api.get("/health/ready"), until=lambda r: r.status_code == 503)
            for _ in range(3):
                started = time.monotonic()
                response = await api.post("/v1/conversations", json={})
                assert_problem(response, 503, "temporal-unavailable")
                assert response.headers["retry-after"] == "1"
                assert time.monotonic() - started < 2.0
    finally:
        server.stop()
