"""Where the Claude request puts its prompt-cache breakpoints."""

from __future__ import annotations

from typing import Any

import pytest

from activities.claude_request import claude_params
from durable_agent.activity_models import ModelRequest, ToolDefinition
from durable_agent.contract import Message, TextBlock, ToolResultBlock, ToolUseBlock
from durable_agent.testing.prompt_cache import (
    MAX_BREAKPOINTS,
    PromptCache,
    breakpoint_count,
    prompt_tokens,
    strip_cache_control,
)

MARK = {"type": "ephemeral"}
TOOLS = [
    ToolDefinition(name=name, description=f"the {name}", input_schema={"type": "object"})
    for name in ("calculator", "get_weather")
]


def user(text: str) -> Message:
    return Message(role="user", content=[TextBlock(text=text)])


def step(n: int, calls: int = 1) -> list[Message]:
    """One tool step: the assistant asks for ``calls`` tools, the user returns results."""
    uses = [ToolUseBlock(id=f"t{n}_{i}", name="calculator", input={}) for i in range(calls)]
    results = [ToolResultBlock(tool_use_id=u.id, content=str(i)) for i, u in enumerate(uses)]
    return [
        Message(role="assistant", content=[TextBlock(text="Let me see."), *uses]),
        Message(role="user", content=list(results)),
    ]


def request(messages: list[Message], system: str = "Be careful.") -> ModelRequest:
    return ModelRequest(model=None, system=system, messages=messages, tools=TOOLS, max_tokens=256)


def marked(params: dict[str, Any]) -> list[str]:
    """Where the breakpoints are: ``tools[i]``, ``system``, ``messages[i][j]``."""
    found = [f"tools[{i}]" for i, t in enumerate(params.get("tools", [])) if "cache_control" in t]
    if isinstance(params["system"], list):
        found += ["system" for b in params["system"] if "cache_control" in b]
    for i, message in enumerate(params["messages"]):
        found += [
            f"messages[{i}][{j}]" for j, b in enumerate(message["content"]) if "cache_control" in b
        ]
    return found


def test_tools_system_and_the_last_two_calls_ends_are_marked() -> None:
    answer = Message(role="assistant", content=[TextBlock(text="It is 4.")])
    messages = [user("What is 2 + 2?"), *step(1), answer, user("And 3 + 3?")]
    params = claude_params(request(messages), "claude-sonnet-4-6", prompt_caching=True)
    # The previous call ended with the tool results (messages[2]); this one with the question.
    assert marked(params) == ["tools[1]", "system", "messages[2][0]", "messages[4][0]"]
    assert params["system"] == [{"type": "text", "text": "Be careful.", "cache_control": MARK}]
    assert breakpoint_count(params) <= MAX_BREAKPOINTS


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ([user("hi")], ["messages[0][0]"]),
        ([user("hi"), *step(1)[:1]], ["messages[1][1]"]),  # the tool_use block
        ([user("hi"), *step(1)], ["messages[0][0]", "messages[2][0]"]),
    ],
    ids=["first-call", "two-messages", "three-messages"],
)
def test_short_transcripts(messages: list[Message], expected: list[str]) -> None:
    params = claude_params(request(messages), "m", prompt_caching=True)
    assert marked(params) == ["tools[1]", "system", *expected]


def test_the_previous_calls_end_is_read_however_wide_the_step() -> None:
    """A step of 15 parallel tool calls adds 31 blocks, beyond the API's 20-block lookback
    from the last mark; the mark on the previous call's end still finds its prefix."""
    before = [user("Compute many things."), *step(1)]
    after = [*before, *step(2, calls=15)]
    previous = claude_params(request(before), "m", prompt_caching=True)
    now = claude_params(request(after), "m", prompt_caching=True)
    assert marked(previous)[-1] == "messages[2][0]"
    assert marked(now) == ["tools[1]", "system", "messages[2][0]", "messages[4][14]"]

    cache = PromptCache(min_tokens=1)
    cache.account(previous)
    assert cache.account(now)["cache_read_input_tokens"] == prompt_tokens(previous)


def test_empty_system_and_no_tools_are_not_marked() -> None:
    plain = ModelRequest(model=None, system="", messages=[user("hi")], tools=[], max_tokens=8)
    params = claude_params(plain, "m", prompt_caching=True)
    assert params["system"] == "" and "tools" not in params
    assert marked(params) == ["messages[0][0]"]


def test_an_empty_trailing_text_block_is_skipped() -> None:
    message = Message(role="user", content=[TextBlock(text="hi"), TextBlock(text="")])
    params = claude_params(request([message]), "m", prompt_caching=True)
    assert marked(params)[-1] == "messages[0][0]"


def test_without_caching_the_request_is_as_before() -> None:
    messages = [user("What is 2 + 2?"), *step(1)]
    original = request(messages)
    params = claude_params(original, "claude-sonnet-4-6", prompt_caching=False)
    assert params == {
        "model": "claude-sonnet-4-6",
        "max_tokens": 256,
        "system": "Be careful.",
        "messages": [m.model_dump(mode="json", exclude_none=True) for m in messages],
        "tools": [t.model_dump(mode="json") for t in TOOLS],
    }
    assert marked(params) == []


def test_caching_changes_only_the_markers_and_not_the_request() -> None:
    original = request([user("What is 2 + 2?"), *step(1)])
    snapshot = original.model_dump()
    cached = claude_params(original, "m", prompt_caching=True)
    plain = claude_params(original, "m", prompt_caching=False)
    assert original.model_dump() == snapshot  # the model was not mutated
    assert cached["system"][0]["text"] == plain["system"]
    assert strip_cache_control({**cached, "system": plain["system"]}) == plain


def test_block_fields_of_our_own_never_reach_the_api() -> None:
    request = ModelRequest(
        model=None,
        system="s",
        messages=[
            Message(role="user", content=[ToolResultBlock(tool_use_id="t", content="x")]),
        ],
        tools=[],
        max_tokens=10,
    )
    for caching in (True, False):
        (block,) = claude_params(request, "m", prompt_caching=caching)["messages"][0]["content"]
        assert "ref" not in block and block["is_error"] is False
