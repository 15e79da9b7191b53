"""The baselines of the benchmark: the agent's turn with no agent logic around it.

One turn is the loop every variant runs (``run_turn``): a model call with the user's
message, the calculator calls it asks for, a model call with their results — the same
``model.invoke`` and ``tool.calculator`` activities, with the same ``ModelRequest``
and ``ToolCall`` shapes as ``AgentWorkflow`` sends. The request carries only the
current turn's messages, as large as the agent's windowed requests.

``BareWorkflow`` runs that loop as a minimal Temporal workflow (one ``turn`` update per
message, as the agent takes one ``send_message`` update), so the difference from the
agent is the agent's own work. The plain-asyncio baseline runs the same loop calling
the activity functions directly (``bench.step_overhead``).

Loaded into the workflow sandbox: deterministic code only, I/O-free imports.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from durable_agent.activity_models import (
        MODEL_ACTIVITY,
        ModelRequest,
        ModelResponse,
        ToolCall,
        ToolResult,
    )
    from durable_agent.contract import (
        DEFAULT_MAX_TOKENS,
        DEFAULT_SYSTEM_PROMPT,
        Message,
        Reply,
        TextBlock,
        ToolResultBlock,
        ToolUseBlock,
        Usage,
        UserMessage,
    )
    from durable_agent.tools.registry import CALCULATOR

BARE_WORKFLOW = "BenchBareTurns"
"""Workflow type of the bare baseline."""
UPDATE_TURN = "turn"
SIGNAL_END = "end"
MAX_MODEL_CALLS = 4
"""A turn of the benchmark makes two; this only bounds a surprising model."""
# The agent's options for these activities (``workflows.agent``, ``CALCULATOR``), so
# the activities do the same work (heartbeat included) in every variant.
MODEL_START_TO_CLOSE = timedelta(minutes=3)
MODEL_HEARTBEAT = timedelta(seconds=30)

CallModel = Callable[[ModelRequest], Awaitable[ModelResponse]]
CallTool = Callable[[ToolCall], Awaitable[ToolResult]]


def model_request(messages: list[Message]) -> ModelRequest:
    """The request a conversation started with ``tools=["calculator"]`` sends."""
    return ModelRequest(
        model=None,
        system=DEFAULT_SYSTEM_PROMPT,
        messages=messages,
        tools=[CALCULATOR.definition()],
        max_tokens=DEFAULT_MAX_TOKENS,
    )


async def run_turn(
    text: str, turn: int, conversation_id: str, call_model: CallModel, call_tool: CallTool
) -> Reply:
    """Model → calculator calls (concurrently) → model, until the model answers."""
    messages = [Message(role="user", content=[TextBlock(text=text)])]
    usage, calls, tool_calls = Usage(), 0, 0
    while True:
        response = await call_model(model_request(messages))
        calls += 1
        usage += response.usage
        messages.append(Message(role="assistant", content=response.content))
        uses = [b for b in response.content if isinstance(b, ToolUseBlock)]
        if not uses or calls >= MAX_MODEL_CALLS:
            break
        results = await asyncio.gather(
            *(
                call_tool(
                    ToolCall(
                        tool=use.name,
                        arguments=use.input,
                        idempotency_key=f"{conversation_id}/{turn}/{tool_calls + i}",
                        conversation_id=conversation_id,
                    )
                )
                for i, use in enumerate(uses)
            )
        )
        tool_calls += len(uses)
        blocks = [
            ToolResultBlock(tool_use_id=u.id, content=r.content, is_error=r.outcome != "ok")
            for u, r in zip(uses, results, strict=True)
        ]
        messages.append(Message(role="user", content=list(blocks)))
    answer = "".join(b.text for b in response.content if isinstance(b, TextBlock))
    return Reply(text=answer, turn=turn, usage=usage, model=response.model, model_calls=calls)


@workflow.defn(name=BARE_WORKFLOW)
class BareWorkflow:
    """Runs ``run_turn`` for each ``turn`` update; nothing else."""

    def __init__(self) -> None:
        self._turns = 0
        self._ended = False
        self._in_order = asyncio.Lock()
        """Turns run one at a time, in the order their messages came, as a conversation's
        must (each turn's model call follows the one before): the history benchmark
        sends five messages at once, and run concurrently they shared workflow tasks no
        conversation can share (7.1 history events a turn, against 9.1 in order)."""

    @workflow.run
    async def run(self) -> int:
        """Serve turns until ``end``; return how many ran."""
        await workflow.wait_condition(lambda: self._ended)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._turns

    @workflow.update(name=UPDATE_TURN)
    async def turn(self, message: UserMessage) -> Reply:
        """One turn, run inside the update, after the turns of the messages before it."""
        async with self._in_order:
            self._turns += 1
            return await run_turn(
                message.text, self._turns, workflow.info().workflow_id, _model, _calculator
            )

    @workflow.signal(name=SIGNAL_END)
    def end(self) -> None:
        """Complete once the running turn has replied."""
        self._ended = True


async def _model(request: ModelRequest) -> ModelResponse:
    response: ModelResponse = await workflow.execute_activity(
        MODEL_ACTIVITY,
        request,
        result_type=ModelResponse,
        start_to_close_timeout=MODEL_START_TO_CLOSE,
        heartbeat_timeout=MODEL_HEARTBEAT,
    )
    return response


async def _calculator(call: ToolCall) -> ToolResult:
    result: ToolResult = await workflow.execute_activity(
        CALCULATOR.activity_name,
        call,
        result_type=ToolResult,
        start_to_close_timeout=CALCULATOR.start_to_close_timeout,
        heartbeat_timeout=CALCULATOR.heartbeat_timeout,
    )
    return result
