"""Sub-agents as tools: the model sees sub-agent ``x`` as ``delegate_to_x``, taking a
task description. The workflow runs such a call as a child workflow, not an activity
(``workflows.delegation``); the spec carries what the model and the tool step need.
Pure declarations."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from durable_agent.contract import MAX_MESSAGE_CHARS, SubAgent
from durable_agent.delegation import tool_name
from durable_agent.tools.registry import ToolArguments, ToolSpec


class DelegateArgs(ToolArguments):
    task: str = Field(
        min_length=1,
        max_length=MAX_MESSAGE_CHARS,
        description=(
            "The task, with everything the agent needs to know: it sees nothing else of "
            "this conversation."
        ),
    )


@dataclass(frozen=True, kw_only=True)
class DelegateSpec(ToolSpec):
    """A sub-agent as a tool. Its answer is text another model wrote from what its own
    tools read, so it counts as untrusted; read permission (the sub-agent's own calls
    ask for approval by its policy)."""

    agent: str

    @property
    def activity_name(self) -> str:
        raise TypeError(f"{self.name} runs as a child workflow, not an activity")


def delegate_specs(subagents: list[SubAgent]) -> list[DelegateSpec]:
    """One tool per sub-agent, in the order given."""
    return [
        DelegateSpec(
            name=tool_name(sub.name),
            description=(
                f"Hand a task to the {sub.name} agent and get its answer"
                + (f": {sub.description}" if sub.description else ".")
                + " Several calls in one response run in parallel."
            ),
            arguments=DelegateArgs,
            criticality="optional",
            permission="read",
            trust="untrusted",
            agent=sub.name,
        )
        for sub in subagents
    ]
