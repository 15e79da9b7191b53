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
    detached,
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


class HoldingInstance(LeanInstance):
    """Records what the SDK's instance holds after each activation."""

    held: ClassVar[list[tuple[type, type]]] = []

    def activate(self, act: Any) -> Any:
        completion = super().activate(act)
        instance = self.globals_and_locals[IN_SANDBOX].instance
        flags, headers = instance._current_internal_flags, instance._workflow_input.headers
        self.held.append((type(flags), type(headers)))
        return completion


@dataclass(frozen=True)
class HoldingRunner(LeanSandboxedWorkflowRunner):
    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return HoldingInstance(detached(det), self.runner_class, self.restrictions)


async def test_a_cached_workflow_keeps_no_view_into_an_activation() -> None:
    """The SDK's instance keeps the last activation's flags and the first's headers as
    views that hold the whole activation; the lean instance swaps in copies (names
    checked here first should a later SDK rename them)."""
    HoldingInstance.held.clear()
    replayer = Replayer(
        workflows=WORKFLOWS,
        data_converter=pydantic_data_converter,
        workflow_runner=HoldingRunner(restrictions=WORKFLOW_RUNNER.restrictions),
    )
    document = json.loads((HISTORIES / "offline_tools_multi_turn.json").read_text())
    await replayer.replay_workflow(WorkflowHistory.from_json(document.pop("workflowId"), document))
    assert HoldingInstance.held
    assert set(HoldingInstance.held) == {(list, dict)}
