"""Built-in tool declarations (pure); implementations live in ``activities.tools``."""

from durable_agent.tools.registry import (
    BUILTIN_TOOLS,
    CALCULATOR,
    GET_WEATHER,
    INVALID_TOOL_ARGUMENTS,
    LIST_NOTES,
    SAVE_NOTE,
    TOOL_TRANSIENT_ERROR,
    WEB_SEARCH,
    ToolSpec,
    describe_validation_error,
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
    "ToolSpec",
    "describe_validation_error",
    "select_tools",
]
