"""Errors of the gateway as RFC 9457 problem details (``application/problem+json``).

Every error response is a ``Problem``: a ``type`` naming the kind of problem (listed at
``GET /problems``), the HTTP ``status``, a ``title`` per type and a ``detail`` for this
occurrence. Details are built from the conversation's own typed errors and from status
codes, never from stack traces or exception text that could carry a secret.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from durable_agent.contract import Reply

MEDIA_TYPE = "application/problem+json"


@dataclass(frozen=True)
class ProblemType:
    slug: str
    status: int
    title: str
    description: str

    @property
    def uri(self) -> str:
        return f"/problems/{self.slug}"


def _t(slug: str, status: int, title: str, description: str) -> ProblemType:
    return ProblemType(slug, status, title, description)


UNAUTHORIZED = _t(
    "unauthorized", 401, "Missing or unknown API key",
    "Send a configured key as `Authorization: Bearer <key>`.",
)  # fmt: skip
FORBIDDEN = _t(
    "forbidden", 403, "Not your tenant's conversation",
    "The conversation id belongs to another tenant (ids are `<tenant>.<id>`).",
)  # fmt: skip
NOT_FOUND = _t(
    "not-found", 404, "Not found",
    "No such conversation, message or route.",
)  # fmt: skip
VALIDATION = _t(
    "validation-error", 422, "Invalid request",
    "The request's body, query or path does not match the schema; `errors` lists each problem.",
)  # fmt: skip
INVALID_MESSAGE = _t(
    "invalid-message", 422, "Message refused",
    "The conversation refused the message (empty, over the message limit, control "
    "characters, text that is not valid Unicode); "
    "nothing entered its history and it is still usable.",
)  # fmt: skip
MESSAGE_BLOCKED = _t(
    "message-blocked", 422, "Message blocked by policy",
    "The message matched a blocked pattern or looked like a prompt injection; nothing "
    "entered the conversation's history.",
)  # fmt: skip
CONVERSATION_ENDED = _t(
    "conversation-ended", 409, "Conversation ended",
    "The conversation has ended or was cancelled; start a new one.",
)  # fmt: skip
APPROVAL_CONFLICT = _t(
    "approval-conflict", 409, "No such waiting tool call",
    "The tool call is not waiting for approval (never was, or already decided).",
)  # fmt: skip
INVALID_APPROVAL = _t(
    "invalid-approval", 422, "Approval refused",
    "The edited arguments are not valid for the tool; the call still waits.",
)  # fmt: skip
NOT_AN_APPROVER = _t(
    "not-an-approver", 403, "Not one of the conversation's approvers",
    "The safety policy names who may approve or reject this conversation's tool calls, "
    "and this API key is not one of them; the call still waits.",
)  # fmt: skip
IDEMPOTENCY_REUSED = _t(
    "idempotency-key-reused", 422, "Idempotency-Key reused",
    "This Idempotency-Key was used for a different request.",
)  # fmt: skip
BUDGET_EXCEEDED = _t(
    "budget-exceeded", 402, "Budget exceeded",
    "The turn's or the conversation's budget ran out; `reply` holds what the turn said.",
)  # fmt: skip
TENANT_BUDGET_EXCEEDED = _t(
    "tenant-budget-exceeded", 429, "Tenant's daily budget exceeded",
    "The tenant's daily budget is spent; retry after `Retry-After` seconds (the UTC day's end).",
)  # fmt: skip
RATE_LIMITED = _t(
    "rate-limited", 429, "Rate limited",
    "Too many requests (this API key) or model calls (this tenant); retry after `Retry-After`.",
)  # fmt: skip
TEMPORAL_UNAVAILABLE = _t(
    "temporal-unavailable", 503, "Temporal unavailable",
    "The gateway cannot reach Temporal right now; nothing was done. Retry later.",
)  # fmt: skip
CONVERSATION_UNAVAILABLE = _t(
    "conversation-unavailable", 503, "Conversation unavailable",
    "No worker has completed the conversation's workflow task lately (one was stopped "
    "holding it, or the workers are overloaded), so Temporal refuses its messages and "
    "queries for now; nothing was done. Retry after `Retry-After`.",
)  # fmt: skip
REQUEST_TOO_LARGE = _t(
    "request-too-large", 413, "Request too large",
    "The request body is over the gateway's limit, or a value in it is over what Temporal "
    "accepts in one call; nothing was done. Retrying the same request cannot succeed.",
)  # fmt: skip
BAD_REQUEST = _t(
    "bad-request", 400, "Malformed HTTP request",
    "The request is not valid HTTP (for example raw non-ASCII bytes in its path: "
    "percent-encode them as UTF-8).",
)  # fmt: skip
METHOD_NOT_ALLOWED = _t(
    "method-not-allowed", 405, "Method not allowed",
    "The route exists but not with this method.",
)  # fmt: skip
INTERNAL = _t(
    "internal-error", 500, "Internal error",
    "Something unexpected failed; it is logged. No details are given.",
)  # fmt: skip

CATALOG = [
    UNAUTHORIZED, FORBIDDEN, NOT_FOUND, VALIDATION, INVALID_MESSAGE, MESSAGE_BLOCKED,
    CONVERSATION_ENDED, APPROVAL_CONFLICT, INVALID_APPROVAL, NOT_AN_APPROVER, IDEMPOTENCY_REUSED,
    BUDGET_EXCEEDED, TENANT_BUDGET_EXCEEDED, RATE_LIMITED, TEMPORAL_UNAVAILABLE,
    CONVERSATION_UNAVAILABLE,
    REQUEST_TOO_LARGE, BAD_REQUEST, METHOD_NOT_ALLOWED, INTERNAL,
]  # fmt: skip
BY_SLUG = {p.slug: p for p in CATALOG}


class FieldError(BaseModel):
    """One problem of an invalid request."""

    location: str
    """Where: ``body.text``, ``query.wait``, ``path.conversation_id``…"""
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    model_config = ConfigDict(extra="forbid")

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    """The request path."""
    conversation_id: str | None = None
    retry_after_seconds: float | None = None
    """Also sent as the ``Retry-After`` header (whole seconds, rounded up)."""
    errors: list[FieldError] | None = None
    """``validation-error``: each invalid field."""
    reply: Reply | None = None
    """``budget-exceeded``, ``tenant-budget-exceeded``, ``rate-limited`` from a turn: the
    reply the turn ended with (it is in the transcript)."""


class ProblemError(Exception):
    """Raised by handlers; answered as its problem document."""

    def __init__(
        self,
        kind: ProblemType,
        detail: str,
        *,
        conversation_id: str | None = None,
        retry_after_seconds: float | None = None,
        errors: list[FieldError] | None = None,
        reply: Reply | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.conversation_id = conversation_id
        self.retry_after_seconds = retry_after_seconds
        self.errors = errors
        self.reply = reply
        self.headers = dict(headers or {})

    def document(self, instance: str | None) -> Problem:
        return Problem(
            type=self.kind.uri,
            title=self.kind.title,
            status=self.kind.status,
            detail=self.detail,
            instance=instance,
            conversation_id=self.conversation_id,
            retry_after_seconds=self.retry_after_seconds,
            errors=self.errors,
            reply=self.reply,
        )

    def response_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.retry_after_seconds is not None:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after_seconds)))
        if self.kind is UNAUTHORIZED:
            headers["WWW-Authenticate"] = 'Bearer realm="durable-agent"'
        return headers


def reply_problem(reply: Reply, conversation_id: str) -> ProblemError | None:
    """The problem a turn's reply stands for, if any: budgets (402, or 429 for the
    tenant's daily budget) and the tenant's rate limit (429). Other statuses (a degraded
    answer, a timeout, a refused model request) are answers: 200 with the reply."""
    if reply.status == "budget_exceeded":
        tenant = reply.budget_scope == "tenant"
        return ProblemError(
            TENANT_BUDGET_EXCEEDED if tenant else BUDGET_EXCEEDED,
            reply.detail or "a budget ran out",
            conversation_id=conversation_id,
            retry_after_seconds=(reply.retry_after_seconds or 60.0) if tenant else None,
            reply=reply,
        )
    if reply.status == "rate_limited":
        return ProblemError(
            RATE_LIMITED,
            reply.detail or "the tenant's rate limit outlasted the turn",
            conversation_id=conversation_id,
            retry_after_seconds=reply.retry_after_seconds or 1.0,
            reply=reply,
        )
    return None


def field_errors(errors: Sequence[Mapping[str, Any]]) -> list[FieldError]:
    """Pydantic/FastAPI validation errors as ``FieldError``s (input values left out:
    they may be secrets)."""
    return [
        FieldError(location=".".join(str(p) for p in e.get("loc", ())), message=str(e["msg"]))
        for e in errors
    ]
