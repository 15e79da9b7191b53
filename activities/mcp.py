"""MCP servers' activities: list a server's tools, call one, with the ``mcp`` SDK
(``activities/mcp_client.py``, imported only when a server is configured).

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

import importlib
import os
from collections.abc import Callable, Mapping
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.tools._offload import Offloader
from durable_agent.activity_models import ToolResult
from durable_agent.toolsets import (
    MCP_CALL_TOOL,
    MCP_LIST_TOOLS,
    MCP_UNKNOWN_SERVER,
    McpListRequest,
    McpServerConfig,
    McpToolCall,
    McpToolset,
    StdioServer,
)


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
        if servers:
            # The SDK (``activities/mcp_client.py``) loads now, at start-up, and only
            # with a server to talk to: a call naming no configured server fails first.
            importlib.import_module("activities.mcp_client")

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
        from activities import mcp_client  # loaded by __init__: a no-op

        listed, tools = await mcp_client.list_tools(
            request.server, config, self._secrets[request.server]
        )
        activity.logger.info(
            "MCP server %s lists %d tools, %d offered", request.server, listed, len(tools)
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
        config = self._config(call.server)
        from activities import mcp_client  # loaded by __init__: a no-op

        result = await mcp_client.call_tool(config, self._secrets[call.server], call)
        if result.outcome != "ok":
            return result
        return await self._offload(call, result)

    def _config(self, server: str) -> McpServerConfig:
        config = self._servers.get(server)
        if config is None:
            raise ApplicationError(
                f"no MCP server {server!r} is configured on this worker (AGENT_MCP_SERVERS)",
                type=MCP_UNKNOWN_SERVER,
                non_retryable=True,
            )
        return config


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
