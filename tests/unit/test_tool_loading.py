"""Loading user tool modules: what a worker gets, and how a bad module stops it."""

from __future__ import annotations

import pytest

from durable_agent.config import Settings
from durable_agent.tools import known_tools, select_tools
from durable_agent.tools.loading import (
    DuplicateToolError,
    InvalidToolError,
    ToolModuleError,
    discover_tools,
    load_tools,
    parse_module_list,
)


def test_module_lists() -> None:
    assert parse_module_list("a.b, c ,") == ["a.b", "c"]
    assert parse_module_list('["a.b", "c"]') == ["a.b", "c"]
    settings = Settings(_env_file=None, tool_modules="x.y,z")
    assert settings.tool_modules == ["x.y", "z"]


def test_a_module_s_tools_are_found_and_registered() -> None:
    loaded = load_tools(["tests.user_tools.orders"], use_entry_points=False)
    assert [t.tool.name for t in loaded] == ["lookup_order", "refund_order"]
    assert loaded[0].origin == "module tests.user_tools.orders"
    assert "lookup_order" in known_tools()
    assert [s.name for s in select_tools(["lookup_order", "calculator"])] == [
        "lookup_order",
        "calculator",
    ]
    assert "lookup_order" not in [s.name for s in select_tools(None)]  # named only
    # Loading again (the worker, then its resources) changes nothing.
    assert [t.tool for t in load_tools(["tests.user_tools.orders"], use_entry_points=False)] == [
        t.tool for t in loaded
    ]


@pytest.mark.parametrize(
    ("modules", "error", "message"),
    [
        (
            ["tests.user_tools.broken"],
            ToolModuleError,
            "'tests.user_tools.broken' failed to import",
        ),
        (["tests.user_tools.nope"], ToolModuleError, "ModuleNotFoundError"),
        (["tests.user_tools.empty"], ToolModuleError, "defines no tools"),
        (["tests.user_tools.bad_declaration"], InvalidToolError, "tool 'lookup'.*pydantic model"),
        (
            ["tests.user_tools.orders", "tests.user_tools.clash"],
            DuplicateToolError,
            "'lookup_order' is declared twice: in module tests.user_tools.orders and in "
            "module tests.user_tools.clash",
        ),
    ],
)
def test_a_bad_module_is_a_typed_error_naming_it(
    modules: list[str], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        discover_tools(modules, use_entry_points=False)
    assert isinstance(error("x"), ValueError)  # worker.main reports it and exits 1
