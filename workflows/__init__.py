"""Workflows of durable-agent, and how workers (and replayers) must run them
(``workflows.runner``).

The sandbox imports this package afresh for every workflow run it starts (a cached
conversation keeps its own copy), so it imports nothing itself: its names load on first
use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workflows.agent import AgentWorkflow
    from workflows.governor import TenantGovernorWorkflow
    from workflows.runner import (
        CONVERSATION_WORKFLOWS,
        GOVERNOR_WORKFLOWS,
        PASSTHROUGH_MODULES,
        WORKFLOW_RUNNER,
        WORKFLOWS,
    )

_HOMES = {
    "AgentWorkflow": "workflows.agent",
    "TenantGovernorWorkflow": "workflows.governor",
    "CONVERSATION_WORKFLOWS": "workflows.runner",
    "GOVERNOR_WORKFLOWS": "workflows.runner",
    "PASSTHROUGH_MODULES": "workflows.runner",
    "WORKFLOWS": "workflows.runner",
    "WORKFLOW_RUNNER": "workflows.runner",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'workflows' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)


__all__ = [
    "CONVERSATION_WORKFLOWS",
    "GOVERNOR_WORKFLOWS",
    "PASSTHROUGH_MODULES",
    "WORKFLOWS",
    "WORKFLOW_RUNNER",
    "AgentWorkflow",
    "TenantGovernorWorkflow",
]
