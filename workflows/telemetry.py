"""What a conversation reports about itself: one log record and a few metrics per
model call and per tool call, and the state of its breakers.

Both go through the workflow's replay-safe channels — ``workflow.logger`` and
``workflow.metric_meter()`` are silent while a worker replays history — so a count
never doubles when a conversation moves to another worker, and retries inside an
activity are one call here. Latencies are measured on workflow time: from scheduling
to the result, retries included. While the worker replays, nothing is built for them
either (``_live``): a replayed turn would pay for records nobody receives.
"""

from __future__ import annotations

from decimal import Decimal

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from durable_agent.activity_models import ModelResponse
    from durable_agent.breaker import BreakerStatus
    from durable_agent.contract import ApprovalDecision, SafetyFlag, ToolCallRecord

BREAKER_STATE_VALUES = {"closed": 0, "half_open": 1, "open": 2}


class ConversationTelemetry:
    """Created once per workflow run; metric instruments are made lazily."""

    def __init__(self) -> None:
        meter = workflow.metric_meter()
        self._model_requests = meter.create_counter(
            "durable_agent_model_requests", "Model calls by model and outcome."
        )
        self._tokens = meter.create_counter(
            "durable_agent_tokens", "Tokens used, by kind and model.", "tokens"
        )
        self._cost = meter.create_histogram_float(
            "durable_agent_model_cost_usd",
            "US dollars per model call (its sum is the spend).",
            "USD",
        )
        self._tool_calls = meter.create_counter(
            "durable_agent_tool_calls", "Tool calls by tool and outcome."
        )
        self._safety_flags = meter.create_counter(
            "durable_agent_safety_flags",
            "Texts flagged by screening, by source (user, tool, reply) and category.",
        )
        self._approvals = meter.create_counter(
            "durable_agent_approvals", "Approval decisions on tool calls, by tool and decision."
        )
        self._breaker_state = meter.create_gauge(
            "durable_agent_breaker_state", "Last seen breaker state: 0 closed, 1 half-open, 2 open."
        )

    def model_call(
        self,
        turn: int,
        model: str,
        outcome: str,
        seconds: float,
        response: ModelResponse | None = None,
        cost: Decimal = Decimal(0),
    ) -> None:
        """Record one model call (after its retries)."""
        if not _live():
            return
        self._model_requests.add(1, {"model": model, "outcome": outcome})
        fields: dict[str, object] = {
            "event": "model_call",
            "turn": turn,
            "model": model,
            "outcome": outcome,
            "latency_ms": round(seconds * 1000),
        }
        if response is not None:
            usage = response.usage.model_dump()
            for kind, tokens in usage.items():
                self._tokens.add(tokens, {"kind": kind.removesuffix("_tokens"), "model": model})
            self._cost.record(float(cost), {"model": model})
            fields |= usage | {
                "backend": response.backend,
                "cost_usd": str(cost),
                "stop_reason": response.stop_reason,
            }
        workflow.logger.info("model call %s: %s", model, outcome, extra=fields)

    def tool_call(self, turn: int, record: ToolCallRecord, seconds: float) -> None:
        """Record one tool call (after its retries)."""
        if not _live():
            return
        self._tool_calls.add(1, {"tool": record.name, "outcome": record.outcome})
        workflow.logger.info(
            "tool call %s: %s",
            record.name,
            record.outcome,
            extra={
                "event": "tool_call",
                "turn": turn,
                "tool": record.name,
                "outcome": record.outcome,
                "latency_ms": round(seconds * 1000),
            },
        )

    def safety_flag(self, flag: SafetyFlag) -> None:
        """Record a flagged text: one count per category, and a warning."""
        if not _live():
            return
        source = flag.source.split(":", 1)[0]
        for category in flag.categories:
            self._safety_flags.add(1, {"source": source, "category": category})
        workflow.logger.warning(
            "%s %s as %s",
            flag.source,
            flag.action,
            ", ".join(flag.categories),
            extra={"event": "safety_flag"} | flag.model_dump(mode="json"),
        )

    def approval(self, tool: str, decision: ApprovalDecision) -> None:
        """Count one approval decision (the desk logs who and why)."""
        if not _live():
            return
        self._approvals.add(1, {"tool": tool, "decision": decision})

    def breakers(self, snapshot: dict[str, BreakerStatus]) -> None:
        """Publish each dependency's breaker state."""
        if not _live():
            return
        for dependency, status in snapshot.items():
            self._breaker_state.set(BREAKER_STATE_VALUES[status.state], {"dependency": dependency})


def _live() -> bool:
    """Whether the worker runs the workflow live (not replaying its history): only then
    do ``workflow.logger`` and the workflow's meters record anything."""
    return not workflow.unsafe.is_replaying()
