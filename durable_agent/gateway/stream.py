"""Server-Sent Events of a conversation's stream (the ``stream`` query): its step
events and, for streamed turns, the model's output as it is written, from an offset,
until the conversation closes, the client goes, the stream's time is up or the gateway
stops.

Each item is one SSE event: ``event:`` is the step's kind (``turn_started``, ``reply``,
…) with a ``ConversationEvent`` as data, or ``delta`` with a ``ModelDelta``; ``id:`` is
the item's offset, so a client reconnecting with ``Last-Event-ID`` resumes after it
with nothing repeated or lost. ``missed`` says items were no longer kept; ``error``
carries a problem document; ``end`` says the conversation closed (nothing follows)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle, WorkflowQueryFailedError
from temporalio.service import RPCError

from durable_agent.contract import StreamItem
from durable_agent.gateway import problems
from durable_agent.gateway.calls import execution_status, rpc_problem
from durable_agent.gateway.service import Gateway
from durable_agent.streaming import Pace, StreamCursor

_KEEPALIVE_SECONDS = 15.0
_DESCRIBE_EVERY_SECONDS = 2.0
_IDLE_POLL_SECONDS = 1.0
"""The slowest a stream polls while nothing is written (it backs off to this)."""


async def event_stream(
    request: Request,
    handle: WorkflowHandle[Any, Any],
    gateway: Gateway,
    after: int,
    *,
    deltas: bool = True,
) -> AsyncIterator[bytes]:
    """Poll the ``stream`` query after offset ``after`` and write each item as SSE,
    until the conversation closes, the client goes, the stream's time is up or the
    gateway stops."""
    gateway.metrics.stream(+1)
    try:
        async for chunk in _items(request, handle, gateway, after, deltas):
            yield chunk
    finally:
        gateway.metrics.stream(-1)


async def _items(
    request: Request, handle: WorkflowHandle[Any, Any], gateway: Gateway, after: int, deltas: bool
) -> AsyncIterator[bytes]:
    settings = gateway.settings
    active = settings.gateway_events_poll_seconds
    cursor = StreamCursor(
        handle,
        after,
        deltas=deltas,
        pace=Pace(active, max(active, _IDLE_POLL_SECONDS)),
        rpc_timeout=gateway.rpc_timeout,
    )
    deadline = time.monotonic() + settings.gateway_stream_seconds
    last_write = last_describe = time.monotonic()
    yield b"retry: 1000\n\n"
    while time.monotonic() < deadline and not gateway.stopping.is_set():
        if await request.is_disconnected():
            return
        try:
            items, missed = await cursor.poll()
        except RPCError as e:
            problem = rpc_problem(e, handle.id)
            yield _sse("error", problem.document(None).model_dump_json(exclude_none=True))
            if problem.kind in (problems.NOT_FOUND, problems.CONVERSATION_ENDED):
                return
            await _pause(gateway, 1.0)
            continue
        except WorkflowQueryFailedError:  # no worker could answer yet (one restarting)
            await _pause(gateway, 1.0)
            continue
        if missed:
            yield _sse("missed", json.dumps({"missed": missed}))
        for item in items:
            yield _item(item)
        if items:
            last_write = time.monotonic()
        if cursor.drained:
            yield _sse("end", json.dumps({"execution": "completed"}))
            return
        if cursor.more:
            continue  # more waiting: no pause
        now = time.monotonic()
        if not items and now - last_describe >= _DESCRIBE_EVERY_SECONDS:
            last_describe = now
            try:
                description = await handle.describe(rpc_timeout=gateway.rpc_timeout)
            except RPCError:
                description = None
            if description and description.status not in (
                WorkflowExecutionStatus.RUNNING,
                WorkflowExecutionStatus.CONTINUED_AS_NEW,
            ):  # closed without ending (cancelled, terminated): what it wrote last, then end
                for item in await _last_items(cursor):
                    yield _item(item)
                yield _sse("end", json.dumps({"execution": execution_status(description.status)}))
                return
        if now - last_write >= _KEEPALIVE_SECONDS:
            last_write = now
            yield b": keep-alive\n\n"
        await _pause(gateway, cursor.wait_seconds())


async def _last_items(cursor: StreamCursor) -> list[StreamItem]:
    """Items a closed workflow wrote after the last poll (none if it cannot say)."""
    items: list[StreamItem] = []
    for _ in range(8):  # bounded: a closed log holds at most a few pages
        try:
            page, _ = await cursor.poll()
        except (RPCError, WorkflowQueryFailedError):
            break
        items += page
        if not cursor.more:
            break
    return items


def _item(item: StreamItem) -> bytes:
    if item.event is not None:
        return _sse(item.event.kind, item.event.model_dump_json(), item.offset)
    delta = item.delta.model_dump_json() if item.delta is not None else "{}"
    return _sse("delta", delta, item.offset)


async def _pause(gateway: Gateway, seconds: float) -> None:
    try:
        async with asyncio.timeout(seconds):
            await gateway.stopping.wait()
    except TimeoutError:
        pass


def _sse(event: str, data: str, offset: int | None = None) -> bytes:
    head = f"id: {offset}\n" if offset is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n".encode()
