"""The Claude backend of the model activity: the Messages API, streamed, with the
official SDK.

Its own module so that a worker on another backend never imports ``anthropic``: the
SDK and ``httpx2`` are ~60 MiB of resident memory once imported (thousands of type
modules), a third of an idle worker. ``worker.build_backend`` imports this module only
when it builds a Claude backend.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import anthropic
import httpx2
from temporalio.exceptions import ApplicationError

from activities.claude_request import claude_params
from activities.llm import Heartbeat
from activities.streaming import ClaudeDeltas, DeltaSink, no_deltas
from durable_agent.activity_models import ModelRequest, ModelResponse
from durable_agent.contract import ContentBlock, TextBlock, ToolUseBlock, Usage
from durable_agent.retry_classification import (
    Classification,
    classify_status,
    classify_transport,
)


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
