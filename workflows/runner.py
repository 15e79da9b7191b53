"""How workers (and replayers) run the workflows: which ones, and the sandbox."""

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

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

WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
)

__all__ = [
    "CONVERSATION_WORKFLOWS",
    "GOVERNOR_WORKFLOWS",
    "PASSTHROUGH_MODULES",
    "WORKFLOWS",
    "WORKFLOW_RUNNER",
    "AgentWorkflow",
    "TenantGovernorWorkflow",
]
