"""One turn of a conversation: what it has done so far (``Turn``), how it ends early
(``TurnOver``), and the small pure helpers that word its outcomes."""

from __future__ import annotations

from dataclasses import dataclass, field

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from durable_agent.activity_models import (
        ModelResponse,
    )
    from durable_agent.budget import Budget
    from durable_agent.contract import (
        ApprovalRecord,
        BudgetScope,
        Reply,
        TextBlock,
        ToolCallRecord,
        ToolOutcome,
        ToolUseBlock,
        TurnStatus,
        UserMessage,
    )
    from durable_agent.retry_classification import NON_RETRYABLE_TYPES

from workflows.deadline import TurnClock

STOPPED = "not run: the turn was stopped"
"""The tool_result of a call the turn's deadline (or a cancellation) cut off."""


@dataclass
class Pending:
    """A message accepted by the update and waiting for its turn."""

    update_id: str
    message: UserMessage


@dataclass
class Turn:
    """What one turn has done so far."""

    number: int
    budget: Budget
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    model_calls: int = 0
    degraded: list[str] = field(default_factory=list)
    last_response: ModelResponse | None = None
    tainted_by: list[str] = field(default_factory=list)
    """What in this turn was flagged as a possible prompt injection (``user``,
    ``tool:<name>``): from then on, calls that can change anything need approval."""
    rate_limited: tuple[float, str] | None = None
    """While waiting out the tenant's rate limit: when the wait ends, and why."""
    streamed: bool = False
    """The model's output goes to the conversation's stream as it is written."""
    clock: TurnClock = field(default_factory=lambda: TurnClock(0.0, timerless=False))
    """The turn's deadline (an armed clock, no-op for steps, unless the run keeps it
    without a timer)."""

    def waiting_out_rate_limit(self, wait: tuple[float, str] | None) -> None:
        """The turn waits out the tenant's rate limit (until when, why), or no longer."""
        self.rate_limited = wait

    def reply(
        self,
        text: str,
        status: TurnStatus = "ok",
        detail: str | None = None,
        *,
        budget_scope: BudgetScope | None = None,
        retry_after_seconds: float | None = None,
    ) -> Reply:
        response = self.last_response
        return Reply(
            text=text,
            turn=self.number,
            tool_calls=self.tool_calls,
            usage=self.budget.spent.usage,
            model=response.model if response else "",
            backend=response.backend if response else "",
            model_calls=self.model_calls,
            status=status,
            detail=detail,
            degraded=sorted(set(self.degraded)),
            cost_usd=self.budget.spent.usd,
            budget_scope=budget_scope,
            retry_after_seconds=retry_after_seconds,
        )


class TurnOver(Exception):
    """Raised inside a turn to end it early with a typed reply."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


def record(
    block: ToolUseBlock,
    outcome: ToolOutcome,
    result: str,
    *,
    flags: list[str] | None = None,
    approval: ApprovalRecord | None = None,
    ref: str | None = None,
) -> ToolCallRecord:
    return ToolCallRecord(
        id=block.id,
        name=block.name,
        arguments=block.input,
        outcome=outcome,
        result=result,
        flags=flags or [],
        approval=approval,
        result_ref=ref,
    )


def rejection(approval: ApprovalRecord) -> str:
    """What the model is told about a call a person did not approve."""
    if approval.decision == "timed_out":
        return f"not run: {approval.reason}"
    return f"not run: {approval.by} rejected the call: {approval.reason}"


def text_of(response: ModelResponse) -> str:
    return "".join(b.text for b in response.content if isinstance(b, TextBlock))


def is_request_error(error: ActivityError) -> bool:
    """Whether the model refused the request itself (our fault, not the dependency's)."""
    cause = error.__cause__
    return isinstance(cause, ApplicationError) and cause.type in NON_RETRYABLE_TYPES


def describe(error: ActivityError) -> str:
    """What went wrong, in the activity's words: the first ``ApplicationError`` (or
    timeout) under the activity failure."""
    cause: BaseException | None = error.__cause__
    while cause is not None:
        if isinstance(cause, ApplicationError):
            return cause.message
        if cause.__cause__ is None:
            return str(cause) or type(cause).__name__
        cause = cause.__cause__
    return str(error)


def tool_summary(name: str, arguments: dict[str, object]) -> str:
    args = ", ".join(str(v) for v in arguments.values())
    summary = f"{name}({args})"
    return summary if len(summary) <= 80 else summary[:77] + "..."
