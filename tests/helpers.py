"""Helpers for tests: polling instead of sleeping, workers, subprocesses."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowHandle
from temporalio.common import RawValue
from temporalio.worker import Worker

from durable_agent.client import Conversation, start_conversation
from durable_agent.compact import compact_json
from durable_agent.config import Settings
from durable_agent.contract import WORKFLOW_TYPE, ConversationInput, ConversationResult
from worker import serving, worker_resources

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]],
    *,
    until: Callable[[T], bool] = bool,
    timeout: float = 15.0,
    interval: float = 0.05,
) -> T:
    """Call ``probe`` until ``until(result)`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if until(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last: {result!r}")
        await asyncio.sleep(interval)


async def warm_up(client: Client, task_queue: str) -> None:
    """One ordinary turn on ``task_queue``, so the worker's first workflow and the
    default tenant's governor start before a short turn a test times: on a slow machine
    a cold start alone took a 2-second turn's time."""
    warm = await start_conversation(
        client, ConversationInput(tools=["calculator"]), task_queue=task_queue
    )
    reply = await warm.send_message("What is 1 + 1?")
    assert reply.status == "ok", reply


def raw_json(data: bytes) -> RawValue:
    """A workflow argument written as these JSON bytes, exactly."""
    return RawValue(Payload(metadata={"encoding": b"json/plain"}, data=data))


async def start_as_written(
    client: Client, input: ConversationInput, task_queue: str
) -> Conversation:
    """A conversation whose start input is ``input`` as is: its ``revision`` too, where
    the client API writes its own (``start_input``); an older client's conversation."""
    handle = await client.start_workflow(
        WORKFLOW_TYPE,
        raw_json(compact_json(input)),
        id=f"as-written-{uuid.uuid4().hex[:8]}",
        task_queue=task_queue,
        result_type=ConversationResult,
    )
    return Conversation(handle)


@asynccontextmanager
async def running_worker(
    client: Client, settings: Settings, task_queue: str, *, max_cached_workflows: int = 1000
) -> AsyncIterator[Worker]:
    """An in-process worker with real activities, for the duration of the block."""
    async with (
        worker_resources(settings, client) as resources,
        serving(
            client,
            resources,
            task_queue,
            settings.governor_task_queue,
            max_cached_workflows=max_cached_workflows,
        ) as workers,
    ):
        yield workers[0]


async def history_events(handle: WorkflowHandle) -> list[str]:
    """Event type names of a workflow's history, e.g. ``ACTIVITY_TASK_COMPLETED``."""
    from temporalio.api.enums.v1 import EventType

    history = await handle.fetch_history()
    return [EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in history.events]


ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


async def run_command(
    *args: str, timeout: float = 60.0, env: dict[str, str] | None = None, stdin: str = ""
) -> tuple[int, str, str]:
    """Run a command without blocking the event loop (in-process workers live on it),
    feeding it ``stdin``."""
    process = await asyncio.create_subprocess_exec(
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin.encode()), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"{args} did not finish within {timeout}s") from None
    return process.returncode or 0, out.decode(), err.decode()


async def saved_notes(settings: Settings, tenant: str = "default") -> list[str]:
    """The texts of ``tenant``'s notes in the store ``settings`` names, oldest first."""
    from durable_agent.stores.notes import open_note_store

    store = open_note_store(settings.notes_db)
    try:
        return [n.text for n in reversed(await store.list(tenant=tenant, query=None, limit=100))]
    finally:
        await store.close()
