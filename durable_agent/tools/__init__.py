"""Tools: the public tool API (``tool``, ``ToolArguments``, ``ToolContext``,
``ToolError``) and the built-in tools' declarations (pure; their implementations live in
``activities.tools``). Loading user tool modules: ``durable_agent.tools.loading``."""

from durable_agent.tools.api import (
    InvalidToolDeclaration,
    Tool,
    ToolContext,
    ToolError,
    implement,
    tool,
)
from durable_agent.tools.registry import (
    BUILTIN_TOOLS,
    CALCULATOR,
    GET_WEATHER,
    INVALID_TOOL_ARGUMENTS,
    LIST_NOTES,
    SAVE_NOTE,
    TOOL_TRANSIENT_ERROR,
    WEB_SEARCH,
    ToolArguments,
    ToolSpec,
    describe_validation_error,
    known_tools,
    select_tools,
)

__all__ = [
    "BUILTIN_TOOLS",
    "CALCULATOR",
    "GET_WEATHER",
    "INVALID_TOOL_ARGUMENTS",
    "LIST_NOTES",
    "SAVE_NOTE",
    "TOOL_TRANSIENT_ERROR",
    "WEB_SEARCH",
    "InvalidToolDeclaration",
    "Tool",
    "ToolArguments",
    "ToolContext",
    "ToolError",
    "ToolSpec",
    "describe_validation_error",
    "implement",
    "known_tools",
    "select_tools",
    "tool",
]
