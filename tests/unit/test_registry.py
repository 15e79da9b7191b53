"""The tool registry: definitions the model sees, argument validation, selection."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from durable_agent.tools import BUILTIN_TOOLS, describe_validation_error, select_tools


def test_every_builtin_tool_is_declared_completely() -> None:
    assert set(BUILTIN_TOOLS) == {
        "calculator", "save_note", "list_notes", "get_weather", "web_search"
    }  # fmt: skip
    for name, spec in BUILTIN_TOOLS.items():
        definition = spec.definition()
        assert definition.name == name == spec.activity_name.removeprefix("tool.")
        assert definition.description and definition.input_schema["type"] == "object"
        assert definition.input_schema["additionalProperties"] is False
        assert spec.criticality in ("critical", "optional")
        assert spec.permission in ("read", "write", "execute", "admin")
        assert spec.start_to_close_timeout <= spec.schedule_to_close_timeout
        assert spec.retry_policy.maximum_attempts >= 1  # never unlimited
        assert "InvalidToolArguments" in spec.retry_policy.non_retryable_error_types


def test_optional_and_critical_split() -> None:
    optional = {n for n, s in BUILTIN_TOOLS.items() if s.criticality == "optional"}
    assert optional == {"get_weather", "web_search"}
    assert BUILTIN_TOOLS["save_note"].permission == "write"


@pytest.mark.parametrize(
    ("tool", "arguments", "problem"),
    [
        ("calculator", {}, "expression: Field required"),
        ("calculator", {"expression": ""}, "expression: String should have at least 1 character"),
        ("calculator", {"expression": "1", "x": 1}, "x: Extra inputs are not permitted"),
        ("list_notes", {"limit": 0}, "limit: Input should be greater than or equal to 1"),
        ("web_search", {"query": "q", "max_results": 50}, "max_results: Input should be less"),
        ("get_weather", {"location": "x" * 101}, "location: String should have at most 100"),
    ],
)
def test_bad_arguments_are_described_for_the_model(
    tool: str, arguments: dict[str, object], problem: str
) -> None:
    with pytest.raises(ValidationError) as error:
        BUILTIN_TOOLS[tool].validate(arguments)
    assert problem in describe_validation_error(error.value)


def test_select_tools() -> None:
    assert [s.name for s in select_tools(["web_search", "calculator"])] == [
        "web_search", "calculator"
    ]  # fmt: skip
    assert len(select_tools(None)) == len(BUILTIN_TOOLS)
    with pytest.raises(KeyError, match="unknown tools \\['teleport'\\]"):
        select_tools(["calculator", "teleport"])
