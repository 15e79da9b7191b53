"""Request and response bodies of the gateway that are not already in the contract.

Replies, statuses, transcripts, approvals and events are the contract's own models
(``durable_agent.contract``): a service that switches from HTTP to the Temporal client
API keeps its types.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from durable_agent.contract import ConversationLimits, ConversationStatus


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        """JSON may spell a lone surrogate (``"\\ud800"``); such text cannot be stored
        or sent on (it is not valid UTF-8), so it is refused here, saying where."""
        where = _lone_surrogate(data, "body")
        if where is not None:
            place, code = where
            raise ValueError(
                f"{place} contains an unpaired surrogate (U+{code:04X}), which is not valid "
                "Unicode text"
            )
        return data


def _lone_surrogate(value: Any, place: str) -> tuple[str, int] | None:
    """Where in a parsed JSON value a string holds a surrogate code point, and which."""
    if isinstance(value, str):
        for char in value:
            if 0xD800 <= ord(char) <= 0xDFFF:
                return place, ord(char)
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _lone_surrogate(key, f"{place} (a key)") or _lone_surrogate(
                item, f"{place}.{key}" if isinstance(key, str) and key.isascii() else place
            )
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _lone_surrogate(item, f"{place}[{index}]")
            if found:
                return found
    return None


class SendMessage(_Body):
    """Body of ``POST /v1/conversations/{id}/messages`` (the contract's ``UserMessage``)."""

    text: str
    """The message; at most the gateway policy's ``max_message_chars`` characters."""
    stream: bool | None = None
    """Write this turn's model output to the conversation's event stream as it comes
    (``GET …/events``, ``event: delta``); ``None``: the conversation's setting (off
    unless started with it)."""


class StartConversation(_Body):
    """Body of ``POST /v1/conversations`` (every field optional: ``{}`` or no body
    starts one with the gateway's defaults). The safety policy is the gateway's, and
    limits may only be lowered."""

    agent: str | None = Field(default=None, min_length=1, max_length=64)
    """An agent profile (the gateway's ``AGENT_PROFILES_FILE``) to start from; the other
    fields replace its settings, and its limits are the ones that may only be lowered."""
    system_prompt: str | None = Field(default=None, min_length=1, max_length=20_000)
    model: str | None = Field(default=None, min_length=1, max_length=100)
    tools: list[str] | None = Field(default=None, max_length=32)
    """Names of built-in and user tools; ``None``: all built-in ones (or the agent's)."""
    max_tokens: int | None = Field(default=None, ge=1, le=64_000)
    max_model_calls_per_turn: int | None = Field(default=None, ge=1, le=100)
    turn_timeout_seconds: float | None = Field(default=None, gt=0, le=3600)
    limits: ConversationLimits | None = None
    """At most the gateway's defaults (per turn: $1, 32 tool calls; per conversation: $25)."""


class Links(_Body):
    self: str
    messages: str
    events: str
    transcript: str


class ConversationCreated(_Body):
    """Response of ``POST /v1/conversations``."""

    id: str
    """The conversation's id (``<tenant>.conversation-…``): the workflow id in Temporal."""
    tenant: str
    links: Links


class MessageAccepted(_Body):
    """``202``: the message is queued or its turn is still running; poll ``location``."""

    message_id: str
    conversation_id: str
    location: str
    state: Literal["pending"] = "pending"


ExecutionStatus = Literal[
    "running", "completed", "failed", "cancelled", "terminated", "continued_as_new", "timed_out"
]


class ConversationView(_Body):
    """Response of ``GET /v1/conversations/{id}``."""

    id: str
    tenant: str
    execution: ExecutionStatus
    """The workflow's status in Temporal."""
    started_at: datetime | None = None
    closed_at: datetime | None = None
    status: ConversationStatus
    """The ``status`` query: state, usage, cost, budget, breakers, pending approvals."""


class ConversationSummary(_Body):
    id: str
    execution: ExecutionStatus
    started_at: datetime | None = None
    closed_at: datetime | None = None


class ConversationList(_Body):
    """Response of ``GET /v1/conversations``: the tenant's conversations, newest first."""

    conversations: list[ConversationSummary]
    next_page: str | None = None
    """Pass as ``page`` for the next page; ``None``: this was the last."""


class _Decision(_Body):
    """A person's decision sent by a service: recorded as made by the authenticated API
    key, ``<tenant>/<key name>`` (with `` for <on_behalf_of>`` when given); a body
    cannot say who decided (``by`` is refused)."""

    @model_validator(mode="before")
    @classmethod
    def _no_by(cls, data: Any) -> Any:
        if isinstance(data, dict) and "by" in data:
            raise ValueError(
                "by is not accepted: a decision is recorded as made by the API key that "
                "sends it (name the person in on_behalf_of)"
            )
        return data


class ApprovalRequest(_Decision):
    """Body of ``POST /v1/conversations/{id}/approvals/{call_id}``. The decision is
    recorded as made by the authenticated API key, ``<tenant>/<key name>`` (with
    `` for <on_behalf_of>`` when given); a body cannot say who decided (``by`` is
    refused)."""

    decision: Literal["approve", "reject"]
    arguments: dict[str, Any] | None = None
    """``approve`` only: run the call with these arguments instead (validated by the tool)."""
    reason: str | None = Field(default=None, min_length=1, max_length=2000)
    """Required to ``reject`` (the model is told it)."""
    on_behalf_of: str | None = Field(default=None, min_length=1, max_length=100)
    """The person the calling service acts for, kept in the audit list."""

    @model_validator(mode="after")
    def _consistent(self) -> ApprovalRequest:
        if self.decision == "reject" and not self.reason:
            raise ValueError("a rejection needs a reason (the model is told it)")
        if self.decision == "reject" and self.arguments is not None:
            raise ValueError("arguments go with approve, not reject")
        return self


class ClearanceRequest(_Decision):
    """Body of ``POST /v1/conversations/{id}/clearance``: a person vouches for the
    context, so calls stop waiting for approval because of the untrusted content in it
    (until more comes in). Recorded as made by the API key, like an approval; a body
    cannot say who (``by`` is refused)."""

    reason: str | None = Field(default=None, min_length=1, max_length=2000)
    """Why the untrusted content is safe to act on (kept in the audit record)."""
    on_behalf_of: str | None = Field(default=None, min_length=1, max_length=100)
    """The person the calling service acts for, kept in the audit record."""


class Accepted(_Body):
    """``202`` of ``DELETE`` and ``POST …/end``: Temporal has the request."""

    id: str
    action: Literal["cancel", "end"]


class Health(_Body):
    status: Literal["ok", "unavailable"]
    reason: str | None = None


class ProblemTypeInfo(_Body):
    type: str
    status: int
    title: str
    description: str
