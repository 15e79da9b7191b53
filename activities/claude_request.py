"""The Messages API request a ``ModelRequest`` becomes, with prompt-cache breakpoints.

Claude's prompt cache keeps prefixes of the prompt, in the API's order tools → system →
messages, that end at a block marked ``cache_control``. A later request with the same
prefix reads it at a tenth of the input price; writing it costs 1.25 times (5-minute TTL).
A request may mark at most four blocks, and the API looks for a cached prefix only at a
mark and up to 20 blocks before it. A conversation re-sends its whole transcript on
every call, so the marks go where the next call will find them:

1. the last tool definition: the tools, shared by conversations offered the same tools;
2. the system prompt: tools and system, shared by conversations with the same prompt;
3. the last block of the last message: the whole transcript, which the next call extends;
4. the last block of the third message from the end: where the previous call made mark 3
   (between two calls the workflow adds the assistant's message and one user message), so
   that prefix is read exactly however many blocks the step added. One step with many
   parallel tool calls adds more than 20, beyond the API's lookback from mark 3.
"""

from __future__ import annotations

from typing import Any

from durable_agent.activity_models import ModelRequest

PREVIOUS_CALL_MESSAGE = -3
"""Index of the last message of the previous call's transcript (mark 4)."""


def claude_params(request: ModelRequest, model: str, *, prompt_caching: bool) -> dict[str, Any]:
    """Keyword arguments of ``messages.stream`` for ``request``; with ``prompt_caching``,
    the same request with cache breakpoints. Builds new dicts: ``request`` is not changed."""
    params: dict[str, Any] = {
        "model": model,
        "max_tokens": request.max_tokens,
        "system": request.system,
        # ``exclude_none``: ``ToolResultBlock.ref`` is ours, never the API's.
        "messages": [m.model_dump(mode="json", exclude_none=True) for m in request.messages],
    }
    if request.tools:
        params["tools"] = [t.model_dump(mode="json") for t in request.tools]
    if prompt_caching:
        _mark_breakpoints(params)
    return params


def _mark_breakpoints(params: dict[str, Any]) -> None:
    if params.get("tools"):
        _mark(params["tools"][-1])
    if params["system"]:  # an empty text block cannot be marked (nor sent)
        params["system"] = [_mark({"type": "text", "text": params["system"]})]
    messages = params["messages"]
    for index in (-1, PREVIOUS_CALL_MESSAGE):
        if len(messages) >= -index:
            _mark_last_block(messages[index])


def _mark_last_block(message: dict[str, Any]) -> None:
    for block in reversed(message["content"]):
        if block["type"] != "text" or block["text"]:  # empty text blocks cannot be marked
            _mark(block)
            return


def _mark(block: dict[str, Any]) -> dict[str, Any]:
    block["cache_control"] = {"type": "ephemeral"}
    return block
