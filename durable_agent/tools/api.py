"""The public tool API: a function becomes a tool the agent can call.

    from durable_agent.tools import ToolArguments, ToolContext, tool

    class LookupOrder(ToolArguments):
        order_id: str = Field(description="The order's id, e.g. 'A-1234'.")

    @tool(permission="read", idempotent=True)
    async def lookup_order(args: LookupOrder, ctx: ToolContext) -> str:
        \"\"\"Look up an order's status.\"\"\"
        return await orders.status(args.order_id, idempotency_key=ctx.idempotency_key)

``tool`` checks the declaration at once (a bad one raises ``InvalidToolDeclaration``
naming the tool) and returns a ``Tool``: the pure ``ToolSpec`` the workflow uses plus
the function the worker runs as the activity ``tool.<name>``. Workers find the tools of
the modules named in ``AGENT_TOOL_MODULES`` (``durable_agent.tools.loading``).

A tool returns text (or a ``ToolResult``); ``raise ToolError(...)`` for a failure the
model should read; any other exception fails the attempt and the tool's retry policy
applies.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import get_args, get_type_hints, overload

from pydantic import BaseModel
from temporalio.common import RetryPolicy

from durable_agent.activity_models import ToolResult
from durable_agent.contract import Permission, Trust
from durable_agent.tools.registry import (
    DEFAULT_TOOL_RETRY_POLICY,
    INVALID_TOOL_ARGUMENTS,
    Criticality,
    ToolArguments,
    ToolSpec,
)

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
"""The Messages API's rule for tool names."""
NAMESPACE_SEPARATOR = "__"
"""Reserved for MCP tools (``<server>__<tool>``): a user tool's name may not contain it."""

SINGLE_ATTEMPT = RetryPolicy(maximum_attempts=1)
"""Default for a tool that is not idempotent: a retry could repeat its side effect."""


class InvalidToolDeclaration(ValueError):
    """A ``@tool`` declaration that cannot work; the message names the tool."""


class ToolError(Exception):
    """Raise from a tool for a failure the model should read (``outcome="error"``); it
    is not retried."""


@dataclass(frozen=True)
class ToolContext:
    """What a tool knows about the call it serves."""

    tool: str
    idempotency_key: str
    """``<conversation id>/<turn>/<call index>``: the same on every attempt of this call,
    so a tool that passes it to its service makes retried side effects safe."""
    conversation_id: str
    tenant: str
    attempt: int
    """1 on the first attempt."""


ToolFunction = Callable[..., "str | ToolResult | Awaitable[str | ToolResult]"]


@dataclass(frozen=True)
class Tool:
    """A declared tool: ``spec`` for the workflow, ``function`` for the activity."""

    spec: ToolSpec
    function: ToolFunction
    idempotent: bool
    """Whether running it twice for one call is safe (the default retry policy
    retries only idempotent tools)."""
    wants_context: bool
    """Whether ``function`` takes a ``ToolContext`` after the arguments."""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.function)


@overload
def tool(function: ToolFunction, /) -> Tool: ...
@overload
def tool(
    function: None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    arguments: type[BaseModel] | None = None,
    permission: Permission = "write",
    criticality: Criticality = "optional",
    idempotent: bool | None = None,
    start_to_close_timeout: timedelta = timedelta(seconds=30),
    schedule_to_close_timeout: timedelta = timedelta(minutes=2),
    heartbeat_timeout: timedelta = timedelta(seconds=10),
    retry_policy: RetryPolicy | None = None,
    local: bool = False,
    trust: Trust = "untrusted",
    outbound: bool = False,
) -> Callable[[ToolFunction], Tool]: ...
def tool(
    function: ToolFunction | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    arguments: type[BaseModel] | None = None,
    permission: Permission = "write",
    criticality: Criticality = "optional",
    idempotent: bool | None = None,
    start_to_close_timeout: timedelta = timedelta(seconds=30),
    schedule_to_close_timeout: timedelta = timedelta(minutes=2),
    heartbeat_timeout: timedelta = timedelta(seconds=10),
    retry_policy: RetryPolicy | None = None,
    local: bool = False,
    trust: Trust = "untrusted",
    outbound: bool = False,
) -> Tool | Callable[[ToolFunction], Tool]:
    """Declare a tool (usable bare, ``@tool``, or with arguments).

    ``name`` defaults to the function's name, ``description`` to its docstring and
    ``arguments`` to the annotation of its first parameter (a pydantic model). The
    function takes ``(args)`` or ``(args, ctx: ToolContext)``, sync or async (a sync
    one runs in a thread). ``permission`` (read, write, execute, admin) is what the
    approval policy judges; ``write`` unless declared. ``idempotent`` defaults to
    ``permission == "read"``; without an explicit ``retry_policy`` an idempotent tool
    gets the built-ins' policy (3 attempts) and any other exactly one attempt.
    ``local``: pure and fast, run as a local activity (no heartbeat). ``trust`` and
    ``outbound`` feed the provenance rules (docs/security.md): a tool's results are
    ``untrusted`` unless it only returns text of your own.
    """

    def declare(fn: ToolFunction) -> Tool:
        tool_name = name or str(getattr(fn, "__name__", ""))
        where = f"tool {tool_name!r} ({getattr(fn, '__module__', '?')})"
        model, wants_context = _signature(fn, arguments, where)
        text = description or inspect.getdoc(fn) or ""
        safe = permission == "read" if idempotent is None else idempotent
        spec = ToolSpec(
            name=tool_name,
            description=text.strip(),
            arguments=model,
            criticality=criticality,
            permission=permission,
            start_to_close_timeout=start_to_close_timeout,
            schedule_to_close_timeout=schedule_to_close_timeout,
            heartbeat_timeout=heartbeat_timeout,
            retry_policy=_retry_policy(retry_policy, safe),
            local=local,
            trust=trust,
            outbound=outbound,
        )
        check_spec(spec)
        return Tool(spec=spec, function=fn, idempotent=safe, wants_context=wants_context)

    return declare if function is None else declare(function)


def implement(spec: ToolSpec, *, idempotent: bool) -> Callable[[ToolFunction], Tool]:
    """Attach a function to an existing spec (how built-ins, declared as data in
    ``registry``, use this API)."""

    def attach(fn: ToolFunction) -> Tool:
        _, wants_context = _signature(fn, spec.arguments, f"tool {spec.name!r}")
        check_spec(spec)
        return Tool(spec=spec, function=fn, idempotent=idempotent, wants_context=wants_context)

    return attach


def check_spec(spec: ToolSpec) -> None:
    """Raise ``InvalidToolDeclaration`` naming the tool when ``spec`` cannot work."""

    def bad(problem: str) -> InvalidToolDeclaration:
        return InvalidToolDeclaration(f"tool {spec.name!r}: {problem}")

    if not TOOL_NAME.match(spec.name):
        raise bad("a name must be 1-64 letters, digits, '_' or '-'")
    if NAMESPACE_SEPARATOR in spec.name:
        raise bad(f"{NAMESPACE_SEPARATOR!r} is reserved for MCP tools (<server>__<tool>)")
    if not spec.description:
        raise bad("needs a description (the model reads it): a docstring or description=")
    if spec.permission not in get_args(Permission):
        raise bad(f"permission must be one of {get_args(Permission)}")
    if spec.criticality not in get_args(Criticality):
        raise bad(f"criticality must be one of {get_args(Criticality)}")
    for field in ("start_to_close_timeout", "schedule_to_close_timeout", "heartbeat_timeout"):
        if getattr(spec, field) <= timedelta(0):
            raise bad(f"{field} must be positive")
    if spec.schedule_to_close_timeout < spec.start_to_close_timeout:
        raise bad("schedule_to_close_timeout is shorter than start_to_close_timeout")
    if spec.retry_policy.maximum_attempts <= 0:
        raise bad("retry_policy.maximum_attempts must be set: unlimited retries never end")
    try:
        spec.arguments.model_json_schema()
    except Exception as e:  # pydantic raises several types for a schema it cannot build
        raise bad(f"arguments model has no JSON schema: {e}") from e


def _signature(
    fn: ToolFunction, arguments: type[BaseModel] | None, where: str
) -> tuple[type[ToolArguments], bool]:
    if not callable(fn):
        raise InvalidToolDeclaration(f"{where}: not a function")
    params = list(inspect.signature(fn).parameters.values())
    if len(params) not in (1, 2):
        raise InvalidToolDeclaration(f"{where}: takes (args) or (args, ctx), not {len(params)}")
    if arguments is None:
        try:
            hints = get_type_hints(fn)
        except (NameError, TypeError) as e:
            raise InvalidToolDeclaration(f"{where}: cannot read its annotations: {e}") from e
        arguments = hints.get(params[0].name)
    if not (isinstance(arguments, type) and issubclass(arguments, BaseModel)):
        raise InvalidToolDeclaration(
            f"{where}: its first parameter must be annotated with a pydantic model "
            "(or pass arguments=)"
        )
    # ToolSpec wants a ToolArguments; any BaseModel validates and describes itself the same.
    return arguments, len(params) == 2  # type: ignore[return-value]


def _retry_policy(policy: RetryPolicy | None, idempotent: bool) -> RetryPolicy:
    if policy is None:
        return DEFAULT_TOOL_RETRY_POLICY if idempotent else SINGLE_ATTEMPT
    # Wrong arguments stay wrong however often they are sent.
    kept = list(policy.non_retryable_error_types or [])
    if INVALID_TOOL_ARGUMENTS in kept:
        return policy
    return replace(policy, non_retryable_error_types=[*kept, INVALID_TOOL_ARGUMENTS])
