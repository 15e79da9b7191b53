"""The producer side of streaming on the real dev server: the model activity (Claude
path: the real SDK streaming from the loopback fake at a paced rate) publishes
``ModelDelta``s to the calling run's ``WorkflowStream``. A minimal host workflow
(``durable_agent.testing.stream_host``) stands in for ``AgentWorkflow``."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    SignalWorkflowInput,
    WorkflowHandle,
)
from temporalio.contrib.workflow_streams import PublishInput, WorkflowStreamClient
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from durable_agent.activity_models import ModelRequest, ModelResponse, StreamTarget
from durable_agent.contract import STREAM_TOPIC_DELTAS, Message, ModelDelta, TextBlock
from durable_agent.testing.fake_anthropic import FakeAnthropicServer, make_message
from durable_agent.testing.fake_tools import FakeToolServer
from durable_agent.testing.faults import Fault
from durable_agent.testing.responders import ScriptedResponder
from durable_agent.testing.stream_host import SIGNAL_RELEASE, StreamHostWorkflow, StreamJob
from tests.conftest import make_settings
from tests.helpers import eventually
from worker import worker_resources
from workflows import WORKFLOW_RUNNER

PUBLISH_SIGNAL = "__temporal_workflow_stream_publish"
PACE = 0.1
_COOLDOWN = timedelta(milliseconds=20)
ANSWER = (
    "Durable execution means the work survives crashes: every step is recorded, and a "
    "new worker picks up where the old one stopped, so nothing is lost or done twice."
)


@pytest.fixture
def fake(anthropic_server: FakeAnthropicServer) -> FakeAnthropicServer:
    """The session's fake, streaming ``ANSWER`` (30 words) one word per event, 100 ms
    apart: about 3.3 s of writing."""
    anthropic_server.reset()
    anthropic_server.responder = ScriptedResponder([make_message(ANSWER)])
    anthropic_server.stream_pace = PACE
    anthropic_server.words_per_delta = 1
    yield anthropic_server
    anthropic_server.reset()


@asynccontextmanager
async def host_worker(
    client: Client, tmp_path: Path, tools: FakeToolServer, fake: FakeAnthropicServer
) -> AsyncIterator[str]:
    """A worker hosting ``StreamHostWorkflow`` and the real ``model.invoke`` (Claude path,
    built as ``worker.py`` builds it) on a fresh task queue."""
    settings = make_settings(
        tmp_path,
        tools,
        model_backend="claude",
        anthropic_base_url=fake.base_url,
        ANTHROPIC_API_KEY="test-key",
    )
    queue = f"stream-{uuid.uuid4().hex[:10]}"
    async with worker_resources(settings, client) as resources:
        invoke = resources.activities[0]
        async with Worker(
            client,
            task_queue=queue,
            workflows=[StreamHostWorkflow],
            activities=[invoke],
            workflow_runner=WORKFLOW_RUNNER,
        ):
            yield queue


def streamed_request(text: str = "What is durable execution?") -> ModelRequest:
    return ModelRequest(
        model=None,
        system="Answer briefly.",
        messages=[Message(role="user", content=[TextBlock(text=text)])],
        tools=[],
        max_tokens=512,
        stream=StreamTarget(turn=1, model_call=1),
    )


async def start(client: Client, queue: str, request: ModelRequest) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        StreamHostWorkflow.run,
        StreamJob(request=request, hold_seconds=60),
        id=f"stream-host-{uuid.uuid4().hex[:10]}",
        task_queue=queue,
        result_type=ModelResponse,
    )


async def subscribe(client: Client, workflow_id: str, into: list[tuple[float, ModelDelta]]) -> None:
    """Read the run's deltas as a client does, noting when each arrived."""
    stream = WorkflowStreamClient.create(client, workflow_id)
    async for item in stream.subscribe(
        [STREAM_TOPIC_DELTAS], result_type=ModelDelta, poll_cooldown=_COOLDOWN
    ):
        into.append((time.time(), item.data))


async def read_closed(client: Client, workflow_id: str) -> list[ModelDelta]:
    """A closed run's deltas from the start (the library reads a closed run by query,
    which a worker answers)."""
    stream = WorkflowStreamClient.create(client, workflow_id)
    return [
        item.data async for item in stream.subscribe([STREAM_TOPIC_DELTAS], result_type=ModelDelta)
    ]


def reader_text(deltas: list[ModelDelta]) -> str:
    """What a reader shows: the text since the last ``restarted``."""
    text = ""
    for d in deltas:
        if d.kind == "restarted":
            text = ""
        elif d.kind == "text":
            text += d.text
    return text


async def finish(handle: WorkflowHandle[Any, Any]) -> tuple[ModelResponse, Any]:
    """Release the run; its response and history."""
    await handle.signal(SIGNAL_RELEASE)
    response: ModelResponse = await handle.result()
    return response, await handle.fetch_history()


def event_index(history: Any, kind: int) -> list[int]:
    return [i for i, e in enumerate(history.events) if e.event_type == kind]


async def published(client: Client, history: Any) -> list[PublishInput]:
    """The publish signals in ``history``, decoded."""
    batches = []
    for e in history.events:
        if e.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            continue
        attrs = e.workflow_execution_signaled_event_attributes
        if attrs.signal_name == PUBLISH_SIGNAL:
            [batch] = await client.data_converter.decode(attrs.input.payloads, [PublishInput])
            batches.append(batch)
    return batches


async def test_deltas_reach_a_reader_before_the_call_returns(
    client: Client, tmp_path: Path, tool_server: FakeToolServer, fake: FakeAnthropicServer
) -> None:
    received: list[tuple[float, ModelDelta]] = []
    async with host_worker(client, tmp_path, tool_server, fake) as queue:
        handle = await start(client, queue, streamed_request())
        reader = asyncio.create_task(subscribe(client, handle.id, received))
        try:
            response, history = await finish_after_call(handle)
            text = "".join(b.text for b in response.content if isinstance(b, TextBlock))
            assert text == ANSWER
            await eventually(
                lambda: asyncio.sleep(0, reader_text([d for _, d in received])),
                until=lambda t: t == ANSWER,
            )
        finally:
            reader.cancel()
    completed = event_index(history, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)[0]
    returned_at = history.events[completed].event_time.ToDatetime(UTC).timestamp()
    early = [d for at, d in received if at < returned_at and d.kind == "text"]
    assert len(early) >= 3, f"{len(early)} text deltas before the call returned"
    # Every publish is in history before the call's result: no delta trails the reply.
    signals = [
        i
        for i in event_index(history, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
        if history.events[i].workflow_execution_signaled_event_attributes.signal_name
        == PUBLISH_SIGNAL
    ]
    assert signals and max(signals) < completed
    # Batched: far fewer publishes than the model's 30 words: the first at once, then
    # one a second (the default budget), then the last.
    writing = (len(ANSWER.split()) + 3) * PACE
    assert 3 <= len(signals) <= 2 + writing / 1.0
    assert all((d.turn, d.model_call, d.attempt) == (1, 1, 1) for _, d in received)


async def finish_after_call(handle: WorkflowHandle[Any, Any]) -> tuple[ModelResponse, Any]:
    """Wait for the model call to complete, then release the run."""

    async def call_done() -> bool:
        history = await handle.fetch_history()
        return bool(event_index(history, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED))

    await eventually(call_done, timeout=30.0, interval=0.1)
    return await finish(handle)


async def test_a_stream_cut_mid_body_restarts_for_the_reader(
    client: Client, tmp_path: Path, tool_server: FakeToolServer, fake: FakeAnthropicServer
) -> None:
    # message_start, ping, content_block_start, then 6 words: cut.
    fake.faults.add(Fault(cut_stream_after=9))
    async with host_worker(client, tmp_path, tool_server, fake) as queue:
        handle = await start(client, queue, streamed_request())
        response, history = await finish_after_call(handle)
        items = await read_closed(client, handle.id)
    assert len(event_index(history, EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)) == 1
    started = history.events[event_index(history, EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)[0]]
    assert started.activity_task_started_event_attributes.attempt == 2
    text = "".join(b.text for b in response.content if isinstance(b, TextBlock))
    assert text == ANSWER
    first = [d for d in items if d.attempt == 1]
    assert first and all(d.kind == "text" for d in first)  # attempt 1's partial text
    assert ANSWER.startswith("".join(d.text for d in first))
    restarted = [i for i, d in enumerate(items) if d.kind == "restarted"]
    assert len(restarted) == 1 and items[restarted[0]].attempt == 2
    assert all(d.attempt == 2 for d in items[restarted[0] :])
    assert reader_text(items) == ANSWER


class LoseFirstPublishAck(Interceptor):
    """Lets the first publish signal reach the server, then fails the call as if the
    acknowledgement were lost: the publisher must send it again."""

    def __init__(self) -> None:
        self.lost = 0

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _LoseAck(next, self)


class _LoseAck(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, root: LoseFirstPublishAck) -> None:
        super().__init__(next)
        self._root = root

    async def signal_workflow(self, input: SignalWorkflowInput) -> None:
        await super().signal_workflow(input)
        if input.signal == PUBLISH_SIGNAL and not self._root.lost:
            self._root.lost += 1
            raise RPCError("injected: acknowledgement lost", RPCStatusCode.UNAVAILABLE, b"")


async def test_a_publish_retried_after_a_lost_ack_is_not_duplicated(
    client: Client, tmp_path: Path, tool_server: FakeToolServer, fake: FakeAnthropicServer
) -> None:
    lose = LoseFirstPublishAck()
    flaky = Client(**{**client.config(), "interceptors": [lose]})
    async with host_worker(flaky, tmp_path, tool_server, fake) as queue:
        handle = await start(client, queue, streamed_request())
        response, history = await finish_after_call(handle)
        items = await read_closed(client, handle.id)
    assert lose.lost == 1
    batches = await published(client, history)
    keys = [(b.publisher_id, b.sequence) for b in batches]
    assert len(keys) > len(set(keys)), "the first batch was sent twice, under one sequence"
    text = "".join(b.text for b in response.content if isinstance(b, TextBlock))
    assert "".join(d.text for d in items if d.kind == "text") == text == ANSWER
