"""A gateway for tests: the real FastAPI app under uvicorn on a loopback port, in this
process (its Temporal client is the session's), plus API keys for two tenants."""

from __future__ import annotations

import asyncio
import json
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client import CollectorRegistry
from temporalio.client import Client

from durable_agent._http import serve_app
from durable_agent.config import Settings
from durable_agent.gateway.app import create_app
from durable_agent.gateway.guards import ProblemHTTPProtocol
from durable_agent.gateway.keys import GatewayKey, hash_key, new_key


@dataclass
class Tenant:
    name: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@dataclass
class RunningGateway:
    base_url: str
    tenants: list[Tenant]
    http: httpx.AsyncClient
    extra: dict[str, Any] = field(default_factory=dict)

    def as_(self, tenant: Tenant) -> httpx.AsyncClient:
        """An HTTP client that authenticates as ``tenant``."""
        return httpx.AsyncClient(base_url=self.base_url, headers=tenant.headers, timeout=30)


def tenants(count: int = 2, prefix: str = "t") -> list[Tenant]:
    """Fresh tenants (unique per test: governors outlive tests) with their keys."""
    return [Tenant(f"{prefix}{uuid.uuid4().hex[:8]}", new_key()) for _ in range(count)]


def key_entries(found: list[Tenant], **limits: Any) -> list[GatewayKey]:
    return [
        GatewayKey(name=f"{t.name}-svc", tenant=t.name, sha256=hash_key(t.key), **limits)
        for t in found
    ]


@asynccontextmanager
async def serving(
    settings: Settings,
    connect: Client | Callable[[], Awaitable[Client]],
    *,
    port: int = 0,
    registry: CollectorRegistry | None = None,
) -> AsyncIterator[str]:
    """Serve the gateway app for ``settings`` on 127.0.0.1 with ``connect``'s client (or
    that client itself), its metrics on ``registry``; yields its base URL."""
    if isinstance(connect, Client):
        client = connect

        async def reuse() -> Client:
            return client

        connect = reuse
    app = create_app(settings, connect=connect, registry=registry)
    async with serve_app(app, "127.0.0.1", port, "gateway", http=ProblemHTTPProtocol) as bound:
        try:
            yield f"http://127.0.0.1:{bound}"
        finally:
            app.state.gateway.stopping.set()  # event streams end before the server stops


_LINES: weakref.WeakKeyDictionary[httpx.Response, AsyncIterator[str]] = weakref.WeakKeyDictionary()


def lines_of(response: httpx.Response) -> AsyncIterator[str]:
    """The one line iterator of a streamed response (httpx allows only one), so a test
    can read events, do something, and read on."""
    if response not in _LINES:
        _LINES[response] = response.aiter_lines()
    return _LINES[response]


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, str, str | None]]:
    """The Server-Sent Events of a streamed response: ``(event, data, id)`` each (a
    comment or a ``retry:`` line is no event)."""
    kind, data, id = "message", "", None
    async for line in lines_of(response):
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data += line[6:]
        elif line.startswith("id: "):
            id = line[4:]
        elif line == "" and data:
            yield kind, data, id
            kind, data, id = "message", "", None


async def read_events(
    response: httpx.Response, *, until: str = "reply", limit: int = 200, timeout: float = 30
) -> list[tuple[str, dict[str, Any], str | None]]:
    """Parse a Server-Sent Events stream into ``(event, data, id)`` until an event of
    type ``until`` (inclusive), at most ``limit`` events, within ``timeout`` seconds."""
    events: list[tuple[str, dict[str, Any], str | None]] = []

    async def consume() -> None:
        async for kind, data, id in sse_events(response):
            events.append((kind, json.loads(data), id))
            if kind == until or len(events) >= limit:
                return

    await asyncio.wait_for(consume(), timeout)
    return events
