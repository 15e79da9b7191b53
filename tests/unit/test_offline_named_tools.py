"""The offline planner calls a tool it has no phrases for (a user or MCP tool) only when
the text names it with JSON arguments."""

from __future__ import annotations

from durable_agent.activity_models import ModelRequest, ToolDefinition
from durable_agent.contract import Message, TextBlock, ToolResultBlock, ToolUseBlock
from durable_agent.injection import InjectionDetector
from durable_agent.models.offline import OfflineModel
from durable_agent.tools import BUILTIN_TOOLS

LOOKUP = ToolDefinition(
    name="kb__search_articles",
    description="Search the knowledge base.",
    input_schema={"type": "object", "properties": {"query": {"type": "string"}}},
)
TOOLS = [LOOKUP, BUILTIN_TOOLS["calculator"].definition()]


def respond(*messages: Message) -> list[object]:
    request = ModelRequest(
        model=None, system="test", messages=list(messages), tools=TOOLS, max_tokens=1024
    )
    return list(OfflineModel().respond(request).content)


def user(text: str) -> Message:
    return Message(role="user", content=[TextBlock(text=text)])


def uses(content: list[object]) -> list[tuple[str, dict[str, object]]]:
    return [(b.name, b.input) for b in content if isinstance(b, ToolUseBlock)]


def test_a_named_tool_with_json_arguments_is_called() -> None:
    content = respond(user('Use kb__search_articles {"query": "refund policy"}'))
    assert uses(content) == [("kb__search_articles", {"query": "refund policy"})]
    with_word = respond(user('use the kb__search_articles tool with {"query": "sla"}'))
    assert uses(with_word) == [("kb__search_articles", {"query": "sla"})]


def test_the_offline_form_is_not_flagged_as_an_injection() -> None:
    # A person telling the offline planner which tool to use is not coercion.
    assert not InjectionDetector.create().screen('Use lookup_customer {"email": "a@b.c"}').flagged


def test_named_calls_and_phrased_requests_mix() -> None:
    text = 'What is 6 * 7? Then call kb__search_articles {"query": "sla"}.'
    assert uses(respond(user(text))) == [
        ("kb__search_articles", {"query": "sla"}),
        ("calculator", {"expression": "6 * 7"}),
    ]


def test_a_tool_is_never_guessed() -> None:
    for text in (
        "search the knowledge base for refund policy",  # no phrase for this tool
        'use kb__unknown with {"query": "x"}',  # not offered
        "use kb__search_articles with {not json}",
        'use kb__search_articles with ["a list"]',
    ):
        assert uses(respond(user(text))) == [], text


def test_help_names_the_tools_it_can_be_told_to_use() -> None:
    (text,) = [b.text for b in respond(user("hello")) if isinstance(b, TextBlock)]
    assert "kb__search_articles" in text and "not Claude" in text


def test_the_result_is_reported() -> None:
    ask = user('use kb__search_articles {"query": "sla"}')
    (use,) = [b for b in respond(ask) if isinstance(b, ToolUseBlock)]
    result = ToolResultBlock(tool_use_id=use.id, content="KB-2: replies within 4 hours")
    answer = respond(
        ask,
        Message(role="assistant", content=[use]),
        Message(role="user", content=[result]),
    )
    assert [b.text for b in answer if isinstance(b, TextBlock)] == [
        "kb__search_articles returned: KB-2: replies within 4 hours"
    ]
