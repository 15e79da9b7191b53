"""The tool activities, run in an ``ActivityEnvironment`` against the loopback fake
tool APIs with a real ``httpx.AsyncClient``."""

from __future__ import annotations

import dataclasses
import re
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.tools import TOOL_NOT_CONFIGURED, ToolActivities
from durable_agent.activity_models import ToolCall, ToolResult
from durable_agent.config import Settings
from durable_agent.stores.blobs import SqliteBlobStore
from durable_agent.stores.notes import SqliteNoteStore
from durable_agent.testing.fake_tools import FakeToolServer
from durable_agent.testing.faults import Fault
from durable_agent.tools.registry import BUILTIN_TOOLS, TOOL_TRANSIENT_ERROR

WEATHER_LINE = re.compile(
    r"^(?P<place>.+): -?\d+\.\d °C, wind \d+\.\d km/h, humidity \d+%, [a-z ]+$"
)


@pytest.fixture
def api(tool_server: FakeToolServer) -> FakeToolServer:
    """The session's fake tool APIs (conftest resets it before every test)."""
    return tool_server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(follow_redirects=False) as client:
        yield client


@pytest.fixture
def store(tmp_path: Path) -> SqliteNoteStore:
    return SqliteNoteStore(tmp_path / "notes.sqlite3")


def make_tools(
    api: FakeToolServer, store: SqliteNoteStore, http: httpx.AsyncClient, **overrides: Any
) -> ToolActivities:
    values: dict[str, Any] = {
        "weather_url": api.base_url,
        "geocoding_url": api.base_url,
        "search_url": api.base_url,
        "http_timeout_seconds": 2.0,
    } | overrides
    blobs = SqliteBlobStore(store.path.parent / "blobs.sqlite3")
    return ToolActivities(Settings(_env_file=None, **values), store, lambda: http, blobs)


@pytest.fixture
def tools(api: FakeToolServer, store: SqliteNoteStore, http: httpx.AsyncClient) -> ToolActivities:
    return make_tools(api, store, http)


def call(tool: str, key: str = "wf-1/1/0", tenant: str = "acme", **arguments: Any) -> ToolCall:
    return ToolCall(
        tool=tool,
        arguments=arguments,
        idempotency_key=key,
        conversation_id="wf-1",
        tenant=tenant,
    )


async def run(tools: ToolActivities, tool: str, **arguments: Any) -> ToolResult:
    method = {fn.__name__: fn for fn in tools.activities()}[tool]
    result: ToolResult = await ActivityEnvironment().run(method, call(tool, **arguments))
    return result


def test_activities_are_registered_under_the_spec_names(tools: ToolActivities) -> None:
    names = {activity._Definition.must_from_callable(fn).name for fn in tools.activities()}
    assert names == {spec.activity_name for spec in BUILTIN_TOOLS.values()}


@pytest.mark.parametrize(
    ("tool", "arguments", "fragment"),
    [
        ("calculator", {}, "expression: Field required"),
        ("calculator", {"expression": "1", "mode": "x"}, "mode: Extra inputs"),
        ("save_note", {"text": ""}, "text: String should have at least 1 character"),
        ("list_notes", {"limit": 0}, "limit: Input should be greater than or equal to 1"),
        ("get_weather", {"location": 42}, "location: Input should be a valid string"),
        ("web_search", {"query": "x", "max_results": 11}, "max_results: Input should be less"),
    ],
)
async def test_invalid_arguments_come_back_to_the_model(
    tools: ToolActivities, api: FakeToolServer, tool: str, arguments: dict[str, Any], fragment: str
) -> None:
    result = await run(tools, tool, **arguments)
    assert result.outcome == "invalid_arguments"
    assert fragment in result.content
    assert api.requests == []


# --- calculator ------------------------------------------------------------------------


async def test_calculator(tools: ToolActivities) -> None:
    ok = await run(tools, "calculator", expression=" (2 + 3) * 4 / 8 ")
    assert ok == ToolResult(outcome="ok", content="(2 + 3) * 4 / 8 = 2.5")
    failed = await run(tools, "calculator", expression="1 / 0")
    assert failed == ToolResult(outcome="error", content="division by zero")


# --- notes ------------------------------------------------------------------------------


async def test_save_note_rerun_gives_the_same_result_and_one_row(
    tools: ToolActivities, store: SqliteNoteStore
) -> None:
    first = await run(tools, "save_note", text="buy milk")
    rerun = await run(tools, "save_note", text="buy milk")
    assert first == rerun == ToolResult(outcome="ok", content="saved note #1")
    assert await store.count() == 1


async def test_list_notes(tools: ToolActivities, store: SqliteNoteStore) -> None:
    assert await run(tools, "list_notes") == ToolResult(outcome="ok", content="no notes")
    for i, text in enumerate(["buy milk", "call Bob", "buy bread"]):
        await store.save(key=f"k{i}", tenant="acme", conversation_id="c", text=text)
    await store.save(key="other", tenant="globex", conversation_id="c", text="buy a boat")

    listed = await run(tools, "list_notes", query="buy")
    assert listed.outcome == "ok"
    assert re.fullmatch(
        r"#3 \(\d{4}-\d\d-\d\d\): buy bread\n#1 \(\d{4}-\d\d-\d\d\): buy milk", listed.content
    )
    newest = await run(tools, "list_notes", limit=1)
    assert newest.content.endswith(": buy bread")
    none = await run(tools, "list_notes", query="zebra")
    assert none == ToolResult(outcome="ok", content="no notes containing 'zebra'")


async def test_store_failures_are_retryable(
    tmp_path: Path, api: FakeToolServer, http: httpx.AsyncClient
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    broken = SqliteNoteStore(blocker / "notes.sqlite3")
    tools = make_tools(api, broken, http)
    for tool, arguments in (("save_note", {"text": "x"}), ("list_notes", {})):
        with pytest.raises(ApplicationError, match="notes store failed") as caught:
            await run(tools, tool, **arguments)
        assert caught.value.type == TOOL_TRANSIENT_ERROR and not caught.value.non_retryable


# --- get_weather ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "place", "count"),
    [
        ("Paris", "Paris, France", "1"),
        ("paris, texas", "Paris, United States", "10"),
        ("Lima, Peru", "Lima, Peru", "10"),
        ("Lima, US", "Lima, United States", "10"),
        ("sao paulo", "São Paulo, Brazil", "1"),
    ],
)
async def test_get_weather(
    tools: ToolActivities, api: FakeToolServer, location: str, place: str, count: str
) -> None:
    result = await run(tools, "get_weather", location=location)
    assert result.outcome == "ok", result.content
    match = WEATHER_LINE.match(result.content)
    assert match and match["place"] == place, result.content
    assert await run(tools, "get_weather", location=location) == result  # deterministic
    geocoding, forecast = api.requests[:2]
    assert geocoding.path == "/v1/search" and geocoding.query["count"] == count
    assert forecast.path == "/v1/forecast"
    assert forecast.query["current"] == (
        "temperature_2m,relative_humidity_2m,wind_speed_10m,weather_code"
    )


async def test_unknown_place_is_an_error_result(tools: ToolActivities) -> None:
    for location in ("Atlantis", "Lima, Mars"):
        result = await run(tools, "get_weather", location=location)
        assert result == ToolResult(outcome="error", content=f"no place named {location!r}")


async def test_every_request_carries_the_idempotency_key(
    tools: ToolActivities, api: FakeToolServer
) -> None:
    await run(tools, "get_weather", location="Tokyo")
    await run(tools, "web_search", query="temporal")
    assert [r.path for r in api.requests] == ["/v1/search", "/v1/forecast", "/search"]
    assert {r.headers.get("idempotency-key") for r in api.requests} == {"wf-1/1/0"}


# --- HTTP failure classification --------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=503, path="/v1/forecast"),
        Fault(status=500, path="/v1/search"),
        Fault(drop=True, path="/v1/forecast"),
    ],
)
async def test_outages_are_retryable(
    tools: ToolActivities, api: FakeToolServer, fault: Fault
) -> None:
    api.faults.add(fault)
    with pytest.raises(ApplicationError) as caught:
        await run(tools, "get_weather", location="Berlin")
    assert caught.value.type == TOOL_TRANSIENT_ERROR
    assert not caught.value.non_retryable
    assert caught.value.next_retry_delay is None
    assert api.base_url not in str(caught.value)  # messages name services, not URLs


async def test_rate_limit_sets_next_retry_delay(tools: ToolActivities, api: FakeToolServer) -> None:
    api.faults.add(Fault(status=429, retry_after=2.5, path="/search"))
    with pytest.raises(ApplicationError) as caught:
        await run(tools, "web_search", query="python")
    assert caught.value.type == TOOL_TRANSIENT_ERROR and not caught.value.non_retryable
    assert caught.value.next_retry_delay == timedelta(seconds=2.5)


async def test_other_client_errors_come_back_to_the_model(
    tools: ToolActivities, api: FakeToolServer
) -> None:
    api.faults.add(Fault(status=404, path="/v1/search"))
    result = await run(tools, "get_weather", location="Paris")
    assert result == ToolResult(
        outcome="error", content="geocoding service refused the request: HTTP 404"
    )


async def test_a_slow_answer_is_waited_for_with_heartbeats(
    tools: ToolActivities, api: FakeToolServer
) -> None:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_timeout=timedelta(seconds=0.09))
    beats: list[object] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    api.faults.add(Fault(delay=0.25, path="/search"))  # well within the 2 s timeout
    result = await env.run(tools.search.web_search, call("web_search", query="python"))
    assert result.outcome == "ok"
    assert len(beats) >= 2  # every 0.03 s while waiting


async def test_timeout_is_retryable(
    api: FakeToolServer, store: SqliteNoteStore, http: httpx.AsyncClient
) -> None:
    tools = make_tools(api, store, http, http_timeout_seconds=0.2)
    api.faults.add(Fault(delay=1.0, path="/search"))
    with pytest.raises(ApplicationError, match="timed out") as caught:
        await run(tools, "web_search", query="python")
    assert caught.value.type == TOOL_TRANSIENT_ERROR and not caught.value.non_retryable


async def test_unreachable_service_is_retryable(
    api: FakeToolServer, store: SqliteNoteStore, http: httpx.AsyncClient
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    tools = make_tools(api, store, http, geocoding_url=closed)
    with pytest.raises(ApplicationError, match="unreachable") as caught:
        await run(tools, "get_weather", location="Paris")
    assert caught.value.type == TOOL_TRANSIENT_ERROR


@pytest.mark.parametrize(
    ("response", "content"),
    [
        (httpx.Response(200, text="<html>"), "search service gave an unexpected response"),
        (
            httpx.Response(200, json={"results": "nope"}),
            "search service gave an unexpected response",
        ),
        (
            httpx.Response(302, headers={"location": "http://elsewhere.example/"}),
            "search service redirected the request (HTTP 302); tools do not follow redirects",
        ),
    ],
)
async def test_bad_answers_are_error_results(
    api: FakeToolServer, store: SqliteNoteStore, response: httpx.Response, content: str
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return response

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        tools = make_tools(api, store, http)
        result = await run(tools, "web_search", query="x")
    assert result == ToolResult(outcome="error", content=content)
    assert len(seen) == 1  # the redirect was not followed


# --- web_search -------------------------------------------------------------------------


async def test_web_search(tools: ToolActivities, api: FakeToolServer) -> None:
    result = await run(tools, "web_search", query="Temporal Python", max_results=2)
    assert result.outcome == "ok"
    lines = result.content.splitlines()
    assert lines[0] == "1. Temporal Python SDK — https://github.com/temporalio/sdk-python"
    assert lines[1].startswith("   The Temporal Python SDK")
    assert lines[2].startswith("2. ")
    assert len([line for line in lines if re.match(r"\d+\. ", line)]) == 2
    assert api.requests[0].query == {"q": "Temporal Python", "format": "json"}
    empty = await run(tools, "web_search", query="qwertyuiop")
    assert empty == ToolResult(outcome="ok", content="no results for 'qwertyuiop'")


async def test_web_search_unconfigured_is_not_retried(
    api: FakeToolServer, store: SqliteNoteStore, http: httpx.AsyncClient
) -> None:
    tools = make_tools(api, store, http, search_url=None)
    with pytest.raises(ApplicationError, match="AGENT_SEARCH_URL") as caught:
        await run(tools, "web_search", query="x")
    assert caught.value.type == TOOL_NOT_CONFIGURED
    assert caught.value.non_retryable
    assert api.requests == []
