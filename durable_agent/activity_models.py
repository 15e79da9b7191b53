"""Payloads between ``AgentWorkflow`` and its activities.

Internal to the worker (clients never see them) but recorded in workflow histories,
so changing a field is a workflow-versioning concern: add optional fields, never
rename. Pure pydantic, no I/O.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from durable_agent.contract import ContentBlock, Message, ToolOutcome, Usage

MODEL_ACTIVITY = "model.invoke"
"""Registered name of the model activity; stable, renaming it breaks running workflows."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ToolDefinition(_Model):
    """A tool as the model sees it (the Messages API ``tools`` entry)."""

    name: str
    description: str
    input_schema: dict[str, Any]


class ModelRequest(_Model):
    """Input of the ``model.invoke`` activity."""

    model: str | None
    """``None``: the worker's configured model."""
    system: str
    messages: list[Message]
    tools: list[ToolDefinition]
    max_tokens: int


StopReason = str
"""``end_turn``, ``tool_use``, ``max_tokens``, ``stop_sequence``, ``pause_turn``,
``refusal`` … kept open: the API adds reasons, and an unknown one must not fail a turn."""


class ModelResponse(_Model):
    """Output of the ``model.invoke`` activity: one assistant message."""

    content: list[ContentBlock]
    stop_reason: StopReason | None
    usage: Usage
    model: str
    backend: Literal["claude", "offline"]


class ToolCall(_Model):
    """Input of a tool activity."""

    tool: str
    arguments: dict[str, Any]
    idempotency_key: str
    """``<workflow id>/<turn>/<call index>``: stable across retries, crashes and replays."""
    conversation_id: str
    tenant: str = "default"


class ToolResult(_Model):
    """Output of a tool activity. Failures the model should see come back here, typed;
    infrastructure failures raise instead so the retry policy applies."""

    outcome: ToolOutcome
    content: str
