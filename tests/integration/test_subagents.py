"""Sub-agents as child workflows, through the client API against the dev server: the
offline planner is told to call ``delegate_to_<name>`` (``use delegate_to_x {...}``),
the child answers its task with its own tools, and its answer is the parent's tool
result; budgets carve down, cancellation cascades, approvals bubble up."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
import uuid
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from bench.processes import worker_process
from durable_agent.budget import BudgetLimits
from durable_agent.client import Conversation, get_conversation, start_conversation
from durable_agent.config import Settings
from durable_agent.contract import (
    DELEGATION_BUDGET_EXHAUSTED,
    DELEGATION_DEPTH_EXCEEDED,
    DELEGATION_FAN_OUT_EXCEEDED,
    ConversationInput,
    ConversationLimits,
    DelegationPolicy,
    PendingApproval,
    Reply,
    SafetyPolicy,
    SubAgent,
)
from durable_agent.devserver import DevServer
from durable_agent.testing.fake_tools import FakeToolServer
from durable_agent.testing.faults import Fault
from tests.gateway_support import RunningGateway, key_entries, serving, tenants
from tests.helpers import eventually, history_events, saved_notes

CALCULATOR_AGENT = ConversationInput(tools=["calculator"], system_prompt="You compute.")


def delegating(*subagents: SubAgent, **fields: object) -> ConversationInput:
    return ConversationInput(tools=["calculator"], subagents=list(subagents), **fields)  # type: ignore[arg-type]


def use(agent: str, task: str) -> str:
    return f"use delegate_to_{agent} {json.dumps({'task': task})}"


async def children(client: Client, parent: str) -> list[tuple[str, WorkflowExecutionStatus]]:
    found = []
    async for w in client.list_workflows(f"WorkflowId STARTS_WITH '{parent}/'"):
        found.append((w.id, w.status))
    return sorted(found, key=lambda c: c[0])  # type: ignore[return-value]


async def test_a_delegation_returns_the_childs_answer_as_the_tool_result(
    client: Client, task_queue: str
) -> None:
    sub = SubAgent(name="maths", description="Does arithmetic.", input=CALCULATOR_AGENT)
    conversation = await start_conversation(client, delegating(sub), task_queue=task_queue)
    reply = await conversation.send_message(use("maths", "What is 6 * 7?"))
    assert reply.status == "ok", reply
    (call,) = reply.tool_calls
    assert call.name == "delegate_to_maths" and call.outcome == "ok", call
    assert "42" in call.result
    status = await conversation.status()
    (record,) = status.delegations
    child_id = f"{conversation.id}/1/{call.id}"
    assert (record.child_workflow_id, record.agent, record.outcome) == (child_id, "maths", "ok")
    assert record.spent is not None and record.spent.model_calls == 2  # calculator, answer
    # The child's spend is the parent's (its conversation budget and the turn's).
    assert status.budget is not None and status.budget.spent.model_calls == 2 + 2
    assert (await conversation.transcript()).delegations == status.delegations
    child = client.get_workflow_handle(child_id)
    described = await child.describe()
    assert described.status == WorkflowExecutionStatus.COMPLETED
    assert described.parent_id == conversation.id
    assert (await children(client, conversation.id)) == [(child_id, described.status)]


async def test_two_delegations_in_one_response_run_in_parallel(
    client: Client, task_queue: str
) -> None:
    maths = SubAgent(name="maths", input=CALCULATOR_AGENT)
    other = SubAgent(name="other", input=CALCULATOR_AGENT)
    conversation = await start_conversation(client, delegating(maths, other), task_queue=task_queue)
    reply = await conversation.send_message(
        f"{use('maths', 'What is 2 + 3?')} and {use('other', 'What is 10 * 10?')}"
    )
    assert reply.status == "ok", reply
    assert [(c.name, c.outcome) for c in reply.tool_calls] == [
        ("delegate_to_maths", "ok"),
        ("delegate_to_other", "ok"),
    ]
    assert "5" in reply.tool_calls[0].result and "100" in reply.tool_calls[1].result
    found = await children(client, conversation.id)
    assert len(found) == 2
    # Both children started before either finished: parallel, not one after the other.
    described = [await client.get_workflow_handle(c).describe() for c, _ in found]
    assert max(d.start_time for d in described) < min(d.close_time for d in described)  # type: ignore[type-var]


async def test_a_child_is_stopped_at_its_carve_out_and_leftovers_return(
    client: Client, task_queue: str
) -> None:
    tight = SubAgent(name="tight", input=CALCULATOR_AGENT, budget=BudgetLimits(model_calls=1))
    roomy = SubAgent(name="roomy", input=CALCULATOR_AGENT, budget=BudgetLimits(model_calls=5))
    limits = ConversationLimits(conversation=BudgetLimits(model_calls=20, usd=Decimal("5")))
    conversation = await start_conversation(
        client, delegating(tight, roomy, limits=limits), task_queue=task_queue
    )
    reply = await conversation.send_message(
        f"{use('tight', 'What is 2 + 2?')} and {use('roomy', 'What is 3 + 3?')}"
    )
    assert reply.status == "ok", reply
    stopped, done = reply.tool_calls
    # The tight child asked for the calculator with its one model call, then its
    # budget stopped it before it could answer: a tool error the parent's model reads.
    assert stopped.outcome == "error" and "budget_exceeded" in stopped.result, stopped
    assert done.outcome == "ok" and "6" in done.result, done
    records = {r.agent: r for r in (await conversation.status()).delegations}
    assert records["tight"].outcome == "stopped"
    assert records["tight"].budget.model_calls == 1
    assert records["tight"].spent is not None and records["tight"].spent.model_calls == 1
    # The roomy child was granted 5 model calls and used 2: 3 came back.
    assert records["roomy"].budget.model_calls == 5
    assert records["roomy"].spent is not None and records["roomy"].spent.model_calls == 2
    status = await conversation.status()
    assert status.budget is not None
    assert status.budget.spent.model_calls == 2 + 1 + 2  # parent's own, tight, roomy
    assert status.budget.remaining.model_calls == 20 - 5


async def test_a_delegation_the_budget_cannot_pay_for_is_refused_with_a_typed_error(
    client: Client, task_queue: str
) -> None:
    sub = SubAgent(name="maths", input=CALCULATOR_AGENT, budget=BudgetLimits(model_calls=3))
    other = SubAgent(name="other", input=CALCULATOR_AGENT, budget=BudgetLimits(model_calls=3))
    limits = ConversationLimits(conversation=BudgetLimits(model_calls=4))
    conversation = await start_conversation(
        client, delegating(sub, other, limits=limits), task_queue=task_queue
    )
    reply = await conversation.send_message(
        f"{use('maths', 'What is 2 + 2?')} and {use('other', 'What is 3 + 3?')}"
    )
    first, second = reply.tool_calls
    assert first.outcome == "ok"
    # One model call spent, three held by the first child: nothing left for the second.
    assert second.outcome == "error" and second.error_type == DELEGATION_BUDGET_EXHAUSTED
    assert len(await children(client, conversation.id)) == 1
    status = await conversation.status()
    assert status.budget is not None and status.budget.spent.model_calls <= 4


async def test_delegating_past_the_depth_limit_is_refused_with_a_typed_error(
    client: Client, task_queue: str
) -> None:
    leaf = SubAgent(name="leaf", input=CALCULATOR_AGENT)
    middle = SubAgent(name="middle", input=delegating(leaf))
    conversation = await start_conversation(
        client, delegating(middle, delegation=DelegationPolicy(max_depth=1)), task_queue=task_queue
    )
    reply = await conversation.send_message(use("middle", use("leaf", "What is 1 + 1?")))
    (call,) = reply.tool_calls
    assert call.outcome == "ok"  # the middle agent answered: its own call was refused
    assert "depth" in call.result
    ((child_id, _),) = await children(client, conversation.id)
    result = await client.get_workflow_handle(child_id).result()
    assert result["answer"]["tool_calls"][0]["error_type"] == DELEGATION_DEPTH_EXCEEDED


NOTES_AGENT = SubAgent(
    name="notes",
    input=ConversationInput(tools=["save_note"], safety=SafetyPolicy(approval_tools=["save_note"])),
)


async def _child_waits_for_approval(
    client: Client, task_queue: str
) -> tuple[Conversation, asyncio.Task[Reply], PendingApproval]:
    conversation = await start_conversation(client, delegating(NOTES_AGENT), task_queue=task_queue)
    reply = asyncio.create_task(
        conversation.send_message(use("notes", "Remember that the gate code is 1234"))
    )
    status = await eventually(conversation.status, until=lambda s: bool(s.pending_approvals))
    assert status.state == "awaiting_approval"
    (pending,) = status.pending_approvals
    return conversation, reply, pending


async def test_a_childs_call_is_approved_through_the_parent(
    client: Client, task_queue: str, settings: Settings
) -> None:
    conversation, reply, pending = await _child_waits_for_approval(client, task_queue)
    ((child_id, _),) = await children(client, conversation.id)
    assert (pending.tool, pending.agent, pending.child_workflow_id) == (
        "save_note",
        "notes",
        child_id,
    )
    assert pending.call_id == f"{child_id.rsplit('/', 1)[1]}:{pending.child_call_id}"
    assert (await conversation.approvals()).pending == [pending]
    assert await saved_notes(settings) == []

    record = await conversation.approve(pending.call_id, by="alice", reason="fine")
    assert (record.decision, record.by, record.child_workflow_id) == ("approved", "alice", child_id)
    answer = await asyncio.wait_for(reply, timeout=30)
    assert answer.status == "ok" and answer.tool_calls[0].outcome == "ok", answer
    assert await saved_notes(settings) == ["the gate code is 1234"]
    # The child's audit list names the person and the parent it came through.
    child = get_conversation(client, child_id)
    (decided,) = (await child.approvals()).decisions
    assert (decided.call_id, decided.by, decided.via_workflow_id) == (
        pending.child_call_id,
        "alice",
        conversation.id,
    )
    assert (await conversation.status()).pending_approvals == []


async def test_cancelling_the_parent_cancels_its_running_child(
    client: Client, task_queue: str
) -> None:
    conversation, reply, _ = await _child_waits_for_approval(client, task_queue)
    ((child_id, _),) = await children(client, conversation.id)
    started = time.monotonic()
    await conversation.cancel()
    child = client.get_workflow_handle(child_id)
    await eventually(
        child.describe, until=lambda d: d.status == WorkflowExecutionStatus.CANCELED, timeout=10
    )
    assert time.monotonic() - started < 10
    reply.cancel()


async def test_a_worker_killed_while_a_child_runs_starts_no_second_child(
    client: Client, temporal_server: DevServer, tool_server: FakeToolServer, tmp_path: Path
) -> None:
    task_queue = f"subagent-crash-{uuid.uuid4().hex[:10]}"
    notes_db = tmp_path / "notes.sqlite3"
    # The child's first forecast request hangs far longer than the test waits.
    tool_server.faults.add(Fault(delay=60.0, path="/v1/forecast"))
    weather = SubAgent(name="weather", input=ConversationInput(tools=["get_weather"]))
    conversation = await start_conversation(client, delegating(weather), task_queue=task_queue)

    async with worker_process(temporal_server, task_queue, notes_db, tool_server) as first:
        turn = asyncio.create_task(
            conversation.send_message(use("weather", "What's the weather in Berlin?"))
        )
        await eventually(
            _async(lambda: [r for r in tool_server.requests if r.path == "/v1/forecast"]),
            timeout=30,
        )
        first.send_signal(signal.SIGKILL)
        await first.wait()
        assert not turn.done()

    async with worker_process(temporal_server, task_queue, notes_db, tool_server):
        reply = await asyncio.wait_for(turn, timeout=60)
        (record,) = (await conversation.status()).delegations

    assert reply.status == "ok", reply
    assert record.outcome == "ok"
    (call,) = reply.tool_calls
    assert call.outcome == "ok" and "Berlin" in call.result, call
    found = await children(client, conversation.id)
    assert [(c, s) for c, s in found] == [
        (f"{conversation.id}/1/{call.id}", WorkflowExecutionStatus.COMPLETED)
    ]
    # One child started, once: the parent's history holds one start and one completion.
    events = await history_events(conversation.handle)
    assert events.count("START_CHILD_WORKFLOW_EXECUTION_INITIATED") == 1
    assert events.count("CHILD_WORKFLOW_EXECUTION_COMPLETED") == 1


def _async(fn):  # type: ignore[no-untyped-def]
    async def probe():  # type: ignore[no-untyped-def]
        return fn()

    return probe


TEAM = """
profiles:
  triage:
    tools: [calculator]
    subagents: {notes: {budget: {usd: "0.10"}}}
  notes:
    description: Keeps the team's notes.
    tools: [save_note, list_notes]
    safety: {approval_tools: [save_note]}
"""


async def test_through_the_gateway_a_profile_delegates_and_its_childs_call_is_approved(
    client: Client, task_queue: str, settings: Settings, tmp_path: Path
) -> None:
    profiles = tmp_path / "agents.yaml"
    profiles.write_text(TEAM)
    found = tenants(1)
    configured = settings.model_copy(
        update={
            "task_queue": task_queue,
            "gateway_keys": key_entries(found),
            "gateway_wait_seconds": 20.0,
            "profiles_file": profiles,
        }
    )
    async with (
        serving(configured, client) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        api = RunningGateway(url, found, http)
        async with api.as_(found[0]) as alice:
            created = await alice.post("/v1/conversations", json={"agent": "triage"})
            assert created.status_code == 201, created.text
            base = f"/v1/conversations/{created.json()['id']}"
            queued = await alice.post(
                f"{base}/messages?wait=false",
                json={"text": use("notes", "Remember that the gate code is 1234")},
            )
            view = await eventually(
                lambda: alice.get(base),
                until=lambda r: bool(r.json()["status"]["pending_approvals"]),
            )
            (pending,) = view.json()["status"]["pending_approvals"]
            assert (pending["agent"], pending["tool"]) == ("notes", "save_note")
            decided = await alice.post(
                f"{base}/approvals/{pending['call_id']}", json={"decision": "approve"}
            )
            assert decided.status_code == 200, decided.text
            assert decided.json()["child_workflow_id"] == pending["child_workflow_id"]
            reply = await alice.get(queued.headers["location"], params={"wait": 20})
            assert reply.json()["tool_calls"][0]["outcome"] == "ok", reply.text
            (delegation,) = (await alice.get(base)).json()["status"]["delegations"]
            assert delegation["outcome"] == "ok" and delegation["budget"]["usd"] == "0.10"
    assert await saved_notes(settings, found[0].name) == ["the gate code is 1234"]


async def test_delegations_past_the_fan_out_limit_are_refused_with_a_typed_error(
    client: Client, task_queue: str
) -> None:
    maths = SubAgent(name="maths", input=CALCULATOR_AGENT)
    other = SubAgent(name="other", input=CALCULATOR_AGENT)
    policy = DelegationPolicy(max_children_per_response=1)
    conversation = await start_conversation(
        client, delegating(maths, other, delegation=policy), task_queue=task_queue
    )
    reply = await conversation.send_message(
        f"{use('maths', 'What is 2 + 3?')} and {use('other', 'What is 10 * 10?')}"
    )
    first, second = reply.tool_calls
    assert first.outcome == "ok" and second.error_type == DELEGATION_FAN_OUT_EXCEEDED
    assert len(await children(client, conversation.id)) == 1


async def test_delegations_are_carried_across_continue_as_new(
    client: Client, task_queue: str
) -> None:
    sub = SubAgent(name="maths", description="Does arithmetic.", input=CALCULATOR_AGENT)
    conversation = await start_conversation(
        client, delegating(sub, continue_as_new_after_turns=1), task_queue=task_queue
    )
    reply = await conversation.send_message(use("maths", "What is 6 * 7?"))
    assert reply.status == "ok", reply
    status = await eventually(conversation.status, until=lambda s: s.runs == 2)
    (record,) = status.delegations
    assert (record.agent, record.outcome) == ("maths", "ok") and record.spent is not None
    assert (await conversation.transcript()).delegations == status.delegations
    # Still offered in the next run.
    again = await conversation.send_message(use("maths", "What is 2 * 3?"))
    assert again.tool_calls[0].outcome == "ok" and "6" in again.tool_calls[0].result
    assert len((await conversation.status()).delegations) == 2


async def test_a_streamed_turn_shows_the_sub_agents_output_under_its_call(
    client: Client, task_queue: str
) -> None:
    sub = SubAgent(name="maths", description="Does arithmetic.", input=CALCULATOR_AGENT)
    conversation = await start_conversation(client, delegating(sub), task_queue=task_queue)
    reply = await conversation.send_message(use("maths", "What is 6 * 7?"), stream=True)
    (call,) = reply.tool_calls
    assert call.outcome == "ok" and "42" in call.result
    await conversation.end()
    await conversation.result()
    items = [item async for item in conversation.stream()]  # drains the closed stream
    relayed = [i.delta for i in items if i.delta and i.delta.delegation == call.id]
    own = [i.delta for i in items if i.delta and i.delta.delegation is None]
    # The sub-agent's answer, as it wrote it, under the parent's call; the parent's own
    # deltas are its reply.
    assert "42" in "".join(d.text for d in relayed if d.kind == "text")
    assert "".join(d.text for d in own if d.kind == "text" and d.model_call == 2) == reply.text


async def test_cancelling_the_parent_cancels_the_childs_running_tool_call(
    client: Client, task_queue: str, tool_server: FakeToolServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The cascade reaches the activity: the child's tool call, stuck on a slow
    service, hears of the cancellation at its next heartbeat and stops, well before
    the 60 s the service would take."""
    tool_server.faults.add(Fault(delay=60.0, path="/v1/forecast"))
    weather = SubAgent(name="weather", input=ConversationInput(tools=["get_weather"]))
    conversation = await start_conversation(client, delegating(weather), task_queue=task_queue)
    turn = asyncio.create_task(
        conversation.send_message(use("weather", "What's the weather in Berlin?"))
    )
    await eventually(
        _async(lambda: [r for r in tool_server.requests if r.path == "/v1/forecast"]), timeout=30
    )
    ((child_id, _),) = await children(client, conversation.id)
    child = client.get_workflow_handle(child_id)
    started = time.monotonic()
    caplog.clear()
    await conversation.cancel()
    await eventually(
        child.describe, until=lambda d: d.status == WorkflowExecutionStatus.CANCELED, timeout=15
    )
    assert "ACTIVITY_TASK_CANCEL_REQUESTED" in await history_events(child)

    def tool_call_ended() -> list[logging.LogRecord]:
        return [
            r
            for r in caplog.records
            if r.name == "temporalio.activity"
            and getattr(r, "temporal_activity", {}).get("activity_type") == "tool.get_weather"
        ]

    await eventually(_async(tool_call_ended), timeout=15)
    assert time.monotonic() - started < 15
    turn.cancel()
