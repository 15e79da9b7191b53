"""The conversation's stream (workflow side): step events and model deltas on one
offset-addressed log, read by the ``stream`` query, carried across continue-as-new; the
``events`` query keeps paging step events by ``seq`` (= offset + 1)."""

from __future__ import annotations

import asyncio
import json
import uuid

from temporalio.client import Client
from temporalio.contrib.workflow_streams import WorkflowStreamClient

from durable_agent.client import Conversation, start_conversation
from durable_agent.config import Settings
from durable_agent.contract import (
    QUERY_EVENTS,
    QUERY_STREAM,
    STREAM_TOPIC_DELTAS,
    STREAM_TOPIC_EVENTS,
    ConversationEvent,
    ConversationInput,
    EventPage,
    EventsRequest,
    ModelDelta,
    StreamPage,
    StreamRequest,
)
from tests.helpers import eventually, running_worker


async def _stream(conversation: Conversation, client: Client, after: int = -1, **kw) -> StreamPage:
    handle = client.get_workflow_handle(conversation.id)
    return await handle.query(
        QUERY_STREAM, StreamRequest(after=after, **kw), result_type=StreamPage
    )


async def _events(conversation: Conversation, client: Client, after: int = 0) -> EventPage:
    handle = client.get_workflow_handle(conversation.id)
    return await handle.query(QUERY_EVENTS, EventsRequest(after=after), result_type=EventPage)


async def _publish_delta(client: Client, workflow_id: str, text: str) -> None:
    """A delta published as the model activity does (a signal with a batch)."""
    async with WorkflowStreamClient.create(client, workflow_id) as stream:
        stream.topic(STREAM_TOPIC_DELTAS).publish(
            ModelDelta(turn=1, model_call=1, kind="text", text=text), force_flush=True
        )


async def test_step_events_and_deltas_read_as_one_sequence(client: Client, task_queue: str) -> None:
    conversation = await start_conversation(client, ConversationInput(), task_queue=task_queue)
    reply = await conversation.send_message("What is 6 * 7?")
    page = await _stream(conversation, client)
    kinds = [item.event.kind for item in page.items if item.event]
    assert kinds[0] == "turn_started" and kinds[-1] == "reply"
    assert [item.offset for item in page.items] == list(range(len(page.items)))
    assert all(item.event and item.event.seq == item.offset + 1 for item in page.items)
    assert page.items[-1].event.reply == reply and page.next_offset == len(page.items)

    await _publish_delta(client, conversation.id, "partial ")
    page = await eventually(
        lambda: _stream(conversation, client, after=page.next_offset - 1),
        until=lambda p: bool(p.items),
    )
    assert page.items[0].delta == ModelDelta(turn=1, model_call=1, kind="text", text="partial ")
    # Step-event readers skip deltas: the next event's seq leaps over the delta.
    await conversation.send_message("What is 1 + 1?")
    events = await _events(conversation, client, after=page.items[0].offset)
    assert events.events[0].seq == page.items[0].offset + 2 and events.missed == 0
    steps_only = await _stream(conversation, client, deltas=False)
    assert all(item.event for item in steps_only.items)
    assert len(steps_only.items) == len((await _events(conversation, client)).events)


async def test_a_turn_not_streamed_sends_no_stream_target_and_gets_no_signal(
    client: Client, task_queue: str
) -> None:
    conversation = await start_conversation(client, ConversationInput(), task_queue=task_queue)
    await conversation.send_message("What is 6 * 7?")
    await conversation.send_message("What is 2 * 7?")
    handle = client.get_workflow_handle(conversation.id)
    history = await handle.fetch_history()
    signals = [
        e for e in history.events if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    assert signals == []
    streamed = await start_conversation(
        client, ConversationInput(stream=True), task_queue=task_queue
    )
    await streamed.send_message("What is 6 * 7?")
    targets = []
    for e in (await client.get_workflow_handle(streamed.id).fetch_history()).events:
        attributes = e.activity_task_scheduled_event_attributes
        if e.HasField("activity_task_scheduled_event_attributes") and (
            attributes.activity_type.name == "model.invoke"
        ):
            target = json.loads(attributes.input.payloads[0].data)["stream"]
            targets.append((target["turn"], target["model_call"], target["workflow_id"]))
    assert targets == [(1, 1, None), (1, 2, None)]  # to the conversation's own stream


async def test_the_stream_carries_on_across_continue_as_new(
    client: Client, task_queue: str
) -> None:
    conversation = await start_conversation(
        client,
        ConversationInput(continue_as_new_after_turns=1, stream=True),
        task_queue=task_queue,
    )
    await conversation.send_message("What is 6 * 7?")
    await _publish_delta(client, conversation.id, "between turns ")
    reply = await conversation.send_message("Hello")  # streamed: its events and deltas
    await eventually(conversation.status, until=lambda s: s.runs >= 3)
    # Carried into the next run: the whole last turn (its events and the deltas the
    # model wrote, decoded as they were published), and nothing before it.
    carried = await _stream(conversation, client)
    assert carried.missed == carried.items[0].offset
    assert {
        i.event.turn if i.event else i.delta.turn for i in carried.items if i.event or i.delta
    } == {2}
    events = [i.event.kind for i in carried.items if i.event]
    assert events[0] == "turn_started" and events[-1] == "reply"
    streamed = "".join(i.delta.text for i in carried.items if i.delta and i.delta.kind == "text")
    assert streamed and streamed.strip() in reply.text
    # ... but not its publisher's dedup state: nothing publishes into a run it was not
    # called from, so the next run's input carries none.
    started = (await conversation.handle.fetch_history()).events[0]
    attributes = started.workflow_execution_started_event_attributes
    packed = json.loads(attributes.input.payloads[0].data)["continued"]
    continued = ConversationInput.model_validate({"continued": packed}).continued
    assert continued is not None and continued.stream is not None and continued.stream.items
    assert "publishers" not in continued.stream.model_dump()
    await conversation.send_message("What is 2 + 2?")
    cursor = carried.items[-1].offset
    page = await _stream(conversation, client, after=cursor)
    # The next run's items follow on, none missed, offsets contiguous.
    assert page.missed == 0
    assert [i.offset for i in page.items] == list(range(cursor + 1, page.next_offset))
    assert [i.event.turn for i in page.items if i.event and i.event.kind == "reply"] == [3]


async def test_a_library_subscriber_follows_continue_as_new_and_ends_with_the_conversation(
    client: Client, task_queue: str
) -> None:
    """The library's long-poll subscription works too: the run releases it before it
    continues as new (it follows to the next run) and before it ends (it drains)."""
    conversation = await start_conversation(
        client, ConversationInput(continue_as_new_after_turns=1), task_queue=task_queue
    )
    seen: list[tuple[int, str]] = []

    async def subscribe() -> None:
        stream = WorkflowStreamClient.create(client, conversation.id)
        async for item in stream.subscribe(STREAM_TOPIC_EVENTS, result_type=ConversationEvent):
            seen.append((item.offset, item.data.kind))

    reader = asyncio.ensure_future(subscribe())
    for n in range(3):
        await conversation.send_message(f"What is {n} * 7?")
        # A reader that keeps up (a chat window): one further behind than the items a
        # run carries (its last turn) is sent back to the oldest kept by the library.
        await eventually(
            lambda: asyncio.sleep(0, [k for _, k in seen].count("reply")),
            until=lambda replies, n=n: replies == n + 1,
        )
    await conversation.end()
    await conversation.result()
    await asyncio.wait_for(reader, timeout=30)
    assert [kind for _, kind in seen].count("reply") == 3 and seen[-1][1] == "ended"
    assert [offset for offset, _ in seen] == sorted({offset for offset, _ in seen})
    assert (await conversation.status()).runs == 4


async def test_a_worker_that_replays_the_conversation_serves_the_same_stream(
    client: Client, settings: Settings
) -> None:
    # Items published while a run replays are kept as values and encoded when read.
    queue = f"feed-{uuid.uuid4().hex[:8]}"
    async with running_worker(client, settings, queue):
        conversation = await start_conversation(client, ConversationInput(), task_queue=queue)
        await conversation.send_message("What is 6 * 7?")
        await conversation.send_message("Hello")
        cached = await _stream(conversation, client)
    # With no cache, every task and query replays the whole history first.
    async with running_worker(client, settings, queue, max_cached_workflows=0):
        replayed = await _stream(conversation, client)
        reply = await conversation.send_message("What is 2 + 2?")  # live after replay
        after = await _stream(conversation, client, after=cached.next_offset - 1)
    assert replayed.model_dump(exclude=_AT) == cached.model_dump(exclude=_AT)
    assert [i.offset for i in after.items] == list(range(cached.next_offset, after.next_offset))
    assert after.items[-1].event and after.items[-1].event.reply == reply


_AT = {"items": {"__all__": {"event": {"at"}}}}
"""Workflow time, which a replay may read a few ms apart."""
