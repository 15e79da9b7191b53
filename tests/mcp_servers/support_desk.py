"""A small support-desk MCP server: ``python -m tests.mcp_servers.support_desk stdio`` or
``… http --port P``.

Its tools cover what the MCP activities must handle: read-only, destructive and
unannotated tools, a tool error (``isError``), JSON-RPC errors (invalid params, method
not found), a large
result, a slow call, and a call that kills the server the first time it is made
(``crash_once``: the marker file it leaves makes the retry succeed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from mcp import MCPError
from mcp.server.mcpserver import MCPServer
from mcp.types import INVALID_PARAMS, METHOD_NOT_FOUND, ToolAnnotations

server = MCPServer("support-desk")


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def lookup_order(order_id: str) -> str:
    """Look up an order's status by its id."""
    return f"order {order_id}: shipped"


@server.tool(annotations=ToolAnnotations(destructive_hint=True))
def refund_order(order_id: str, amount: float) -> str:
    """Refund an order (irreversible)."""
    return f"refunded {amount:.2f} on order {order_id}"


@server.tool()
def add_comment(order_id: str, text: str) -> str:
    """Add a comment to an order (no annotations: treated as a write)."""
    return f"comment added to {order_id}"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def broken(reason: str) -> str:
    """Always fails inside the tool (the client sees ``isError``)."""
    raise RuntimeError(f"the ticket system said no: {reason}")


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def strict(code: str) -> str:
    """Refuses its arguments with a JSON-RPC invalid-params error."""
    raise MCPError(INVALID_PARAMS, f"code {code!r} is not a valid code")


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def misconfigured() -> str:
    """Answers with a JSON-RPC protocol error (method not found)."""
    raise MCPError(METHOD_NOT_FOUND, "the backing method is gone")


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def report(lines: int) -> str:
    """A long report (``lines`` lines of 100 characters)."""
    return "\n".join(f"{i:05d} " + "x" * 94 for i in range(lines))


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
async def slow(seconds: float) -> str:
    """Answers after ``seconds``; leaves ``slow-started`` in ``SUPPORT_DESK_STATE`` (if
    set) when it begins, so a test knows the call is in flight."""
    state = os.environ.get("SUPPORT_DESK_STATE")
    if state:
        (Path(state) / "slow-started").write_text("yes")
    await asyncio.sleep(seconds)
    return f"slept {seconds}"


@server.tool(annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True))
def crash_once(key: str) -> str:
    """Kills this server process the first time ``key`` is seen (needs
    ``SUPPORT_DESK_STATE`` naming a directory); answers on later calls."""
    marker = Path(os.environ["SUPPORT_DESK_STATE"]) / key.replace("/", "_")
    if not marker.exists():
        marker.write_text("seen")
        os._exit(3)
    return f"survived {key}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("transport", choices=["stdio", "http"])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if args.transport == "stdio":
        server.run()
    else:
        server.run("streamable-http", host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
