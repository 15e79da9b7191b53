"""The stream of a conversation: what each turn does, and what the model writes, as it
happens, on one offset-addressed log (a Temporal Workflow Stream).

The workflow publishes a ``ConversationEvent`` at every step (turn started, model call
started/finished, tool call started/finished, approval requested/decided, reply) to the
``events`` topic; the model activity of a streamed turn publishes ``ModelDelta``s to the
``deltas`` topic (by signal, batched: see ``durable_agent.stream_batching``). An event's
``seq`` is its offset + 1, so the ``events`` query keeps paging by ``seq`` as before,
and the ``stream`` query pages through both topics by offset. Readers poll these
queries: a query writes nothing to history, and does not hold one of the server's ten
in-flight updates per workflow as the library's long-poll subscription does (that works
too, for who wants it). Any gateway replica can serve any reader: the cursor is the
reader's, the log is workflow state.

Workflow-side publishing changes no command, so it needs no patch; the log is rebuilt
exactly on replay (events are published again, deltas arrive again by their signals),
so a reader resumes across a worker crash with no item lost or repeated. The newest
items are carried across continue-as-new (``ContinuedState.stream``). Few are kept in
memory (a cached conversation is light): at most ``HELD`` while a turn runs, the newest
``IDLE_HELD`` between turns; a reader that falls further behind is told how many it
missed. A reply event carries the reply with tool results cut to a preview (the full
reply is the update's result and in the transcript).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from itertools import islice
from typing import Any

from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.contrib.workflow_streams import WorkflowStream, WorkflowStreamState
from temporalio.contrib.workflow_streams._types import (
    PublishInput,
    WorkflowStreamItem,
    _WorkflowStreamWireItem,
)
from temporalio.converter import PayloadConverter

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel
    from pydantic_core import to_json

    from durable_agent.contract import (
        STREAM_TOPIC_DELTAS,
        STREAM_TOPIC_EVENTS,
        CarriedItem,
        CarriedStream,
        ContinuedState,
        ConversationEvent,
        EventKind,
        EventPage,
        EventsRequest,
        ModelDelta,
        Reply,
        StreamItem,
        StreamPage,
        StreamRequest,
    )

HELD = 512
"""Items kept while a turn runs: a reader that connects mid-turn gets the turn so far
(a delta batch covers at least a quarter of a second of output)."""
IDLE_HELD = 64
"""Items kept between turns: a reader polling once a second misses none of a busy turn."""
CARRIED_MAX = 16
"""Items carried into the next run at most. A run carries its last turn, whole up to
this many items, and nothing before it: the run continues as new right after a reply,
so a reader that reads once a turn misses none of a turn with a few tool calls. Each
item is about 300 bytes, recorded twice (the continued-as-new event and the next run's
start), and the carry is the largest part of the turn that opens a run: carrying two
turns of a short conversation made that turn 3.9 times the median (``make bench``)."""
RESULT_PREVIEW = 200
"""Characters of a tool result a reply event keeps."""
ALL_TOPICS = (STREAM_TOPIC_EVENTS, STREAM_TOPIC_DELTAS)
TOPIC_TYPES: dict[str, type[ConversationEvent] | type[ModelDelta]] = {
    STREAM_TOPIC_EVENTS: ConversationEvent,
    STREAM_TOPIC_DELTAS: ModelDelta,
}
"""What each topic's items are."""


class ConversationStream(WorkflowStream):
    """The conversation's Workflow Stream, with the reads and trimming the feed needs.

    Built on the library's log (``_log``, ``_base_offset``): it has no public accessor
    for them yet. ``tests/unit/test_feed.py`` pins what this relies on."""

    def __init__(self, prior_state: WorkflowStreamState | None = None) -> None:
        # The library insists on being built from a method named __init__.
        super().__init__(prior_state)
        self._unencoded = False
        """Some item may still be kept as its value (published while replaying)."""
        self._pack(0)

    # Items are kept packed (``_Packed``): a held ``Payload`` object takes ~1.5 KB
    # whatever its size, a cached idle conversation holds up to ``IDLE_HELD`` of them.
    # While the run replays, an item is kept as its value and encoded only if it is
    # read or is still held when the run is live again (``turn_over``): most are
    # dropped unread, and encoding them was a tenth of a replayed turn's CPU.

    def _publish_to_topic(self, topic: str, value: Any) -> None:
        if workflow.unsafe.is_replaying() and not isinstance(value, Payload):
            self.publish_later(topic, lambda: value)
        elif isinstance(value, BaseModel):
            self._keep(topic, _Packed(_encoded(value)))
        else:
            super()._publish_to_topic(topic, value)
            self._pack(len(self._log) - 1)

    def publish_later(self, topic: str, build: Callable[[], Any]) -> None:
        """While the run replays: an item whose value ``build`` makes, only once the
        item is read or is still held when the run is live (``_Packed.later``)."""
        self._keep(topic, _Packed.later(build, workflow.payload_converter()))
        self._unencoded = True

    def _keep(self, topic: str, packed: _Packed) -> None:
        """Append an item already packed (the library's log holds it as its ``data``)."""
        data: Any = packed
        self._log.append(WorkflowStreamItem(topic=topic, data=data))

    def _on_publish(self, payload: PublishInput) -> None:
        start = len(self._log)
        super()._on_publish(payload)
        self._pack(start)

    def _pack(self, start: int) -> None:
        for item in self._log[start:]:
            if not isinstance(item.data, _Packed):
                item.data = _Packed(item.data.SerializeToString())  # type: ignore[assignment]

    @property
    def base(self) -> int:
        """The offset of the oldest item kept."""
        return self._base_offset

    @property
    def next_offset(self) -> int:
        """The offset the next item will have."""
        return self._base_offset + len(self._log)

    def attach_pollers(self) -> None:
        """Take the library's long-poll subscribers again after ``detach_pollers``
        (the run did not continue as new after all)."""
        self._detaching = False

    def keep(self, items: int) -> None:
        """Drop all but the newest ``items``."""
        if len(self._log) > items:
            self.truncate(self.next_offset - items)

    def encode_held(self) -> None:
        """Encode the items published while replaying that are still held, once the
        run is live (a cached conversation keeps bytes, not values)."""
        if self._unencoded and not workflow.unsafe.is_replaying():
            for item in self._log:
                item.data.SerializeToString()
            self._unencoded = False

    def items(self, after: int, topics: Sequence[str]) -> Any:
        """``(offset, topic, payload)`` of the items after offset ``after``, oldest first."""
        start = max(after + 1, self._base_offset)
        for index in range(start - self._base_offset, len(self._log)):
            item = self._log[index]
            if item.topic in topics:
                data = item.data
                payload = data.payload() if isinstance(data, _Packed) else data
                yield self._base_offset + index, item.topic, payload


_JSON_PLAIN_HEAD = Payload(metadata={"encoding": b"json/plain"}).SerializeToString() + b"\x12"
"""A serialized ``Payload`` with encoding ``json/plain``, up to its ``data`` (field 2,
length-delimited: tag ``0x12``, then the length and the bytes)."""


def _encoded(value: BaseModel) -> bytes:
    """The serialized ``Payload`` the workflow's payload converter makes of ``value``
    (``durable_agent.converter``: pydantic's ``to_json``, encoding ``json/plain``), made
    without going down the converter chain, which tries four other encodings first, and
    without a ``Payload`` object: the metadata's bytes, then the data's. A turn
    publishes about eight events (``tests/unit/test_feed.py`` pins the bytes against
    both converters, at every length of the data's length prefix)."""
    data = to_json(value)
    return _JSON_PLAIN_HEAD + _varint(len(data)) + data


def _varint(n: int) -> bytes:
    """``n`` as a protobuf base-128 varint (7 bits a byte, least significant first)."""
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


class _Packed:
    """A stream item's ``Payload`` as its serialized bytes, about a quarter of the
    memory. The library reads an item's data only through ``SerializeToString`` and
    ``ByteSize`` (``tests/unit/test_feed.py``), which this answers from the bytes.
    Made ``later`` from a function that makes a value, it makes the value and encodes
    it with the workflow's payload converter, as the library would have, when first
    asked for the bytes."""

    __slots__ = ("_bytes", "_later")

    def __init__(self, serialized: bytes) -> None:
        self._bytes = serialized
        self._later: tuple[Callable[[], Any], PayloadConverter] | None = None

    @classmethod
    def later(cls, build: Callable[[], Any], converter: PayloadConverter) -> _Packed:
        packed = cls(b"")
        packed._later = (build, converter)
        return packed

    def SerializeToString(self) -> bytes:
        if self._later is not None:
            build, converter = self._later
            value = converter.to_payloads([build()])[0]
            self._bytes, self._later = value.SerializeToString(), None
        return self._bytes

    def ByteSize(self) -> int:
        return len(self.SerializeToString())

    def payload(self) -> Payload:
        return Payload.FromString(self.SerializeToString())


class EventFeed:
    """Step events of one conversation, published to its stream and numbered from 1
    across its runs (``seq`` = offset + 1)."""

    def __init__(self, stream: ConversationStream, last_seq: int = 0) -> None:
        self.stream = stream
        self._deltas = stream.topic(STREAM_TOPIC_DELTAS)
        self._last_seq = last_seq
        self._turn_start = 0
        """The offset of the last ``turn_started`` event (of this run)."""

    def emit(self, kind: EventKind, turn: int, **fields: Any) -> None:
        """Record one event at the current workflow time. While the run replays, the
        event is made only if it is read (most are dropped unread): from the values
        given here, which no step changes afterwards."""
        seq = self._last_seq = self.stream.next_offset + 1
        if kind == "turn_started":
            self._turn_start = self.stream.next_offset
        at = workflow.now()
        if workflow.unsafe.is_replaying():
            self.stream.publish_later(
                STREAM_TOPIC_EVENTS, lambda: _event(seq, at, kind, turn, fields)
            )
        else:  # appended as the topic's publish would (its type is ours), encoded
            packed = _Packed(_encoded(_event(seq, at, kind, turn, fields)))
            self.stream._keep(STREAM_TOPIC_EVENTS, packed)
        if len(self.stream._log) > HELD:
            self.stream.keep(HELD)

    def publish_deltas(self, deltas: Sequence[ModelDelta]) -> None:
        """The last deltas of a streamed model call, which came with its result."""
        for delta in deltas:
            self._deltas.publish(delta)

    def turn_over(self) -> None:
        """A turn has ended: keep only the newest items (a cached conversation is light)."""
        self.stream.keep(IDLE_HELD)
        self.stream.encode_held()

    def page(self, request: EventsRequest, ended: bool) -> EventPage:
        """Events after ``request.after`` (a ``seq``), oldest first, at most ``request.limit``."""
        values = self._values(request.after - 1, (STREAM_TOPIC_EVENTS,))
        return EventPage(
            events=[value for _, value in islice(values, request.limit)],
            last_seq=self._last_seq,
            missed=self._missed(request.after - 1),
            ended=ended,
        )

    def read(self, request: StreamRequest, ended: bool) -> StreamPage:
        """Items after offset ``request.after``, oldest first, at most ``request.limit``."""
        topics = ALL_TOPICS if request.deltas else (STREAM_TOPIC_EVENTS,)
        values = self._values(request.after, topics)
        return StreamPage(
            items=[_item(offset, value) for offset, value in islice(values, request.limit)],
            next_offset=self.stream.next_offset,
            missed=self._missed(request.after),
            ended=ended,
        )

    def _values(
        self, after: int, topics: Sequence[str]
    ) -> Iterator[tuple[int, ConversationEvent | ModelDelta]]:
        """``(offset, event or delta)`` of the items after offset ``after``, decoded."""
        converter = workflow.payload_converter()
        for offset, topic, payload in self.stream.items(after, topics):
            yield offset, converter.from_payload(payload, TOPIC_TYPES[topic])

    def _missed(self, after: int) -> int:
        """Items after offset ``after`` no longer kept (events, and deltas of streamed
        turns: with no turn streamed, exactly the events missed)."""
        return max(0, self.stream.base - after - 1)

    def carry(self) -> tuple[CarriedStream, int]:
        """The newest items and the last event's ``seq``, for the next run. No
        publisher's dedup state: between turns none can still publish into the next run
        (the model activity's handle is pinned to this run, which closes)."""
        last_turn = self.stream.next_offset - self._turn_start
        self.stream.keep(min(last_turn, CARRIED_MAX))
        items = [CarriedItem(**_slot(value)) for _, value in self._values(-1, ALL_TOPICS)]
        return CarriedStream(base_offset=self.stream.base, items=items), self._last_seq


def _event(
    seq: int, at: datetime, kind: EventKind, turn: int, fields: dict[str, Any]
) -> ConversationEvent:
    """A step event; a reply's tool results cut to a preview."""
    reply = fields.get("reply")
    if isinstance(reply, Reply) and any(len(c.result) > RESULT_PREVIEW for c in reply.tool_calls):
        fields = fields | {
            "reply": reply.model_copy(
                update={
                    "tool_calls": [
                        c.model_copy(update={"result": c.result[:RESULT_PREVIEW]})
                        for c in reply.tool_calls
                    ]
                }
            )
        }
    return ConversationEvent(seq=seq, at=at, kind=kind, turn=turn, **fields)


def _item(offset: int, value: ConversationEvent | ModelDelta) -> StreamItem:
    return StreamItem(offset=offset, **_slot(value))


def _slot(value: ConversationEvent | ModelDelta) -> dict[str, Any]:
    """An item's value as the field it fills (``event`` or ``delta``)."""
    return {"event": value} if isinstance(value, ConversationEvent) else {"delta": value}


def restored_feed(carried: ContinuedState | None) -> EventFeed:
    """The feed of a new conversation, or of the next run of one. Call it from the
    workflow's ``__init__``: the stream registers its handlers there."""
    state, last_seq = carried_stream(carried)
    return EventFeed(ConversationStream(state), last_seq)


def carried_stream(carried: ContinuedState | None) -> tuple[WorkflowStreamState | None, int]:
    """The stream state a run starts from, and the last event's ``seq``: as carried, or
    rebuilt from the events a run carried before the stream existed (``seq`` - 1 is
    their offset, so readers' cursors hold)."""
    if carried is None:
        return None, 0
    if carried.stream is not None:
        values = [item.event or item.delta for item in carried.stream.items]
        base = carried.stream.base_offset
    else:
        values = list(carried.events)
        base = carried.events[0].seq - 1 if carried.events else carried.event_seq
    log = [_wire(value) for value in values if value is not None]
    return WorkflowStreamState(log=log, base_offset=base), carried.event_seq


def _wire(value: ConversationEvent | ModelDelta) -> _WorkflowStreamWireItem:
    """An item as the library carries it (base64 of the serialized ``Payload``)."""
    payload = workflow.payload_converter().to_payload(value)
    topic = STREAM_TOPIC_EVENTS if isinstance(value, ConversationEvent) else STREAM_TOPIC_DELTAS
    return _WorkflowStreamWireItem(
        topic=topic, data=base64.b64encode(payload.SerializeToString()).decode()
    )
