"""What streaming a model call costs, and how fast its first words reach a reader.

A minimal workflow hosting a ``WorkflowStream`` (``durable_agent.testing.stream_host``)
makes one model call on the Claude path (the real SDK, the loopback fake streaming
``words`` one word per event, ``pace`` seconds apart) through the real ``model.invoke``
activity and its flusher (``durable_agent.stream_batching``). Each case runs
``repeats`` times on one dev server; per case it reports the median of:

* history events and bytes of the run, and those added over the same call not
  streamed (and per 250 ms of streaming: the issue's target is at most 1);
* workflow tasks, publish signals, and the update events readers add;
* the time from the model's first token (when the fake writes the first text delta)
  to the first delta at the reader (target: p50 ≤ 300 ms).

Readers: ``update`` is the library's ``subscribe`` (a long-poll update per poll: each
accepted poll is history, and holds one of the server's 10 in-flight updates per
workflow); ``query`` polls the ``__temporal_workflow_stream_poll`` query every
``query_interval`` (no history). ``python -m bench.streaming [--quick] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.workflow_streams import PollInput, PollResult, WorkflowStreamClient
from temporalio.worker import Worker

from durable_agent.activity_models import ModelRequest, StreamTarget
from durable_agent.client import connect
from durable_agent.config import Settings
from durable_agent.contract import STREAM_TOPIC_DELTAS, Message, ModelDelta, TextBlock
from durable_agent.devserver import DevServer
from durable_agent.testing.fake_anthropic import FakeAnthropicServer, make_message
from durable_agent.testing.responders import ScriptedResponder
from durable_agent.testing.stream_host import SIGNAL_RELEASE, StreamHostWorkflow, StreamJob
from worker import worker_resources
from workflows import WORKFLOW_RUNNER

POLL = "__temporal_workflow_stream_poll"
PUBLISH = "__temporal_workflow_stream_publish"
EVENTS_BEFORE_FIRST_TEXT = 3
"""The fake writes message_start, ping and content_block_start before the first text
delta, each ``pace`` after the previous one."""


@dataclass(frozen=True)
class Case:
    """One measured configuration."""

    name: str
    streamed: bool
    reader: str  # "none", "update" or "query"
    words: int
    pace: float
    query_interval: float = 0.1


@dataclass
class Run:
    """What one run of a case measured."""

    events: int
    bytes: int
    workflow_tasks: int
    publishes: int
    update_events: int
    stream_seconds: float
    first_delta_ms: float | None
    deltas_read: int


@dataclass
class CaseResult:
    """Medians over a case's runs."""

    case: Case
    runs: list[Run] = field(default_factory=list)

    def median(self, name: str) -> float | None:
        values = [getattr(r, name) for r in self.runs if getattr(r, name) is not None]
        return statistics.median(values) if values else None


def cases(quick: bool) -> list[Case]:
    """A paced model (40 words, 100 ms apart: ~4 s) and a fast one (200 words, 10 ms)."""
    shapes = [("paced", 40, 0.1), ("fast", 200, 0.01)]
    if quick:
        shapes = shapes[:1]
    found = []
    for shape, words, pace in shapes:
        found += [
            Case(f"{shape}: not streamed", False, "none", words, pace),
            Case(f"{shape}: streamed, no reader", True, "none", words, pace),
            Case(f"{shape}: streamed, update reader", True, "update", words, pace),
            Case(f"{shape}: streamed, query reader 100 ms", True, "query", words, pace, 0.1),
            Case(f"{shape}: streamed, query reader 50 ms", True, "query", words, pace, 0.05),
        ]
    return found


def answer(words: int) -> str:
    return " ".join(f"word{i}" for i in range(words))


Received = list[tuple[float, ModelDelta]]
Reader = Callable[[Client, WorkflowHandle[Any, Any], Received], Coroutine[Any, Any, None]]


async def update_reader(
    client: Client, handle: WorkflowHandle[Any, Any], into: list[tuple[float, ModelDelta]]
) -> None:
    """The library's subscription: a long-poll update per poll (100 ms cooldown)."""
    stream = WorkflowStreamClient.create(client, handle.id)
    async for item in stream.subscribe([STREAM_TOPIC_DELTAS], result_type=ModelDelta):
        into.append((time.monotonic(), item.data))


def query_reader(interval: float) -> Reader:
    """Polls the stream's query every ``interval`` (nothing in history)."""

    async def read(
        client: Client, handle: WorkflowHandle[Any, Any], into: list[tuple[float, ModelDelta]]
    ) -> None:
        converter = client.data_converter.payload_converter
        offset = 0
        while True:
            result = await handle.query(
                POLL,
                PollInput(topics=[STREAM_TOPIC_DELTAS], from_offset=offset),
                result_type=PollResult,
            )
            for item in result.items:
                payload = Payload()
                payload.ParseFromString(base64.b64decode(item.data))
                into.append((time.monotonic(), converter.from_payload(payload, ModelDelta)))
            offset = result.next_offset
            if not result.more_ready:
                await asyncio.sleep(interval)

    return read


async def measure(client: Client, queue: str, fake: FakeAnthropicServer, case: Case) -> Run:
    """One run of ``case``."""
    fake.reset()
    fake.responder = ScriptedResponder([make_message(answer(case.words))])
    fake.stream_pace, fake.words_per_delta = case.pace, 1
    request = ModelRequest(
        model=None,
        system="",
        messages=[Message(role="user", content=[TextBlock(text="Count.")])],
        tools=[],
        max_tokens=4096,
        stream=StreamTarget(turn=1, model_call=1) if case.streamed else None,
    )
    handle = await client.start_workflow(
        StreamHostWorkflow.run,
        StreamJob(request=request, hold_seconds=120),
        id=f"bench-stream-{uuid.uuid4().hex[:10]}",
        task_queue=queue,
    )
    received: list[tuple[float, ModelDelta]] = []
    readers: dict[str, Reader] = {
        "update": update_reader,
        "query": query_reader(case.query_interval),
    }
    task = (
        asyncio.create_task(readers[case.reader](client, handle, received))
        if case.reader in readers
        else None
    )
    try:
        await _until_call_done(handle)
        if task is not None:  # the reader has everything before the run is released
            await _until(lambda: len(_text(received)) == len(answer(case.words)))
    finally:
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
    await handle.signal(SIGNAL_RELEASE)
    await handle.result()
    history = await handle.fetch_history()
    first_token = fake.requests[-1].received_at + EVENTS_BEFORE_FIRST_TEXT * case.pace
    texts = [at for at, d in received if d.kind == "text"]
    counts = _counts(history)
    return Run(
        events=len(history.events),
        bytes=sum(e.ByteSize() for e in history.events),
        workflow_tasks=counts[EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED],
        publishes=_signals(history, PUBLISH),
        update_events=counts[EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED]
        + counts[EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED],
        stream_seconds=(case.words + EVENTS_BEFORE_FIRST_TEXT) * case.pace,
        first_delta_ms=(texts[0] - first_token) * 1000 if texts else None,
        deltas_read=len(received),
    )


def _text(received: list[tuple[float, ModelDelta]]) -> str:
    return "".join(d.text for _, d in received if d.kind == "text")


def _counts(history: Any) -> dict[int, int]:
    counts: dict[int, int] = {}
    for e in history.events:
        counts[e.event_type] = counts.get(e.event_type, 0) + 1
    return {k: counts.get(k, 0) for k in EventType.values()} | counts


def _signals(history: Any, name: str) -> int:
    return sum(
        1
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        and e.workflow_execution_signaled_event_attributes.signal_name == name
    )


async def _until(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.02)


async def _until_call_done(handle: WorkflowHandle[Any, Any], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        history = await handle.fetch_history()
        if any(
            e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED for e in history.events
        ):
            return
        if time.monotonic() > deadline:
            raise TimeoutError("the model call did not complete")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def host(client: Client, fake: FakeAnthropicServer, workdir: Path) -> AsyncIterator[str]:
    """A worker for the host workflow and the real model activity (Claude path)."""
    settings = Settings(
        _env_file=None,
        model_backend="claude",
        anthropic_base_url=fake.base_url,
        ANTHROPIC_API_KEY="bench-key",
        notes_db=workdir / "notes.sqlite3",
        blob_db=workdir / "blobs.sqlite3",
        metrics_port=0,
        health_port=0,
    )
    queue = f"bench-stream-{uuid.uuid4().hex[:8]}"
    async with (
        worker_resources(settings, client) as resources,
        Worker(
            client,
            task_queue=queue,
            workflows=[StreamHostWorkflow],
            activities=[resources.activities[0]],
            workflow_runner=WORKFLOW_RUNNER,
        ),
    ):
        yield queue


@dataclass
class Capacity:
    """Many update readers on one workflow."""

    readers: int
    failed: int
    errors: list[str]
    events: int
    update_events: int


async def update_capacity(
    client: Client, queue: str, fake: FakeAnthropicServer, readers: int = 20
) -> Capacity:
    """``readers`` library subscriptions on one streamed call (40 words, 100 ms apart):
    how many the server refuses (each waiting poll is an in-flight update, at most 10
    per workflow), and the history they add."""
    fake.reset()
    fake.responder = ScriptedResponder([make_message(answer(40))])
    fake.stream_pace, fake.words_per_delta = 0.1, 1
    request = ModelRequest(
        model=None,
        system="",
        messages=[Message(role="user", content=[TextBlock(text="Count.")])],
        tools=[],
        max_tokens=4096,
        stream=StreamTarget(turn=1, model_call=1),
    )
    handle = await client.start_workflow(
        StreamHostWorkflow.run,
        StreamJob(request=request, hold_seconds=120),
        id=f"bench-capacity-{uuid.uuid4().hex[:10]}",
        task_queue=queue,
    )
    tasks = [asyncio.create_task(update_reader(client, handle, [])) for _ in range(readers)]
    await _until_call_done(handle)
    await handle.signal(SIGNAL_RELEASE)
    await handle.result()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    errors = [f"{type(o).__name__}: {o}" for o in outcomes if isinstance(o, BaseException)]
    history = await handle.fetch_history()
    counts = _counts(history)
    return Capacity(
        readers=readers,
        failed=len(errors),
        errors=sorted(set(errors)),
        events=len(history.events),
        update_events=counts[EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED]
        + counts[EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED],
    )


async def run(quick: bool = False, repeats: int | None = None) -> tuple[list[CaseResult], Capacity]:
    """Every case, ``repeats`` times each (3 quick, 5 otherwise)."""
    repeats = repeats or (3 if quick else 5)
    results = [CaseResult(case) for case in cases(quick)]
    with tempfile.TemporaryDirectory() as tmp:
        server = DevServer(db_file=Path(tmp) / "temporal.sqlite3")
        await server.start()
        try:
            client = await connect(server.address)
            with FakeAnthropicServer() as fake:
                async with host(client, fake, Path(tmp)) as queue:
                    await measure(client, queue, fake, results[0].case)  # warm up
                    for _ in range(repeats):
                        for result in results:
                            result.runs.append(await measure(client, queue, fake, result.case))
                    capacity = await update_capacity(client, queue, fake)
        finally:
            server.stop()
    return results, capacity


def table(results: list[CaseResult]) -> str:
    """Markdown: medians, and what each case adds to the same call not streamed."""
    lines = [
        "| case | events | bytes | +events vs unstreamed | +events per 250 ms | "
        "workflow tasks | publishes | update events | first delta p50 (ms) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    base: dict[str, CaseResult] = {}
    for r in results:
        shape = r.case.name.split(":")[0]
        if not r.case.streamed:
            base[shape] = r
        b = base[shape]
        extra = (r.median("events") or 0) - (b.median("events") or 0)
        per = extra / ((r.median("stream_seconds") or 1) / 0.25)
        first = r.median("first_delta_ms")
        lines.append(
            f"| {r.case.name} | {r.median('events'):.0f} | {r.median('bytes'):.0f} | "
            f"{extra:+.0f} | {per:.2f} | {r.median('workflow_tasks'):.0f} | "
            f"{r.median('publishes'):.0f} | {r.median('update_events'):.0f} | "
            f"{'-' if first is None else f'{first:.0f}'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run the cases, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the paced case only, 3 runs")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--json", type=Path, default=Path("bench/results/streaming_call.json"))
    args = parser.parse_args(argv)
    results, capacity = asyncio.run(run(args.quick, args.repeats))
    print(table(results))
    print(
        f"\n{capacity.readers} update readers on one call: {capacity.failed} refused "
        f"({'; '.join(capacity.errors) or 'none'}); history {capacity.events} events, "
        f"{capacity.update_events} of them updates"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(as_json(results, capacity), indent=2))
    sys.stdout.flush()


def as_json(results: list[CaseResult], capacity: Capacity) -> dict[str, Any]:
    """Every case's runs and medians, and the update readers' capacity."""
    cases_json = [
        {
            "case": asdict(r.case),
            "runs": [asdict(x) for x in r.runs],
            "median": {k: r.median(k) for k in asdict(r.runs[0])} if r.runs else {},
        }
        for r in results
    ]
    return {"cases": cases_json, "update_capacity": asdict(capacity)}


if __name__ == "__main__":
    main()
