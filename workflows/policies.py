"""How the conversation calls the model: timeouts and retry policy as data, and
the small limits of a turn. (Tool calls carry their own, on their ``ToolSpec``.)"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from durable_agent.retry_classification import NON_RETRYABLE_TYPES

MODEL_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=6,
    # The model activity raises these for requests that retrying cannot fix.
    non_retryable_error_types=[*NON_RETRYABLE_TYPES],
)
MODEL_START_TO_CLOSE = timedelta(minutes=3)
MODEL_SCHEDULE_TO_CLOSE = timedelta(minutes=10)
MODEL_HEARTBEAT = timedelta(seconds=30)

ANSWERED_KEPT = 16
"""Replies a run keeps by update id (Temporal itself dedupes update ids within a run)."""
ANSWERED_CARRIED = 4
"""Replies carried into the next run for retries that arrive after continue-as-new (a
retry comes within moments of its message, and the run continues as new right after a
reply); whole replies, so they are the largest part of a new run's input."""

MIN_OUTPUT_TOKENS = 64
"""A model call that could not produce at least this many tokens is not worth making."""

GOVERNOR = "governor"
"""Dependency name of the tenant governor in degraded replies."""
