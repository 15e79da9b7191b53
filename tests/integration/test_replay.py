"""Replay: finished conversations and the committed golden histories must replay
against the current workflow code without nondeterminism."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowHistory
from temporalio.workflow import NondeterminismError

from durable_agent.client import start_conversation
from durable_agent.devserver import DevServer
from tests.helpers import eventually, run_command
from workflows.base import FLUSH_SUMMARY
from workflows.replay import export_history, replay_file, replayer

HISTORY_DIR = Path(__file__).parent.parent / "histories"
HISTORIES = sorted(HISTORY_DIR.rglob("*.json"))


def test_golden_histories_are_committed() -> None:
    names = {str(p.relative_to(HISTORY_DIR).with_suffix("")) for p in HISTORIES}
    assert {
        "offline_tools_multi_turn",
        "claude_tools_multi_turn",
        "offline_degradation_and_budget",
        # Recorded before breakers, budgets, the governor and the turn deadline existed:
        # `workflow.patched("resilience-v1")` must keep them replaying.
        "pre_resilience/offline_tools_multi_turn",
        "pre_resilience/claude_tools_multi_turn",
        # Approve, edited approve, reject and a flagged tool result (safety-v1).
        "offline_approvals",
        # Three runs: continued as new after turns 2 and 4 (every run replays).
        "offline_continue_as_new",
        # Old turns folded by model.compact (compaction-v1).
        "offline_compaction",
        # Recorded before settlements stopped holding up turns (async-settle-v1).
        "pre_async_settle/offline_approvals",
        "pre_async_settle/offline_continue_as_new",
        # Recorded before screening, approvals and the approval-aware turn deadline:
        # `workflow.patched("safety-v1")` must keep them replaying.
        "pre_safety/offline_tools_multi_turn",
        "pre_safety/claude_tools_multi_turn",
        "pre_safety/offline_degradation_and_budget",
        # Recorded before leases, local activities and the single marker (lean-turn-v1).
        "pre_lean/offline_tools_multi_turn",
        "pre_lean/claude_tools_multi_turn",
        "pre_lean/offline_approvals",
        "pre_lean/offline_continue_as_new",
        "pre_lean/offline_compaction",
        # A write that waits because a page is in the context, then clear_untrusted.
        "offline_provenance",
        # Recorded before untrusted content gated side effects (provenance-v1).
        "pre_provenance/offline_tools_multi_turn",
        "pre_provenance/claude_tools_multi_turn",
        "pre_provenance/offline_approvals",
        "pre_provenance/offline_continue_as_new",
        "pre_provenance/offline_compaction",
        "pre_provenance/offline_degradation_and_budget",
        "pre_provenance/offline_optional_tool_failure",
        # Recorded before the transcript crossed continue-as-new by reference
        # (flat-continue-v1): its runs carry the messages inline.
        "pre_flat/offline_continue_as_new",
        "pre_flat/offline_tools_multi_turn",
        # One sub-agent, two in parallel, a sub-agent's call approved through the parent
        # (delegation-v1); and that sub-agent's own history.
        "offline_delegation",
        "offline_delegation_child",
        # Streamed turns across continue-as-new: the model activity's publish signals,
        # the tails the workflow publishes, the stream carried between runs.
        "offline_streaming",
        # Recorded before the next run's input packed the carried state: inline JSON.
        "pre_packed/offline_continue_as_new",
        "pre_packed/offline_streaming",
        # Recorded before a run took the four patch ids up to lean-turn-v2 as given:
        # lean-turn-v1, provenance-v1, flat-continue-v1 and delegation-v1 each marked.
        *(
            f"pre_lean2/{name}"
            for name in (
                "offline_tools_multi_turn",
                "claude_tools_multi_turn",
                "offline_approvals",
                "offline_continue_as_new",
                "offline_compaction",
                "offline_degradation_and_budget",
                "offline_optional_tool_failure",
                "offline_provenance",
                "offline_delegation",
                "offline_delegation_child",
                "offline_streaming",
            )
        ),
        # Recorded before runs named their workflow revision in their input: each run
        # asked for lean-turn-v2 and recorded its marker.
        *(f"pre_revision/{name.stem}" for name in HISTORY_DIR.glob("*.json")),
        # Revision 3: every turn raced a timer for its deadline.
        *(f"pre_timerless/{name.stem}" for name in HISTORY_DIR.glob("*.json")),
    } <= names
    assert len([n for n in names if n.startswith("pre_revision/")]) == 11
    assert len([n for n in names if n.startswith("pre_timerless/")]) == 11
    # Revision 4: every turn upserted its counters (revision 5 paces them).
    assert {f"pre_paced/{name.stem}" for name in HISTORY_DIR.glob("*.json")} <= names
    assert len([n for n in names if n.startswith("pre_paced/")]) == 11
    # Revision 5: four quick turns upsert their counters once (the first turn), and the
    # end once; one timer waits to upsert what is held back. Revision 4: once a turn.
    for name, upserts, timers in (
        ("offline_tools_multi_turn", 2, 1),
        ("pre_paced/offline_tools_multi_turn", 5, 0),
    ):
        events = json.loads((HISTORY_DIR / f"{name}.json").read_text())["events"]
        assert sum("upsertWorkflowSearchAttributesEventAttributes" in e for e in events) == upserts
        summaries = [e.get("userMetadata", {}).get("summary", {}).get("data", "") for e in events]
        held = base64.b64encode(json.dumps(FLUSH_SUMMARY).encode()).decode()
        assert summaries.count(held) == timers, name
    # Revision 4: a turn starts its deadline's timer only to wait for a person or a
    # sub-agent; every other turn of every conversation has none.
    for name, timers in (
        ("offline_tools_multi_turn", 0),
        ("claude_tools_multi_turn", 0),
        ("offline_continue_as_new", 0),
        ("offline_streaming", 0),
        ("offline_approvals", 3),  # the three turns that waited for a person
        ("pre_timerless/offline_tools_multi_turn", 4),  # one per turn
    ):
        assert _deadline_timers(HISTORY_DIR / f"{name}.json") == timers, name
    # Revision 4: the start request sets the search attributes; the first workflow task
    # upserts none (the child's are set by its parent).
    for name in ("offline_tools_multi_turn", "offline_delegation_child"):
        document = json.loads((HISTORY_DIR / f"{name}.json").read_text())
        events = (document.get("runs") or [document])[0]["events"]
        assert events[0]["workflowExecutionStartedEventAttributes"]["searchAttributes"], name
        tasks = [i for i, e in enumerate(events) if "workflowTaskScheduledEventAttributes" in e]
        first_task = events[: tasks[1]]  # up to the second task: the first one's commands
        assert not any("upsertWorkflowSearchAttributesEventAttributes" in e for e in first_task)
    updates = json.loads((HISTORY_DIR / "offline_approvals.json").read_text())["events"]
    names_used = [
        e["workflowExecutionUpdateAcceptedEventAttributes"]["acceptedRequest"]["input"]["name"]
        for e in updates
        if "workflowExecutionUpdateAcceptedEventAttributes" in e
    ]
    assert sorted(set(names_used)) == ["approve", "reject", "send_message"]
    runs = json.loads((HISTORY_DIR / "offline_continue_as_new.json").read_text())["runs"]
    assert len(runs) == 3
    for name, packed in (
        ("offline_continue_as_new", True),
        ("pre_packed/offline_continue_as_new", False),
    ):
        started = json.loads((HISTORY_DIR / f"{name}.json").read_text())["runs"][1]["events"][0]
        payload = started["workflowExecutionStartedEventAttributes"]["input"]["payloads"][0]
        continued = json.loads(base64.b64decode(payload["data"]))["continued"]
        assert isinstance(continued, str) == packed, name
    assert "model.compact" in (HISTORY_DIR / "offline_compaction.json").read_text()
    provenance = (HISTORY_DIR / "offline_provenance.json").read_text()
    assert '"clear_untrusted"' in provenance
    for name, patch_ids in (
        ("pre_revision/offline_provenance", ["lean-turn-v2"]),  # one marker per run
        ("pre_lean2/offline_provenance", ["lean-turn-v1", "provenance-v1"]),
    ):
        recorded = (HISTORY_DIR / f"{name}.json").read_text()
        for patch_id in patch_ids:
            marker = base64.b64encode(f'{{"id":"{patch_id}"'.encode()).decode()[:24]
            assert marker in recorded, (name, patch_id)
    for path in HISTORY_DIR.glob("*.json"):  # revision 3: no run asks, no marker
        assert '"markerName": "core_patch"' not in path.read_text(), path.name
    delegation = (HISTORY_DIR / "offline_delegation.json").read_text()
    assert delegation.count("startChildWorkflowExecutionInitiatedEventAttributes") == 4
    assert '"child_approval"' in delegation
    assert '"parent_decision"' in (HISTORY_DIR / "offline_delegation_child.json").read_text()
    streaming = (HISTORY_DIR / "offline_streaming.json").read_text()
    assert streaming.count('"signalName": "__temporal_workflow_stream_publish"') >= 3
    assert len(json.loads(streaming)["runs"]) >= 2


def _deadline_timers(path: Path) -> int:
    """Timers a recorded conversation started for its turn deadlines."""
    document = json.loads(path.read_text())
    return sum(
        base64.b64decode(
            event.get("userMetadata", {}).get("summary", {}).get("data", "")
        ).startswith(b'"turn deadline')
        for run in document.get("runs") or [document]
        for event in run["events"]
        if "timerStartedEventAttributes" in event
    )


@pytest.mark.parametrize(
    "path", HISTORIES, ids=[str(p.relative_to(HISTORY_DIR)) for p in HISTORIES]
)
async def test_golden_history_replays(path: Path) -> None:
    result = await replay_file(path)
    assert result.replay_failure is None


async def test_finished_conversation_replays(client: Client, task_queue: str) -> None:
    conversation = await start_conversation(client, task_queue=task_queue)
    await conversation.send_message("What's the weather in Tokyo and what is 3 ** 3?")
    # A note after reading the weather (untrusted content) waits for a person.
    note = asyncio.ensure_future(conversation.send_message("Remember that replay works."))
    status = await eventually(conversation.status, until=lambda s: bool(s.pending_approvals))
    await conversation.approve(status.pending_approvals[0].call_id, by="tester")
    assert (await note).tool_calls[0].outcome == "ok"
    await conversation.end()
    await conversation.result()

    history = await conversation.handle.fetch_history()
    result = await replayer().replay_workflow(history)
    assert result.replay_failure is None


async def test_changed_code_is_caught_as_nondeterminism(tmp_path: Path) -> None:
    # The recorded run called `model.invoke` first; pretend the code now calls
    # another activity there. Replay must refuse it rather than silently diverge.
    document = json.loads((HISTORY_DIR / "offline_tools_multi_turn.json").read_text())
    workflow_id = document.pop("workflowId")
    for event in document["events"]:
        attributes = event.get("activityTaskScheduledEventAttributes")
        if attributes:
            attributes["activityType"]["name"] = "model.renamed"
            break
    history = WorkflowHistory.from_json(workflow_id, document)
    with pytest.raises(NondeterminismError):
        await replayer().replay_workflow(history)


async def test_cli_exports_and_replays_a_history(
    client: Client, temporal_server: DevServer, task_queue: str, tmp_path: Path
) -> None:
    conversation = await start_conversation(client, task_queue=task_queue)
    await conversation.send_message("What is 6 * 7?")
    code, out, err = await run_command(
        sys.executable, "starter.py", "history", "export", "--server", temporal_server.address,
        conversation.id,
    )  # fmt: skip
    assert code == 0, err
    path = tmp_path / "history.json"
    path.write_text(out)
    assert json.loads(out)["workflowId"] == conversation.id
    assert json.loads(out) == json.loads(await export_history(client, conversation.id))

    code, out, err = await run_command(sys.executable, "starter.py", "replay", str(path))
    assert code == 0, err
    assert f"replayed {path}: ok" in out
