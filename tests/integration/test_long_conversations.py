"""Long conversations: history stays flat per turn, and a conversation continues as new
(by its own threshold or the server's suggestion) carrying its state exactly, under the
same workflow id, without clients noticing."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHandle

from durable_agent.client import Conversation, connect, start_conversation
from durable_agent.config import Settings
from durable_agent.contract import (
    QUERY_EVENTS,
    SIGNAL_FORCE_BREAKER,
    UPDATE_SEND_MESSAGE,
    BreakerCommand,
    ConversationEvent,
    ConversationInput,
    EventPage,
    EventsRequest,
    Reply,
    SafetyPolicy,
    UserMessage,
)
from durable_agent.devserver import DevServer
from durable_agent.stores.blobs import open_blob_store, whole_transcript
from durable_agent.testing.fake_tools import FakeToolServer
from tests.conftest import make_settings
from tests.helpers import eventually, run_command, running_worker, saved_notes
from tests.integration.test_approvals import _ask
from workflows.replay import replayer

MESSAGES = [
    "What is {n} * 7?",
    "Remember that item {n} is done",
    "What's the weather in Paris and what is {n} + 1?",
]
# These tests are about durability, not prompt injection: a note after a weather lookup
# runs without approval here (an explicit relaxation of the provenance rule).
NOTES_AFTER_WEATHER = SafetyPolicy(untrusted_allowed_tools=["save_note"])
DURABLE = ConversationInput(safety=NOTES_AFTER_WEATHER)


async def _runs(client: Client, workflow_id: str) -> list[WorkflowHandle]:
    """Every run of ``workflow_id``, oldest first."""
    runs = [
        client.get_workflow_handle(e.id, run_id=e.run_id)
        async for e in client.list_workflows(f"WorkflowId = '{workflow_id}'")
    ]
    return list(reversed(runs))


async def _model_inputs(handle: WorkflowHandle) -> list[dict]:
    """The decoded inputs of every ``model.invoke`` scheduled in one run."""
    history = await handle.fetch_history()
    found = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attributes = event.activity_task_scheduled_event_attributes
            if attributes.activity_type.name == "model.invoke":
                found.append(json.loads(attributes.input.payloads[0].data))
    return found


def _is_lease(event: HistoryEvent) -> bool:
    """Whether ``event`` records a ``governor.lease`` local activity."""
    if event.event_type != EventType.EVENT_TYPE_MARKER_RECORDED:
        return False
    data = event.marker_recorded_event_attributes.details.get("data")
    return data is not None and b'"governor.lease"' in data.payloads[0].data


async def test_model_calls_carry_only_new_messages_and_history_stays_flat(
    client: Client, task_queue: str
) -> None:
    conversation = await start_conversation(client, DURABLE, task_queue=task_queue)
    ends = []  # the number of history events after each turn
    for n in range(24):
        await conversation.send_message(MESSAGES[n % 3].format(n=n))
        ends.append(len((await conversation.handle.fetch_history()).events))
    events = (await conversation.handle.fetch_history()).events
    inputs = await _model_inputs(conversation.handle)
    # Each call carries the messages since the previous one (1 or 2), never the transcript.
    assert max(len(i["messages"]) for i in inputs[1:]) <= 2
    assert inputs[-1]["window"]["base"] > 60
    # Bytes of history of turns 3-5 and of turns 21-23 (the same three kinds of turn),
    # leaving out the tenant leases: how many a turn takes follows the tenant's rate-limit
    # bucket (how fast calls came, and other conversations of the tenant), not the
    # conversation's length.
    early, late = (
        sum(e.ByteSize() for e in events[ends[a] : ends[b]] if not _is_lease(e))
        for a, b in ((2, 5), (20, 23))
    )
    assert late <= 1.2 * early, (early, late)
    assert "Remember that item 22 is done" in (await conversation.transcript()).model_dump_json()


async def test_a_worker_without_the_transcript_asks_the_workflow(
    client: Client, tmp_path: Path, tool_server: FakeToolServer
) -> None:
    cached_queue, uncached_queue = (f"window-{uuid.uuid4().hex[:8]}" for _ in range(2))
    replies = {}
    for queue, capacity in ((cached_queue, 256), (uncached_queue, 0)):
        settings = make_settings(
            tmp_path / queue, tool_server, transcript_cache_conversations=capacity
        )
        async with running_worker(client, settings, queue):
            conversation = await start_conversation(client, DURABLE, task_queue=queue)
            replies[queue] = [
                (await conversation.send_message(MESSAGES[n % 3].format(n=n))).text
                for n in range(6)
            ]
    assert replies[cached_queue] == replies[uncached_queue]
    assert "The result of 5 + 1 is 6" in replies[uncached_queue][-1]


@pytest.fixture(scope="module")
async def suggesting_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DevServer]:
    """A dev server that suggests continue-as-new after 60 events or 40 KB of history."""
    server = DevServer(
        db_file=tmp_path_factory.mktemp("can") / "temporal.sqlite3",
        extra_args=[
            "--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=60",
            "--dynamic-config-value", "limit.historySize.suggestContinueAsNew=40000",
        ],
    )  # fmt: skip
    await server.start()
    yield server
    server.stop()


async def test_continue_as_new_when_the_server_suggests_it_keeps_everything(
    suggesting_server: DevServer, tmp_path: Path, tool_server: FakeToolServer
) -> None:
    client = await connect(suggesting_server.address)
    settings = make_settings(tmp_path, tool_server)
    queue = f"can-{uuid.uuid4().hex[:8]}"
    policy = ConversationInput(safety=SafetyPolicy(approval_tools=["save_note"]))
    async with running_worker(client, settings, queue):
        conversation = await start_conversation(client, policy, task_queue=queue)
        await conversation.handle.signal(
            SIGNAL_FORCE_BREAKER, BreakerCommand(dependency="tool:web_search", mode="open")
        )
        usage = 0
        for n in range(15):
            if n % 3 == 1:  # a note: needs approval, kept in the audit list
                reply_task, pending = await _ask(conversation, f"Remember that round {n} began")
                await conversation.approve(pending.call_id, by="auditor")
                reply = await reply_task
            else:
                reply = await conversation.send_message(MESSAGES[n % 3].format(n=n))
            assert reply.status == "ok" and reply.turn == n + 1
            usage += reply.usage.input_tokens
        status = await conversation.status()
        transcript = await conversation.transcript()
        approvals = await conversation.approvals()
        runs = await _runs(client, conversation.id)

        assert status.runs == len(runs) >= 3  # several continue-as-news …
        assert status.turns == 15 and status.state == "idle"  # … and nothing lost:
        assert status.usage.input_tokens == usage
        assert status.budget is not None and status.budget.spent.usage.input_tokens == usage
        assert status.breakers["tool:web_search"].forced == "open"
        assert [d.by for d in approvals.decisions] == ["auditor"] * 5
        # Earlier runs' messages are archived (flat-continue-v1): the whole transcript is
        # the archive's messages, then the run's.
        assert transcript.archived is not None
        store = open_blob_store(settings.blob_db)
        whole = await whole_transcript(store, transcript)
        await store.close()
        users = [m.text() for m in whole if m.role == "user" and m.text()]
        assert users[0] == "What is 0 * 7?" and len(users) == 15
        assert await saved_notes(settings) == [f"round {n} began" for n in range(1, 15, 3)]
        # The same id serves on.
        reply = await conversation.send_message("What is 2 + 2?")
        assert "4" in reply.text and reply.turn == 16

    # Each run replays against the current code.
    for run in runs:
        history = await run.fetch_history()
        assert (await replayer().replay_workflow(history)).replay_failure is None


async def _events(conversation: Conversation, after: int) -> EventPage:
    page: EventPage = await conversation.handle.query(
        QUERY_EVENTS, EventsRequest(after=after, limit=256), result_type=EventPage
    )
    return page


async def test_continue_as_new_after_a_number_of_turns(
    client: Client, task_queue: str, settings: Settings
) -> None:
    config = ConversationInput(continue_as_new_after_turns=2, safety=NOTES_AFTER_WEATHER)
    conversation = await start_conversation(client, config, task_queue=task_queue)
    usage = 0
    cursor = first = lagging = 0
    seen: list[ConversationEvent] = []
    for n in range(7):
        reply = await conversation.send_message(MESSAGES[n % 3].format(n=n))
        usage += reply.usage.input_tokens
        assert reply.turn == n + 1
        if n == 2:  # a reader of the event feed that stops reading (run 2)
            lagging = (await _events(conversation, 0)).last_seq
        if n == 4:  # and one from here (run 3) on
            cursor = first = (await _events(conversation, 0)).last_seq
        elif n > 4:  # the first reads after each turn
            page = await _events(conversation, cursor)
            assert page.missed == 0
            seen += page.events
            cursor = page.last_seq
    status = await conversation.status()
    assert status.runs == 4 and status.turns == 7
    # The feed carries on across runs: a reader that keeps up misses no event.
    assert [e.seq for e in seen] == list(range(first + 1, cursor + 1))
    replies = [e.reply for e in seen if e.reply]
    assert [r.turn for r in replies] == [6, 7] and replies[-1] == reply
    # One further behind than a run carries (the last turn) is told how many it missed.
    late = await _events(conversation, lagging)
    assert late.missed > 0 and late.events[0].seq == lagging + late.missed + 1
    assert late.events[-1].seq == cursor
    assert status.usage.input_tokens == usage  # counters exact across runs
    assert len(await _runs(client, conversation.id)) == 4
    await conversation.end()
    result = await conversation.result()
    assert result.turns == 7 and result.usage.input_tokens == usage


async def test_old_turns_are_compacted_and_the_originals_archived(
    client: Client, task_queue: str, settings: Settings
) -> None:
    config = ConversationInput(
        context_window_tokens=3000, keep_recent_turns=2, safety=NOTES_AFTER_WEATHER
    )
    conversation = await start_conversation(client, config, task_queue=task_queue)
    for n in range(12):
        reply = await conversation.send_message(MESSAGES[n % 3].format(n=n))
        assert reply.status == "ok", reply
    assert "The result of 9 * 7 is 63" in (await conversation.send_message("What is 9 * 7?")).text

    transcript = await conversation.transcript()
    first = transcript.messages[0].text()
    assert first.startswith("[Summary of") and "originals archived as transcript/" in first
    assert "What is" in first  # the extractive summary keeps the requests
    compactions = [
        e
        for e in (await conversation.handle.fetch_history()).events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == "model.compact"
    ]
    assert compactions  # a model.compact activity ran
    latest = first.split("originals archived as ")[1].split("]")[0]
    blobs = open_blob_store(settings.blob_db)
    oldest = json.loads(await blobs.get(f"transcript/{conversation.id}/1"))
    assert oldest[0]["content"][0]["text"] == "What is 0 * 7?"  # verbatim
    if latest != f"transcript/{conversation.id}/1":  # compacted again: the summary folds in
        assert json.loads(await blobs.get(latest))[0]["content"][0]["text"].startswith("[Summary")
    await blobs.close()


async def test_a_large_tool_result_stays_out_of_history(
    client: Client, tmp_path: Path, tool_server: FakeToolServer
) -> None:
    settings = make_settings(tmp_path, tool_server, tool_result_inline_bytes=256)
    queue = f"offload-{uuid.uuid4().hex[:8]}"
    async with running_worker(client, settings, queue):
        conversation = await start_conversation(client, task_queue=queue)
        for n in range(4):
            await conversation.send_message(f"Remember that marker-{n} " + "lorem ipsum " * 70)
        reply = await conversation.send_message("List my notes")
    (call,) = reply.tool_calls
    assert call.result_ref == f"tool-result/{conversation.id}/5/0"
    assert "more characters; the model receives the whole result" in call.result
    assert "marker-0" not in call.result  # the oldest note is past the preview …
    assert "marker-0" in reply.text  # … and still reached the model
    history = await conversation.handle.fetch_history()
    listing = next(
        e.event_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == "tool.list_notes"
    )
    (result,) = [
        e.activity_task_completed_event_attributes.result.payloads[0].data
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
        and e.activity_task_completed_event_attributes.scheduled_event_id == listing
    ]
    assert len(result) < 2600 and b"marker-0" not in result  # a preview and the key


async def test_export_and_replay_every_run_from_the_cli(
    client: Client, temporal_server: DevServer, task_queue: str, tmp_path: Path
) -> None:
    config = ConversationInput(continue_as_new_after_turns=1)
    conversation = await start_conversation(client, config, task_queue=task_queue)
    for n in range(3):
        await conversation.send_message(MESSAGES[n % 3].format(n=n))
    code, out, err = await run_command(
        sys.executable, "starter.py", "history", "export", conversation.id,
        "--server", temporal_server.address,
    )  # fmt: skip
    assert code == 0, err
    exported = json.loads(out)
    assert exported["workflowId"] == conversation.id and len(exported["runs"]) == 4
    path = tmp_path / "conversation.json"
    path.write_text(out)
    code, out, err = await run_command(sys.executable, "starter.py", "replay", str(path))
    assert code == 0 and f"replayed {path}: ok" in out, err


async def test_a_retried_message_after_continue_as_new_gets_its_reply_not_a_new_turn(
    client: Client, task_queue: str
) -> None:
    config = ConversationInput(continue_as_new_after_turns=1)
    conversation = await start_conversation(client, config, task_queue=task_queue)

    async def send(update_id: str, text: str) -> Reply:
        reply: Reply = await conversation.handle.execute_update(
            UPDATE_SEND_MESSAGE, UserMessage(text=text), id=update_id, result_type=Reply
        )
        return reply

    first = await send("msg-retried", "What is 6 * 7?")
    await eventually(conversation.status, until=lambda s: s.runs == 2)  # continued as new
    again = await send("msg-retried", "What is 6 * 7?")  # e.g. the gateway's retry
    assert again == first
    status = await conversation.status()
    assert status.turns == 1 and status.runs == 2  # no second turn
    other = await send("msg-other", "What is 6 * 7?")
    assert other.turn == 2  # a new id is a new message


async def test_history_stays_flat_across_continue_as_new(
    client: Client, task_queue: str, settings: Settings
) -> None:
    """The transcript crosses runs by reference: no run's history holds the earlier
    runs' messages, the first model call of a run sends only the new message, and the
    model still sees everything (the offline planner answers from the whole transcript,
    and the transcript read back is whole)."""
    config = ConversationInput(continue_as_new_after_turns=3)
    conversation = await start_conversation(client, config, task_queue=task_queue)
    marker = "flat-marker-" + uuid.uuid4().hex[:6]
    first_message = f"Remember that {marker} is set".encode()  # only ever in the transcript
    assert (await conversation.send_message(f"Remember that {marker} is set")).status == "ok"
    for n in range(8):
        assert (await conversation.send_message(f"What is {n} * 3?")).status == "ok"
    runs = await _runs(client, conversation.id)
    assert len(runs) >= 3
    checked = 0
    for run in runs[1:]:  # a continued run: its history never holds the first turn
        history = await run.fetch_history()
        assert first_message not in history.events[0].SerializeToString()  # its input
        firsts = [
            e.activity_task_scheduled_event_attributes.input
            for e in history.events
            if e.HasField("activity_task_scheduled_event_attributes")
            and e.activity_task_scheduled_event_attributes.activity_type.name == "model.invoke"
        ]
        if firsts:  # (the newest run may not have served a turn yet)
            checked += 1
            assert first_message not in firsts[0].SerializeToString()
    assert checked >= 2
    last = await runs[1].fetch_history()  # a run that continued: it archived
    archived = [
        e
        for e in last.events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == "transcript.archive"
    ]
    assert len(archived) == 1
    transcript = await conversation.transcript()
    assert transcript.archived is not None
    store = open_blob_store(settings.blob_db)
    whole = await whole_transcript(store, transcript)
    await store.close()
    assert marker in whole[0].text() and len(whole) == 4 * 9  # 9 tool turns, 4 messages each
    # The model saw the earlier runs: a question only the first turn can answer.
    reply = await conversation.send_message("What did I note?")
    assert marker in reply.text


async def test_the_model_sees_the_whole_transcript_after_continue_as_new(
    client: Client, tmp_path: Path, tool_server: FakeToolServer
) -> None:
    """On the Claude path: the first request of a continued run holds every message of
    the earlier runs (read back from the archive), though history carried none."""
    from durable_agent.testing.fake_anthropic import FakeAnthropicServer
    from durable_agent.testing.responders import offline_responder
    from tests.conftest import claude_worker

    bodies: list[dict[str, object]] = []

    def recording(body: dict[str, object]) -> dict[str, object]:
        bodies.append(body)
        return offline_responder(body)  # type: ignore[arg-type]

    with FakeAnthropicServer() as claude:
        claude.responder = recording
        async with claude_worker(client, tmp_path, tool_server, claude) as queue:
            config = ConversationInput(continue_as_new_after_turns=2)
            conversation = await start_conversation(client, config, task_queue=queue)
            for n in range(3):
                assert (await conversation.send_message(f"What is {n} + 1?")).status == "ok"
            assert len(await _runs(client, conversation.id)) == 2
    # Turn 3 is the first of run 2: its first request carries turns 1-2 (4 messages
    # each) and the new message.
    third = [b for b in bodies if len(b["messages"]) == 9]  # type: ignore[arg-type]
    assert third, [len(b["messages"]) for b in bodies]  # type: ignore[arg-type]
    assert "What is 0 + 1?" in str(third[0]["messages"])
