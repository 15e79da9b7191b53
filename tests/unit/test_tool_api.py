"""The public tool API: declarations checked at once, policies derived, and a declared
function run as an activity in an ``ActivityEnvironment``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.common import RetryPolicy
from temporalio.testing import ActivityEnvironment

from activities.tools._offload import Offloader
from activities.tools.functions import FunctionTools
from durable_agent.activity_models import ToolCall, ToolResult
from durable_agent.stores.blobs import SqliteBlobStore
from durable_agent.tools import (
    INVALID_TOOL_ARGUMENTS,
    InvalidToolDeclaration,
    Tool,
    ToolArguments,
    ToolContext,
    ToolError,
    tool,
)
from tests.user_tools.orders import REFUNDS, lookup_order, refund_order


class Text(ToolArguments):
    text: str


def call(name: str, key: str = "wf-1/1/0", **arguments: Any) -> ToolCall:
    return ToolCall(tool=name, arguments=arguments, idempotency_key=key, conversation_id="wf-1")


@pytest.fixture
async def blobs(tmp_path: Path) -> AsyncIterator[SqliteBlobStore]:
    store = SqliteBlobStore(tmp_path / "blobs.sqlite3")
    yield store
    await store.close()


async def run(
    tool_: Tool, key: str = "wf-1/1/0", offload: Offloader | None = None, **arguments: Any
) -> ToolResult:
    (fn,) = FunctionTools([tool_], offload).activities()
    result: ToolResult = await ActivityEnvironment().run(fn, call(tool_.name, key, **arguments))
    return result


def test_a_declaration_becomes_a_spec() -> None:
    spec = lookup_order.spec
    assert (spec.name, spec.permission, spec.criticality) == ("lookup_order", "read", "optional")
    assert spec.description == "Look up an order's status."
    assert spec.activity_name == "tool.lookup_order"
    assert spec.definition().input_schema["required"] == ["order_id"]
    assert lookup_order.idempotent and spec.retry_policy.maximum_attempts == 3


def test_policies_follow_idempotency() -> None:
    @tool
    def append(args: Text) -> str:
        """Append a line (not idempotent: it is a write)."""
        return args.text

    assert append.spec.permission == "write" and not append.idempotent
    assert append.spec.retry_policy.maximum_attempts == 1
    custom = tool(
        name="append_twice",
        retry_policy=RetryPolicy(maximum_attempts=2),
        start_to_close_timeout=timedelta(seconds=3),
    )(append.function)
    assert custom.spec.retry_policy.maximum_attempts == 2
    assert INVALID_TOOL_ARGUMENTS in (custom.spec.retry_policy.non_retryable_error_types or [])
    assert custom.spec.start_to_close_timeout == timedelta(seconds=3)


@pytest.mark.parametrize(
    ("declare", "message"),
    [
        (lambda: tool(name="bad name", arguments=Text)(lambda args: ""), "1-64 letters"),
        (lambda: tool(name="a__b", description="x", arguments=Text)(lambda args: ""), "reserved"),
        (lambda: tool(name="quiet", arguments=Text)(lambda args: ""), "needs a description"),
        (lambda: tool(name="untyped", description="x")(lambda args: ""), "pydantic model"),
        (lambda: tool(name="many", description="x", arguments=Text)(lambda a, b, c: ""), "not 3"),
        (
            lambda: tool(
                name="forever",
                description="x",
                arguments=Text,
                retry_policy=RetryPolicy(maximum_attempts=0),
            )(lambda args: ""),
            "unlimited",
        ),
        (
            lambda: tool(
                name="late",
                description="x",
                arguments=Text,
                schedule_to_close_timeout=timedelta(seconds=1),
            )(lambda args: ""),
            "shorter",
        ),
    ],
)
def test_bad_declarations_name_the_tool(declare: Any, message: str) -> None:
    with pytest.raises(InvalidToolDeclaration, match=message):
        declare()


async def test_results_errors_and_invalid_arguments() -> None:
    assert await run(lookup_order, order_id="A-1") == ToolResult(
        outcome="ok", content="order A-1: shipped"
    )
    assert await run(lookup_order, order_id="A-9") == ToolResult(
        outcome="error", content="no order A-9"
    )
    invalid = await run(lookup_order, order_id="B")
    assert invalid.outcome == "invalid_arguments" and "order_id" in invalid.content


async def test_a_sync_tool_gets_the_idempotency_key() -> None:
    first = await run(refund_order, key="wf-7/3/1", order_id="A-2", amount=12.5)
    again = await run(refund_order, key="wf-7/3/1", order_id="A-2", amount=12.5)
    assert first == again == ToolResult(outcome="ok", content="refunded 12.50 on A-2")
    assert REFUNDS["wf-7/3/1"] == 12.5


async def test_context_and_offload(blobs: SqliteBlobStore) -> None:
    seen: list[ToolContext] = []

    @tool(permission="read")
    async def long_text(args: Text, ctx: ToolContext) -> str:
        """Repeat a text many times."""
        seen.append(ctx)
        return args.text * 1000

    result = await run(long_text, key="wf-2/1/0", offload=Offloader(blobs, 1024), text="ab")
    assert result.ref == "tool-result/wf-2/1/0"
    assert (await blobs.get(result.ref)) == b"ab" * 1000
    assert seen[0].idempotency_key == "wf-2/1/0" and seen[0].attempt == 1


async def test_a_tool_error_is_not_an_exception_but_others_are() -> None:
    @tool(permission="read")
    def explode(args: Text) -> str:
        """Fail."""
        if args.text == "model":
            raise ToolError("the model should read this")
        raise RuntimeError("infrastructure")

    assert (await run(explode, text="model")).outcome == "error"
    with pytest.raises(RuntimeError):
        await run(explode, text="other")


def test_activity_names_are_the_spec_names() -> None:
    fns = FunctionTools([lookup_order, refund_order]).activities()
    names = [activity._Definition.must_from_callable(fn).name for fn in fns]
    assert names == ["tool.lookup_order", "tool.refund_order"]
