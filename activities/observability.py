"""Per-attempt activity latency metrics, and the GenAI span of a model call.

Latency is measured here, around each attempt (a retried call is several requests to
the dependency); the workflow counts calls once each, after their retries.
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry.trace import Span, SpanKind
from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from durable_agent.activity_models import MODEL_ACTIVITY, ModelRequest, ModelResponse
from durable_agent.telemetry import tracer


class LatencyInterceptor(Interceptor):
    """Records ``durable_agent_model_latency_seconds`` and
    ``durable_agent_tool_latency_seconds`` for every attempt."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _TimedActivity(next)


class _TimedActivity(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        name = activity.info().activity_type
        if name == MODEL_ACTIVITY:
            metric, attributes = "durable_agent_model_latency_seconds", {}
        elif name.startswith("tool."):
            metric, attributes = "durable_agent_tool_latency_seconds", {"tool": name[5:]}
        else:
            return await super().execute_activity(input)
        histogram = activity.metric_meter().create_histogram_float(
            metric, "Latency of one attempt.", "s"
        )
        started = time.monotonic()
        outcome = "error"
        try:
            result = await super().execute_activity(input)
            outcome = "ok"
            return result
        finally:
            histogram.record(time.monotonic() - started, {**attributes, "outcome": outcome})


def start_model_span(request: ModelRequest, model: str, system: str) -> Any:
    """A client span named per the GenAI semantic conventions (``chat <model>``)."""
    return tracer().start_as_current_span(
        f"chat {model}",
        kind=SpanKind.CLIENT,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.system": system,
            "gen_ai.provider.name": system,
            "gen_ai.request.model": model,
            "gen_ai.request.max_tokens": request.max_tokens,
        },
    )


def end_model_span(span: Span, response: ModelResponse) -> None:
    """Response attributes: model, finish reason and token usage by kind."""
    usage = response.usage
    span.set_attributes(
        {
            "gen_ai.response.model": response.model,
            "gen_ai.response.finish_reasons": [response.stop_reason or "unknown"],
            "gen_ai.usage.input_tokens": usage.input_tokens,
            "gen_ai.usage.output_tokens": usage.output_tokens,
            "gen_ai.usage.cache_creation_input_tokens": usage.cache_creation_input_tokens,
            "gen_ai.usage.cache_read_input_tokens": usage.cache_read_input_tokens,
        }
    )
