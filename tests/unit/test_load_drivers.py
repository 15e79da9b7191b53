"""The load test's gateway driver against ``httpx.MockTransport``: how each answer of
the gateway's API becomes a reply or a counted failure."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from bench.load_drivers import (
    GatewayDriver,
    GatewaySession,
    SendFailed,
    gateway_keys,
    problem_kind,
    retry_after,
)
from durable_agent.contract import Reply

CONVERSATION = "acme.conversation-0123456789ab"
MESSAGES = f"/v1/conversations/{CONVERSATION}/messages"
REPLY = {"text": "The result of 2 * 3 is 6.", "turn": 4, "status": "ok", "model_calls": 2}
PROBLEM = "application/problem+json"


def problem(status: int, name: str, **extra: object) -> httpx.Response:
    body = {"type": f"/problems/{name}", "title": name, "status": status, "detail": "…", **extra}
    headers = {"content-type": PROBLEM}
    if "retry_after_seconds" in extra:
        headers["retry-after"] = str(extra["retry_after_seconds"])
    return httpx.Response(status, content=json.dumps(body), headers=headers)


def driver(handle: Callable[[httpx.Request], httpx.Response]) -> GatewayDriver:
    """A driver whose requests ``handle`` answers (nothing is sent anywhere)."""
    http = httpx.AsyncClient(base_url="http://127.0.0.1:9", transport=httpx.MockTransport(handle))
    return GatewayDriver(http, ["key-0", "key-1"])


async def test_open_posts_an_empty_body_with_the_tenants_key_and_send_returns_the_reply() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/v1/conversations":
            return httpx.Response(201, json={"id": CONVERSATION, "tenant": "acme"})
        return httpx.Response(200, json=REPLY)

    session = await driver(handle).open(1)
    reply = await session.send("what is 2 * 3?")

    assert session.id == CONVERSATION
    assert reply == Reply.model_validate(REPLY)
    assert [(r.method, r.url.path) for r in seen] == [
        ("POST", "/v1/conversations"),
        ("POST", MESSAGES),
    ]
    assert json.loads(seen[0].content) == {} and json.loads(seen[1].content) == {
        "text": "what is 2 * 3?"
    }
    assert {r.headers["authorization"] for r in seen} == {"Bearer key-1"}


async def test_a_turn_outlasting_the_gateways_wait_is_polled_at_its_location() -> None:
    location = f"{MESSAGES}/msg-{'a' * 32}"
    answers = iter(
        [
            httpx.Response(202, json={"location": location}, headers={"location": location}),
            httpx.Response(202, json={"location": location}, headers={"location": location}),
            httpx.Response(200, json=REPLY),
        ]
    )
    paths: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        paths.append(f"{request.method} {request.url.path} {request.url.query.decode()}")
        return next(answers)

    http = httpx.AsyncClient(base_url="http://127.0.0.1:9", transport=httpx.MockTransport(handle))
    session = GatewaySession(CONVERSATION, "key-0", http)

    assert (await session.send("hi")).turn == 4
    assert paths == [f"POST {MESSAGES} ", f"GET {location} wait=30.0", f"GET {location} wait=30.0"]


async def test_a_rate_limited_message_fails_with_its_type_and_retry_after() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/conversations":
            return httpx.Response(201, json={"id": CONVERSATION})
        return problem(429, "rate-limited", retry_after_seconds=2)

    session = await driver(handle).open(0)

    with pytest.raises(SendFailed) as failure:
        await session.send("hi")
    assert failure.value.kind == "http 429 rate-limited"
    assert failure.value.retry_after == 2.0


async def test_a_problem_that_carries_the_turns_reply_is_that_reply() -> None:
    ended = {**REPLY, "status": "budget_exceeded", "text": ""}

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/conversations":
            return httpx.Response(201, json={"id": CONVERSATION})
        return problem(402, "budget-exceeded", reply=ended)

    reply = await (await driver(handle).open(0)).send("hi")

    assert reply.status == "budget_exceeded" and reply.turn == 4


async def test_transport_failures_and_bad_replies_are_counted_not_raised_raw() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/conversations":
            return httpx.Response(201, json={"id": CONVERSATION})
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(SendFailed, match="ConnectError"):
        await (await driver(refuse).open(0)).send("hi")

    def garbage(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/conversations":
            return httpx.Response(201, json={"id": CONVERSATION})
        return httpx.Response(200, json={"turn": "four"})

    with pytest.raises(SendFailed) as failure:
        await (await driver(garbage).open(0)).send("hi")
    assert failure.value.kind == "invalid reply"


async def test_a_conversation_the_gateway_will_not_start_stops_the_phase() -> None:
    session = driver(lambda request: problem(401, "unauthorized"))

    with pytest.raises(RuntimeError, match="answered 401"):
        await session.open(0)


def test_problem_kind_and_retry_after_parse_what_the_gateway_sends() -> None:
    assert problem_kind(problem(503, "temporal-unavailable")) == "http 503 temporal-unavailable"
    assert problem_kind(httpx.Response(502, text="bad gateway")) == "http 502"
    assert retry_after("3") == 3.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert retry_after(None) is None


def test_gateway_keys_configure_one_hashed_key_per_tenant() -> None:
    keys_module = pytest.importorskip("durable_agent.gateway.keys")
    keys, configured = gateway_keys(["load-a", "load-b"])

    ring = keys_module.KeyRing(
        [keys_module.GatewayKey.model_validate(entry) for entry in json.loads(configured)]
    )

    assert len(set(keys)) == 2
    assert [ring.find(key).tenant for key in keys] == ["load-a", "load-b"]
    assert all(key not in configured for key in keys)
