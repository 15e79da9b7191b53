"""A conversation names its workflow revision in its input (``ConversationInput.revision``),
so its runs record no patch marker; an input without one (an older client, the stock CLI)
still asks by marker, and one newer than the worker is refused with a typed failure."""

from __future__ import annotations

import json
import uuid

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError

from durable_agent.client import Conversation, start_conversation, start_input
from durable_agent.compact import compact_json
from durable_agent.contract import (
    WORKFLOW_REVISION,
    WORKFLOW_TYPE,
    ConversationInput,
    ConversationResult,
)
from tests.helpers import raw_json
from tests.integration.test_long_conversations import _runs
from workflows.replay import replayer
from workflows.versions import MARKERLESS_REVISION


async def _markers_and_revision(handle: WorkflowHandle) -> tuple[list[str], int]:
    """The patch ids a run recorded, and the revision its input names."""
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    revision = json.loads(started.input.payloads[0].data).get("revision", 0)
    markers = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            attributes = event.marker_recorded_event_attributes
            if attributes.marker_name == "core_patch":
                markers.append(json.loads(attributes.details["patch-data"].payloads[0].data)["id"])
    result = await replayer().replay_workflow(history)
    assert result.replay_failure is None
    return markers, revision


async def _two_turns_ended(client: Client, conversation: Conversation) -> list[WorkflowHandle]:
    """Two turns (the input continues as new after each), then the end; every run."""
    for text in ("What is 2 + 2?", "And 3 * 3?"):
        assert (await conversation.send_message(text)).status == "ok"
    await conversation.end()  # every run complete: each history replays whole
    await conversation.result()
    runs = await _runs(client, conversation.id)
    assert len(runs) >= 2
    return runs


async def test_client_names_the_revision_and_runs_record_no_marker(
    client: Client, task_queue: str
) -> None:
    input = ConversationInput(tools=["calculator"], continue_as_new_after_turns=1)
    assert json.loads(start_input(input).payload.data)["revision"] == WORKFLOW_REVISION
    conversation = await start_conversation(client, input, task_queue=task_queue)
    runs = await _two_turns_ended(client, conversation)
    for run in runs:
        assert await _markers_and_revision(run) == ([], WORKFLOW_REVISION)


async def test_an_input_without_revision_asks_by_marker_until_it_continues_as_new(
    client: Client, task_queue: str
) -> None:
    input = ConversationInput(tools=["calculator"], continue_as_new_after_turns=1)
    handle = await client.start_workflow(
        WORKFLOW_TYPE,
        raw_json(compact_json(input)),  # as an older client writes it: no revision
        id=f"old-client-{uuid.uuid4().hex[:8]}",
        task_queue=task_queue,
        result_type=ConversationResult,
    )
    runs = await _two_turns_ended(client, Conversation(handle))
    assert await _markers_and_revision(runs[0]) == (["lean-turn-v2"], 0)
    # The next run names the first revision without markers, which every worker since
    # runs (not this worker's newest: a worker not yet upgraded may take the run).
    for run in runs[1:]:
        assert await _markers_and_revision(run) == ([], MARKERLESS_REVISION)


async def test_a_revision_newer_than_the_worker_fails_the_run_with_a_typed_error(
    client: Client, task_queue: str
) -> None:
    document = json.loads(compact_json(ConversationInput()))
    document["revision"] = WORKFLOW_REVISION + 1
    handle = await client.start_workflow(
        WORKFLOW_TYPE,
        raw_json(json.dumps(document).encode()),
        id=f"future-client-{uuid.uuid4().hex[:8]}",
        task_queue=task_queue,
        result_type=ConversationResult,
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "InvalidConversationInput"
    assert f"revision {WORKFLOW_REVISION + 1} is newer" in cause.message
    assert "upgrade the workers" in cause.message


def test_a_negative_revision_is_refused() -> None:
    with pytest.raises(ValueError, match="revision"):
        ConversationInput.model_validate({"revision": -1})
