"""The offline planner, through its public API: plans, answers, shapes, determinism."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from durable_agent.activity_models import ModelRequest, ModelResponse, ToolDefinition
from durable_agent.contract import Message, TextBlock, ToolResultBlock, ToolUseBlock
from durable_agent.models.offline import OfflineModel, estimate_tokens
from durable_agent.tools import BUILTIN_TOOLS
from durable_agent.tools.calculator import evaluate, format_result

ALL_TOOLS = [spec.definition() for spec in BUILTIN_TOOLS.values()]
ID_PATTERN = re.compile(r"toolu_off_[0-9a-f]{20}")


def request(
    messages: list[Message], tools: list[ToolDefinition] | None = None, max_tokens: int = 1024
) -> ModelRequest:
    return ModelRequest(
        model=None,
        system="You are a test.",
        messages=messages,
        tools=ALL_TOOLS if tools is None else tools,
        max_tokens=max_tokens,
    )


def user(text: str) -> Message:
    return Message(role="user", content=[TextBlock(text=text)])


def ask(text: str, tools: list[ToolDefinition] | None = None) -> ModelResponse:
    return OfflineModel().respond(request([user(text)], tools))


def calls(response: ModelResponse) -> list[tuple[str, dict[str, Any]]]:
    return [(b.name, b.input) for b in response.content if isinstance(b, ToolUseBlock)]


def fake_tool(use: ToolUseBlock) -> ToolResultBlock:
    """Results shaped like the real tools'; the calculator is the real one (pure)."""
    if use.name == "calculator":
        expression = use.input["expression"]
        value = format_result(evaluate(expression))
        return ToolResultBlock(tool_use_id=use.id, content=f"{expression} = {value}")
    if use.name == "get_weather":
        return ToolResultBlock(tool_use_id=use.id, content="18°C, light rain")
    if use.name == "web_search":
        return ToolResultBlock(tool_use_id=use.id, content="1. Temporal docs - temporal.io")
    return ToolResultBlock(tool_use_id=use.id, content="ok")


Runner = Callable[[ToolUseBlock], ToolResultBlock]


def converse(
    text: str, run: Runner = fake_tool, history: list[Message] | None = None
) -> tuple[list[Message], list[ModelResponse]]:
    """Drive one turn like the workflow does, with a hard cap to catch loops."""
    messages = [*(history or []), user(text)]
    responses = []
    for _ in range(10):
        response = OfflineModel().respond(request(messages))
        responses.append(response)
        messages.append(Message(role="assistant", content=response.content))
        if response.stop_reason != "tool_use":
            return messages, responses
        uses = [b for b in response.content if isinstance(b, ToolUseBlock)]
        messages.append(Message(role="user", content=[run(u) for u in uses]))
    raise AssertionError("the offline model looped")


def assert_valid(response: ModelResponse, tools: list[ToolDefinition] = ALL_TOOLS) -> None:
    """The shapes the workflow relies on."""
    assert response.content
    assert response.model == "offline-planner"
    assert response.backend == "offline"
    assert all(b.text for b in response.content if isinstance(b, TextBlock))
    uses = [b for b in response.content if isinstance(b, ToolUseBlock)]
    assert response.stop_reason in ("tool_use", "end_turn", "max_tokens")
    assert (response.stop_reason == "tool_use") == bool(uses)
    assert len({u.id for u in uses}) == len(uses)
    offered = {t.name for t in tools}
    for use in uses:
        assert ID_PATTERN.fullmatch(use.id)
        assert use.name in offered
        BUILTIN_TOOLS[use.name].validate(use.input)
    assert response.usage.input_tokens >= 1
    assert response.usage.output_tokens >= 1
    assert response.usage.cache_creation_input_tokens == 0
    assert response.usage.cache_read_input_tokens == 0


# --- planning a new turn -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("what is 12 * (3 + 4)?", [("calculator", {"expression": "12 * (3 + 4)"})]),
        ("Compute 2**10", [("calculator", {"expression": "2 ** 10"})]),
        ("What's 15 multiplied by 23", [("calculator", {"expression": "15 * 23"})]),
        ("What\u2019s 6 times 7?", [("calculator", {"expression": "6 * 7"})]),
        ("what is 100 divided by 8 minus 2", [("calculator", {"expression": "100 / 8 - 2"})]),
        ("2 ^ 8", [("calculator", {"expression": "2 ** 8"})]),
        (
            "what is 7 // 2 and 7 % 2?",
            [("calculator", {"expression": "7 // 2"}), ("calculator", {"expression": "7 % 2"})],
        ),
        ("sqrt(16) + 0.5", [("calculator", {"expression": "sqrt(16) + 0.5"})]),
        ("what is -5 + 3 times 2", [("calculator", {"expression": "-5 + 3 * 2"})]),
        (
            "Remember that the meeting moved to 3pm.",
            [("save_note", {"text": "the meeting moved to 3pm"})],
        ),
        ("remember to call mom", [("save_note", {"text": "call mom"})]),
        (
            "note that the wifi password is hunter2",
            [("save_note", {"text": "the wifi password is hunter2"})],
        ),
        ("Save a note: buy milk. Thanks!", [("save_note", {"text": "buy milk"})]),
        ("make a note: the code is 1234", [("save_note", {"text": "the code is 1234"})]),
        ("What did I note?", [("list_notes", {})]),
        ("list my notes", [("list_notes", {})]),
        ("show notes", [("list_notes", {})]),
        ("what's in my notes about travel?", [("list_notes", {"query": "travel"})]),
        ("what did I ask you to remember", [("list_notes", {})]),
        ("What's the weather in Paris?", [("get_weather", {"location": "Paris"})]),
        ("weather for Lima, Peru", [("get_weather", {"location": "Lima, Peru"})]),
        ("how's the weather like in New York today?", [("get_weather", {"location": "New York"})]),
        ("Tokyo weather", [("get_weather", {"location": "Tokyo"})]),
        ("search for temporal workflows", [("web_search", {"query": "temporal workflows"})]),
        ("Look up durable execution!", [("web_search", {"query": "durable execution"})]),
        ("find information about Ada Lovelace", [("web_search", {"query": "Ada Lovelace"})]),
    ],
)
def test_each_intent_becomes_a_valid_tool_call(
    text: str, expected: list[tuple[str, dict[str, Any]]]
) -> None:
    response = ask(text)
    assert calls(response) == expected
    assert response.stop_reason == "tool_use"
    assert_valid(response)


def test_several_intents_are_planned_in_one_response_in_text_order() -> None:
    response = ask(
        "What's the weather in Paris and remember to pack an umbrella, "
        "then search for museums in Paris and what is 3*4"
    )
    assert calls(response) == [
        ("get_weather", {"location": "Paris"}),
        ("save_note", {"text": "pack an umbrella"}),
        ("web_search", {"query": "museums in Paris"}),
        ("calculator", {"expression": "3 * 4"}),
    ]
    first = response.content[0]
    assert isinstance(first, TextBlock)
    assert first.text == "Let me use get_weather, save_note, web_search and calculator."
    assert_valid(response)


@pytest.mark.parametrize(
    "text",
    [
        "hello there",
        "do you remember me?",
        "call me at 555-1234",
        "we met on 2024-05-01",
        "I have 3 cats",
        "what is (2+3",
        "",
        "   ",
    ],
)
def test_no_intent_gets_an_honest_help_text(text: str) -> None:
    response = ask(text)
    assert calls(response) == []
    assert response.stop_reason == "end_turn"
    [block] = response.content
    assert isinstance(block, TextBlock)
    assert "offline planner, not Claude" in block.text
    assert "weather in Paris" in block.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("search for how to remember names", [("web_search", {"query": "how to remember names"})]),
        (
            "remember that I should search for flights",
            [("save_note", {"text": "I should search for flights"})],
        ),
        ("look up the weather in Paris", [("get_weather", {"location": "Paris"})]),
        (
            "Remember the crash drill and what's the weather in Oslo?",
            [("save_note", {"text": "the crash drill"}), ("get_weather", {"location": "Oslo"})],
        ),
        (
            "search for cats and tell me the weather in Rome",
            [("web_search", {"query": "cats"}), ("get_weather", {"location": "Rome"})],
        ),
        (
            "search for cats and Rome weather",
            [("web_search", {"query": "cats"}), ("get_weather", {"location": "Rome"})],
        ),
        ("remember 2+2 is 4", [("save_note", {"text": "2+2 is 4"})]),
        (
            "remember to buy milk and what is 2+3",
            [("save_note", {"text": "buy milk"}), ("calculator", {"expression": "2 + 3"})],
        ),
        ("what is 1+1 and what is 1+1", [("calculator", {"expression": "1 + 1"})]),
    ],
)
def test_a_request_splits_free_text_only_at_a_clause_break(
    text: str, expected: list[tuple[str, dict[str, Any]]]
) -> None:
    assert calls(ask(text)) == expected


def test_tools_not_offered_are_not_used() -> None:
    only_notes = [BUILTIN_TOOLS["save_note"].definition()]
    response = ask("what's the weather in Paris and remember to search for flights", only_notes)
    assert calls(response) == [("save_note", {"text": "search for flights"})]
    assert_valid(response, only_notes)

    response = ask("what is 2 + 2 and what's the weather in Rome", tools=[])
    assert calls(response) == []
    assert response.stop_reason == "end_turn"
    assert "no tools" in response.content[0].model_dump()["text"]


def test_inputs_are_trimmed_to_the_offered_schema() -> None:
    response = ask("remember " + "x" * 5000)
    [(_, args)] = calls(response)
    assert len(args["text"]) == 4000
    assert_valid(response)

    short = ToolDefinition(
        name="save_note",
        description="notes",
        input_schema={
            "type": "object",
            "properties": {"text": {"type": "string", "maxLength": 8}},
            "required": ["text"],
        },
    )
    assert calls(ask("remember that the cat is hungry", [short])) == [
        ("save_note", {"text": "the cat"})
    ]


def test_a_same_named_tool_with_an_unfamiliar_schema_is_not_called() -> None:
    other = ToolDefinition(
        name="get_weather",
        description="weather",
        input_schema={"type": "object", "properties": {"city_id": {"type": "integer"}}},
    )
    assert calls(ask("weather in Paris", [other])) == []


# --- answering tool results --------------------------------------------------------------


def test_results_are_answered_in_text_without_more_tool_calls() -> None:
    messages, responses = converse("what is 12 * (3 + 4) and what's the weather in Oslo?")
    assert [r.stop_reason for r in responses] == ["tool_use", "end_turn"]
    answer = messages[-1].text()
    assert "The result of 12 * (3 + 4) is 84." in answer
    assert "The weather in Oslo: 18°C, light rain" in answer
    assert not calls(responses[-1])


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("remember to water the plants", "I saved that note."),
        ("list my notes", "Here are your notes:\nok"),
        ("search for temporal", 'Here is what I found for "temporal":\n1. Temporal docs'),
    ],
)
def test_each_tool_result_is_phrased(text: str, phrase: str) -> None:
    messages, responses = converse(text)
    assert phrase in messages[-1].text()
    assert responses[-1].stop_reason == "end_turn"


def test_errors_are_phrased_as_what_could_not_be_done() -> None:
    def failing(use: ToolUseBlock) -> ToolResultBlock:
        return ToolResultBlock(tool_use_id=use.id, content="service unavailable.", is_error=True)

    messages, _ = converse("weather in Paris and remember milk and what is 1/0", failing)
    assert messages[-1].text().splitlines() == [
        "I couldn't get the weather for Paris: service unavailable.",
        "I couldn't save that note: service unavailable.",
        "I couldn't calculate 1 / 0: service unavailable.",
    ]


def test_then_that_chains_calculator_steps_one_round_per_clause() -> None:
    messages, responses = converse(
        "What is 2+3, then multiply that by 4, then subtract 1 from the result"
    )
    expressions = [args["expression"] for r in responses for _, args in calls(r)]
    assert expressions == ["2 + 3", "5 * 4", "20 - 1"]
    assert [r.stop_reason for r in responses] == ["tool_use"] * 3 + ["end_turn"]
    assert messages[-1].text().endswith("The result of 20 - 1 is 19.")


@pytest.mark.parametrize(
    ("text", "expressions"),
    [
        ("what is 10 - 15, then double it", ["10 - 15", "(-5) * 2"]),
        ("compute 2 ** 3 then square that", ["2 ** 3", "8 ** 2"]),
        ("what is 9 / 2, then that times 2", ["9 / 2", "4.5 * 2"]),
        ("what is 1 + 1 and then add 40 to it", ["1 + 1", "2 + 40"]),
    ],
)
def test_chaining_phrasings(text: str, expressions: list[str]) -> None:
    _, responses = converse(text)
    assert [args["expression"] for r in responses for _, args in calls(r)] == expressions


def test_chaining_stops_when_there_is_no_value_to_chain_from() -> None:
    def failing(use: ToolUseBlock) -> ToolResultBlock:
        return ToolResultBlock(tool_use_id=use.id, content="boom", is_error=True)

    _, responses = converse("what is 2+3, then multiply that by 4", failing)
    assert [r.stop_reason for r in responses] == ["tool_use", "end_turn"]
    _, responses = converse("remember the milk, then double that")
    assert [r.stop_reason for r in responses] == ["tool_use", "end_turn"]


def test_then_without_that_is_planned_in_the_first_round() -> None:
    response = ask("search for flights, then remember to book a hotel")
    assert calls(response) == [
        ("web_search", {"query": "flights"}),
        ("save_note", {"text": "book a hotel"}),
    ]


def test_an_earlier_turn_does_not_leak_into_the_next() -> None:
    history, _ = converse("what is 2+3, then multiply that by 4")
    messages, responses = converse("what is 1 + 1", history=history)
    assert [r.stop_reason for r in responses] == ["tool_use", "end_turn"]
    assert messages[-1].text() == "The result of 1 + 1 is 2."


# --- determinism, ids, limits, usage ------------------------------------------------------


def test_same_request_gives_the_same_response_byte_for_byte() -> None:
    req = request([user("weather in Paris and what is 2+2 and remember eggs")])
    first = OfflineModel().respond(req).model_dump_json()
    assert OfflineModel().respond(req).model_dump_json() == first
    assert OfflineModel().respond(ModelRequest.model_validate_json(req.model_dump_json())) == (
        OfflineModel().respond(req)
    )


def test_tool_use_ids_are_unique_across_a_conversation() -> None:
    history: list[Message] = []
    for text in [
        "what is 1+1",
        "what is 1+1",
        "weather in Paris and weather in Rome",
        "what is 2+3, then double that",
    ]:
        history, _ = converse(text, history=history)
    ids = [b.id for m in history for b in m.content if isinstance(b, ToolUseBlock)]
    assert len(ids) == 6
    assert len(set(ids)) == len(ids)
    assert all(ID_PATTERN.fullmatch(i) for i in ids)


def test_max_tokens_truncates_text_deterministically() -> None:
    response = OfflineModel().respond(request([user("hello")], max_tokens=5))
    assert response.stop_reason == "max_tokens"
    assert response.content == [TextBlock(text="I'm the offline plan")]
    assert response.usage.output_tokens == 5


def test_max_tokens_too_small_for_a_tool_call_drops_the_call() -> None:
    response = OfflineModel().respond(request([user("remember " + "y" * 400)], max_tokens=3))
    assert response.stop_reason == "max_tokens"
    assert calls(response) == []
    assert_valid(response)


def test_usage_estimates_input_and_output() -> None:
    assert [estimate_tokens(t) for t in ["", "abcd", "abcde", "x" * 400]] == [1, 1, 2, 100]
    bare = OfflineModel().respond(request([user("what is 1+1")], tools=[]))
    with_tools = OfflineModel().respond(request([user("what is 1+1")]))
    assert with_tools.usage.input_tokens > bare.usage.input_tokens
    help_text = bare.content[0].model_dump()["text"]
    assert bare.usage.output_tokens == estimate_tokens(help_text)


def test_unusual_transcripts_get_a_text_answer() -> None:
    model = OfflineModel()
    for messages in (
        [],
        [Message(role="assistant", content=[TextBlock(text="hi")])],
        [Message(role="user", content=[ToolResultBlock(tool_use_id="toolu_x", content="?")])],
    ):
        response = model.respond(request(messages))
        assert response.stop_reason == "end_turn"
        assert_valid(response)


# --- properties ----------------------------------------------------------------------------

PHRASES = st.sampled_from(
    [
        "what is 2+3",
        "then multiply that by 4",
        "remember",
        "weather in",
        "Paris",
        "and",
        "search for",
        "list my notes about",
        "note that",
        ",",
        ".",
        "?",
        "(",
        "7",
        "x",
        "-",
        "then double it",
        "what's the",
        "weather",
        "look up",
        "sqrt(",
        "times",
        "my notes",
    ]
)


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.text(), st.lists(PHRASES, max_size=12).map(" ".join)))
def test_any_text_gives_valid_shapes_and_the_turn_ends(text: str) -> None:
    _, responses = converse(text, run=lambda u: ToolResultBlock(tool_use_id=u.id, content="1"))
    for response in responses:
        assert_valid(response)
    assert responses[-1].stop_reason == "end_turn"
    # One round to plan, then at most one per "then" clause.
    assert len(responses) <= 2 + text.lower().count("then")
    assert all(name == "calculator" for r in responses[1:] for name, _ in calls(r))
