"""Conversations end to end through the Python client API, on the real dev server,
with the offline model and the real tool activities (HTTP tools on loopback)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence

import pytest
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError, CancelledError

from durable_agent import search_attributes
from durable_agent.client import (
    Conversation,
    ConversationClosed,
    ConversationNotFound,
    MessageRejected,
    get_conversation,
    start_conversation,
)
from durable_agent.contract import (
    UPDATE_SEND_MESSAGE,
    ConversationInput,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from durable_agent.testing.fake_tools import FakeToolServer
from durable_agent.testing.faults import Fault
from tests.helpers import eventually, history_events
from workflows.base import FLUSH_SUMMARY


async def test_multi_turn_conversation_with_tools(client: Client, task_queue: str) -> None:
    conversation = await start_conversation(client, task_queue=task_queue)

    first = await conversation.send_message("What is 12 * (3 + 4) - 5?")
    assert first.turn == 1
    assert [(c.name, c.outcome) for c in first.tool_calls] == [("calculator", "ok")]
    assert "79" in first.tool_calls[0].result and "79" in first.text
    assert first.backend == "offline" and first.model_calls == 2
    assert first.usage.input_tokens > 0 and first.usage.output_tokens > 0

    second = await conversation.send_message("Remember that the launch is on Friday.")
    assert [(c.name, c.outcome) for c in second.tool_calls] == [("save_note", "ok")]

    third = await conversation.send_message("What did I note?")
    assert [c.name for c in third.tool_calls] == ["list_notes"]
    assert "launch is on Friday" in third.tool_calls[0].result
    assert "launch is on Friday" in third.text

    status = await conversation.status()
    assert status.state == "idle" and status.turns == 3 and status.queued_messages == 0
    assert status.model_calls == 6 and status.tool_calls == 3
    total = first.usage + second.usage + third.usage
    assert status.usage == total and status.last_error is None

    transcript = await conversation.transcript()
    roles = [m.role for m in transcript.messages]
    assert roles == ["user", "assistant"] * 6
    # Every tool_use is answered by a tool_result with the same id in the next message.
    for asked, answered in zip(transcript.messages[1::2], transcript.messages[2::2], strict=False):
        uses = [b.id for b in asked.content if isinstance(b, ToolUseBlock)]
        results = [b.tool_use_id for b in answered.content if isinstance(b, ToolResultBlock)]
        assert uses == results


async def test_several_tool_calls_in_one_response_run_concurrently(
    client: Client, task_queue: str, tool_server: FakeToolServer
) -> None:
    # The weather API answers slowly; the calculator must not wait for it.
    tool_server.faults.add(Fault(delay=1.0, path="/v1/forecast"))
    conversation = await start_conversation(client, task_queue=task_queue)
    reply = await conversation.send_message("What's the weather in Paris and what is 2 ** 10?")
    assert sorted(c.name for c in reply.tool_calls) == ["calculator", "get_weather"]
    assert all(c.outcome == "ok" for c in reply.tool_calls)
    assert reply.model_calls == 2  # both tool calls came from one model response
    assert "Paris" in reply.text and "1024" in reply.text

    handle = client.get_workflow_handle(conversation.id)
    history = await handle.fetch_history()
    weather = next(
        e.event_id
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == "tool.get_weather"
    )
    weather_done = next(
        e.event_id
        for e in history.events
        if e.HasField("activity_task_completed_event_attributes")
        and e.activity_task_completed_event_attributes.scheduled_event_id == weather
    )
    # The calculator runs as a local activity (a marker): its result was recorded while
    # the slow weather call was still running, not after it.
    calculator = [
        e.event_id
        for e in history.events
        if e.HasField("marker_recorded_event_attributes")
        and b"tool.calculator" in e.marker_recorded_event_attributes.SerializeToString()
    ]
    assert len(calculator) == 1 and calculator[0] < weather_done


async def test_concurrent_messages_are_queued_not_lost(client: Client, task_queue: str) -> None:
    conversation = await start_conversation(client, task_queue=task_queue)
    texts = [f"What is {n} + {n}?" for n in range(1, 6)]
    replies = await asyncio.gather(*(conversation.send_message(t) for t in texts))
    assert sorted(r.turn for r in replies) == [1, 2, 3, 4, 5]
    for n, reply in enumerate(replies, start=1):
        assert str(2 * n) in reply.text
    transcript = await conversation.transcript()
    user_texts = [
        b.text
        for m in transcript.messages
        for b in m.content
        if isinstance(b, TextBlock) and m.role == "user"
    ]
    assert sorted(user_texts) == sorted(texts)
    # The turn number says where each message landed in the transcript.
    by_turn = {r.turn: t for r, t in zip(replies, texts, strict=True)}
    assert user_texts == [by_turn[turn] for turn in range(1, 6)]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   \n\t ", "empty"),
        ("hello\x00world", "control character U+0000 at position 5"),
        ("x" * 32_001, "32001 characters; the limit is 32000"),
    ],
)
async def test_bad_messages_are_rejected_and_conversation_stays_usable(
    client: Client, task_queue: str, text: str, reason: str
) -> None:
    conversation = await start_conversation(client, task_queue=task_queue)
    handle = client.get_workflow_handle(conversation.id)
    await conversation.send_message("What is 1 + 1?")
    before = await history_events(handle)

    with pytest.raises(MessageRejected) as rejected:
        await conversation.send_message(text)
    assert rejected.value.type == "InvalidMessage"
    assert reason in rejected.value.reason

    # Nothing entered history (the governor's settlement may still land after a reply).
    updates = [e for e in await history_events(handle) if "UPDATE" in e]
    assert updates == [e for e in before if "UPDATE" in e]
    reply = await conversation.send_message("What is 2 + 2?")
    assert reply.turn == 2 and "4" in reply.text


async def test_malformed_payload_is_rejected_with_a_typed_error(
    client: Client, task_queue: str
) -> None:
    conversation = await start_conversation(client, task_queue=task_queue)
    handle = client.get_workflow_handle(conversation.id)
    from temporalio.client import WorkflowUpdateFailedError

    for payload, reason in [
        ({"txt": "hi"}, "text: Field required; txt: Extra inputs are not permitted"),
        ({"text": 42}, "text: Input should be a valid string"),
        (["hi"], "message: Input should be an object"),
    ]:
        with pytest.raises(WorkflowUpdateFailedError) as failed:
            await handle.execute_update(UPDATE_SEND_MESSAGE, payload)
        cause = failed.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == "InvalidMessage"
        assert "malformed message" in cause.message and reason in cause.message
    reply = await conversation.send_message("What is 3 * 3?")
    assert reply.turn == 1 and "9" in reply.text


async def test_end_finishes_queued_turns_then_completes(client: Client, task_queue: str) -> None:
    conversation = await start_conversation(client, task_queue=task_queue)
    pending = asyncio.create_task(conversation.send_message("What is 6 * 7?"))
    await eventually(conversation.status, until=lambda s: s.state != "idle" or s.turns == 1)
    await conversation.end()
    reply = await pending
    assert "42" in reply.text
    result = await conversation.result()
    assert result.turns == 1 and result.usage == reply.usage
    assert (await conversation.handle.describe()).status == WorkflowExecutionStatus.COMPLETED


async def test_message_after_end_is_rejected(
    client: Client, task_queue: str, tool_server: FakeToolServer
) -> None:
    # Hold the first turn in a slow weather API so `end` arrives while it runs.
    tool_server.faults.add(Fault(delay=1.5, path="/v1/forecast"))
    conversation = await start_conversation(client, task_queue=task_queue)
    turn = asyncio.create_task(conversation.send_message("What's the weather in Tokyo?"))
    await eventually(conversation.status, until=lambda s: s.state == "running_tools")
    await conversation.end()
    with pytest.raises(MessageRejected) as rejected:
        await conversation.send_message("one more thing")
    assert rejected.value.type == "ConversationEnded"
    assert (await turn).tool_calls[0].outcome == "ok"
    assert (await conversation.result()).turns == 1
    with pytest.raises(MessageRejected) as after:
        await conversation.send_message("and now?")
    assert after.value.type == "ConversationEnded"


async def test_cancel_cancels_in_flight_activities(
    client: Client, task_queue: str, tool_server: FakeToolServer
) -> None:
    tool_server.faults.add(Fault(delay=30.0, path="/v1/forecast"))
    conversation = await start_conversation(client, task_queue=task_queue)
    turn = asyncio.create_task(conversation.send_message("What's the weather in Lima?"))
    await eventually(conversation.status, until=lambda s: s.state == "running_tools")
    await conversation.cancel()

    with pytest.raises(WorkflowFailureError) as failure:
        await asyncio.wait_for(conversation.result(), timeout=20)
    assert isinstance(failure.value.cause, CancelledError)
    events = await history_events(conversation.handle)
    assert "ACTIVITY_TASK_CANCEL_REQUESTED" in events
    assert events[-1] == "WORKFLOW_EXECUTION_CANCELED"
    with pytest.raises(ConversationClosed):  # the caller of the in-flight turn hears of it
        await asyncio.wait_for(turn, timeout=20)


async def test_unknown_tool_in_conversation_input_fails_before_start(client: Client) -> None:
    with pytest.raises(KeyError, match="unknown tools"):
        await start_conversation(client, ConversationInput(tools=["teleport"]))


async def test_tool_subset_is_respected(client: Client, task_queue: str) -> None:
    conversation = await start_conversation(
        client, ConversationInput(tools=["calculator"]), task_queue=task_queue
    )
    reply = await conversation.send_message("Remember to buy milk and what is 5 - 3?")
    assert [c.name for c in reply.tool_calls] == ["calculator"]


async def test_activities_have_no_summary_unless_asked(client: Client, task_queue: str) -> None:
    """Summaries are payloads every workflow task encodes and the server stores: off by
    default (``ConversationInput.summaries``; the UI test turns them on)."""
    conversation = await start_conversation(
        client, ConversationInput(tools=["calculator"]), task_queue=task_queue
    )
    assert (await conversation.send_message("What is 2 + 2?")).tool_calls
    history = await conversation.handle.fetch_history()
    calls = [  # the model calls, and the calculator's local activity
        e
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
        or b"tool.calculator" in e.SerializeToString()
    ]
    assert len(calls) == 3 and not any(e.user_metadata.HasField("summary") for e in calls)


async def test_unknown_conversation_is_a_typed_error(client: Client) -> None:
    conversation = get_conversation(client, f"missing-{uuid.uuid4().hex}")
    with pytest.raises(ConversationNotFound):
        await conversation.status()


async def test_search_attributes_and_details_show_progress_in_the_ui(
    client: Client, task_queue: str
) -> None:
    conversation = await start_conversation(
        client,
        # Every change upserted at once (the counters are paced by default: below).
        ConversationInput(tenant="ui-tenant", summaries=True, search_attributes_interval_seconds=0),
        task_queue=task_queue,
    )
    reply = await conversation.send_message("What is 2 + 2?")
    described = await conversation.handle.describe()
    attributes = described.typed_search_attributes
    assert attributes.get(search_attributes.TENANT) == "ui-tenant"
    assert attributes.get(search_attributes.TURNS) == 1
    assert attributes.get(search_attributes.STATUS) == "idle"
    assert attributes.get(search_attributes.TOKENS) == reply.usage.total_tokens
    found = [
        w.id
        async for w in client.list_workflows(
            f"AgentTenant = 'ui-tenant' AND AgentTurns >= 1 AND WorkflowId = '{conversation.id}'"
        )
    ]
    assert found == [conversation.id]
    history = await conversation.handle.fetch_history()
    summaries = [
        json.loads(e.user_metadata.summary.data)  # a JSON payload
        for e in history.events
        if e.HasField("user_metadata") and e.user_metadata.HasField("summary")
        # activities, and local activities (markers) such as the calculator
    ]
    assert any("tokens in" in s for s in summaries)  # e.g. "offline-planner · ~300 tokens in"
    assert not any("1 messages" in s for s in summaries)
    assert any(s.endswith("calculator(2 + 2)") for s in summaries)
    # The turn deadline needs no timer: its steps are capped (``TIMERLESS_REVISION``).
    assert not any(s.startswith("turn deadline: ") for s in summaries)
    # Later upserts carry only what changed; the server keeps the rest.
    await conversation.send_message("What is 3 + 3?")
    attributes = (await conversation.handle.describe()).typed_search_attributes
    assert attributes.get(search_attributes.TENANT) == "ui-tenant"
    assert attributes.get(search_attributes.TURNS) == 2
    events = (await conversation.handle.fetch_history()).events
    upserts = [
        set(e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields)
        for e in events
        if e.HasField("upsert_workflow_search_attributes_event_attributes")
    ]
    # The start request set all five (the first workflow task upserts none of them);
    # the tenant never changes, so no upsert names it.
    started = events[0].workflow_execution_started_event_attributes.search_attributes
    assert set(started.indexed_fields) == set(search_attributes.ALL)
    assert len(upserts) == 2 and all(search_attributes.TENANT.name not in u for u in upserts)
    assert search_attributes.TURNS.name in upserts[-1]


async def _paced(client: Client, task_queue: str, *, interval: float) -> Conversation:
    """A conversation that upserts its counters at most once per ``interval`` seconds."""
    return await start_conversation(
        client,
        ConversationInput(tenant="paced", search_attributes_interval_seconds=interval),
        task_queue=task_queue,
    )


def _flush_timers(events: Sequence[HistoryEvent]) -> list[HistoryEvent]:
    """Timers started to upsert counters held back (summary ``FLUSH_SUMMARY``)."""
    return [
        e
        for e in events
        if e.HasField("timer_started_event_attributes")
        and e.HasField("user_metadata")
        and json.loads(e.user_metadata.summary.data or b"null") == FLUSH_SUMMARY
    ]


def _upserts(events: Sequence[HistoryEvent]) -> list[set[str]]:
    return [
        set(e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields)
        for e in events
        if e.HasField("upsert_workflow_search_attributes_event_attributes")
    ]


async def test_counters_are_upserted_at_most_once_per_interval(
    client: Client, task_queue: str
) -> None:
    conversation = await _paced(client, task_queue, interval=3600)
    for question in ("What is 2 + 2?", "What is 3 + 3?", "What is 4 + 4?"):
        assert (await conversation.send_message(question)).status == "ok"
    attributes = (await conversation.handle.describe()).typed_search_attributes
    # The first turn's counters at once; the next two are held back (an hour).
    assert attributes.get(search_attributes.TURNS) == 1
    assert attributes.get(search_attributes.STATUS) == "idle"
    events = (await conversation.handle.fetch_history()).events
    assert len(_upserts(events)) == 1
    timers = _flush_timers(events)
    assert len(timers) == 1  # one timer for whatever is held back, not one per turn
    # The status changes, so the end upserts at once, with the counters held back.
    await conversation.end()
    result = await conversation.result()
    attributes = (await conversation.handle.describe()).typed_search_attributes
    assert attributes.get(search_attributes.STATUS) == "ended"
    assert attributes.get(search_attributes.TURNS) == 3
    assert attributes.get(search_attributes.TOKENS) == result.usage.total_tokens


async def test_counters_held_back_are_upserted_when_the_interval_passes(
    client: Client, task_queue: str
) -> None:
    conversation = await _paced(client, task_queue, interval=4)
    await conversation.send_message("What is 2 + 2?")
    await conversation.send_message("What is 3 + 3?")
    # No more messages: the timer upserts the second turn's counters (or, on a machine
    # so slow that the second turn ended 4 s after the first, that turn itself did).
    described = await eventually(
        conversation.handle.describe,
        until=lambda d: d.typed_search_attributes.get(search_attributes.TURNS) == 2,
        timeout=30,
    )
    assert described.typed_search_attributes.get(search_attributes.STATUS) == "idle"
    events = (await conversation.handle.fetch_history()).events
    upserts = _upserts(events)
    assert len(upserts) == 2 and search_attributes.TURNS.name in upserts[-1]
    timers = _flush_timers(events)
    assert len(timers) <= 1
    if timers:  # the last upsert came when that timer fired
        fired = [e.event_id for e in events if e.HasField("timer_fired_event_attributes")]
        last = max(
            e.event_id
            for e in events
            if e.HasField("upsert_workflow_search_attributes_event_attributes")
        )
        assert fired and fired[-1] < last
    await conversation.end()


async def test_cancelling_upserts_the_counters_held_back(client: Client, task_queue: str) -> None:
    conversation = await _paced(client, task_queue, interval=3600)
    await conversation.send_message("What is 2 + 2?")
    await conversation.send_message("What is 3 + 3?")
    await conversation.cancel()
    with pytest.raises(WorkflowFailureError):
        await conversation.result()
    attributes = (await conversation.handle.describe()).typed_search_attributes
    assert attributes.get(search_attributes.TURNS) == 2
