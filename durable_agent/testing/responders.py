"""Responders for ``FakeAnthropicServer``: what the fake Messages API answers.

``offline_responder`` puts the offline planner behind the real HTTP protocol, so the
Claude path (SDK, HTTP, streaming) runs real multi-step tool use in tests without a
network. ``ScriptedResponder`` answers from a list, for exact scenarios.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from typing import Any

from durable_agent.activity_models import ModelRequest, ToolDefinition
from durable_agent.contract import Message
from durable_agent.models.offline import OfflineModel
from durable_agent.testing.prompt_cache import strip_cache_control


def request_from_body(body: dict[str, Any]) -> ModelRequest:
    """The ``ModelRequest`` a Messages API request body carries."""
    body = strip_cache_control(body)
    system = body.get("system") or ""
    if isinstance(system, list):
        system = "".join(block.get("text", "") for block in system)
    return ModelRequest(
        model=body.get("model"),
        system=system,
        messages=[Message.model_validate(m) for m in body["messages"]],
        tools=[
            ToolDefinition(
                name=t["name"], description=t.get("description", ""), input_schema=t["input_schema"]
            )
            for t in body.get("tools", [])
        ],
        max_tokens=body["max_tokens"],
    )


def offline_responder(body: dict[str, Any]) -> dict[str, Any]:
    """Answer as the offline planner would, in the Messages API's response shape."""
    response = OfflineModel().respond(request_from_body(body))
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:24]
    return {
        "id": f"msg_fake_{digest}",
        "type": "message",
        "role": "assistant",
        "content": [block.model_dump(mode="json") for block in response.content],
        "model": body.get("model", "unknown"),
        "stop_reason": response.stop_reason,
        "stop_sequence": None,
        # Input counts are left to the server, which reports them from its prompt cache.
        "usage": {"output_tokens": response.usage.output_tokens},
    }


class ScriptedResponder:
    """Answers request N with ``messages[N]`` (the last one repeats); records bodies.

    A message whose ``usage`` has input counts is reported with exactly those; without
    them the server fills them in from its prompt cache."""

    def __init__(self, messages: Sequence[dict[str, Any]]) -> None:
        if not messages:
            raise ValueError("a script needs at least one message")
        self._messages = list(messages)
        self._lock = threading.Lock()
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            index = min(len(self.bodies), len(self._messages) - 1)
            self.bodies.append(body)
            message = dict(self._messages[index])
        message.setdefault("model", body.get("model", "unknown"))
        return message
