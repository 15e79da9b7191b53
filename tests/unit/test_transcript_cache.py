"""The model activity's transcript cache: conversations with the same system prompt and
tools share one copy of them, and each still gets its own context back."""

from __future__ import annotations

from activities.transcripts import TranscriptCache
from durable_agent.activity_models import ModelContext, ToolDefinition
from durable_agent.contract import Message, TextBlock


def context(seq: int, system: str = "be brief") -> ModelContext:
    tool = ToolDefinition(name="calc", description="adds", input_schema={"type": "object"})
    return ModelContext(seq=seq, system=system, tools=[tool])


def test_alike_contexts_share_their_tools_and_keep_their_numbers() -> None:
    cache = TranscriptCache(capacity=8)
    messages = [Message(role="user", content=[TextBlock(text="hi")])]
    cache.put("a", "run-a", messages, context(1))
    cache.put("b", "run-b", messages, context(3))
    cache.put("c", "run-c", messages, context(1, system="be long"))
    a, b, c = (cache.context(w, f"run-{w}", s) for w, s in (("a", 1), ("b", 3), ("c", 1)))
    assert a is not None and b is not None and c is not None
    assert (a, b, c) == (context(1), context(3), context(1, system="be long"))
    assert a.tools is b.tools  # one copy
    assert c.tools is not a.tools  # a different system prompt: not the same context
