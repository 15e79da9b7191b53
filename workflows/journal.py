"""The journal of a conversation: one call per step feeds its three records together —
the step event on the conversation's stream (``feed.EventFeed``), the metrics and the
structured log record (``telemetry.ConversationTelemetry``) — so no step is reported
in one place and forgotten in another.

Every channel is replay-safe: the stream is rebuilt exactly on replay, and the logger
and meters are silent while a worker replays history.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from durable_agent.activity_models import ModelResponse
    from durable_agent.breaker import BreakerStatus
    from durable_agent.contract import (
        ApprovalRecord,
        Reply,
        SafetyFlag,
        ToolCallRecord,
        ToolUseBlock,
    )

from workflows.feed import EventFeed
from workflows.telemetry import ConversationTelemetry
from workflows.turn import Turn


class Journal:
    """What a conversation reports of each step, made once per run."""

    def __init__(self, feed: EventFeed) -> None:
        self.feed = feed
        self._telemetry = ConversationTelemetry()

    def turn_started(self, turn: int) -> None:
        self.feed.emit("turn_started", turn)

    def model_call_started(self, turn: int, model_call: int) -> None:
        self.feed.emit("model_call_started", turn, model_call=model_call)

    def model_call_failed(
        self, turn: int, model_call: int, model: str, outcome: str, why: str, seconds: float
    ) -> None:
        self.feed.emit(
            "model_call_finished", turn, model_call=model_call, outcome=outcome, detail=why
        )
        self._telemetry.model_call(turn, model, outcome, seconds)

    def model_call_finished(
        self, turn: int, model_call: int, response: ModelResponse, cost: Decimal, seconds: float
    ) -> None:
        self.feed.emit(
            "model_call_finished",
            turn,
            model_call=model_call,
            outcome="ok",
            detail=response.stop_reason,
            usage=response.usage,
            cost_usd=cost,
        )
        self._telemetry.model_call(turn, response.model, "ok", seconds, response, cost)

    def tool_call_started(self, turn: int, block: ToolUseBlock) -> None:
        self.feed.emit(
            "tool_call_started", turn, call_id=block.id, tool=block.name, arguments=block.input
        )

    def tool_call_finished(self, turn: int, record: ToolCallRecord, seconds: float) -> None:
        self.feed.emit(
            "tool_call_finished",
            turn,
            call_id=record.id,
            tool=record.name,
            outcome=record.outcome,
        )
        self._telemetry.tool_call(turn, record, seconds)

    def approval_requested(self, turn: int, call_id: str, tool: str, reason: str) -> None:
        self.feed.emit("approval_requested", turn, call_id=call_id, tool=tool, detail=reason)

    def approval_decided(self, turn: int, call_id: str, approval: ApprovalRecord) -> None:
        """The desk has logged who decided and why; this counts and publishes it."""
        self.feed.emit(
            "approval_decided",
            turn,
            call_id=call_id,
            tool=approval.tool,
            outcome=approval.decision,
            detail=approval.by,
        )
        self._telemetry.approval(approval.tool, approval.decision)

    def safety_flag(self, flag: SafetyFlag) -> None:
        self._telemetry.safety_flag(flag)

    def turn_ended(
        self, turn: Turn, reply: Reply, breakers: Callable[[], dict[str, BreakerStatus]]
    ) -> None:
        """The turn's log record and the breakers' state, asked of ``breakers`` only
        when recorded (the reply event follows once the reply is delivered: ``replied``)."""
        if workflow.unsafe.is_replaying():
            return  # the logger and meters are silent: build nothing for them
        log = workflow.logger.info if reply.status == "ok" else workflow.logger.warning
        log(
            "turn %d ended %s",
            turn.number,
            reply.status,
            extra={
                "event": "turn",
                "turn": turn.number,
                "status": reply.status,
                "detail": reply.detail,
                "model_calls": turn.model_calls,
                "tool_calls": len(turn.tool_calls),
                "cost_usd": str(turn.budget.spent.usd),
            },
        )
        self._telemetry.breakers(breakers())

    def replied(self, reply: Reply) -> None:
        """The reply is delivered: its event, then only the newest items are kept."""
        self.feed.emit("reply", reply.turn, reply=reply)
        self.feed.turn_over()

    def ended(self, turns: int) -> None:
        self.feed.emit("ended", turns)
