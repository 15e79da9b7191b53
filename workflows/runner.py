"""How workers (and replayers) run the workflows: which ones, and the sandbox."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from temporalio.api.common.v1 import Payload, Payloads
from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions
from temporalio.worker.workflow_sandbox._runner import _Instance

from workflows.agent import AgentWorkflow
from workflows.governor import TenantGovernorWorkflow

CONVERSATION_WORKFLOWS: list[type] = [AgentWorkflow]
"""Served on the conversations' task queue."""
GOVERNOR_WORKFLOWS: list[type] = [TenantGovernorWorkflow]
"""Served on the governors' task queue."""
WORKFLOWS: list[type] = [*CONVERSATION_WORKFLOWS, *GOVERNOR_WORKFLOWS]
"""Every workflow workers register; the replayer needs the same list."""

PASSTHROUGH_MODULES = (
    # The contract and the pure core: deterministic, no I/O, no mutable module state.
    # Exactly these; the layering test (tests/unit/test_layering.py) holds them to
    # importing only the standard library, pydantic, temporalio.common and each other.
    "durable_agent.activity_models",
    "durable_agent.api_keys",
    "durable_agent.breaker",
    "durable_agent.budget",
    "durable_agent.compact",
    "durable_agent.contract",
    "durable_agent.delegation",
    "durable_agent.dependencies",
    "durable_agent.governor",
    "durable_agent.injection",
    "durable_agent.models",
    "durable_agent.pricing",
    "durable_agent.provenance",
    "durable_agent.retry_classification",
    "durable_agent.safety",
    "durable_agent.search_attributes",
    "durable_agent.spend",
    "durable_agent.token_bucket",
    "durable_agent.tools",
    "durable_agent.toolsets",
    "durable_agent.usage",
    # The workflow's helpers: deterministic (they call only the ``workflow`` API), no
    # module state. Imported once per worker instead of once per cached conversation.
    "workflows.agent",
    "workflows.answered",
    "workflows.approvals",
    "workflows.base",
    "workflows.compaction",
    "workflows.delegation",
    "workflows.continuation",
    "workflows.deadline",
    "workflows.feed",
    "workflows.journal",
    "workflows.model_step",
    "workflows.parsing",
    "workflows.permits",
    "workflows.policies",
    "workflows.relay",
    "workflows.screening",
    "workflows.sharing",  # its cache is shared on purpose (one copy per worker)
    "workflows.telemetry",
    "workflows.tool_step",
    "workflows.transcript",
    "workflows.turn",
    "workflows.versions",
)
"""Modules the sandbox shares instead of re-importing for every workflow run. That
includes ``AgentWorkflow``'s own module: re-imported, its code and handlers cost ~45 KiB
per cached conversation. What keeps these modules deterministic is what they import
(``tests/unit/test_layering.py``: no clock, randomness or I/O) and the replay tests,
not the sandbox's import checks. ``workflows.governor`` (one workflow per tenant) is
still re-imported, and so is ``workflows/__init__.py``, which therefore imports
nothing."""


IN_SANDBOX = "__temporal_in_sandbox"
"""Where temporalio 1.35's sandboxed instance keeps the workflow's own instance (in the
globals it runs code with)."""


class LeanInstance(_Instance):
    """The SDK's sandboxed instance, asked for a payload's serialization context without
    entering the sandbox.

    Before it encodes or decodes a payload, the worker asks the workflow's instance which
    context the payload belongs to (workflow, activity, child workflow, ...). Temporalio
    1.35 answers by compiling and ``exec``-ing a snippet under the sandbox's import hooks,
    once per payload and pass: about three quarters of the sandbox entries of a turn, and
    a fifth of a replayed turn's CPU (a 200-turn replay: 6.8 → 5.2 ms a turn). The answer
    is a pure lookup in the instance's own state (its info and pending commands) that
    imports nothing, so it is asked directly. Should a later SDK keep the instance under
    another name, the SDK's own path answers (``tests/unit/test_runner.py`` fails first:
    it checks both give the same context for every payload of committed histories, and
    that the direct path is taken)."""

    def activate(self, act: WorkflowActivation) -> WorkflowActivationCompletion:
        completion = super().activate(act)
        self._let_go_of(act)
        return completion

    def _let_go_of(self, act: WorkflowActivation) -> None:
        """Drop what the SDK's instance keeps of an activation: temporalio 1.35 keeps the
        last activation's internal flags and the first's start headers as views into
        them, so a cached workflow held both activations whole (a protobuf arena each,
        not Python heap: ~4 KiB per cached conversation in malloc, issue 13). Equal
        copies take their place; nothing reads them but the SDK, for the same answers."""
        inside: Any = self.globals_and_locals.get(IN_SANDBOX)
        instance = getattr(inside, "instance", None)
        flags = getattr(instance, "_current_internal_flags", None)
        if flags is not None and not isinstance(flags, list):
            instance._current_internal_flags = list(flags)  # type: ignore[union-attr]
        start = getattr(instance, "_workflow_input", None)
        if start is not None and not isinstance(start.headers, dict):
            start.headers = {
                key: Payload.FromString(value.SerializeToString())
                for key, value in start.headers.items()
            }

    def get_serialization_context(self, command_info: Any) -> Any:
        inside: Any = self.globals_and_locals.get(IN_SANDBOX)
        if inside is None:
            return super().get_serialization_context(command_info)
        return inside.get_serialization_context(command_info)

    def get_external_store_context(self, command_info: Any) -> Any:
        inside: Any = self.globals_and_locals.get(IN_SANDBOX)
        if inside is None:
            return super().get_external_store_context(command_info)
        return inside.get_external_store_context(command_info)


@dataclass(frozen=True)
class LeanSandboxedWorkflowRunner(SandboxedWorkflowRunner):
    """The SDK's sandbox, with ``LeanInstance`` for its instances, which keep no
    activation."""

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return LeanInstance(detached(det), self.runner_class, self.restrictions)


def detached(det: WorkflowInstanceDetails) -> WorkflowInstanceDetails:
    """``det`` with its own copy of the last completion result, which the SDK gives as
    a view into the first activation (see ``LeanInstance._let_go_of``)."""
    last_result = Payloads()
    last_result.CopyFrom(det.last_completion_result)
    return replace(det, last_completion_result=last_result)


WORKFLOW_RUNNER = LeanSandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
)

__all__ = [
    "CONVERSATION_WORKFLOWS",
    "GOVERNOR_WORKFLOWS",
    "PASSTHROUGH_MODULES",
    "WORKFLOWS",
    "WORKFLOW_RUNNER",
    "AgentWorkflow",
    "LeanSandboxedWorkflowRunner",
    "TenantGovernorWorkflow",
]
