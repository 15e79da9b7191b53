"""The team's knowledge base as an MCP server (the ``mcp`` SDK, over stdio): the worker
starts ``python -m examples.support_team.kb_server`` for each call, as
``AGENT_MCP_SERVERS`` says. The model sees its tools as ``kb__search_articles`` and
``kb__open_ticket``."""

import zlib

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

ARTICLES = {
    "KB-1": "Refunds: annual plans are refunded pro rata within 30 days of renewal.",
    "KB-2": "SLA: Business plans get a first reply within 4 hours, Starter plans next day.",
    "KB-3": "Passwords: reset links expire after 1 hour; support cannot see passwords.",
}

server = MCPServer("kb")


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def search_articles(query: str) -> str:
    """Search the support knowledge base; returns the matching articles."""
    words = query.lower().split()
    hits = [f"{k}: {text}" for k, text in ARTICLES.items() if any(w in text.lower() for w in words)]
    return "\n".join(hits) or f"no article matches {query!r}"


@server.tool(annotations=ToolAnnotations(destructive_hint=True))
def open_ticket(email: str, summary: str) -> str:
    """Open a support ticket for a customer (a write: the approval policy applies)."""
    return f"opened ticket T-{zlib.crc32(f'{email} {summary}'.encode()) % 10000:04d} for {email}"


if __name__ == "__main__":
    server.run()  # stdio
