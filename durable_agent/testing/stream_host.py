"""A minimal workflow that hosts a ``WorkflowStream`` and makes one model call, for the
streaming tests and ``bench/streaming.py``: the model activity's publishing measured
and tested on its own, apart from ``AgentWorkflow``.

It runs ``model.invoke`` once (streamed when the request has a ``StreamTarget``),
then waits for ``release`` (or ``hold_seconds``) before it completes, so subscribers
can finish reading a live run.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from pydantic import BaseModel, ConfigDict
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.contrib.workflow_streams import WorkflowStream

from durable_agent.activity_models import MODEL_ACTIVITY, ModelRequest, ModelResponse
from durable_agent.contract import STREAM_TOPIC_DELTAS

STREAM_HOST_WORKFLOW = "StreamHostWorkflow"
SIGNAL_RELEASE = "release"


class StreamJob(BaseModel):
    """Input of ``StreamHostWorkflow``."""

    model_config = ConfigDict(extra="forbid")

    request: ModelRequest
    max_attempts: int = 3
    hold_seconds: float = 0.0
    """How long the run stays open after the call (until ``release``)."""


@workflow.defn(name=STREAM_HOST_WORKFLOW)
class StreamHostWorkflow:
    """Hosts a stream; makes one model call."""

    @workflow.init
    def __init__(self, job: StreamJob) -> None:
        self.stream = WorkflowStream()
        self._released = False

    @workflow.signal(name=SIGNAL_RELEASE)
    def release(self) -> None:
        """Let the run complete."""
        self._released = True

    @workflow.run
    async def run(self, job: StreamJob) -> ModelResponse:
        """The model's response, after ``release`` or ``hold_seconds``."""
        response: ModelResponse = await workflow.execute_activity(
            MODEL_ACTIVITY,
            job.request,
            result_type=ModelResponse,
            start_to_close_timeout=timedelta(seconds=60),
            heartbeat_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(milliseconds=100), maximum_attempts=job.max_attempts
            ),
        )
        deltas = self.stream.topic(STREAM_TOPIC_DELTAS)
        for delta in response.stream_tail:  # what the call had not published itself
            deltas.publish(delta)
        if job.hold_seconds:
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._released, timeout=timedelta(seconds=job.hold_seconds)
                )
        # Waiting polls are answered before the run ends (else they are cut off, and
        # the SDK warns); readers then drain the closed run by query.
        self.stream.detach_pollers()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return response
