"""Who decided, on every path: the audit list names ``by`` (the gateway's key, the CLI's
configured identity, or what a raw caller asserts), and the history of every decision
also holds the identity of the Temporal client that sent it, recorded by the server —
so a decision made through the raw Temporal API is attributable to its connection."""

from __future__ import annotations

import asyncio

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from durable_agent.client import start_conversation
from durable_agent.contract import (
    UPDATE_APPROVE,
    ApprovalRecord,
    ApproveCall,
    ConversationInput,
    SafetyPolicy,
)
from durable_agent.devserver import DevServer
from tests.helpers import eventually


async def test_a_raw_decision_is_recorded_with_the_callers_client_identity(
    client: Client, temporal_server: DevServer, task_queue: str
) -> None:
    config = ConversationInput(safety=SafetyPolicy(approval_tools=["save_note"]))
    conversation = await start_conversation(client, config, task_queue=task_queue)
    reply = asyncio.ensure_future(conversation.send_message("Remember that raw calls count"))
    status = await eventually(conversation.status, until=lambda s: bool(s.pending_approvals))
    (pending,) = status.pending_approvals

    # Any Temporal client, not ours: the stock SDK with an identity of its own.
    raw = await Client.connect(
        temporal_server.address, identity="sre-laptop-42", data_converter=pydantic_data_converter
    )
    record: ApprovalRecord = await raw.get_workflow_handle(conversation.id).execute_update(
        UPDATE_APPROVE,
        ApproveCall(call_id=pending.call_id, by="someone-else"),
        result_type=ApprovalRecord,
    )
    assert record.by == "someone-else"  # what the caller asserted …
    assert (await reply).tool_calls[0].outcome == "ok"

    history = await conversation.handle.fetch_history()
    accepted = [
        e.workflow_execution_update_accepted_event_attributes.accepted_request
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
        and e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
        == UPDATE_APPROVE
    ]
    assert [r.meta.identity for r in accepted] == ["sre-laptop-42"]  # … and who sent it
