"""Tool sandboxing: arguments are bounded, HTTP tools reach only their configured host
(user input travels only as encoded query parameters), and nothing reads files."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.tools import ToolActivities
from activities.tools._common import TOOL_NOT_ALLOWED
from durable_agent.config import Settings
from durable_agent.stores.blobs import SqliteBlobStore
from durable_agent.stores.notes import SqliteNoteStore
from durable_agent.testing.fake_tools import FakeToolServer
from durable_agent.tools.registry import BUILTIN_TOOLS
from tests.unit.test_tool_activities import call


def _fields(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, field in schema.get("properties", {}).items():
        for option in field.get("anyOf", [field]):
            if option.get("type") != "null":
                yield name, option


@pytest.mark.parametrize("spec", BUILTIN_TOOLS.values(), ids=lambda s: s.name)
def test_every_argument_is_bounded(spec: Any) -> None:
    schema = spec.arguments.model_json_schema()
    assert schema.get("additionalProperties") is False  # no smuggled extra fields
    for name, field in _fields(schema):
        kind = field["type"]
        if kind == "string":
            assert field.get("maxLength", 10**9) <= 4000, name
        elif kind == "integer":
            assert "maximum" in field and "minimum" in field, name
        elif kind == "array":
            assert "maxItems" in field, name
        else:
            pytest.fail(f"{spec.name}.{name}: unbounded type {kind}")


@pytest.mark.parametrize("spec", BUILTIN_TOOLS.values(), ids=lambda s: s.name)
def test_no_tool_takes_a_path_or_url_to_open(spec: Any) -> None:
    names = set(spec.arguments.model_json_schema().get("properties", {}))
    assert not names & {"path", "file", "filename", "url", "uri", "host", "endpoint"}


@pytest.fixture
def api() -> Iterator[FakeToolServer]:
    with FakeToolServer() as server:
        yield server


@pytest.fixture
def other() -> Iterator[FakeToolServer]:
    """A second server no tool is configured for: it must never hear from one."""
    with FakeToolServer() as server:
        yield server


@pytest.fixture
async def tools(api: FakeToolServer, tmp_path: Path) -> AsyncIterator[ToolActivities]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        weather_url=api.base_url,
        geocoding_url=api.base_url,
        search_url=api.base_url,
    )
    async with httpx.AsyncClient(follow_redirects=False) as http:
        yield ToolActivities(
            settings,
            SqliteNoteStore(tmp_path / "notes.sqlite3"),
            lambda: http,
            SqliteBlobStore(tmp_path / "blobs.sqlite3"),
        )


HOSTILE = [
    "http://169.254.169.254/latest/meta-data/",
    "../../etc/passwd",
    "@evil.example/x",
    "x\r\nHost: evil.example",
    "file:///etc/shadow",
]


@pytest.mark.parametrize("value", HOSTILE)
async def test_hostile_arguments_travel_only_as_query_parameters(
    tools: ToolActivities, api: FakeToolServer, other: FakeToolServer, value: str
) -> None:
    by_name = {fn.__name__: fn for fn in tools.activities()}
    env = ActivityEnvironment()
    await env.run(by_name["web_search"], call("web_search", query=value))
    await env.run(by_name["get_weather"], call("get_weather", location=value[:100]))
    paths = {r.path for r in api.requests}
    assert paths <= {"/search", "/v1/search", "/v1/forecast"}  # fixed paths only
    assert value in [r.query.get("q") for r in api.requests]  # the value, as data
    assert other.requests == []


async def test_a_base_url_cannot_be_escaped(tools: ToolActivities, api: FakeToolServer) -> None:
    with pytest.raises(ApplicationError) as refused:
        await tools.search._get(
            api.base_url,
            "@evil.example/steal",
            params={},
            call=call("web_search", query="x"),
            service="search service",
            response_model=type("M", (), {}),  # never reached
        )
    assert refused.value.type == TOOL_NOT_ALLOWED and refused.value.non_retryable
    assert api.requests == []
