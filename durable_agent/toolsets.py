"""MCP servers as toolsets: their configuration, their tool catalogs and tool specs.

Pure (no I/O): the worker reads ``McpServerConfig`` from ``AGENT_MCP_SERVERS``; the
``mcp.list_tools`` activity (``activities/mcp.py``) turns a server's listing into a
``McpToolset`` — names namespaced, allow/deny lists applied, permissions decided — so
what a conversation was offered is recorded in its history; the workflow keeps it in
its state and builds ``McpToolSpec``\\ s from it with ``toolset_specs``.

Permission of an MCP tool: the server's per-tool override, else its ``permission``
override, else ``read`` when the tool says ``readOnlyHint`` (and not
``destructiveHint``), else ``write`` — so the approval policy applies to anything that
may change the world.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError
from temporalio.common import RetryPolicy

from durable_agent.activity_models import ToolCall, ToolDefinition
from durable_agent.contract import Permission, Trust
from durable_agent.tools.registry import (
    INVALID_TOOL_ARGUMENTS,
    Criticality,
    ToolArguments,
    ToolSpec,
)

MCP_LIST_TOOLS = "mcp.list_tools"
"""Registered name of the activity that lists a server's tools; stable."""
MCP_CALL_TOOL = "mcp.call_tool"
"""Registered name of the activity that calls one MCP tool; stable."""
MCP_PROTOCOL_ERROR = "McpProtocolError"
"""``ApplicationError.type`` of a JSON-RPC error other than invalid params (unknown tool
or method, malformed request): never retried."""
MCP_UNKNOWN_SERVER = "McpUnknownServer"
"""``ApplicationError.type`` when a workflow names a server this worker has no
configuration for: never retried."""
MCP_TRANSIENT_ERROR = "McpTransientError"
"""``ApplicationError.type`` of a transport failure (server down, killed, timed out):
retried by the tool's policy."""

SEPARATOR = "__"
"""Between the server's name and the tool's in the name the model sees."""
SERVER_NAME = re.compile(r"^[a-zA-Z0-9]+(?:[-_][a-zA-Z0-9]+)*$")
"""Letters and digits, joined by single ``-`` or ``_`` (never ``__``); at most 30."""
MAX_SERVER_NAME = 30
_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")
MAX_NAME = 64
"""The Messages API's limit on a tool name."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- configuration (worker side) -------------------------------------------------------


class _ServerPolicy(_Model):
    permission: Permission | None = None
    """Permission of every tool of the server, instead of its annotations."""
    permissions: dict[str, Permission] = {}
    """Per tool (its name on the server), instead of ``permission`` or annotations."""
    allow: list[str] | None = None
    """Only these tools (names on the server); unset: all of them."""
    deny: list[str] = []
    """Never these tools."""
    criticality: Criticality = "optional"
    """``optional``: when the server is down the conversation goes on without it."""
    trust: Trust = "untrusted"
    """Whose text its results are (``docs/security.md``, "Provenance")."""
    timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    """Start-to-close timeout of one call."""
    heartbeat_seconds: float = Field(default=15.0, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=20)
    """Attempts of a call to a read-only or idempotent tool (``idempotentHint``); other
    tools get one attempt unless ``retry_writes`` (a retry could repeat a side effect)."""
    retry_writes: bool = False


class StdioServer(_ServerPolicy):
    """A server the worker starts as a subprocess and talks to over stdin/stdout."""

    command: str = Field(min_length=1)
    args: list[str] = []
    env: dict[str, str] = {}
    """Literal environment of the process (not for secrets: settings are not secret)."""
    env_from: list[str] = []
    """Names of the worker's environment variables passed on (credentials)."""
    cwd: str | None = None


class HttpServer(_ServerPolicy):
    """A streamable HTTP server."""

    url: str = Field(pattern=r"^https?://")
    headers: dict[str, str] = {}
    """Literal headers (not for secrets)."""
    headers_from_env: dict[str, str] = {}
    """Header → name of the worker's environment variable holding its value, e.g.
    ``{"Authorization": "ORDERS_MCP_AUTH"}``: credentials never enter settings or
    workflow input."""


def _transport(value: Any) -> str:
    if isinstance(value, dict):
        return "http" if "url" in value else "stdio"
    return "http" if isinstance(value, HttpServer) else "stdio"


McpServerConfig = Annotated[
    Annotated[StdioServer, Tag("stdio")] | Annotated[HttpServer, Tag("http")],
    Discriminator(_transport),
]
"""``{"command": …}`` (stdio) or ``{"url": …}`` (streamable HTTP)."""


def check_server_names(servers: dict[str, Any]) -> None:
    """``ValueError`` naming a server whose name cannot prefix tool names."""
    for name in servers:
        if len(name) > MAX_SERVER_NAME or not SERVER_NAME.match(name):
            raise ValueError(
                f"MCP server name {name!r}: up to 30 letters and digits, joined by single "
                "'-' or '_'"
            )


# --- catalog (activity result, kept in workflow state) ---------------------------------


class McpToolInfo(_Model):
    """One tool of a server, as the conversation offers it."""

    name: str
    """Namespaced name the model sees: ``<server>__<tool>``."""
    remote_name: str
    """The tool's name on the server."""
    description: str
    input_schema: dict[str, Any]
    permission: Permission
    read_only: bool = False
    idempotent: bool = False


class McpToolset(_Model):
    """A server's tools and call policy, as ``mcp.list_tools`` found them."""

    server: str
    tools: list[McpToolInfo]
    criticality: Criticality = "optional"
    trust: Trust = "untrusted"
    timeout_seconds: float = 60.0
    heartbeat_seconds: float = 15.0
    max_attempts: int = 3
    retry_writes: bool = False


class McpListRequest(_Model):
    """Input of ``mcp.list_tools``."""

    server: str


class McpToolCall(ToolCall):
    """Input of ``mcp.call_tool``: a tool call plus where it goes."""

    server: str
    remote_name: str


def namespaced(server: str, tool: str) -> str:
    """``<server>__<tool>`` within the Messages API's name rules; a tool name with other
    characters, or too long, gets them replaced and a short hash of the original."""
    name = f"{server}{SEPARATOR}{_UNSAFE.sub('_', tool)}"
    if name == f"{server}{SEPARATOR}{tool}" and len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(tool.encode()).hexdigest()[:8]
    return f"{name[: MAX_NAME - 9]}-{digest}"


def permission_for(
    config: _ServerPolicy, tool: str, read_only: bool | None, destructive: bool | None
) -> Permission:
    """The permission of ``tool`` (see the module docstring)."""
    if tool in config.permissions:
        return config.permissions[tool]
    if config.permission is not None:
        return config.permission
    return "read" if read_only and not destructive else "write"


def offered(config: _ServerPolicy, tool: str) -> bool:
    """Whether the allow/deny lists let ``tool`` through."""
    return (config.allow is None or tool in config.allow) and tool not in config.deny


# --- specs (workflow side) -------------------------------------------------------------


class McpArguments(ToolArguments):
    """Whatever object the model sends; the server validates it against its schema."""

    model_config = ConfigDict(extra="allow")


@dataclass(frozen=True, kw_only=True)
class McpToolSpec(ToolSpec):
    """An MCP tool as a ``ToolSpec``: called through ``mcp.call_tool``, with a breaker
    per server (``mcp:<server>``)."""

    server: str
    remote_name: str
    input_schema: dict[str, Any] = field(default_factory=dict)

    @property
    def activity_name(self) -> str:
        return MCP_CALL_TOOL

    @property
    def dependency(self) -> str:
        return server_dependency(self.server)

    def definition(self) -> ToolDefinition:
        return ToolDefinition(
            name=self.name, description=self.description, input_schema=self.input_schema
        )

    def validate(self, arguments: dict[str, Any]) -> McpArguments:
        """Top-level checks of the schema (required and, when closed, unknown
        properties), so the model learns of a plain mistake without a call; the server
        checks the rest."""
        errors: list[Any] = [
            {"type": "missing", "loc": (key,), "input": arguments}
            for key in self.input_schema.get("required", [])
            if key not in arguments
        ]
        if self.input_schema.get("additionalProperties") is False:
            known = self.input_schema.get("properties", {})
            errors += [
                {"type": "extra_forbidden", "loc": (key,), "input": value}
                for key, value in arguments.items()
                if key not in known
            ]
        if errors:
            raise ValidationError.from_exception_data(self.name, errors)
        return McpArguments.model_validate(arguments)

    def activity_input(self, call: ToolCall) -> McpToolCall:
        return McpToolCall(**call.model_dump(), server=self.server, remote_name=self.remote_name)


def server_dependency(server: str) -> str:
    """The breaker of an MCP server (one per server, not per tool)."""
    return f"mcp:{server}"


def toolset_specs(toolset: McpToolset) -> list[McpToolSpec]:
    """The specs of a toolset's tools, in the server's order."""
    return [_spec(toolset, tool) for tool in toolset.tools]


def _spec(toolset: McpToolset, tool: McpToolInfo) -> McpToolSpec:
    retried = tool.read_only or tool.idempotent or toolset.retry_writes
    timeout = timedelta(seconds=toolset.timeout_seconds)
    return McpToolSpec(
        name=tool.name,
        description=tool.description or f"{tool.remote_name} (MCP server {toolset.server})",
        arguments=McpArguments,  # any object; see validate
        criticality=toolset.criticality,
        permission=tool.permission,
        start_to_close_timeout=timeout,
        schedule_to_close_timeout=timeout * toolset.max_attempts + timedelta(minutes=1),
        heartbeat_timeout=timedelta(seconds=toolset.heartbeat_seconds),
        retry_policy=RetryPolicy(
            initial_interval=timedelta(seconds=1),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=10),
            maximum_attempts=toolset.max_attempts if retried else 1,
            non_retryable_error_types=[
                INVALID_TOOL_ARGUMENTS,
                MCP_PROTOCOL_ERROR,
                MCP_UNKNOWN_SERVER,
            ],
        ),
        trust=toolset.trust,
        outbound=True,  # arguments leave the worker for another program
        server=toolset.server,
        remote_name=tool.remote_name,
        input_schema=tool.input_schema,
    )


ToolsetName = Annotated[str, Field(pattern=SERVER_NAME.pattern, max_length=MAX_SERVER_NAME)]
"""The name of a configured MCP server, as a conversation names its toolsets."""
