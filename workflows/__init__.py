"""Workflows of durable-agent, and how workers (and replayers) must run them."""

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from workflows.agent import AgentWorkflow
from workflows.governor import TenantGovernorWorkflow

CONVERSATION_WORKFLOWS: list[type] = [AgentWorkflow]
"""Served on the conversations' task queue."""
GOVERNOR_WORKFLOWS: list[type] = [TenantGovernorWorkflow]
"""Served on the governors' task queue."""
WORKFLOWS: list[type] = [*CONVERSATION_WORKFLOWS, *GOVERNOR_WORKFLOWS]
"""Every workflow workers register; the replayer needs the same list."""

# Our contract and pure-logic modules are deterministic and side-effect free: pass them
# through the sandbox instead of re-importing them for every workflow run.
WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules("durable_agent")
)

__all__ = [
    "CONVERSATION_WORKFLOWS",
    "GOVERNOR_WORKFLOWS",
    "WORKFLOWS",
    "WORKFLOW_RUNNER",
    "AgentWorkflow",
    "TenantGovernorWorkflow",
]
