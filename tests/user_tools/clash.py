"""A tool module reusing a name the ``orders`` module declares."""

from durable_agent.tools import ToolArguments, tool


class Nothing(ToolArguments):
    pass


@tool(permission="read")
def lookup_order(args: Nothing) -> str:
    """Another lookup_order."""
    return "?"
