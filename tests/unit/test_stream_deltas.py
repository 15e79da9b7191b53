"""Building a model call's deltas: from the Messages API's stream events, from the
offline planner, and the publisher's batching, retries and restarts (against a
recording stand-in for ``WorkflowStreamClient``; the real one is exercised in
``tests/integration/test_streaming_producer.py``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from anthropic.lib.streaming import TextEvent
from anthropic.types import (
    InputJSONDelta,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawContentBlockStopEvent,
    SignatureDelta,
    TextBlock,
    TextDelta,
    ThinkingBlock,
    ThinkingDelta,
    ToolUseBlock,
)
from temporalio.service import RPCError, RPCStatusCode

from activities.llm import OfflineBackend
from activities.streaming import ClaudeDeltas, DeltaPublisher
from durable_agent.activity_models import ModelRequest, StreamTarget, ToolDefinition
from durable_agent.contract import DeltaKind, Message, ModelDelta
from durable_agent.contract import TextBlock as OurTextBlock
from durable_agent.stream_batching import FlushPolicy
from tests.helpers import eventually

Piece = tuple[str, str, str | None, str | None]


class Recorder:
    """A ``DeltaSink`` that keeps what it is given."""

    def __init__(self) -> None:
        self.pieces: list[Piece] = []

    def __call__(
        self,
        kind: DeltaKind,
        text: str = "",
        *,
        call_id: str | None = None,
        tool: str | None = None,
    ) -> None:
        self.pieces.append((kind, text, call_id, tool))


def start(index: int, block: Any) -> RawContentBlockStartEvent:
    return RawContentBlockStartEvent(type="content_block_start", index=index, content_block=block)


def delta(index: int, d: Any) -> RawContentBlockDeltaEvent:
    return RawContentBlockDeltaEvent(type="content_block_delta", index=index, delta=d)


def stop(index: int) -> RawContentBlockStopEvent:
    return RawContentBlockStopEvent(type="content_block_stop", index=index)


def test_claude_events_become_deltas() -> None:
    sink = Recorder()
    publish = ClaudeDeltas(sink)
    events = [
        start(0, ThinkingBlock(type="thinking", thinking="", signature="")),
        delta(0, ThinkingDelta(type="thinking_delta", thinking="Let me ")),
        delta(0, ThinkingDelta(type="thinking_delta", thinking="think.")),
        delta(0, SignatureDelta(type="signature_delta", signature="sig")),
        stop(0),
        start(1, TextBlock(type="text", text="")),
        delta(1, TextDelta(type="text_delta", text="I will ")),
        TextEvent(type="text", text="I will ", snapshot="I will "),  # derived: a repeat
        delta(1, TextDelta(type="text_delta", text="compute.")),
        stop(1),
        start(2, ToolUseBlock(type="tool_use", id="toolu_1", name="calculator", input={})),
        delta(2, InputJSONDelta(type="input_json_delta", partial_json='{"expression": ')),
        delta(2, InputJSONDelta(type="input_json_delta", partial_json='"2+2"}')),
        stop(2),
    ]
    for event in events:
        publish(event)
    assert sink.pieces == [
        ("thinking", "Let me ", None, None),
        ("thinking", "think.", None, None),
        ("text", "I will ", None, None),
        ("text", "compute.", None, None),
        ("tool_use_started", "", "toolu_1", "calculator"),
        ("tool_use_finished", "", "toolu_1", "calculator"),
    ]


async def test_offline_backend_streams_its_answer_word_by_word() -> None:
    backend = OfflineBackend(pace_seconds=0.0)
    request = ModelRequest(
        model=None,
        system="",
        messages=[Message(role="user", content=[OurTextBlock(text="What is 6 * 7?")])],
        tools=[
            ToolDefinition(
                name="calculator",
                description="arithmetic",
                input_schema={"type": "object", "properties": {"expression": {"type": "string"}}},
            )
        ],
        max_tokens=256,
    )
    sink = Recorder()
    response = await backend.complete(request, lambda *_: None, sink)
    unstreamed = await backend.complete(request, lambda *_: None)
    assert response == unstreamed  # streaming changes nothing in the message of record
    text = "".join(b.text for b in response.content if isinstance(b, OurTextBlock))
    texts = [p for p in sink.pieces if p[0] == "text"]
    assert len(texts) >= 3 and "".join(p[1] for p in texts) == text
    use = next(b for b in response.content if b.type == "tool_use")
    assert sink.pieces[-2:] == [
        ("tool_use_started", "", use.id, "calculator"),
        ("tool_use_finished", "", use.id, "calculator"),
    ]


class FakeStream:
    """Stands in for ``WorkflowStreamClient`` as it behaves: a batch is sent under a
    sequence number, a failed one is kept and sent again under the same number, and the
    workflow drops a number it has seen. ``failures`` script the sends that fail, and
    whether the workflow got them anyway (a lost acknowledgement)."""

    def __init__(self, failures: list[tuple[RPCStatusCode, bool]] | None = None) -> None:
        self.buffer: list[ModelDelta] = []
        self.pending: tuple[int, list[ModelDelta]] | None = None
        self.sequence = 0
        self.batches: list[list[ModelDelta]] = []
        """What the workflow's log took, batch by batch."""
        self.seen = 0
        self.sent = 0
        self.failures = list(failures or [])

    def topic(self, name: str, *, type: type) -> FakeStream:
        assert name == "deltas" and type is ModelDelta
        return self

    def publish(self, value: ModelDelta) -> None:
        self.buffer.append(value)

    async def flush(self) -> None:
        while self.pending is not None or self.buffer:
            if self.pending is None:
                self.sequence += 1
                self.pending, self.buffer = (self.sequence, self.buffer), []
            seq, batch = self.pending
            self.sent += 1
            failure = self.failures.pop(0) if self.failures else None
            delivered = failure is None or failure[1]
            if delivered and seq > self.seen:  # seq > seen: the workflow's dedup
                self.seen = seq
                self.batches.append(batch)
            if failure is not None:
                raise RPCError("injected", failure[0], b"")
            self.pending = None


FAST = FlushPolicy(interval_seconds=0.01, events_per_flush=4.0)


def publisher(stream: FakeStream, attempt: int = 1, policy: FlushPolicy = FAST) -> DeltaPublisher:
    return DeltaPublisher(
        stream,  # type: ignore[arg-type]
        StreamTarget(turn=3, model_call=2),
        attempt,
        policy,
        final_flush_seconds=2.0,
    )


def flat(stream: FakeStream, tail: list[ModelDelta] = ()) -> list[tuple[str, str]]:
    """What a reader gets: the batches published, then the tail the workflow publishes."""
    return [(d.kind, d.text) for batch in [*stream.batches, tail] for d in batch]


async def test_first_delta_goes_out_at_once_then_batches() -> None:
    stream = FakeStream()
    pub = publisher(stream, policy=FlushPolicy(interval_seconds=5.0))
    pub.start()
    pub("text", "Hello")
    await eventually(lambda: asyncio.sleep(0, stream.batches), timeout=2.0)
    pub("text", " there")
    pub("text", " friend")
    await asyncio.sleep(0.05)  # within the 20 s gap: nothing more may be sent
    assert len(stream.batches) == 1
    tail = await pub.finish()  # the rest rides the call's result: no last publish
    assert len(stream.batches) == 1
    assert flat(stream, tail) == [("text", "Hello"), ("text", " there friend")]
    d = stream.batches[0][0]
    assert (d.turn, d.model_call, d.attempt) == (3, 2, 1)


async def test_a_retried_attempt_says_so_first() -> None:
    stream = FakeStream()
    pub = publisher(stream, attempt=2)
    pub.start()
    pub("text", "again")
    tail = await pub.finish()
    assert flat(stream, tail)[0] == ("restarted", "")
    assert "".join(t for k, t in flat(stream, tail) if k == "text") == "again"
    assert {d.attempt for batch in [*stream.batches, tail] for d in batch} == {2}


@pytest.mark.parametrize("delivered", [False, True])
async def test_a_failed_publish_is_retried(delivered: bool) -> None:
    stream = FakeStream([(RPCStatusCode.UNAVAILABLE, delivered)])
    pub = publisher(stream)
    pub.start()
    pub("text", "one")
    await eventually(lambda: asyncio.sleep(0, stream.sent), timeout=2.0)  # failed once
    for word in [" two", " three"]:
        pub("text", word)
    tail = await pub.finish()
    assert "".join(t for _, t in flat(stream, tail)) == "one two three"
    assert stream.sent >= 2


async def test_a_refused_publish_stops_streaming_not_the_call() -> None:
    stream = FakeStream([(RPCStatusCode.NOT_FOUND, False)])
    pub = publisher(stream)
    pub.start()
    pub("text", "lost")
    await eventually(lambda: asyncio.sleep(0, stream.sent), timeout=2.0)
    pub("text", " ignored")
    tail = await pub.finish()  # returns: deltas are not the record
    assert stream.batches == [] and stream.sent == 1 and tail == []
