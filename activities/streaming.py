"""A model call's output, published to its conversation's stream as it is written.

When a turn is streamed the workflow gives ``model.invoke`` a ``StreamTarget``; the
backend hands every piece it receives to a ``DeltaSink``, and ``DeltaPublisher`` sends
them as ``ModelDelta`` items on topic ``deltas`` of the calling run's ``WorkflowStream``
(``temporalio.contrib.workflow_streams``), batched by a history budget
(``durable_agent.stream_batching``).

Deltas are not the record: the activity's result is. So publishing never fails a model
call: a publish the server refuses stops streaming for the attempt, one that cannot
reach it in time is given up with a warning. Exactly-once within an attempt comes from
the library: a batch is sent under ``(publisher id, sequence)`` and a batch retried
after a lost acknowledgement keeps its sequence, which the workflow drops as a repeat.
Across attempts every attempt is a new publisher, and an attempt after the first
publishes ``restarted`` first, so readers drop the partial text of earlier attempts.

The stream is the calling *run*'s (the handle is pinned to ``workflow_run_id``, where
``WorkflowStreamClient.from_within_activity`` targets the newest run of the workflow
id): an attempt still running after its run has ended cannot write into the next one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, Protocol

from temporalio import activity
from temporalio.client import Client
from temporalio.contrib.workflow_streams import WorkflowStreamClient
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from durable_agent.activity_models import StreamTarget
from durable_agent.contract import STREAM_TOPIC_DELTAS, DeltaKind, ModelDelta
from durable_agent.stream_batching import DeltaBuffer, FlushCredit, FlushPolicy

# As the library's own background flusher (and SDK Core) classify them.
_RETRYABLE = frozenset(
    {
        RPCStatusCode.ABORTED,
        RPCStatusCode.CANCELLED,
        RPCStatusCode.DATA_LOSS,
        RPCStatusCode.INTERNAL,
        RPCStatusCode.OUT_OF_RANGE,
        RPCStatusCode.RESOURCE_EXHAUSTED,
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.UNKNOWN,
    }
)
RETRY_PAUSE_SECONDS = 0.1
"""Pause before the last flush tries again after a retryable error."""


class DeltaSink(Protocol):
    """Takes the pieces of a model call's output as the backend receives them."""

    def __call__(
        self,
        kind: DeltaKind,
        text: str = "",
        *,
        call_id: str | None = None,
        tool: str | None = None,
    ) -> None: ...


def no_deltas(
    kind: DeltaKind, text: str = "", *, call_id: str | None = None, tool: str | None = None
) -> None:
    """The sink of a call that is not streamed: pieces go nowhere."""


class ClaudeDeltas:
    """Turns the Messages API's stream events into pieces: text and thinking deltas,
    and the start and stop of each tool_use block (its id and tool name). Other events
    (``input_json_delta``, signatures, usage) carry nothing a reader shows."""

    def __init__(self, sink: DeltaSink) -> None:
        self._sink = sink
        self._tools: dict[int, tuple[str, str]] = {}
        """Open tool_use blocks by index: their id and name."""

    def __call__(self, event: Any) -> None:
        """Handle one event of ``messages.stream`` (raw events; the SDK's derived
        ``text``/``thinking`` events repeat the deltas and are ignored)."""
        if event.type == "content_block_start" and event.content_block.type == "tool_use":
            block = event.content_block
            self._tools[event.index] = (block.id, block.name)
            self._sink("tool_use_started", call_id=block.id, tool=block.name)
        elif event.type == "content_block_delta":
            delta = event.delta
            if delta.type == "text_delta":
                self._sink("text", delta.text)
            elif delta.type == "thinking_delta":
                self._sink("thinking", delta.thinking)
        elif event.type == "content_block_stop" and event.index in self._tools:
            call_id, tool = self._tools.pop(event.index)
            self._sink("tool_use_finished", call_id=call_id, tool=tool)


class DeltaPublisher:
    """The ``DeltaSink`` of a streamed call: buffers pieces and flushes them from a
    background task when the history budget affords it (``FlushCredit``)."""

    def __init__(
        self,
        stream: WorkflowStreamClient,
        target: StreamTarget,
        attempt: int,
        policy: FlushPolicy,
        *,
        final_flush_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._topic = stream.topic(STREAM_TOPIC_DELTAS, type=ModelDelta)
        self._target = target
        self._attempt = attempt
        self._final_flush_seconds = final_flush_seconds
        self._clock = clock
        self._buffer = DeltaBuffer()
        self._credit = FlushCredit(policy, clock())
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        """A publish was refused: the rest of the attempt is not streamed."""
        self.flushes = 0
        """Publishes sent (retries of one batch count once)."""
        self.tail: list[ModelDelta] = []
        """What was left to publish when the call returned (``finish``)."""

    def __call__(
        self,
        kind: DeltaKind,
        text: str = "",
        *,
        call_id: str | None = None,
        tool: str | None = None,
    ) -> None:
        if self._stopped:
            return
        self._buffer.add(
            ModelDelta(
                turn=self._target.turn,
                model_call=self._target.model_call,
                attempt=self._attempt,
                kind=kind,
                text=text,
                call_id=call_id,
                tool=tool,
                delegation=self._target.delegation,
            )
        )
        self._wake.set()

    def start(self) -> None:
        """Start flushing; an attempt after the first announces itself first."""
        if self._attempt > 1:
            self("restarted")
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop the background flushes (a batch cut short in flight is kept, and sent
        again under its sequence by ``finish``)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
            error = None if task.cancelled() else task.exception()
            if error is not None:
                raise error  # a bug, not a failed publish (those are handled in _run)

    async def finish(self, *, keep_tail: bool = True) -> list[ModelDelta]:
        """Stop, make sure a batch already handed over has arrived (waiting at most
        ``final_flush_seconds``), and return what is still buffered: the call's result
        carries it (``ModelResponse.stream_tail``) and the workflow publishes it, in
        order, after every batch sent from here. Without ``keep_tail`` (the stream is
        not the calling workflow's) it is published here too."""
        await self.stop()
        if not keep_tail:
            self._move_buffer()
        deadline = self._clock() + self._final_flush_seconds
        while not self._stopped:
            try:
                async with asyncio.timeout(max(0.0, deadline - self._clock())):
                    await self._stream.flush()  # a batch in flight (relayed: and the rest)
                break
            except TimeoutError:
                activity.logger.warning("a batch of deltas not published in time")
                break
            except RPCError as e:
                if not self._retryable(e) or self._clock() + RETRY_PAUSE_SECONDS > deadline:
                    break
            await asyncio.sleep(RETRY_PAUSE_SECONDS)
        return [] if self._stopped else self._buffer.take()

    async def _run(self) -> None:
        while not self._stopped:
            await self._wake.wait()
            await asyncio.sleep(self._credit.wait(self._clock()))
            self._wake.clear()
            self._move_buffer()
            try:
                await self._stream.flush()
            except RPCError as e:
                if self._retryable(e):
                    self._wake.set()  # the batch is kept: sent again under its sequence
            except TimeoutError:  # the library gave up on a batch (max_retry_duration)
                activity.logger.warning("a batch of deltas was given up")

    def _move_buffer(self) -> None:
        """Hand what is buffered to the stream client (as one batch) and pay for it."""
        deltas = self._buffer.take()
        for delta in deltas:
            self._topic.publish(delta)
        if deltas:
            self.flushes += 1
            self._credit.spend(self._clock())

    def _retryable(self, error: RPCError) -> bool:
        if error.status in _RETRYABLE:
            activity.logger.warning("publishing deltas failed, retrying: %s", error.status.name)
            return True
        # The run has ended, or the batch is refused: streaming stops, the call goes on.
        activity.logger.warning("publishing deltas refused, not streaming: %s", error.status.name)
        self._stopped = True
        return False


@asynccontextmanager
async def delta_sink(
    client: Client,
    target: StreamTarget | None,
    policy: FlushPolicy,
    *,
    final_flush_seconds: float,
) -> AsyncIterator[DeltaSink]:
    """The sink of the current activity's model call: ``no_deltas`` when it is not
    streamed, else a ``DeltaPublisher`` on the calling run's stream that has published
    everything but its ``tail`` when the block ends normally (a failed attempt's rest
    is dropped: the next attempt starts again)."""
    if target is None:
        yield no_deltas
        return
    info = activity.info()
    if info.workflow_id is None:
        raise ApplicationError("a streamed model call needs a calling workflow", non_retryable=True)
    # The calling run's stream (pinned: a stale attempt never writes into a later run),
    # or a sub-agent's parent's, which the parent's workflow cannot publish a tail to.
    relayed = target.workflow_id is not None
    handle = (
        client.get_workflow_handle(target.workflow_id)
        if target.workflow_id is not None
        else client.get_workflow_handle(info.workflow_id, run_id=info.workflow_run_id)
    )
    stream = WorkflowStreamClient(
        handle,
        client=client,
        # Flushes are ours (``FlushCredit``): the library's own timer is never started.
        batch_interval=timedelta(hours=1),
        max_retry_duration=timedelta(seconds=60),
    )
    publisher = DeltaPublisher(
        stream, target, info.attempt, policy, final_flush_seconds=final_flush_seconds
    )
    publisher.start()
    try:
        yield publisher
    except BaseException:
        await publisher.stop()
        raise
    publisher.tail = await publisher.finish(keep_tail=not relayed)
