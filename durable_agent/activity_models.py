"""Payloads between ``AgentWorkflow`` and its activities.

Internal to the worker (clients never see them) but recorded in workflow histories,
so changing a field is a workflow-versioning concern: add optional fields, never
rename. Pure pydantic, no I/O.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from durable_agent.contract import (
    ContentBlock,
    Message,
    ModelDelta,
    ToolOutcome,
    TranscriptArchive,
    Usage,
)

MODEL_ACTIVITY = "model.invoke"
"""Registered name of the model activity; stable, renaming it breaks running workflows."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ToolDefinition(_Model):
    """A tool as the model sees it (the Messages API ``tools`` entry)."""

    name: str
    description: str
    input_schema: dict[str, Any]


QUERY_TRANSCRIPT_PREFIX = "transcript_prefix"
"""Internal query: the first ``TranscriptPrefix.end`` messages of the conversation (what a
model activity was not sent and has not cached)."""


class TranscriptPrefix(_Model):
    """Input of the ``transcript_prefix`` query."""

    end: int
    context: bool = False
    """Also answer the system prompt and tools last sent (``Messages.context``)."""


class ModelContext(_Model):
    """The system prompt and tools of a conversation's model calls, numbered: calls send
    them only when they change (``TranscriptWindow.context_seq``)."""

    seq: int
    system: str
    tools: list[ToolDefinition]


class Messages(_Model):
    """Result of the ``transcript_prefix`` query."""

    messages: list[Message]
    context: ModelContext | None = None


class TranscriptWindow(_Model):
    """Where a model call's earlier messages are: ``ModelRequest.messages`` holds only
    the messages from ``base`` on, so history records each message about once instead
    of the whole transcript on every call (which grows history quadratically)."""

    workflow_id: str
    run_id: str
    base: int
    """Messages before this index are not in the request: the activity has them in its
    cache, or asks the workflow (``transcript_prefix`` query)."""
    context_seq: int = 0
    """Which system prompt and tools the call uses (numbered per run, from 1); 0: the
    request carries them."""


COMPACT_ACTIVITY = "model.compact"
"""Registered name of the compaction activity; stable."""


class CompactRequest(_Model):
    """Input of ``model.compact``: summarise the first ``window.base`` messages and keep
    the originals in the blob store under ``archive_key``."""

    window: TranscriptWindow
    archive_key: str
    model: str | None
    max_tokens: int = 1024
    archive: TranscriptArchive | None = None
    """Messages of earlier runs, folded in too (before the window's)."""


ARCHIVE_ACTIVITY = "transcript.archive"
"""Registered name of the activity that archives a transcript at continue-as-new."""


class ArchiveRequest(_Model):
    """Input of ``transcript.archive``: write ``previous`` (if any) and the run's first
    ``window.base`` messages to the blob store under ``key``."""

    window: TranscriptWindow
    previous: TranscriptArchive | None = None
    key: str


class CompactResult(_Model):
    """Output of ``model.compact``."""

    summary: str
    usage: Usage
    model: str


class ModelRequest(_Model):
    """Input of the ``model.invoke`` activity."""

    model: str | None
    """``None``: the worker's configured model."""
    system: str
    messages: list[Message]
    """The whole transcript, or (with ``window``) the messages from ``window.base`` on."""
    tools: list[ToolDefinition]
    max_tokens: int
    window: TranscriptWindow | None = None
    archive: TranscriptArchive | None = None
    """Messages of earlier runs that go before ``messages`` (and the window's prefix)."""
    context_omitted: bool = False
    """``system`` and ``tools`` are left out because the previous call of this run sent
    the same (``window.context_seq``): the activity has them cached, or asks."""
    stream: StreamTarget | None = None
    """Publish the output as it is written to the conversation's stream (``None``: the
    turn is not streamed)."""


class StreamTarget(_Model):
    """Where a model call's deltas go: the calling conversation's stream, labelled with
    the call's place in it (``ModelDelta.turn``/``model_call``)."""

    turn: int
    model_call: int
    workflow_id: str | None = None
    """Publish to this workflow's stream instead of the calling run's: a sub-agent
    relays its output to its parent's."""
    delegation: str | None = None
    """With ``workflow_id``: the parent's delegation call the output is part of."""


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
    stream_tail: list[ModelDelta] = []
    """A streamed call's last deltas, not yet published when it returned: the workflow
    publishes them itself (free in history, where a last signal would cost four events)."""


class ToolCall(_Model):
    """Input of a tool activity."""

    tool: str
    arguments: dict[str, Any]
    idempotency_key: str
    """``<workflow id>/<turn>/<call index>``: stable across retries, crashes and replays."""
    conversation_id: str
    tenant: str = "default"
    injection_patterns: list[str] | None = None
    """Set when the conversation screens tool results: a result too large for history
    is screened here, in full (the workflow only sees its preview)."""


class ToolResult(_Model):
    """Output of a tool activity. Failures the model should see come back here, typed;
    infrastructure failures raise instead so the retry policy applies."""

    outcome: ToolOutcome
    content: str
    ref: str | None = None
    """Blob-store key of the whole result when ``content`` is a preview."""
    flags: list[str] = []
    """Prompt-injection categories found in the whole of an offloaded result."""
    error_type: str | None = None
    """A typed refusal the model is told of (``ToolCallRecord.error_type``)."""
