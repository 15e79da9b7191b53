"""The ``web_search`` tool activity, on a SearXNG-compatible JSON API."""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.tools._common import HttpTool, parse_arguments
from durable_agent.activity_models import ToolCall, ToolResult
from durable_agent.tools.registry import WEB_SEARCH, WebSearchArgs

TOOL_NOT_CONFIGURED = "ToolNotConfigured"
"""``ApplicationError.type`` when a tool's service is not configured; never retried."""
MAX_SNIPPET_CHARS = 300
"""Snippets are cut to this length to keep tool results (and history) small."""


class _Hit(BaseModel):
    title: str
    url: str
    content: str = ""


class _SearchResponse(BaseModel):
    results: list[_Hit] = []


class SearchTool(HttpTool):
    """Web search through the configured search service."""

    @activity.defn(name=WEB_SEARCH.activity_name)
    async def web_search(self, call: ToolCall) -> ToolResult:
        """Numbered results: title, URL and snippet. Fails, unretried, when no search
        service is configured (the tool is optional)."""
        args = parse_arguments(WebSearchArgs, call)
        if isinstance(args, ToolResult):
            return args
        if self._settings.search_url is None:
            raise ApplicationError(
                "web_search is not configured: set AGENT_SEARCH_URL to a SearXNG-compatible "
                "search API",
                type=TOOL_NOT_CONFIGURED,
                non_retryable=True,
            )
        found = await self._get(
            self._settings.search_url,
            "/search",
            params={"q": args.query, "format": "json"},
            call=call,
            service="search service",
            response_model=_SearchResponse,
        )
        if isinstance(found, ToolResult):
            return found
        hits = found.results[: args.max_results]
        if not hits:
            return ToolResult(outcome="ok", content=f"no results for {args.query!r}")
        return ToolResult(
            outcome="ok", content="\n".join(_line(i, h) for i, h in enumerate(hits, 1))
        )


def _line(number: int, hit: _Hit) -> str:
    snippet = " ".join(hit.content.split())
    if len(snippet) > MAX_SNIPPET_CHARS:
        snippet = snippet[: MAX_SNIPPET_CHARS - 1].rstrip() + "…"
    return f"{number}. {hit.title} — {hit.url}" + (f"\n   {snippet}" if snippet else "")
