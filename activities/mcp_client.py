"""The ``mcp`` SDK side of the MCP activities (``activities/mcp.py``): a session with a
server, its tools and results turned into ours, its failures classified (the classes
are listed in ``activities/mcp.py``).

Its own module because the SDK is ~25 MiB of resident memory once imported: a worker
loads it at start-up only when ``AGENT_MCP_SERVERS`` names a server (``McpActivities``),
so a worker without MCP servers never does.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

import anyio
import httpx2
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import INVALID_PARAMS, CallToolResult, RequestParamsMeta, TextContent, Tool
from temporalio.exceptions import ApplicationError

from activities.heartbeat import auto_heartbeat
from durable_agent.activity_models import ToolResult
from durable_agent.toolsets import (
    MCP_PROTOCOL_ERROR,
    MCP_TRANSIENT_ERROR,
    McpServerConfig,
    McpToolCall,
    McpToolInfo,
    StdioServer,
    namespaced,
    offered,
    permission_for,
)

_TRANSPORT_ERRORS = (
    OSError,
    TimeoutError,
    httpx2.TransportError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
)
_TRANSPORT_CODES = frozenset({-32000, -32001})  # connection closed, request timeout


async def list_tools(
    server: str, config: McpServerConfig, secrets: dict[str, str]
) -> tuple[int, list[McpToolInfo]]:
    """How many tools the server lists, and those ``config`` offers as the conversation
    will see them (namespaced, each with its permission)."""
    async with session(server, config, secrets) as client:
        listed: list[Tool] = []
        cursor: str | None = None
        while True:
            page = await client.list_tools(cursor=cursor)
            listed += page.tools
            cursor = page.next_cursor
            if cursor is None:
                break
    return len(listed), [_info(server, config, t) for t in listed if offered(config, t.name)]


async def call_tool(
    config: McpServerConfig, secrets: dict[str, str], call: McpToolCall
) -> ToolResult:
    """Call one tool; its text content becomes the result (not yet offloaded)."""
    # Servers that deduplicate can read the call's idempotency key.
    meta = cast(RequestParamsMeta, {"io.durable-agent/idempotency-key": call.idempotency_key})
    async with session(call.server, config, secrets) as client:
        try:
            result = await client.call_tool(call.remote_name, call.arguments, meta=meta)
        except MCPError as e:
            if e.code != INVALID_PARAMS:
                raise
            return ToolResult(outcome="invalid_arguments", content=e.message)
    text = _text(result)
    if result.is_error:
        return ToolResult(outcome="error", content=text or "the tool reported an error")
    return ToolResult(outcome="ok", content=text)


@asynccontextmanager
async def session(
    server: str, config: McpServerConfig, secrets: dict[str, str]
) -> AsyncIterator[Client]:
    """A connected client, heartbeating; failures raised as classified
    ``ApplicationError``\\ s (see the module docstring)."""
    failure: BaseException | None = None
    try:
        async with auto_heartbeat(), _client(config, secrets) as client:
            try:
                yield client
            except (MCPError, *_TRANSPORT_ERRORS) as e:
                # Caught inside: leaving the SDK's task groups wraps it in a group.
                failure = e
    except (MCPError, *_TRANSPORT_ERRORS) as e:
        failure = e
    except BaseExceptionGroup as group:
        failure = _leaf(group)
    if failure is not None:
        raise _classify(server, failure) from failure


@asynccontextmanager
async def _client(config: McpServerConfig, secrets: dict[str, str]) -> AsyncIterator[Client]:
    if isinstance(config, StdioServer):
        params = StdioServerParameters(
            command=config.command, args=config.args, env=config.env | secrets, cwd=config.cwd
        )
        async with Client(params) as client:
            yield client
        return
    headers = config.headers | secrets
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http,
        Client(streamable_http_client(config.url, http_client=http)) as client,
    ):
        yield client


def _info(server: str, config: McpServerConfig, tool: Tool) -> McpToolInfo:
    hints = tool.annotations
    read_only = bool(hints and hints.read_only_hint)
    destructive = bool(hints and hints.destructive_hint)
    return McpToolInfo(
        name=namespaced(server, tool.name),
        remote_name=tool.name,
        description=tool.description or "",
        input_schema=tool.input_schema,
        permission=permission_for(config, tool.name, read_only, destructive),
        read_only=read_only and not destructive,
        idempotent=bool(hints and hints.idempotent_hint),
    )


def _text(result: CallToolResult) -> str:
    """The text of a result; other content is named, not inlined (images, resources)."""
    parts = [
        block.text if isinstance(block, TextContent) else f"[{block.type} content omitted]"
        for block in result.content
    ]
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts)


def _leaf(group: BaseExceptionGroup) -> BaseException:
    """The first non-group exception inside ``group`` (the SDK nests task groups)."""
    first: BaseException = group
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first


def _classify(server: str, error: BaseException) -> ApplicationError:
    if isinstance(error, MCPError) and error.code not in _TRANSPORT_CODES:
        return ApplicationError(
            f"MCP server {server}: JSON-RPC error {error.code}: {error.message}",
            type=MCP_PROTOCOL_ERROR,
            non_retryable=True,
        )
    if isinstance(error, (MCPError, *_TRANSPORT_ERRORS)):
        return ApplicationError(
            f"MCP server {server} unavailable ({type(error).__name__}: {error})",
            type=MCP_TRANSIENT_ERROR,
        )
    raise error  # a bug, not a server failure: let it surface as it is
