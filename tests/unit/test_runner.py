"""The lean sandbox runner (``workflows.runner``): asked directly, a workflow's instance
gives every payload the serialization context the SDK's sandboxed path gives it.

Replays committed histories (no server): every payload of every activation and
completion is asked for once by each path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, WorkflowInstance, WorkflowInstanceDetails

from workflows.runner import (
    IN_SANDBOX,
    WORKFLOW_RUNNER,
    WORKFLOWS,
    LeanInstance,
    LeanSandboxedWorkflowRunner,
)

HISTORIES = Path(__file__).parent.parent / "histories"


class CheckedInstance(LeanInstance):
    """Answers as ``LeanInstance`` does, and records whether the SDK's own (sandboxed)
    path gives the same answer."""

    asked: ClassVar[list[str]] = []
    differences: ClassVar[list[tuple[str, Any, Any]]] = []

    def get_serialization_context(self, command_info: Any) -> Any:
        lean = super().get_serialization_context(command_info)
        self._compare("serialization", lean, self._sdk_serialization(command_info))
        return lean

    def get_external_store_context(self, command_info: Any) -> Any:
        lean = super().get_external_store_context(command_info)
        self._compare("external store", lean, self._sdk_store(command_info))
        return lean

    def _sdk_serialization(self, command_info: Any) -> Any:
        return super(LeanInstance, self).get_serialization_context(command_info)

    def _sdk_store(self, command_info: Any) -> Any:
        return super(LeanInstance, self).get_external_store_context(command_info)

    def _compare(self, what: str, lean: Any, sdk: Any) -> None:
        assert IN_SANDBOX in self.globals_and_locals  # the direct path was taken
        self.asked.append(what)
        if lean != sdk:
            self.differences.append((what, lean, sdk))


@dataclass(frozen=True)
class CheckedRunner(LeanSandboxedWorkflowRunner):
    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return CheckedInstance(det, self.runner_class, self.restrictions)


@pytest.mark.parametrize(
    "name",
    ["offline_delegation", "offline_streaming", "offline_approvals", "offline_continue_as_new"],
)
async def test_every_payload_gets_the_sdks_context(name: str) -> None:
    CheckedInstance.asked.clear()
    CheckedInstance.differences.clear()
    replayer = Replayer(
        workflows=WORKFLOWS,
        data_converter=pydantic_data_converter,
        workflow_runner=CheckedRunner(restrictions=WORKFLOW_RUNNER.restrictions),
    )
    document = json.loads((HISTORIES / f"{name}.json").read_text())
    workflow_id = document.pop("workflowId")
    for run in document.get("runs", [document]):
        await replayer.replay_workflow(WorkflowHistory.from_json(workflow_id, run))
    assert "serialization" in CheckedInstance.asked
    assert CheckedInstance.differences == []


def test_workers_and_replayers_use_the_lean_runner() -> None:
    assert isinstance(WORKFLOW_RUNNER, LeanSandboxedWorkflowRunner)
