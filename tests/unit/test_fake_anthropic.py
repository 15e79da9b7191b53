"""The loopback Messages API fake, driven by the real ``anthropic`` SDK."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import httpx2
import pytest

from durable_agent.testing.fake_anthropic import (
    FakeAnthropicServer,
    echo_responder,
    make_message,
    tool_use_block,
)
from durable_agent.testing.faults import Fault, FaultScript
from durable_agent.testing.prompt_cache import prompt_tokens
from durable_agent.testing.responders import ScriptedResponder

CUT_STREAM_ERRORS = (httpx2.RemoteProtocolError, anthropic.APIConnectionError)
"""How a stream cut mid-body surfaces, by SDK version (see the model activity)."""
MODEL = "claude-sonnet-4-6"
HELLO: list[anthropic.types.MessageParam] = [{"role": "user", "content": "hello fake"}]


@pytest.fixture(autouse=True)
def server(anthropic_server: FakeAnthropicServer) -> FakeAnthropicServer:
    """The session's server, with no requests, no faults and the echo responder."""
    anthropic_server.reset()
    anthropic_server.responder = echo_responder
    return anthropic_server


@pytest.fixture(scope="module")
async def claude(
    anthropic_server: FakeAnthropicServer,
) -> AsyncIterator[anthropic.AsyncAnthropic]:
    # One client for the module: building one costs ~50 ms (TLS context).
    async with anthropic.AsyncAnthropic(
        api_key="test-key", base_url=anthropic_server.base_url, max_retries=0, timeout=5.0
    ) as c:
        yield c


async def create(claude: anthropic.AsyncAnthropic, **kw: Any) -> anthropic.types.Message:
    msg: anthropic.types.Message = await claude.messages.create(
        model=MODEL, max_tokens=64, messages=HELLO, **kw
    )
    return msg


async def stream(claude: anthropic.AsyncAnthropic) -> tuple[list[str], anthropic.types.Message]:
    """Stream HELLO; the event types seen and the final message."""
    seen: list[str] = []
    async with claude.messages.stream(model=MODEL, max_tokens=64, messages=HELLO) as s:
        async for ev in s:
            seen.append(ev.type)
        return seen, await s.get_final_message()


# --- normal responses ---------------------------------------------------------------------


async def test_create_echoes_last_user_text(
    server: FakeAnthropicServer, claude: anthropic.AsyncAnthropic
) -> None:
    msg = await create(claude, system="be brief")

    assert msg.content[0].type == "text" and msg.content[0].text == "echo: hello fake"
    assert msg.stop_reason == "end_turn" and msg.model == MODEL
    assert msg.usage.output_tokens == len("echo: hello fake") // 4 + 1
    [req] = server.requests
    assert msg.usage.input_tokens == prompt_tokens(req.body) > 0  # no breakpoints: all input
    assert (req.method, req.path) == ("POST", "/v1/messages")
    assert req.body["messages"] == HELLO and req.body["system"] == "be brief"
    assert req.headers["authorization"] == "Bearer test-key"
    assert req.headers["x-stainless-retry-count"] == "0"
    assert "anthropic-version" in req.headers
    assert req.received_at <= time.monotonic()


TOOL_REPLY = make_message(
    [
        {"type": "text", "text": "Let me compute that for you, step by step."},
        tool_use_block("calculator", {"expression": "2 + 3 * 4", "nested": {"a": [1, 2]}}),
    ],
    stop_reason="tool_use",
    usage={"input_tokens": 42, "output_tokens": 17, "cache_read_input_tokens": 5},
)


@pytest.mark.parametrize("streaming", [False, True])
async def test_responder_content_arrives_intact(
    server: FakeAnthropicServer, claude: anthropic.AsyncAnthropic, streaming: bool
) -> None:
    server.responder = lambda body: TOOL_REPLY
    if streaming:
        seen, msg = await stream(claude)
        assert seen[0] == "message_start" and seen[-1] == "message_stop"
        assert seen.count("content_block_start") == 2 and "input_json" in seen
    else:
        msg = await create(claude)

    content = [b.model_dump(include={"type", "id", "name", "input", "text"}) for b in msg.content]
    assert content == TOOL_REPLY["content"]
    assert msg.stop_reason == "tool_use"
    usage = msg.usage
    assert (usage.input_tokens, usage.output_tokens) == (42, 17)
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (5, 0)


async def test_stream_text_split_into_deltas(claude: anthropic.AsyncAnthropic) -> None:
    seen, msg = await stream(claude)

    assert seen.count("text") >= 2  # several text deltas, not one
    assert msg.content[0].type == "text" and msg.content[0].text == "echo: hello fake"
    assert msg.usage.output_tokens == len("echo: hello fake") // 4 + 1  # the total, not 1 + total


# --- prompt cache -------------------------------------------------------------------------

MARK = {"type": "ephemeral"}
LONG_SYSTEM = "Answer in the style of a careful, patient teacher. " * 100  # ~1,300 tokens


def cached_request(question: str, extra_marks: int = 0) -> dict[str, Any]:
    """A request whose long system prompt is marked for caching, then ``extra_marks``
    more marked blocks and ``question``."""
    marked = [
        {"type": "text", "text": f"note {i}", "cache_control": MARK} for i in range(extra_marks)
    ]
    return {
        "model": MODEL,
        "max_tokens": 64,
        "system": [{"type": "text", "text": LONG_SYSTEM, "cache_control": MARK}],
        "messages": [{"role": "user", "content": [*marked, {"type": "text", "text": question}]}],
    }


@pytest.mark.parametrize("streaming", [False, True])
async def test_cache_usage_is_reported_by_both_paths(
    server: FakeAnthropicServer, claude: anthropic.AsyncAnthropic, streaming: bool
) -> None:
    async def ask(question: str) -> anthropic.types.Usage:
        request = cached_request(question)
        if not streaming:
            return (await claude.messages.create(**request)).usage
        async with claude.messages.stream(**request) as s:
            return (await s.get_final_message()).usage

    first, second = await ask("What is a prime?"), await ask("What is a square?")
    system_tokens = prompt_tokens({"system": LONG_SYSTEM, "messages": []})
    assert (first.cache_creation_input_tokens, first.cache_read_input_tokens) == (
        system_tokens,
        0,
    )
    assert (second.cache_creation_input_tokens, second.cache_read_input_tokens) == (
        0,
        system_tokens,
    )
    bodies = [r.body for r in server.requests]
    for usage, body in zip((first, second), bodies, strict=True):
        assert usage.input_tokens == prompt_tokens(body) - system_tokens > 0
        assert usage.output_tokens > 1

    server.reset()  # forgets the cache too
    assert (await ask("What is a prime?")).cache_read_input_tokens == 0


async def test_a_short_prefix_is_not_cached(claude: anthropic.AsyncAnthropic) -> None:
    request = {**cached_request("hi"), "system": [{"type": "text", "text": "be brief"}]}
    request["messages"][0]["content"][0]["cache_control"] = MARK
    for _ in range(2):
        usage = (await claude.messages.create(**request)).usage
        assert usage.cache_creation_input_tokens == usage.cache_read_input_tokens == 0


async def test_more_than_four_breakpoints_is_400(claude: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        await claude.messages.create(**cached_request("too many", extra_marks=4))
    assert "A maximum of 4 blocks with cache_control" in str(info.value)
    assert (await claude.messages.create(**cached_request("enough", extra_marks=3))).content


async def test_a_script_that_sets_input_usage_is_reported_exactly(
    server: FakeAnthropicServer, claude: anthropic.AsyncAnthropic
) -> None:
    server.responder = ScriptedResponder(
        [make_message("pinned", usage={"input_tokens": 7}), make_message("from the cache")]
    )
    pinned = (await claude.messages.create(**cached_request("one"))).usage
    assert (pinned.input_tokens, pinned.cache_creation_input_tokens) == (7, 0)
    assert pinned.cache_read_input_tokens == 0
    # The request was still cached: the next one, not pinned, reads it.
    assert (await claude.messages.create(**cached_request("two"))).usage.cache_read_input_tokens


async def test_models_list_and_health(
    server: FakeAnthropicServer, claude: anthropic.AsyncAnthropic
) -> None:
    page = await claude.models.list()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as raw:
        health = await raw.get("/health")

    assert page.data[0].id == MODEL and page.data[0].type == "model"
    assert health.status_code == 200 and health.json() == {"ok": True}
    assert "request-id" in health.headers
    assert [r.path for r in server.requests] == ["/v1/models"]  # /health is not recorded


# --- request errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"x-api-key": "k"}, 200), ({"authorization": "Bearer k"}, 200)],
)
async def test_auth_header_required(
    server: FakeAnthropicServer, headers: dict[str, str], status: int
) -> None:
    body = {"model": MODEL, "max_tokens": 8, "messages": HELLO}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as raw:
        resp = await raw.post("/v1/messages", json=body, headers=headers)

    assert resp.status_code == status
    if status == 401:
        assert resp.json()["error"]["type"] == "authentication_error"


@pytest.mark.parametrize(
    "body",
    [
        {"max_tokens": 8, "messages": HELLO},
        {"model": MODEL, "messages": HELLO},
        {"model": MODEL, "max_tokens": 8, "messages": "hi"},
    ],
)
async def test_invalid_body_is_400(server: FakeAnthropicServer, body: dict[str, Any]) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as raw:
        resp = await raw.post("/v1/messages", json=body, headers={"x-api-key": "k"})

    assert resp.status_code == 400
    assert resp.json()["type"] == "error"
    assert resp.json()["error"]["type"] == "invalid_request_error"


# --- faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("retry_after", "header"), [(2, "2"), (0.5, "0.5")])
async def test_429_with_retry_after(
    server: FakeAnthropicServer, claude: anthropic.AsyncAnthropic, retry_after: float, header: str
) -> None:
    server.faults.add(Fault(status=429, retry_after=retry_after))

    with pytest.raises(anthropic.RateLimitError) as info:
        await create(claude)

    assert info.value.response.headers["retry-after"] == header
    assert info.value.type == "rate_limit_error"
    assert info.value.request_id is not None and info.value.request_id.startswith("req_")
    assert (await create(claude)).content  # the fault was used up; the next call succeeds


@pytest.mark.parametrize(
    ("status", "error", "error_type"),
    [
        (529, anthropic.OverloadedError, "overloaded_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (403, anthropic.PermissionDeniedError, "permission_error"),
        (503, anthropic.InternalServerError, "api_error"),
    ],
)
async def test_status_fault(
    server: FakeAnthropicServer,
    claude: anthropic.AsyncAnthropic,
    status: int,
    error: type[anthropic.APIStatusError],
    error_type: str,
) -> None:
    server.faults.add(Fault(status=status))

    with pytest.raises(error) as info:
        await create(claude)

    assert info.value.status_code == status and info.value.type == error_type
    assert "retry-after" not in info.value.response.headers


async def test_explicit_error_type_and_path_filter(
    server: FakeAnthropicServer, claude: anthropic.AsyncAnthropic
) -> None:
    server.faults.add(Fault(status=400, error_type="billing_error", path="/v1/models"))

    assert (await create(claude)).content  # /v1/messages does not take a /v1/models fault
    with pytest.raises(anthropic.BadRequestError) as info:
        await claude.models.list()
    assert info.value.type == "billing_error"


async def test_drop_is_connection_error(
    server: FakeAnthropicServer, claude: anthropic.AsyncAnthropic
) -> None:
    server.faults.add(Fault(drop=True))

    with pytest.raises(anthropic.APIConnectionError) as info:
        await create(claude)
    assert not isinstance(info.value, anthropic.APITimeoutError)


async def test_delay_slows_the_answer(
    server: FakeAnthropicServer, claude: anthropic.AsyncAnthropic
) -> None:
    server.faults.add(Fault(delay=0.3))

    started = time.monotonic()
    await create(claude)
    assert time.monotonic() - started >= 0.3


async def test_delay_beyond_client_timeout(
    server: FakeAnthropicServer, claude: anthropic.AsyncAnthropic
) -> None:
    server.faults.add(Fault(delay=2.0))

    started = time.monotonic()
    with pytest.raises(anthropic.APITimeoutError):
        await create(claude, timeout=0.2)
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize(
    ("cut_after", "expected"),
    [
        (3, ["message_start", "content_block_start"]),  # + ping, which the SDK hides
        (
            100,
            [
                "message_start",
                "content_block_start",
                *["content_block_delta", "text"] * 3,
                "content_block_stop",
                "message_delta",
                "message_stop",
            ],
        ),
    ],
)
async def test_cut_stream_raises_raw_transport_error(
    server: FakeAnthropicServer,
    claude: anthropic.AsyncAnthropic,
    cut_after: int,
    expected: list[str],
) -> None:
    server.faults.add(Fault(cut_stream_after=cut_after))

    seen: list[str] = []
    # anthropic 2.12 lets httpx2's error through here; 2.17 wraps it in an
    # APIConnectionError. The model activity classifies both as retryable.
    with pytest.raises(CUT_STREAM_ERRORS):
        async with claude.messages.stream(model=MODEL, max_tokens=64, messages=HELLO) as s:
            async for ev in s:
                seen.append(ev.type)
    assert seen == expected  # past the last event, the body is still never completed


async def test_stream_error_event(
    server: FakeAnthropicServer, claude: anthropic.AsyncAnthropic
) -> None:
    server.faults.add(Fault(stream_error="overloaded_error"))

    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as info:
        async with claude.messages.stream(model=MODEL, max_tokens=64, messages=HELLO) as s:
            async for ev in s:
                seen.append(ev.type)
    # Not an OverloadedError: the HTTP status of a stream is already 200.
    assert type(info.value) is anthropic.APIStatusError
    assert info.value.status_code == 200 and info.value.type == "overloaded_error"
    assert seen == ["message_start"]


async def test_slow_stream(server: FakeAnthropicServer, claude: anthropic.AsyncAnthropic) -> None:
    server.faults.add(Fault(stream_event_delay=0.05))

    started = time.monotonic()
    seen, msg = await stream(claude)
    elapsed = time.monotonic() - started

    # Every raw event but the first waits; the SDK hides one (ping) and adds text events.
    raw_events = len(seen) - seen.count("text") + 1
    assert elapsed >= (raw_events - 1) * 0.05
    assert msg.content[0].type == "text" and msg.content[0].text == "echo: hello fake"


async def test_always_fault_and_reset(
    server: FakeAnthropicServer, claude: anthropic.AsyncAnthropic
) -> None:
    server.faults.always = Fault(status=529)
    for _ in range(2):
        with pytest.raises(anthropic.OverloadedError):
            await create(claude)

    server.reset()
    assert server.requests == [] and server.faults.always is None
    assert (await create(claude)).content


async def test_broken_responder_is_500(
    server: FakeAnthropicServer, claude: anthropic.AsyncAnthropic
) -> None:
    def broken(body: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("missing")

    server.responder = broken

    with pytest.raises(anthropic.InternalServerError) as info:
        await create(claude)
    assert info.value.status_code == 500 and "KeyError" in str(info.value.api_message)


# --- lifecycle ------------------------------------------------------------------------------


async def test_stop_is_prompt_during_slow_stream() -> None:
    srv = FakeAnthropicServer(faults=FaultScript(Fault(stream_event_delay=5.0))).start()
    first_event = asyncio.Event()

    async def consume(c: anthropic.AsyncAnthropic) -> None:
        async with c.messages.stream(model=MODEL, max_tokens=64, messages=HELLO) as s:
            async for _ in s:
                first_event.set()

    async with anthropic.AsyncAnthropic(
        api_key="k", base_url=srv.base_url, max_retries=0, timeout=10.0
    ) as c:
        try:
            task = asyncio.create_task(consume(c))
            await asyncio.wait_for(first_event.wait(), 2.0)
            started = time.monotonic()
            await asyncio.to_thread(srv.stop)
            assert time.monotonic() - started < 1.0
            with pytest.raises(CUT_STREAM_ERRORS):  # the client sees the cut at once
                await asyncio.wait_for(task, 2.0)
        finally:
            srv.stop()


async def test_stop_closes_idle_keep_alive_connections() -> None:
    with FakeAnthropicServer() as srv:
        async with anthropic.AsyncAnthropic(
            api_key="k", base_url=srv.base_url, max_retries=0, timeout=2.0
        ) as c:
            await create(c)  # leaves a pooled keep-alive connection
            srv.stop()
            # A stopped fake must not keep answering on connections it accepted earlier.
            with pytest.raises(anthropic.APIConnectionError):
                await create(c)


async def test_stop_hangs_up_idle_connections() -> None:
    with FakeAnthropicServer() as srv:
        host, port = srv.base_url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(b"GET /health HTTP/1.1\r\nHost: fake\r\n\r\n")
            assert b" 200 " in await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2.0)
            await asyncio.wait_for(reader.readexactly(len(b'{"ok": true}')), 2.0)
            srv.stop()
            assert await asyncio.wait_for(reader.read(), 1.0) == b""  # EOF, not a hang
        finally:
            writer.close()
            await writer.wait_closed()


async def test_restart_serves_on_same_port() -> None:
    srv = FakeAnthropicServer(echo_responder)
    with pytest.raises(RuntimeError):
        _ = srv.base_url
    with srv:
        url = srv.base_url
    async with httpx.AsyncClient(timeout=5) as raw:
        with pytest.raises(httpx.ConnectError):
            await raw.get(f"{url}/health")
        with srv:
            assert srv.base_url == url
            assert (await raw.get(f"{url}/health")).status_code == 200
