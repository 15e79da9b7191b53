"""The tool registry: what each built-in tool is, as data.

Pure declarations (names, argument models, policies) shared by the workflow, which
needs them deterministically to build tool definitions, validate arguments and pick
timeouts, and by the activities in ``activities/tools``, which implement them.
No I/O here.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from temporalio.common import RetryPolicy

from durable_agent.activity_models import ToolCall, ToolDefinition
from durable_agent.contract import Permission, Trust
from durable_agent.dependencies import tool_dependency

Criticality = Literal["critical", "optional"]
"""A critical tool must work for the agent to be useful; an optional one may be down."""

INVALID_TOOL_ARGUMENTS = "InvalidToolArguments"
"""``ApplicationError.type`` for arguments an activity refuses; never retried."""
TOOL_TRANSIENT_ERROR = "ToolTransientError"
"""``ApplicationError.type`` for a failure worth retrying (network, 5xx, timeout)."""

DEFAULT_TOOL_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=3,
    non_retryable_error_types=[INVALID_TOOL_ARGUMENTS],
)


class ToolArguments(BaseModel):
    """Base of every tool's argument model: unknown fields are an error."""

    model_config = ConfigDict(extra="forbid")


class CalculatorArgs(ToolArguments):
    expression: str = Field(
        min_length=1,
        max_length=500,
        description="An arithmetic expression, e.g. '(2 + 3) * 4 / 7' or 'sqrt(2) ** 3'.",
    )


class SaveNoteArgs(ToolArguments):
    text: str = Field(min_length=1, max_length=4000, description="What to remember.")


class ListNotesArgs(ToolArguments):
    query: str | None = Field(
        default=None, max_length=200, description="Only notes containing this text."
    )
    limit: int = Field(default=20, ge=1, le=100, description="Most recent notes to return.")


class GetWeatherArgs(ToolArguments):
    location: str = Field(
        min_length=1, max_length=100, description="A place name, e.g. 'Paris' or 'Lima, Peru'."
    )


class WebSearchArgs(ToolArguments):
    query: str = Field(min_length=1, max_length=400, description="What to search for.")
    max_results: int = Field(default=5, ge=1, le=10)


@dataclass(frozen=True)
class ToolSpec:
    """One tool: its contract with the model and its execution policy."""

    name: str
    description: str
    arguments: type[ToolArguments]
    criticality: Criticality
    permission: Permission
    start_to_close_timeout: timedelta = timedelta(seconds=30)
    schedule_to_close_timeout: timedelta = timedelta(minutes=2)
    heartbeat_timeout: timedelta = timedelta(seconds=10)
    retry_policy: RetryPolicy = field(default_factory=lambda: DEFAULT_TOOL_RETRY_POLICY)
    trust: Trust = "untrusted"
    """Whether its results are text someone else could have written (``untrusted``, the
    default for any new tool) or our own (``trusted``). Untrusted results in the context
    make write/execute/admin calls wait for approval (docs/security.md, "Provenance")."""
    outbound: bool = False
    """Its arguments leave the worker (an HTTP query): while the context is untrusted,
    a call carrying untrusted text or a new destination out waits for approval."""
    local: bool = False
    """Pure and fast (no I/O, well under a second): run as a local activity, recorded as
    one marker with the next workflow task instead of a task of its own. Same timeouts
    and retry policy; no heartbeat."""

    @property
    def activity_name(self) -> str:
        """The registered activity name; stable, renaming it breaks running workflows."""
        return f"tool.{self.name}"

    @property
    def dependency(self) -> str:
        """The breaker this tool's calls count against (MCP tools share their server's)."""
        return tool_dependency(self.name)

    def activity_input(self, call: ToolCall) -> ToolCall:
        """What the activity is given for ``call`` (MCP tools add their server)."""
        return call

    def definition(self) -> ToolDefinition:
        """The Messages API tool definition: the argument model's JSON schema. Built once
        per spec and shared (every model call of every conversation sends it; nobody
        changes it)."""
        cached: ToolDefinition | None = self.__dict__.get("_definition")
        if cached is None:
            cached = ToolDefinition(
                name=self.name,
                description=self.description,
                input_schema=_json_schema(self.arguments),
            )
            object.__setattr__(self, "_definition", cached)  # a frozen dataclass
        return cached

    def validate(self, arguments: dict[str, Any]) -> ToolArguments:
        """Parse arguments; raises ``pydantic.ValidationError`` when they are wrong."""
        return self.arguments.model_validate(arguments)


CALCULATOR = ToolSpec(
    name="calculator",
    description=(
        "Evaluate an arithmetic expression exactly. Supports + - * / // % **, parentheses, "
        "and the functions sqrt, abs, round, min, max, floor, ceil, log, exp, sin, cos, tan "
        "and the constants pi and e."
    ),
    arguments=CalculatorArgs,
    criticality="critical",
    permission="read",
    trust="trusted",
    start_to_close_timeout=timedelta(seconds=5),
    schedule_to_close_timeout=timedelta(seconds=30),
    heartbeat_timeout=timedelta(seconds=5),
    local=True,
)
SAVE_NOTE = ToolSpec(
    name="save_note",
    description="Save a note so it can be recalled later, in this or another conversation.",
    arguments=SaveNoteArgs,
    criticality="critical",
    permission="write",
    trust="trusted",  # its result is our own confirmation, not the note's text
    retry_policy=RetryPolicy(
        initial_interval=timedelta(milliseconds=500),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=10),
        maximum_attempts=5,
        non_retryable_error_types=[INVALID_TOOL_ARGUMENTS],
    ),
)
LIST_NOTES = ToolSpec(
    name="list_notes",
    description="List saved notes, most recent first, optionally only those containing a text.",
    arguments=ListNotesArgs,
    criticality="critical",
    permission="read",
    # A note may have been written from a web page's words: its text is untrusted.
    trust="untrusted",
)
GET_WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather (temperature, wind, conditions) for a place.",
    arguments=GetWeatherArgs,
    criticality="optional",
    permission="read",
    trust="untrusted",
    outbound=True,
)
WEB_SEARCH = ToolSpec(
    name="web_search",
    description="Search the web; returns titles, URLs and snippets.",
    arguments=WebSearchArgs,
    criticality="optional",
    permission="read",
    trust="untrusted",
    outbound=True,
)

BUILTIN_TOOLS: dict[str, ToolSpec] = {
    spec.name: spec for spec in (CALCULATOR, SAVE_NOTE, LIST_NOTES, GET_WEATHER, WEB_SEARCH)
}


_LOADED_TOOLS: dict[str, ToolSpec] = {}
"""User tools this process loaded at start (``durable_agent.tools.loading``), by name.
Filled before any workflow runs and never changed after: a worker, and a replayer that
loads the same modules, resolve the same names to the same specs. (This module is
passed through the workflow sandbox, so workflows read this very dict.)"""


def register_tool(spec: ToolSpec) -> None:
    """Make a loaded user tool known by name; ``ValueError`` if the name is taken by
    another spec (registering the same spec again is a no-op)."""
    existing = known_tools().get(spec.name)
    if existing is not None and existing is not spec:
        raise ValueError(f"tool name {spec.name!r} is already taken")
    _LOADED_TOOLS[spec.name] = spec


def known_tools() -> dict[str, ToolSpec]:
    """Every tool a conversation may name: the built-ins and the loaded user tools."""
    return BUILTIN_TOOLS | _LOADED_TOOLS


def select_tools(names: Iterable[str] | None) -> list[ToolSpec]:
    """The specs for ``names`` (all built-ins for ``None``: user tools are only ever
    named); raises ``KeyError`` naming an unknown tool."""
    if names is None:
        return list(BUILTIN_TOOLS.values())
    known = known_tools()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise KeyError(f"unknown tools {unknown}; known: {sorted(known)}")
    return [known[n] for n in names]


@functools.cache
def _json_schema(arguments: type[ToolArguments]) -> dict[str, Any]:
    """An argument model's JSON schema, built once per process (every model call sends
    the tools' definitions; building a schema is slow)."""
    return arguments.model_json_schema()


def describe_validation_error(error: ValidationError, root: str = "arguments") -> str:
    """A short, readable account of what was wrong, e.g. ``expression: Field required``;
    errors about the whole value are labelled ``root``."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(p) for p in item["loc"]) or root
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)
