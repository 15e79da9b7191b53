"""The HTTP gateway over real HTTP (uvicorn on loopback) against the dev server: the
lifecycle, SSE events, tenants, every error mapping, idempotency and cancel."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from durable_agent.config import Settings
from durable_agent.contract import SafetyPolicy
from durable_agent.devserver import free_port
from durable_agent.governor import TenantLimits
from durable_agent.testing.fake_anthropic import FakeAnthropicServer
from durable_agent.testing.fake_tools import FakeToolServer
from durable_agent.testing.faults import Fault
from durable_agent.testing.responders import offline_responder
from tests.conftest import claude_worker, make_settings
from tests.gateway_support import (
    RunningGateway,
    Tenant,
    key_entries,
    read_events,
    serving,
    tenants,
)
from tests.helpers import eventually, saved_notes

PROBLEM = "application/problem+json"


def gateway_settings(base: Settings, queue: str, found: list[Tenant], **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "task_queue": queue,
        "gateway_keys": key_entries(found),
        "gateway_wait_seconds": 20.0,
        "gateway_events_poll_seconds": 0.05,
        "safety": SafetyPolicy(approval_tools=["save_note"], blocked_patterns=["(?i)forbidden"]),
        **overrides,
    }
    return base.model_copy(update=values)


@pytest.fixture
async def gateway(
    client: Client, task_queue: str, settings: Settings
) -> AsyncIterator[RunningGateway]:
    found = tenants(2)

    async with (
        serving(gateway_settings(settings, task_queue, found), client) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        yield RunningGateway(url, found, http)


async def start(api: httpx.AsyncClient, body: dict[str, Any] | None = None) -> str:
    response = await api.post("/v1/conversations", json=body or {})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["type"] == f"/problems/{slug}" and body["status"] == status
    assert body["title"] and body["detail"]
    assert "Traceback" not in response.text
    return body


async def test_lifecycle_start_send_status_transcript_poll_cancel(gateway: RunningGateway) -> None:
    alice = gateway.tenants[0]
    async with gateway.as_(alice) as api:
        created = await api.post("/v1/conversations", json={})
        assert created.status_code == 201
        conversation = created.json()["id"]
        assert conversation.startswith(f"{alice.name}.conversation-")
        assert created.headers["location"] == f"/v1/conversations/{conversation}"
        assert created.json()["links"]["events"] == f"/v1/conversations/{conversation}/events"

        sent = await api.post(
            f"/v1/conversations/{conversation}/messages", json={"text": "What is 6 * 7?"}
        )
        assert sent.status_code == 200, sent.text
        reply = sent.json()
        assert "42" in reply["text"] and reply["status"] == "ok" and reply["turn"] == 1
        assert [c["name"] for c in reply["tool_calls"]] == ["calculator"]

        view = (await api.get(f"/v1/conversations/{conversation}")).json()
        assert view["execution"] == "running" and view["tenant"] == alice.name
        status = view["status"]
        assert status["turns"] == 1 and status["tenant"] == alice.name
        assert status["usage"]["output_tokens"] > 0 and "cost_usd" in status
        assert "model" in status["breakers"] and status["pending_approvals"] == []
        assert status["budget"]["remaining"]["usd"] is not None

        transcript = (await api.get(f"/v1/conversations/{conversation}/transcript")).json()
        assert transcript["messages"][0] == {
            "role": "user",
            "content": [{"type": "text", "text": "What is 6 * 7?"}],
        }
        assert len(transcript["messages"]) == 4  # question, tool_use, tool_result, answer

        queued = await api.post(
            f"/v1/conversations/{conversation}/messages?wait=false", json={"text": "What is 2 + 3?"}
        )
        assert queued.status_code == 202
        location = queued.headers["location"]
        assert location == queued.json()["location"] and queued.headers["retry-after"]
        polled = await api.get(location, params={"wait": 20})
        assert polled.status_code == 200 and "5" in polled.json()["text"]
        assert polled.json()["turn"] == 2
        again = await api.get(location)  # the reply stays readable
        assert again.json() == polled.json()
        unknown = await api.get(f"/v1/conversations/{conversation}/messages/msg-{'0' * 32}")
        assert "no message" in assert_problem(unknown, 404, "not-found")["detail"]

        listed = await eventually(  # visibility is eventually consistent
            lambda: api.get("/v1/conversations"), until=lambda r: r.json()["conversations"]
        )
        assert [c["id"] for c in listed.json()["conversations"]] == [conversation]

        cancelled = await api.delete(f"/v1/conversations/{conversation}")
        assert cancelled.status_code == 202 and cancelled.json()["action"] == "cancel"
        view = await eventually(
            lambda: api.get(f"/v1/conversations/{conversation}"),
            until=lambda r: r.json().get("execution") == "cancelled",
        )
        assert view.json()["status"]["turns"] == 2
        late = await api.post(f"/v1/conversations/{conversation}/messages", json={"text": "hi"})
        assert_problem(late, 409, "conversation-ended")
        assert_problem(
            await api.delete(f"/v1/conversations/{conversation}"), 409, "conversation-ended"
        )


async def test_sse_streams_the_steps_of_a_turn_with_tools(gateway: RunningGateway) -> None:
    async with gateway.as_(gateway.tenants[0]) as api:
        conversation = await start(api)
        events_url = f"/v1/conversations/{conversation}/events"
        async with api.stream("GET", events_url) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            sent = await api.post(
                f"/v1/conversations/{conversation}/messages?wait=false",
                json={"text": "What is 6 * 7 and what's the weather in Paris?"},
            )
            assert sent.status_code == 202
            events = await read_events(stream)
        kinds = [kind for kind, _, _ in events]
        assert kinds[:2] == ["turn_started", "model_call_started"]
        assert kinds[-3:] == ["model_call_started", "model_call_finished", "reply"]
        started = [d for k, d, _ in events if k == "tool_call_started"]
        finished = [d for k, d, _ in events if k == "tool_call_finished"]
        assert sorted(d["tool"] for d in started) == ["calculator", "get_weather"]
        assert {d["call_id"] for d in started} == {d["call_id"] for d in finished}
        assert all(d["outcome"] == "ok" for d in finished)
        first_call = next(d for k, d, _ in events if k == "model_call_finished")
        assert first_call["outcome"] == "ok" and first_call["usage"]["output_tokens"] > 0
        offsets = [int(offset) for _, _, offset in events if offset]
        assert offsets == list(range(len(events)))  # every event, in order, once
        assert [d["seq"] for _, d, _ in events] == [o + 1 for o in offsets]  # id = seq - 1
        reply = events[-1][1]["reply"]
        assert "42" in reply["text"] and len(reply["tool_calls"]) == 2

        # Resume after the last event seen: only the next turn's events come.
        headers = {"Last-Event-ID": str(offsets[-1])}
        async with api.stream("GET", events_url, headers=headers) as stream:
            await api.post(
                f"/v1/conversations/{conversation}/messages?wait=false", json={"text": "hello"}
            )
            resumed = await read_events(stream)
        assert resumed[0][0] == "turn_started" and resumed[0][1]["turn"] == 2
        assert int(resumed[0][2] or 0) == offsets[-1] + 1

        # The conversation ends: the stream says so and closes (``after``: a seq).
        await api.post(f"/v1/conversations/{conversation}/end")
        after = {"after": events[-1][1]["seq"]}
        async with api.stream("GET", events_url, params=after) as stream:
            tail = await read_events(stream, until="end")
        assert [k for k, _, _ in tail][-2:] == ["ended", "end"]


async def test_a_tenant_sees_only_its_own_conversations(gateway: RunningGateway) -> None:
    alice, bob = gateway.tenants
    async with gateway.as_(alice) as as_alice, gateway.as_(bob) as as_bob:
        mine = await start(as_alice)
        theirs = await start(as_bob)
        base = f"/v1/conversations/{mine}"
        for method, path, body in [
            ("GET", base, None),
            ("GET", f"{base}/transcript", None),
            ("GET", f"{base}/events", None),
            ("GET", f"{base}/approvals", None),
            ("POST", f"{base}/messages", {"text": "What is 1 + 1?"}),
            ("POST", f"{base}/approvals/toolu_1", {"decision": "approve"}),
            ("POST", f"{base}/end", None),
            ("DELETE", base, None),
        ]:
            response = await as_bob.request(method, path, json=body)
            problem = assert_problem(response, 403, "forbidden")
            assert alice.name in problem["detail"] and bob.name in problem["detail"]
        # An id that does not exist but is in another tenant's namespace: still 403
        # (decided from the id alone, so existence is not revealed).
        assert_problem(await as_bob.get(f"/v1/conversations/{alice.name}.nope"), 403, "forbidden")
        listed = await eventually(
            lambda: as_bob.get("/v1/conversations"), until=lambda r: r.json()["conversations"]
        )
        assert [c["id"] for c in listed.json()["conversations"]] == [theirs]
        status = (await as_alice.get(base)).json()["status"]
        assert status["turns"] == 0 and status["tenant"] == alice.name

    anonymous = await gateway.http.get("/v1/conversations")
    assert_problem(anonymous, 401, "unauthorized")
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    wrong = await gateway.http.get(
        "/v1/conversations", headers={"Authorization": "Bearer dak_not-a-key"}
    )
    body = assert_problem(wrong, 401, "unauthorized")
    assert "dak_not-a-key" not in wrong.text and body["detail"] == "unknown API key"


async def test_bad_input_maps_to_typed_problems_and_loses_nothing(
    gateway: RunningGateway,
) -> None:
    alice = gateway.tenants[0]
    async with gateway.as_(alice) as api:
        conversation = await start(api)
        messages = f"/v1/conversations/{conversation}/messages"
        missing = assert_problem(
            await api.post(messages, json={"txt": "hi"}), 422, "validation-error"
        )
        locations = {e["location"] for e in missing["errors"]}
        assert "body.text" in locations and "body.txt" in locations
        assert_problem(await api.post(messages, content=b"{not json"), 422, "validation-error")
        empty = assert_problem(
            await api.post(messages, json={"text": "  "}), 422, "invalid-message"
        )
        assert empty["conversation_id"] == conversation
        blocked = assert_problem(
            await api.post(messages, json={"text": "tell me the forbidden thing"}),
            422,
            "message-blocked",
        )
        assert "blocked" in blocked["detail"]

        unknown_tool = assert_problem(
            await api.post("/v1/conversations", json={"tools": ["calculator", "rm_rf"]}),
            422,
            "validation-error",
        )
        assert "rm_rf" in unknown_tool["detail"]
        too_rich = assert_problem(
            await api.post("/v1/conversations", json={"limits": {"conversation": {"usd": "1000"}}}),
            422,
            "validation-error",
        )
        assert too_rich["errors"][0]["location"] == "body.limits.conversation.usd"
        assert_problem(
            await api.get(f"/v1/conversations/{alice.name}.conversation-000000000000"),
            404,
            "not-found",
        )
        assert_problem(await api.get("/v1/nothing-here"), 404, "not-found")
        assert_problem(await api.put(messages, json={"text": "x"}), 405, "method-not-allowed")

        # None of that reached the conversation; it still answers.
        reply = await api.post(messages, json={"text": "What is 2 + 2?"})
        assert reply.status_code == 200 and reply.json()["turn"] == 1
        transcript = (await api.get(f"/v1/conversations/{conversation}/transcript")).json()
        assert transcript["messages"][0]["content"][0]["text"] == "What is 2 + 2?"

        # A budget that runs out: 402 with the reply the turn ended with.
        capped = await start(api, {"limits": {"conversation": {"model_calls": 1}}})
        first = await api.post(f"/v1/conversations/{capped}/messages", json={"text": "hello"})
        assert first.status_code == 200
        over = assert_problem(
            await api.post(f"/v1/conversations/{capped}/messages", json={"text": "hello"}),
            402,
            "budget-exceeded",
        )
        assert over["reply"]["status"] == "budget_exceeded"
        assert over["reply"]["budget_scope"] == "conversation"
        assert "model_calls" in over["detail"]


async def test_approvals_over_http(gateway: RunningGateway, settings: Settings) -> None:
    alice = gateway.tenants[0]
    async with gateway.as_(alice) as api:
        conversation = await start(api)
        base = f"/v1/conversations/{conversation}"
        queued = await api.post(
            f"{base}/messages?wait=false", json={"text": "Remember that the gate code is 1234"}
        )
        view = await eventually(
            lambda: api.get(base), until=lambda r: bool(r.json()["status"]["pending_approvals"])
        )
        (pending,) = view.json()["status"]["pending_approvals"]
        assert view.json()["status"]["state"] == "awaiting_approval"
        assert pending["tool"] == "save_note" and await saved_notes(settings, alice.name) == []

        approvals = f"{base}/approvals/{pending['call_id']}"
        assert_problem(
            await api.post(f"{base}/approvals/toolu_nope", json={"decision": "approve"}),
            409,
            "approval-conflict",
        )
        assert_problem(
            await api.post(approvals, json={"decision": "approve", "arguments": {"text": ""}}),
            422,
            "invalid-approval",
        )
        assert_problem(
            await api.post(approvals, json={"decision": "reject"}), 422, "validation-error"
        )
        decided = await api.post(
            approvals, json={"decision": "approve", "on_behalf_of": "alice@example.com"}
        )
        assert decided.status_code == 200, decided.text
        record = decided.json()
        assert record["decision"] == "approved"
        assert record["by"] == f"{alice.name}/{alice.name}-svc for alice@example.com"
        again = await api.post(approvals, json={"decision": "approve"})
        assert "already approved" in assert_problem(again, 409, "approval-conflict")["detail"]

        reply = await api.get(queued.headers["location"], params={"wait": 20})
        assert reply.status_code == 200
        assert reply.json()["tool_calls"][0]["outcome"] == "ok"
        assert await saved_notes(settings, alice.name) == ["the gate code is 1234"]
        audit = (await api.get(f"{base}/approvals")).json()
        assert audit["pending"] == [] and audit["decisions"] == [record]


async def test_idempotency_key_makes_a_retry_return_the_first_result(
    gateway: RunningGateway,
) -> None:
    async with gateway.as_(gateway.tenants[0]) as api:
        key = {"Idempotency-Key": f"start-{uuid.uuid4()}"}
        first = await api.post("/v1/conversations", json={"max_tokens": 512}, headers=key)
        retried = await api.post("/v1/conversations", json={"max_tokens": 512}, headers=key)
        assert first.status_code == retried.status_code == 201
        assert first.json() == retried.json()
        assert retried.headers["idempotent-replayed"] == "true"
        assert "idempotent-replayed" not in first.headers
        reused = await api.post("/v1/conversations", json={"max_tokens": 256}, headers=key)
        assert_problem(reused, 422, "idempotency-key-reused")

        conversation = first.json()["id"]
        messages = f"/v1/conversations/{conversation}/messages"
        send_key = {"Idempotency-Key": "msg-1"}
        replies = await asyncio.gather(
            api.post(messages, json={"text": "What is 3 * 3?"}, headers=send_key),
            api.post(messages, json={"text": "What is 3 * 3?"}, headers=send_key),
        )
        later = await api.post(messages, json={"text": "What is 3 * 3?"}, headers=send_key)
        assert [r.status_code for r in [*replies, later]] == [200, 200, 200]
        assert replies[0].json() == replies[1].json() == later.json()
        status = (await api.get(f"/v1/conversations/{conversation}")).json()["status"]
        assert status["turns"] == 1  # one turn for three requests
        other = await api.post(messages, json={"text": "What is 3 * 3?"})
        assert other.json()["turn"] == 2  # without the key: a new turn


async def test_cancel_stops_a_running_turn(
    gateway: RunningGateway, tool_server: FakeToolServer
) -> None:
    tool_server.faults.add(Fault(delay=30.0, path="/v1/forecast"))
    async with gateway.as_(gateway.tenants[0]) as api:
        conversation = await start(api)
        base = f"/v1/conversations/{conversation}"
        waiting = asyncio.create_task(
            api.post(f"{base}/messages", json={"text": "What's the weather in Paris?"})
        )
        await eventually(
            lambda: api.get(base),
            until=lambda r: r.json()["status"]["state"] == "running_tools",
        )
        assert (await api.delete(base)).status_code == 202
        answer = await asyncio.wait_for(waiting, 15)
        assert_problem(answer, 409, "conversation-ended")
        view = await eventually(
            lambda: api.get(base), until=lambda r: r.json()["execution"] == "cancelled"
        )
        assert view.json()["status"]["turns"] == 0


async def test_rate_limits_answer_429_with_retry_after(
    client: Client, task_queue: str, settings: Settings
) -> None:
    found = tenants(1)
    limited = gateway_settings(
        settings,
        task_queue,
        found,
        gateway_keys=key_entries(found, requests_per_second=0.01, burst=2),
    )

    async with serving(limited, client) as url, httpx.AsyncClient(base_url=url) as http:
        headers = found[0].headers
        assert (await http.get("/v1/conversations", headers=headers)).status_code == 200
        assert (await http.get("/v1/conversations", headers=headers)).status_code == 200
        third = await http.get("/v1/conversations", headers=headers)
        problem = assert_problem(third, 429, "rate-limited")
        assert int(third.headers["retry-after"]) >= 50  # 1 request per 100 s
        assert problem["retry_after_seconds"] > 50
        assert (await http.get("/health/live")).status_code == 200  # probes are not limited


async def test_tenant_limits_from_the_governor_map_to_429(
    client: Client,
    tmp_path: Path,
    tool_server: FakeToolServer,
    anthropic_server: FakeAnthropicServer,
) -> None:
    anthropic_server.reset()
    anthropic_server.responder = offline_responder
    poor, slow = tenants(2)
    limits = {
        poor.name: TenantLimits(daily_usd=Decimal("0.000001"), model_calls_per_minute=None),
        slow.name: TenantLimits(daily_usd=None, model_calls_per_minute=1, burst=1),
    }
    async with claude_worker(
        client, tmp_path, tool_server, anthropic_server, tenant_limits=limits
    ) as queue:
        settings = gateway_settings(make_settings(tmp_path, tool_server), queue, [poor, slow])

        async with serving(settings, client) as url, httpx.AsyncClient(base_url=url) as http:
            created = await http.post("/v1/conversations", json={}, headers=poor.headers)
            broke = await http.post(
                f"/v1/conversations/{created.json()['id']}/messages",
                json={"text": "hello"},
                headers=poor.headers,
                timeout=30,
            )
            problem = assert_problem(broke, 429, "tenant-budget-exceeded")
            assert problem["reply"]["budget_scope"] == "tenant"
            assert 0 < int(broke.headers["retry-after"]) <= 86400

            created = await http.post(
                "/v1/conversations", json={"turn_timeout_seconds": 2}, headers=slow.headers
            )
            messages = f"/v1/conversations/{created.json()['id']}/messages"
            first = await http.post(messages, json={"text": "hello"}, headers=slow.headers)
            assert first.status_code == 200  # the burst's one call
            second = await http.post(
                messages, json={"text": "hello"}, headers=slow.headers, timeout=30
            )
            problem = assert_problem(second, 429, "rate-limited")
            assert problem["reply"]["status"] == "rate_limited"
            assert 1 <= int(second.headers["retry-after"]) <= 60


async def test_temporal_unavailable_is_503_and_not_ready(settings: Settings) -> None:
    found = tenants(1)
    dead = f"127.0.0.1:{free_port()}"  # nobody listens here
    config = gateway_settings(settings, "none", found, temporal_address=dead)

    async def connect() -> Client:
        from durable_agent.client import connect_with

        return await connect_with(config)

    async with serving(config, connect) as url, httpx.AsyncClient(base_url=url) as http:
        response = await http.post("/v1/conversations", json={}, headers=found[0].headers)
        problem = assert_problem(response, 503, "temporal-unavailable")
        assert dead in problem["detail"] and response.headers["retry-after"] == "1"
        assert (await http.get("/health/live")).status_code == 200
        ready = await http.get("/health/ready")
        assert ready.status_code == 503 and ready.json()["status"] == "unavailable"


async def test_openapi_documents_every_route(gateway: RunningGateway) -> None:
    schema = (await gateway.http.get("/openapi.json")).json()
    paths = schema["paths"]
    assert set(paths) >= {
        "/v1/conversations",
        "/v1/conversations/{conversation_id}",
        "/v1/conversations/{conversation_id}/messages",
        "/v1/conversations/{conversation_id}/messages/{message_id}",
        "/v1/conversations/{conversation_id}/transcript",
        "/v1/conversations/{conversation_id}/events",
        "/v1/conversations/{conversation_id}/approvals",
        "/v1/conversations/{conversation_id}/approvals/{call_id}",
        "/health/live",
        "/health/ready",
    }
    send = paths["/v1/conversations/{conversation_id}/messages"]["post"]
    assert {"200", "202", "401", "402", "403", "404", "409", "422", "429", "503"} <= set(
        send["responses"]
    )
    assert "Reply" in str(send["responses"]["200"]) and "Problem" in str(send["responses"]["409"])
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    catalog = (await gateway.http.get("/problems")).json()
    assert {p["status"] for p in catalog} >= {401, 402, 403, 404, 409, 422, 429, 503}


async def test_listing_pages_through_the_tenants_conversations(gateway: RunningGateway) -> None:
    async with gateway.as_(gateway.tenants[0]) as api:
        started = {await start(api) for _ in range(3)}
        await eventually(  # visibility is eventually consistent
            lambda: api.get("/v1/conversations"),
            until=lambda r: len(r.json()["conversations"]) == 3,
        )
        seen: list[str] = []
        page: str | None = None
        for _ in range(5):  # bounded: 3 conversations, 2 per page
            params: dict[str, Any] = {"limit": 2, **({"page": page} if page else {})}
            listed = (await api.get("/v1/conversations", params=params)).json()
            seen += [c["id"] for c in listed["conversations"]]
            page = listed["next_page"]
            if page is None:
                break
        assert sorted(seen) == sorted(started)  # each once, newest first per page
        mangled = await api.get("/v1/conversations", params={"page": "bm90LWEtdG9rZW4"})
        assert_problem(mangled, 422, "validation-error")
    async with gateway.as_(gateway.tenants[1]) as other:
        first = (await other.get("/v1/conversations", params={"limit": 1})).json()
        assert first["conversations"] == [] and first["next_page"] is None


async def test_cors_is_off_unless_origins_are_configured(
    client: Client, task_queue: str, settings: Settings
) -> None:
    found = tenants(1)
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,idempotency-key,content-type",
    }

    allowed = gateway_settings(
        settings, task_queue, found, gateway_cors_origins=["http://ui.example"]
    )
    async with serving(allowed, client) as url, httpx.AsyncClient(base_url=url) as http:
        ok = await http.options(
            "/v1/conversations", headers={**preflight, "Origin": "http://ui.example"}
        )
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "http://ui.example"
        assert "idempotency-key" in ok.headers["access-control-allow-headers"].lower()
        other = await http.options(
            "/v1/conversations", headers={**preflight, "Origin": "http://evil.example"}
        )
        assert "access-control-allow-origin" not in other.headers
        listed = await http.get(
            "/v1/conversations", headers={**found[0].headers, "Origin": "http://ui.example"}
        )
        assert listed.headers["access-control-allow-origin"] == "http://ui.example"
        assert "retry-after" in listed.headers["access-control-expose-headers"].lower()

    closed = gateway_settings(settings, task_queue, found)
    async with serving(closed, client) as url, httpx.AsyncClient(base_url=url) as http:
        listed = await http.get(
            "/v1/conversations", headers={**found[0].headers, "Origin": "http://ui.example"}
        )
        assert listed.status_code == 200 and "access-control-allow-origin" not in listed.headers


async def test_a_person_clears_untrusted_content_over_http(gateway: RunningGateway) -> None:
    alice = gateway.tenants[0]
    async with gateway.as_(alice) as api:
        conversation = await start(api)
        base = f"/v1/conversations/{conversation}"
        assert_problem(
            await api.post(f"{base}/clearance", json={"reason": "nothing yet"}),
            409,
            "approval-conflict",
        )
        sent = await api.post(f"{base}/messages", json={"text": "What's the weather in Paris?"})
        assert sent.status_code == 200, sent.text
        view = await api.get(base)
        assert [u["source"] for u in view.json()["status"]["untrusted"]] == ["tool:get_weather"]
        assert_problem(
            await api.post(f"{base}/clearance", json={"by": "mallory"}), 422, "validation-error"
        )
        cleared = await api.post(
            f"{base}/clearance", json={"reason": "a forecast", "on_behalf_of": "alice"}
        )
        assert cleared.status_code == 200, cleared.text
        assert cleared.json()["by"] == f"{alice.name}/{alice.name}-svc for alice"
        assert (await api.get(base)).json()["status"]["untrusted"] == []
