"""Workflows of durable-agent, and how workers (and replayers) must run them."""

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from workflows.agent import AgentWorkflow

WORKFLOWS: list[type] = [AgentWorkflow]
"""Every workflow a worker registers; the replayer needs the same list."""

# Our contract and pure-logic modules are deterministic and side-effect free: pass them
# through the sandbox instead of re-importing them for every workflow run.
WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules("durable_agent")
)

__all__ = ["WORKFLOWS", "WORKFLOW_RUNNER", "AgentWorkflow"]
