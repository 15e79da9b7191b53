"""Server-Sent Events of a conversation's event feed (the ``events`` query), from a
cursor, until the conversation closes, the client goes, the stream's time is up or the
gateway stops."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError

from durable_agent import contract
from durable_agent.contract import EventPage, EventsRequest
from durable_agent.gateway import problems
from durable_agent.gateway.calls import execution_status, rpc_problem
from durable_agent.gateway.service import Gateway

_KEEPALIVE_SECONDS = 15.0
_DESCRIBE_EVERY_SECONDS = 2.0


async def event_stream(
    request: Request, handle: WorkflowHandle[Any, Any], gateway: Gateway, cursor: int
) -> AsyncIterator[bytes]:
    """Poll the ``events`` query from ``cursor`` and write each event as SSE, until the
    conversation closes, the client goes, the stream's time is up or the gateway stops."""
    gateway.metrics.stream(+1)
    try:
        async for chunk in _events(request, handle, gateway, cursor):
            yield chunk
    finally:
        gateway.metrics.stream(-1)


async def _events(
    request: Request, handle: WorkflowHandle[Any, Any], gateway: Gateway, cursor: int
) -> AsyncIterator[bytes]:
    settings = gateway.settings
    deadline = time.monotonic() + settings.gateway_stream_seconds
    last_write = last_describe = time.monotonic()
    yield b"retry: 1000\n\n"
    while time.monotonic() < deadline and not gateway.stopping.is_set():
        if await request.is_disconnected():
            return
        try:
            page: EventPage = await handle.query(
                contract.QUERY_EVENTS,
                EventsRequest(after=cursor, limit=100),
                result_type=EventPage,
                rpc_timeout=gateway.rpc_timeout,
            )
        except RPCError as e:
            problem = rpc_problem(e, handle.id)
            yield _sse("error", problem.document(None).model_dump_json(exclude_none=True))
            if problem.kind in (problems.NOT_FOUND, problems.CONVERSATION_ENDED):
                return
            await _pause(gateway, 1.0)
            continue
        if page.missed:
            yield _sse("missed", json.dumps({"missed": page.missed}))
        for event in page.events:
            yield _sse(event.kind, event.model_dump_json(), event.seq)
            cursor = event.seq
        if page.events:
            last_write = time.monotonic()
            if cursor < page.last_seq:
                continue  # more waiting: no pause
        if page.ended and cursor >= page.last_seq:
            yield _sse("end", json.dumps({"execution": "completed"}))
            return
        now = time.monotonic()
        if now - last_describe >= _DESCRIBE_EVERY_SECONDS:
            last_describe = now
            try:
                description = await handle.describe(rpc_timeout=gateway.rpc_timeout)
            except RPCError:
                description = None
            if description and description.status != WorkflowExecutionStatus.RUNNING:
                yield _sse("end", json.dumps({"execution": execution_status(description.status)}))
                return
        if now - last_write >= _KEEPALIVE_SECONDS:
            last_write = now
            yield b": keep-alive\n\n"
        await _pause(gateway, settings.gateway_events_poll_seconds)


async def _pause(gateway: Gateway, seconds: float) -> None:
    try:
        async with asyncio.timeout(seconds):
            await gateway.stopping.wait()
    except TimeoutError:
        pass


def _sse(event: str, data: str, seq: int | None = None) -> bytes:
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n".encode()
