"""A tool module whose declaration cannot work (no argument model)."""

from durable_agent.tools import tool


@tool(permission="read")
def lookup(order_id: str) -> str:
    """Look something up."""
    return order_id
