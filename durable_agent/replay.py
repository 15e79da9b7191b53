"""Replay recorded conversation histories against the current workflow code.

A history that no longer replays means a code change would break running
conversations: version it with ``workflow.patched`` (see the README) before deploying.
"""

from __future__ import annotations

import json
from pathlib import Path

from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.worker import Replayer, WorkflowReplayResult

from workflows import WORKFLOW_RUNNER, WORKFLOWS


def replayer(data_converter: DataConverter = pydantic_data_converter) -> Replayer:
    """A replayer with the workers' workflows, sandbox and data converter (pass
    ``durable_agent.codec.data_converter(settings)`` for encrypted histories)."""
    return Replayer(
        workflows=WORKFLOWS,
        data_converter=data_converter,
        workflow_runner=WORKFLOW_RUNNER,
    )


async def export_history(client: Client, workflow_id: str) -> str:
    """The history of a conversation as JSON (the format ``temporal workflow show
    --output json`` writes), with its workflow id recorded for replay."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    document = history.to_json_dict()
    document["workflowId"] = workflow_id
    return json.dumps(document)


async def replay_file(
    path: Path, data_converter: DataConverter = pydantic_data_converter
) -> WorkflowReplayResult:
    """Replay one exported history file; raises on nondeterminism."""
    document = json.loads(path.read_text())
    workflow_id = document.pop("workflowId", path.stem)
    history = WorkflowHistory.from_json(workflow_id, document)
    return await replayer(data_converter).replay_workflow(history)
