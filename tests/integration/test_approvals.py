"""Human approval of tool calls, through the client API against the dev server: a call
that needs approval waits (visible in ``status``), and approve / edited approve /
reject / a worker restart mid-wait all end the way the audit list says."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from durable_agent.client import ApprovalRefused, Conversation, start_conversation
from durable_agent.config import Settings
from durable_agent.contract import (
    UPDATE_APPROVE,
    ConversationInput,
    PendingApproval,
    Reply,
    SafetyPolicy,
)
from tests.helpers import eventually, running_worker, saved_notes

NOTES_NEED_APPROVAL = ConversationInput(safety=SafetyPolicy(approval_tools=["save_note"]))


async def _waiting(conversation: Conversation) -> PendingApproval:
    status = await eventually(conversation.status, until=lambda s: bool(s.pending_approvals))
    assert status.state == "awaiting_approval"
    (pending,) = status.pending_approvals
    return pending


async def _ask(
    conversation: Conversation, text: str
) -> tuple[asyncio.Task[Reply], PendingApproval]:
    """Send ``text`` in the background and wait for its tool call to need approval."""
    reply = asyncio.create_task(conversation.send_message(text))
    return reply, await _waiting(conversation)


async def test_approved_call_runs_and_is_audited(
    client: Client, task_queue: str, settings: Settings
) -> None:
    conversation = await start_conversation(client, NOTES_NEED_APPROVAL, task_queue=task_queue)
    reply, pending = await _ask(conversation, "Remember that the boiler code is 4711")
    assert pending.tool == "save_note" and pending.permission == "write"
    assert pending.arguments == {"text": "the boiler code is 4711"}
    assert "save_note" in pending.reason and pending.expires_at > pending.requested_at
    assert await saved_notes(settings) == []  # nothing happens before a person says so

    record = await conversation.approve(pending.call_id, by="alice", reason="looks fine")
    assert (record.decision, record.by, record.reason) == ("approved", "alice", "looks fine")
    answer = await reply
    assert answer.status == "ok"
    (call,) = answer.tool_calls
    assert call.outcome == "ok" and call.approval == record
    assert await saved_notes(settings) == ["the boiler code is 4711"]

    approvals = await conversation.approvals()
    assert approvals.pending == [] and approvals.decisions == [record]
    assert record.decided_at >= record.requested_at
    assert (await conversation.status()).state == "idle"


async def test_rejected_call_is_not_run_and_the_model_is_told(
    client: Client, task_queue: str, settings: Settings
) -> None:
    conversation = await start_conversation(client, NOTES_NEED_APPROVAL, task_queue=task_queue)
    reply, pending = await _ask(conversation, "Remember that the door code is 1234")
    record = await conversation.reject(pending.call_id, by="bob", reason="no codes in notes")
    assert record.decision == "rejected"
    answer = await reply
    (call,) = answer.tool_calls
    assert call.outcome == "rejected"
    assert call.result == "not run: bob rejected the call: no codes in notes"
    assert await saved_notes(settings) == []
    # The model got the rejection as the call's tool_result.
    transcript = await conversation.transcript()
    assert "bob rejected the call" in transcript.messages[2].model_dump_json()
    # And the conversation goes on.
    assert "42" in (await conversation.send_message("What is 6 * 7?")).text


async def test_edited_approval_runs_the_edited_arguments(
    client: Client, task_queue: str, settings: Settings
) -> None:
    conversation = await start_conversation(client, NOTES_NEED_APPROVAL, task_queue=task_queue)
    reply, pending = await _ask(conversation, "Remember that my PIN is 9876")
    record = await conversation.approve(
        pending.call_id, by="carol", arguments={"text": "the user has a PIN (not stored)"}
    )
    assert record.arguments == {"text": "the user has a PIN (not stored)"}
    assert record.requested_arguments == {"text": "my PIN is 9876"}
    (call,) = (await reply).tool_calls
    assert call.outcome == "ok" and "edited by carol" in call.result
    assert await saved_notes(settings) == ["the user has a PIN (not stored)"]


async def test_wrong_decisions_are_refused_and_change_nothing(
    client: Client, task_queue: str, settings: Settings
) -> None:
    conversation = await start_conversation(client, NOTES_NEED_APPROVAL, task_queue=task_queue)
    reply, pending = await _ask(conversation, "Remember that the wifi is 'hunter2'")

    with pytest.raises(ApprovalRefused, match="no tool call 'toolu_nope' is waiting") as unknown:
        await conversation.approve("toolu_nope", by="dave")
    assert unknown.value.type == "InvalidApproval" and pending.call_id in unknown.value.reason
    with pytest.raises(ApprovalRefused, match="edited arguments for save_note: text:"):
        await conversation.approve(pending.call_id, by="dave", arguments={"text": ""})
    with pytest.raises(ApprovalRefused, match="txt: Extra inputs are not permitted"):
        await conversation.approve(pending.call_id, by="dave", arguments={"txt": "x"})
    with pytest.raises(WorkflowUpdateFailedError) as malformed:  # as from the stock CLI
        await conversation.handle.execute_update(UPDATE_APPROVE, {"call_id": pending.call_id})
    assert isinstance(malformed.value.cause, ApplicationError)
    assert malformed.value.cause.type == "InvalidApproval"
    assert "malformed approval" in malformed.value.cause.message
    assert "by: Field required" in malformed.value.cause.message
    # Still waiting, nothing written, nothing audited.
    assert (await _waiting(conversation)).call_id == pending.call_id
    assert (await conversation.approvals()).decisions == []
    assert await saved_notes(settings) == []

    await conversation.reject(pending.call_id, by="dave", reason="no passwords")
    await reply
    with pytest.raises(ApprovalRefused, match="already rejected by dave"):
        await conversation.approve(pending.call_id, by="erin")


async def test_a_waiting_call_survives_a_worker_restart(
    client: Client, tmp_path: Path, settings: Settings
) -> None:
    queue = f"approvals-{uuid.uuid4().hex[:8]}"
    async with running_worker(client, settings, queue, max_cached_workflows=0):
        conversation = await start_conversation(client, NOTES_NEED_APPROVAL, task_queue=queue)
        reply, pending = await _ask(conversation, "Remember that the meeting moved to 3pm")
    # No worker now; the wait lives in the server. A new worker rebuilds it from history.
    async with running_worker(client, settings, queue, max_cached_workflows=0):
        again = await _waiting(conversation)
        # (Timestamps come from workflow time, which a replay may read a few ms apart.)
        keep = {"call_id", "tool", "arguments", "reason", "turn"}
        assert again.model_dump(include=keep) == pending.model_dump(include=keep)
        await conversation.approve(pending.call_id, by="grace")
        answer = await reply
    assert answer.tool_calls[0].outcome == "ok"
    assert await saved_notes(settings) == ["the meeting moved to 3pm"]
