"""MCP servers' activities: list a server's tools, call one, with the ``mcp`` SDK.

Each activity opens its own session (a stdio server is started for it, an HTTP one is
connected to) and closes it after, so an attempt never depends on a session an earlier
attempt or another worker left behind; heartbeats run while the server works.

Failure classes, and who sees them:

- the tool answered ``isError`` → ``ToolResult(outcome="error")``: the model reads it.
- JSON-RPC invalid params → ``ToolResult(outcome="invalid_arguments")``: the model
  can fix its call (retrying the same arguments cannot help).
- other JSON-RPC errors (unknown tool or method, bad request) →
  ``ApplicationError(type=MCP_PROTOCOL_ERROR, non_retryable=True)``.
- the transport failed (cannot start or reach the server, connection closed, killed
  mid-call, timed out) → ``ApplicationError(type=MCP_TRANSIENT_ERROR)``: retried.

We use the SDK directly rather than ``temporalio-mcp`` (whose MCP operations do not
heartbeat and which runs the client from workflow code): a long call must heartbeat so
a dead worker is noticed, and results go through our size bound, screening and
``ToolResult`` types like every other tool.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, cast

import anyio
import httpx2
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import INVALID_PARAMS, CallToolResult, RequestParamsMeta, TextContent, Tool
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import auto_heartbeat
from activities.tools._offload import Offloader
from durable_agent.activity_models import ToolResult
from durable_agent.toolsets import (
    MCP_CALL_TOOL,
    MCP_LIST_TOOLS,
    MCP_PROTOCOL_ERROR,
    MCP_TRANSIENT_ERROR,
    MCP_UNKNOWN_SERVER,
    McpListRequest,
    McpServerConfig,
    McpToolCall,
    McpToolInfo,
    McpToolset,
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


class McpConfigError(ValueError):
    """A configured server cannot be used (e.g. a credential's variable is unset); the
    worker does not start."""


class McpActivities:
    """The MCP activities for the configured ``servers``; credentials are read from
    ``environ`` now, so a missing one stops the worker at start."""

    def __init__(
        self,
        servers: Mapping[str, McpServerConfig],
        offload: Offloader,
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        self._servers = dict(servers)
        self._offload = offload
        self._secrets = {name: _credentials(name, cfg, environ) for name, cfg in servers.items()}

    def activities(self) -> list[Callable[..., Any]]:
        """The bound activity methods, for ``Worker(activities=...)``."""
        return [self.list_tools, self.call_tool]

    def held_secrets(self) -> list[str]:
        """The credentials read from the environment (to redact from logs)."""
        return _redactable([v for values in self._secrets.values() for v in values.values()])

    @activity.defn(name=MCP_LIST_TOOLS)
    async def list_tools(self, request: McpListRequest) -> McpToolset:
        """The server's tools as the conversation will offer them: namespaced, filtered
        by the allow/deny lists, each with its permission."""
        config = self._config(request.server)
        async with self._session(request.server) as client:
            listed: list[Tool] = []
            cursor: str | None = None
            while True:
                page = await client.list_tools(cursor=cursor)
                listed += page.tools
                cursor = page.next_cursor
                if cursor is None:
                    break
        tools = [_info(request.server, config, t) for t in listed if offered(config, t.name)]
        activity.logger.info(
            "MCP server %s lists %d tools, %d offered", request.server, len(listed), len(tools)
        )
        return McpToolset(
            server=request.server,
            tools=tools,
            **config.model_dump(
                include={
                    "criticality",
                    "trust",
                    "timeout_seconds",
                    "heartbeat_seconds",
                    "max_attempts",
                    "retry_writes",
                }
            ),
        )

    @activity.defn(name=MCP_CALL_TOOL)
    async def call_tool(self, call: McpToolCall) -> ToolResult:
        """Call one tool; its text content becomes the result (large ones go to the
        blob store, as for every tool)."""
        self._config(call.server)
        # Servers that deduplicate can read the call's idempotency key.
        meta = cast(RequestParamsMeta, {"io.durable-agent/idempotency-key": call.idempotency_key})
        async with self._session(call.server) as client:
            try:
                result = await client.call_tool(call.remote_name, call.arguments, meta=meta)
            except MCPError as e:
                if e.code != INVALID_PARAMS:
                    raise
                return ToolResult(outcome="invalid_arguments", content=e.message)
        text = _text(result)
        if result.is_error:
            return ToolResult(outcome="error", content=text or "the tool reported an error")
        return await self._offload(call, ToolResult(outcome="ok", content=text))

    def _config(self, server: str) -> McpServerConfig:
        config = self._servers.get(server)
        if config is None:
            raise ApplicationError(
                f"no MCP server {server!r} is configured on this worker (AGENT_MCP_SERVERS)",
                type=MCP_UNKNOWN_SERVER,
                non_retryable=True,
            )
        return config

    @asynccontextmanager
    async def _session(self, server: str) -> AsyncIterator[Client]:
        """A connected client, heartbeating; failures raised as classified
        ``ApplicationError``\\ s (see the module docstring)."""
        config, secrets = self._servers[server], self._secrets[server]
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


def held_credentials(
    servers: Mapping[str, McpServerConfig], environ: Mapping[str, str] = os.environ
) -> list[str]:
    """The credentials ``servers`` read from ``environ`` (the values of ``env_from`` and
    ``headers_from_env``), for the log redactor, which is set up before the activities
    exist; unset ones are left out (``McpActivities`` refuses them, naming them)."""
    names = [
        var
        for config in servers.values()
        for var in (
            config.env_from if isinstance(config, StdioServer) else config.headers_from_env.values()
        )
    ]
    return _redactable([environ[var] for var in names if environ.get(var)])


def _redactable(values: list[str]) -> list[str]:
    """``values``, plus the credential alone of a header value with a scheme
    (``Bearer <token>``): a log line may quote just the token."""
    parts = [v.split(None, 1)[1] for v in values if len(v.split(None, 1)) == 2]
    return list(dict.fromkeys([*values, *(p.strip() for p in parts)]))


def _credentials(
    server: str, config: McpServerConfig, environ: Mapping[str, str]
) -> dict[str, str]:
    """Environment variables (stdio) or headers (HTTP) whose values come from the
    worker's environment."""
    wanted = (
        {v: v for v in config.env_from}
        if isinstance(config, StdioServer)
        else dict(config.headers_from_env)
    )
    missing = sorted(var for var in wanted.values() if not environ.get(var))
    if missing:
        raise McpConfigError(
            f"MCP server {server!r}: environment variable(s) {', '.join(missing)} not set"
        )
    return {key: environ[var] for key, var in wanted.items()}


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
