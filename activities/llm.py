"""The model activity and its backends.

``ModelActivities.invoke`` (registered as ``model.invoke``) takes a ``ModelRequest``
and returns one assistant message as a ``ModelResponse``. Two backends sit behind one
interface: ``ClaudeBackend`` streams from the Messages API with the official SDK, and
``OfflineBackend`` runs the deterministic offline planner. Failures leave as typed
``ApplicationError``s (see ``durable_agent.retry_classification``) so Temporal's retry
policy owns every retry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Protocol

import anthropic
import httpx2
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.claude_request import claude_params
from activities.observability import end_model_span, start_model_span
from activities.streaming import ClaudeDeltas, DeltaSink, delta_sink, no_deltas
from activities.transcripts import TranscriptCache, full_request
from durable_agent.activity_models import MODEL_ACTIVITY, ModelRequest, ModelResponse
from durable_agent.contract import ContentBlock, TextBlock, ToolUseBlock, Usage
from durable_agent.models.offline import OfflineModel, stream_pieces
from durable_agent.retry_classification import (
    Classification,
    classify_status,
    classify_transport,
)
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


class ClaudeBackend:
    """Claude through the official async SDK, streamed.

    The client is built once per worker with ``max_retries=0``: Temporal owns retries,
    so every attempt is an event in history and none hides inside the SDK. With
    ``prompt_caching`` each request marks prompt-cache breakpoints
    (``activities/claude_request.py``), so a call re-reads the transcript at a tenth of
    the input price instead of paying for all of it again.
    """

    name = "claude"
    system = "anthropic"

    def __init__(
        self,
        client: anthropic.AsyncAnthropic,
        default_model: str,
        *,
        prompt_caching: bool = True,
        redact: Callable[[str], str] = str,
    ) -> None:
        self._client = client
        self.default_model = default_model
        self.prompt_caching = prompt_caching
        self._redact = redact

    async def complete(
        self, request: ModelRequest, heartbeat: Heartbeat, deltas: DeltaSink = no_deltas
    ) -> ModelResponse:
        try:
            return await self._complete(request, heartbeat, deltas)
        except ApplicationError as e:
            # Messages and causes go into workflow history: an endpoint that echoes the
            # key (or a configured secret) in its error must not put it there.
            raise ApplicationError(
                self._redact(e.message),
                type=e.type,
                non_retryable=e.non_retryable,
                next_retry_delay=e.next_retry_delay,
            ) from _RedactedCause(self._redact(f"{type(e.__cause__).__name__}: {e.__cause__}"))

    async def _complete(
        self, request: ModelRequest, heartbeat: Heartbeat, deltas: DeltaSink
    ) -> ModelResponse:
        model = request.model or self.default_model
        params = claude_params(request, model, prompt_caching=self.prompt_caching)
        publish = ClaudeDeltas(deltas)
        try:
            async with self._client.messages.stream(**params) as stream:
                events = 0
                async for event in stream:
                    events += 1
                    heartbeat(events)
                    publish(event)
                message = await stream.get_final_message()
        except anthropic.APIStatusError as e:
            raise _application_error(
                classify_status(
                    e.status_code,
                    error_type=getattr(e, "type", None) or _body_error(e.body, "type"),
                    retry_after=e.response.headers.get("retry-after"),
                    detail=_detail(_body_error(e.body, "message") or e.message, e.request_id),
                )
            ) from e
        except anthropic.APITimeoutError as e:
            raise _application_error(classify_transport("timeout", str(e))) from e
        except anthropic.APIConnectionError as e:
            raise _application_error(classify_transport("connection", str(e))) from e
        except httpx2.TransportError as e:
            # A connection cut mid-stream surfaces as the raw transport error.
            raise _application_error(classify_transport("stream_cut", type(e).__name__)) from e
        return ModelResponse(
            content=_content(message.content),
            stop_reason=message.stop_reason,
            usage=Usage(
                input_tokens=message.usage.input_tokens,
                output_tokens=message.usage.output_tokens,
                cache_creation_input_tokens=message.usage.cache_creation_input_tokens or 0,
                cache_read_input_tokens=message.usage.cache_read_input_tokens or 0,
            ),
            model=message.model,
            backend="claude",
        )


class _RedactedCause(Exception):
    """The SDK's error, as text with secrets removed (the original is not sent to
    Temporal: its message may quote the request's credentials)."""


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


def _application_error(c: Classification) -> ApplicationError:
    return ApplicationError(
        c.message,
        type=c.error_type,
        non_retryable=not c.retryable,
        next_retry_delay=(
            timedelta(seconds=c.next_retry_delay) if c.next_retry_delay is not None else None
        ),
    )


def _content(blocks: list[Any]) -> list[ContentBlock]:
    """Keep the blocks the conversation carries (text, tool_use)."""
    content: list[ContentBlock] = []
    for block in blocks:
        if block.type == "text":
            content.append(TextBlock(text=block.text))
        elif block.type == "tool_use":
            content.append(ToolUseBlock(id=block.id, name=block.name, input=dict(block.input)))
    return content


def _body_error(body: object, field: str) -> str | None:
    """``error.<field>`` of an API error body, e.g. its ``type`` or ``message``."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            value = error.get(field)
            if isinstance(value, str):
                return value
    return None


def _detail(message: str, request_id: str | None) -> str:
    return f"{message} (request id {request_id})" if request_id else message
