"""Replay recorded conversation histories against the current workflow code.

A history that no longer replays means a code change would break running
conversations: version it with ``workflow.patched`` (see ``docs/durability.md``) before
deploying. Not workflow code: it runs this package's workflows the way a worker does
(the CLI, the tests and the benchmarks use it), and the sandbox never imports it.
"""

from __future__ import annotations

import json
from pathlib import Path

from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.worker import Replayer, WorkflowReplayResult

from durable_agent.contract import WORKFLOW_TYPE, ConversationInput
from durable_agent.tools.registry import known_tools
from workflows import WORKFLOW_RUNNER, WORKFLOWS


class MissingTools(ValueError):
    """A history names user tools this process has not loaded: replaying it would fail
    as a confusing nondeterminism error, so it is refused with their names."""


def replayer(data_converter: DataConverter = pydantic_data_converter) -> Replayer:
    """A replayer with the workers' workflows, sandbox and data converter (pass
    ``durable_agent.codec.data_converter(settings)`` for encrypted histories)."""
    return Replayer(
        workflows=WORKFLOWS,
        data_converter=data_converter,
        workflow_runner=WORKFLOW_RUNNER,
    )


async def export_history(client: Client, workflow_id: str) -> str:
    """The history of a conversation as JSON, with its workflow id recorded for replay.
    One run: the format ``temporal workflow show --output json`` writes. A conversation
    that continued as new: ``{"workflowId": …, "runs": [<history>, …]}``, oldest first."""
    listed = client.list_workflows(f"WorkflowId = '{workflow_id}'")
    runs: list[str | None] = [e.run_id async for e in listed]
    documents = []
    for run_id in list(reversed(runs)) or [None]:  # visibility may not list it yet
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        documents.append(history.to_json_dict())
    if len(documents) == 1:
        return json.dumps(documents[0] | {"workflowId": workflow_id})
    return json.dumps({"workflowId": workflow_id, "runs": documents})


async def replay_file(
    path: Path, data_converter: DataConverter = pydantic_data_converter
) -> WorkflowReplayResult:
    """Replay every run in one exported history file; raises on nondeterminism and
    returns the last run's result."""
    document = json.loads(path.read_text())
    workflow_id = document.pop("workflowId", path.stem)
    runs = document.get("runs", [document])
    # A run whose first workflow task has not completed has nothing to check (and the
    # replayer would wait for that task forever).
    started = [r for r in runs if any(e["eventType"] == _TASK_COMPLETED for e in r["events"])]
    histories = [WorkflowHistory.from_json(workflow_id, run) for run in started or runs[:1]]
    for history in histories:
        await check_tools(history, data_converter)
    results = [await replayer(data_converter).replay_workflow(h) for h in histories]
    return results[-1]


async def check_tools(
    history: WorkflowHistory, data_converter: DataConverter = pydantic_data_converter
) -> None:
    """Raise ``MissingTools`` when the conversation's start input names tools this
    process does not know (load the worker's ``AGENT_TOOL_MODULES`` first, as
    ``starter.py replay`` does)."""
    started = history.events[0].workflow_execution_started_event_attributes
    if started.workflow_type.name != WORKFLOW_TYPE:
        return
    (input,) = await data_converter.decode(started.input.payloads, [ConversationInput])
    missing = sorted(set(input.tools or []) - known_tools().keys())
    if missing:
        raise MissingTools(
            f"{history.workflow_id} names tools this process has not loaded: "
            f"{', '.join(missing)}; name their modules in AGENT_TOOL_MODULES (or install "
            "their entry points) as on the worker that ran it"
        )


_TASK_COMPLETED = "EVENT_TYPE_WORKFLOW_TASK_COMPLETED"
