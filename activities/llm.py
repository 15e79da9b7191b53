"""The model activity and its backends.

``ModelActivities.invoke`` (registered as ``model.invoke``) takes a ``ModelRequest``
and returns one assistant message as a ``ModelResponse``. Two backends sit behind one
interface: ``ClaudeBackend`` (``activities/claude.py``) streams from the Messages API
with the official SDK, and ``OfflineBackend`` runs the deterministic offline planner.
Failures leave as typed ``ApplicationError``s (see
``durable_agent.retry_classification``) so Temporal's retry policy owns every retry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from temporalio import activity
from temporalio.client import Client

from activities.observability import end_model_span, start_model_span
from activities.streaming import DeltaSink, delta_sink, no_deltas
from activities.transcripts import TranscriptCache, full_request
from durable_agent.activity_models import MODEL_ACTIVITY, ModelRequest, ModelResponse
from durable_agent.models.offline import OfflineModel, stream_pieces
from durable_agent.stores.blobs import BlobStore
from durable_agent.stream_batching import FlushPolicy

Heartbeat = Callable[..., None]


class ModelBackend(Protocol):
    """Produces one assistant message for a request, calling ``heartbeat`` as it goes."""

    name: str
    system: str
    """``gen_ai.system`` of its spans."""
    default_model: str

    async def complete(
        self, request: ModelRequest, heartbeat: Heartbeat, deltas: DeltaSink = no_deltas
    ) -> ModelResponse:
        """``deltas`` takes the output as it is written (``activities/streaming.py``)."""
        ...


class OfflineBackend:
    """The deterministic offline planner (not Claude): plans real tool calls from the
    user's words so the demo and tests run with no API key and no network."""

    name = "offline"
    system = "offline"

    def __init__(self, *, pace_seconds: float = 0.0) -> None:
        self._model = OfflineModel()
        self.default_model = self._model.name
        self.pace_seconds = pace_seconds
        """Pause between streamed words (``AGENT_OFFLINE_STREAM_PACE_SECONDS``)."""

    async def complete(
        self, request: ModelRequest, heartbeat: Heartbeat, deltas: DeltaSink = no_deltas
    ) -> ModelResponse:
        heartbeat()
        response = self._model.respond(request)
        if deltas is not no_deltas:
            for index, piece in enumerate(stream_pieces(response.content)):
                if index and piece.kind == "text" and self.pace_seconds:
                    await asyncio.sleep(self.pace_seconds)  # a writer's pace, for the demo
                    heartbeat()
                deltas(piece.kind, piece.text, call_id=piece.call_id, tool=piece.tool)
        return response


class ModelActivities:
    """Holds the backend the worker built once, the worker's Temporal client, the blob
    store and the transcript cache (requests carry only the newest messages, and large
    tool results by reference: ``activities/transcripts.py``)."""

    def __init__(
        self,
        backend: ModelBackend,
        client: Client,
        blobs: BlobStore,
        cache: TranscriptCache | None = None,
        *,
        flush_policy: FlushPolicy | None = None,
        final_flush_seconds: float = 5.0,
    ) -> None:
        self.backend = backend
        self.client = client
        self.blobs = blobs
        self.cache = cache or TranscriptCache()
        self.flush_policy = flush_policy or FlushPolicy()
        """How fast a streamed call publishes its deltas (``durable_agent.stream_batching``)."""
        self.final_flush_seconds = final_flush_seconds

    @activity.defn(name=MODEL_ACTIVITY)
    async def invoke(self, request: ModelRequest) -> ModelResponse:
        """Call the model once. Heartbeats while the response streams in; a streamed call
        (``request.stream``) publishes it to the conversation's stream as it comes, and
        returns what it has not published yet with its result (``stream_tail``)."""
        target = request.stream
        request = await full_request(request, self.client, self.cache, self.blobs)
        model = request.model or self.backend.default_model
        with start_model_span(request, model, self.backend.system) as span:
            async with delta_sink(
                self.client,
                target,
                self.flush_policy,
                final_flush_seconds=self.final_flush_seconds,
            ) as deltas:
                response = await self.backend.complete(request, activity.heartbeat, deltas)
            if tail := getattr(deltas, "tail", None):  # published by the workflow
                response = response.model_copy(update={"stream_tail": tail})
            end_model_span(span, response)
        activity.logger.info(
            "model attempt ok: %s",
            response.model,
            extra={"model": response.model, "stop_reason": response.stop_reason},
        )
        return response
