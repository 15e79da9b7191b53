"""Tools declared with the public API (``durable_agent.tools.tool``) as activities.

Each ``Tool`` becomes the activity ``tool.<name>``: arguments parsed as for the built-in
tools (``invalid_arguments`` when wrong), the function run (a sync one in a thread)
with heartbeats while it works, its text returned as an ``ok`` result, a ``ToolError``
as an ``error`` result, and a large result moved to the blob store. Any other
exception fails the attempt, so the tool's retry policy applies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, cast

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import auto_heartbeat
from activities.tools._common import parse_arguments
from activities.tools._offload import Offloader
from durable_agent.activity_models import ToolCall, ToolResult
from durable_agent.tools.api import Tool, ToolContext, ToolError

TOOL_BAD_RESULT = "ToolBadResult"
"""``ApplicationError.type`` when a tool returns something other than text or a
``ToolResult`` (never retried)."""


class FunctionTools:
    """The activities of ``tools``, sharing one ``offload`` (``None``: never offload,
    for tools whose results are always small)."""

    def __init__(self, tools: Iterable[Tool], offload: Offloader | None = None) -> None:
        self._tools = list(tools)
        self._offload = offload

    def activities(self) -> list[Callable[..., Any]]:
        """One activity per tool, registered under its spec's ``activity_name``."""
        return [self._activity(t) for t in self._tools]

    def _activity(self, tool: Tool) -> Callable[..., Any]:
        async def run_tool(call: ToolCall) -> ToolResult:
            return await self.run(tool, call)

        run_tool.__name__ = run_tool.__qualname__ = tool.name
        run_tool.__doc__ = f"The {tool.name!r} tool: {tool.spec.description}"
        return activity.defn(name=tool.spec.activity_name)(run_tool)

    async def run(self, tool: Tool, call: ToolCall) -> ToolResult:
        """Run ``tool`` for ``call`` (inside an activity)."""
        args = parse_arguments(tool.spec.arguments, call)
        if isinstance(args, ToolResult):
            return args
        given: list[Any] = [args]
        if tool.wants_context:
            given.append(
                ToolContext(
                    tool=tool.name,
                    idempotency_key=call.idempotency_key,
                    conversation_id=call.conversation_id,
                    tenant=call.tenant,
                    attempt=activity.info().attempt,
                )
            )
        try:
            async with auto_heartbeat():
                if tool.is_async:
                    value = await cast("Awaitable[str | ToolResult]", tool.function(*given))
                else:
                    # A thread keeps the worker's event loop free; it cannot be cancelled,
                    # so a sync tool should bound its own waits.
                    value = await asyncio.to_thread(
                        cast("Callable[..., str | ToolResult]", tool.function), *given
                    )
        except ToolError as e:
            return ToolResult(outcome="error", content=str(e) or type(e).__name__)
        if isinstance(value, str):
            result = ToolResult(outcome="ok", content=value)
        elif isinstance(value, ToolResult):
            result = value
        else:  # a bug in the tool: another attempt would return the same
            raise ApplicationError(
                f"tool {tool.name!r} returned {type(value).__name__}, not str or ToolResult",
                type=TOOL_BAD_RESULT,
                non_retryable=True,
            )
        return await self._offload(call, result) if self._offload else result
