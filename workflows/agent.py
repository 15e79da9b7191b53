"""``AgentWorkflow``: one conversation with the agent, as a Temporal workflow.

A message arrives by the ``send_message`` update and waits in a queue; the main loop
takes messages in order and runs a turn for each: model → tools (concurrently) →
model … → reply. Every model call and tool call is an activity, so a killed worker
loses nothing: another worker replays the history and carries on.

Deterministic code only: no I/O, no clock, no randomness. The transcript, counters and
usage live in workflow state and are rebuilt exactly on replay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from durable_agent.activity_models import (
        MODEL_ACTIVITY,
        ModelRequest,
        ModelResponse,
        ToolCall,
        ToolResult,
    )
    from durable_agent.contract import (
        CONVERSATION_ENDED,
        INVALID_MESSAGE,
        MAX_MESSAGE_CHARS,
        WORKFLOW_TYPE,
        ContentBlock,
        ConversationInput,
        ConversationResult,
        ConversationState,
        ConversationStatus,
        Message,
        Reply,
        TextBlock,
        ToolCallRecord,
        ToolResultBlock,
        ToolUseBlock,
        Transcript,
        TurnStatus,
        Usage,
        UserMessage,
    )
    from durable_agent.retry_classification import NON_RETRYABLE_TYPES
    from durable_agent.tools.registry import ToolSpec, describe_validation_error, select_tools

MODEL_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=6,
    # The model activity raises these for requests that retrying cannot fix.
    non_retryable_error_types=[*NON_RETRYABLE_TYPES],
)
MODEL_START_TO_CLOSE = timedelta(minutes=3)
MODEL_SCHEDULE_TO_CLOSE = timedelta(minutes=10)
MODEL_HEARTBEAT = timedelta(seconds=30)

# Control characters other than tab/newline/carriage return are never legitimate text.
_ALLOWED_CONTROL = {"\t", "\n", "\r"}


@dataclass
class _Pending:
    """A message accepted by the update and waiting for its turn."""

    update_id: str
    message: UserMessage


@dataclass
class _Turn:
    """What one turn has done so far."""

    number: int
    usage: Usage = field(default_factory=Usage)
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    model_calls: int = 0
    last_response: ModelResponse | None = None

    def add_model_call(self, response: ModelResponse) -> None:
        self.model_calls += 1
        self.usage = self.usage + response.usage
        self.last_response = response

    def reply(self, text: str, status: TurnStatus) -> Reply:
        response = self.last_response
        return Reply(
            text=text,
            turn=self.number,
            tool_calls=self.tool_calls,
            usage=self.usage,
            model=response.model if response else "",
            backend=response.backend if response else "",
            model_calls=self.model_calls,
            status=status,
        )


@workflow.defn(name=WORKFLOW_TYPE)
class AgentWorkflow:
    """A durable, multi-turn conversation with tool use."""

    @workflow.init
    def __init__(self, input: ConversationInput) -> None:
        self._input = input
        self._messages: list[Message] = []
        self._pending: list[_Pending] = []
        self._replies: dict[str, Reply] = {}
        self._state: ConversationState = "idle"
        self._turns = 0
        self._usage = Usage()
        self._model_calls = 0
        self._tool_calls = 0
        self._last_error: str | None = None
        self._end_requested = False
        self._tools: dict[str, ToolSpec] = {}

    @workflow.run
    async def run(self, input: ConversationInput) -> ConversationResult:
        """Serve messages in arrival order until ``end`` (or cancellation)."""
        try:
            tools = select_tools(input.tools)
        except KeyError as e:
            raise ApplicationError(
                str(e), type="InvalidConversationInput", non_retryable=True
            ) from None
        self._tools = {spec.name: spec for spec in tools}

        while True:
            await workflow.wait_condition(lambda: bool(self._pending) or self._end_requested)
            if not self._pending:
                break
            pending = self._pending.pop(0)
            self._replies[pending.update_id] = await self._run_turn(pending.message)

        self._state = "ended"
        await workflow.wait_condition(workflow.all_handlers_finished)
        return ConversationResult(turns=self._turns, usage=self._usage)

    # --- the public surface: update, signals, queries ------------------------------------

    # On `end` every queued message is answered before the workflow completes; only
    # cancellation abandons waiting callers (they get "workflow execution already
    # completed"), which is what cancel means.
    @workflow.update(
        name="send_message", unfinished_policy=workflow.HandlerUnfinishedPolicy.ABANDON
    )
    async def send_message(self, message: RawValue) -> Reply:
        """Queue a user message (a ``UserMessage``) and return the reply once its turn
        has run. Taken raw so a malformed payload gets a precise rejection, not a
        generic decoding failure."""
        update_id = workflow.current_update_info().id  # type: ignore[union-attr]
        self._pending.append(_Pending(update_id, _parse_message(message)))
        await workflow.wait_condition(lambda: update_id in self._replies)
        return self._replies.pop(update_id)

    @send_message.validator
    def validate_message(self, message: RawValue) -> None:
        """Reject what must never enter history: malformed, empty, oversized or binary
        text, or any message after ``end``."""
        if self._end_requested:
            raise ApplicationError(
                "the conversation has ended; start a new one",
                type=CONVERSATION_ENDED,
                non_retryable=True,
            )
        text = _parse_message(message).text
        if not text.strip():
            raise ApplicationError(
                "message text is empty", type=INVALID_MESSAGE, non_retryable=True
            )
        if len(text) > MAX_MESSAGE_CHARS:
            raise ApplicationError(
                f"message text has {len(text)} characters; the limit is {MAX_MESSAGE_CHARS}",
                type=INVALID_MESSAGE,
                non_retryable=True,
            )
        for position, char in enumerate(text):
            if (ord(char) < 32 or ord(char) == 127) and char not in _ALLOWED_CONTROL:
                raise ApplicationError(
                    f"message text contains control character U+{ord(char):04X} "
                    f"at position {position}",
                    type=INVALID_MESSAGE,
                    non_retryable=True,
                )

    @workflow.signal(name="end")
    def end(self) -> None:
        """Finish the queued turns, then end the conversation."""
        self._end_requested = True

    @workflow.signal(dynamic=True)
    def unknown_signal(self, name: str, args: Sequence[RawValue]) -> None:
        """A signal nobody handles is recorded, not buffered forever."""
        self._last_error = f"unknown signal {name!r}; known signals: ['end']"
        workflow.logger.warning("ignored unknown signal %r", name)

    @workflow.query(name="status")
    def status(self) -> ConversationStatus:
        """Where the conversation is, and what it has used so far."""
        return ConversationStatus(
            state=self._state,
            turns=self._turns,
            queued_messages=len(self._pending),
            usage=self._usage,
            model_calls=self._model_calls,
            tool_calls=self._tool_calls,
            tenant=self._input.tenant,
            last_error=self._last_error,
        )

    @workflow.query(name="transcript")
    def transcript(self) -> Transcript:
        """The system prompt and every message so far."""
        return Transcript(system_prompt=self._input.system_prompt, messages=self._messages)

    # --- one turn --------------------------------------------------------------------------

    async def _run_turn(self, message: UserMessage) -> Reply:
        """One user message in, one reply out; failures become typed replies."""
        turn = _Turn(number=self._turns + 1)
        self._append_user([TextBlock(text=message.text)])
        try:
            reply = await self._agent_loop(turn)
        except ActivityError as e:
            # The model stayed unavailable through every retry: answer, don't fail.
            self._last_error = _describe(e)
            workflow.logger.warning("turn %d: model call failed: %s", turn.number, self._last_error)
            reply = turn.reply(
                f"Sorry, the model is unavailable: {self._last_error}", "model_error"
            )
        self._turns = turn.number
        self._state = "idle"
        return reply

    async def _agent_loop(self, turn: _Turn) -> Reply:
        """Model → tools (concurrently) → model … until the model answers or the turn
        reaches its model-call limit."""
        while turn.model_calls < self._input.max_model_calls_per_turn:
            self._state = "thinking"
            response = await self._call_model()
            turn.add_model_call(response)
            self._usage = self._usage + response.usage
            self._messages.append(Message(role="assistant", content=response.content))
            tool_uses = [b for b in response.content if isinstance(b, ToolUseBlock)]
            if response.stop_reason != "tool_use" or not tool_uses:
                return turn.reply(_text(response), "ok")

            self._state = "running_tools"
            first = len(turn.tool_calls)
            results = await asyncio.gather(
                *(self._run_tool(turn.number, first + i, b) for i, b in enumerate(tool_uses))
            )
            turn.tool_calls.extend(results)
            self._append_user(
                [
                    ToolResultBlock(tool_use_id=r.id, content=r.result, is_error=r.outcome != "ok")
                    for r in results
                ]
            )
        return turn.reply(
            f"I stopped after {turn.model_calls} model calls in this turn without a final answer.",
            "max_model_calls",
        )

    async def _call_model(self) -> ModelResponse:
        self._model_calls += 1
        request = ModelRequest(
            model=self._input.model,
            system=self._input.system_prompt,
            messages=self._messages,
            tools=[spec.definition() for spec in self._tools.values()],
            max_tokens=self._input.max_tokens,
        )
        response: ModelResponse = await workflow.execute_activity(
            MODEL_ACTIVITY,
            request,
            result_type=ModelResponse,
            start_to_close_timeout=MODEL_START_TO_CLOSE,
            schedule_to_close_timeout=MODEL_SCHEDULE_TO_CLOSE,
            heartbeat_timeout=MODEL_HEARTBEAT,
            retry_policy=MODEL_RETRY_POLICY,
            summary=f"{self._input.model or 'model'} · {len(self._messages)} messages",
        )
        return response

    async def _run_tool(self, turn: int, index: int, block: ToolUseBlock) -> ToolCallRecord:
        """Run one tool call; every failure becomes a tool_result the model can read."""
        self._tool_calls += 1
        spec = self._tools.get(block.name)
        if spec is None:
            return _record(
                block,
                "unknown_tool",
                f"unknown tool {block.name!r}; available tools: {sorted(self._tools)}",
            )
        try:
            spec.validate(block.input)
        except ValidationError as e:
            return _record(block, "invalid_arguments", describe_validation_error(e))
        call = ToolCall(
            tool=spec.name,
            arguments=block.input,
            idempotency_key=f"{workflow.info().workflow_id}/{turn}/{index}",
            conversation_id=workflow.info().workflow_id,
            tenant=self._input.tenant,
        )
        try:
            result = await self._execute_tool(spec, call)
        except ActivityError as e:
            self._last_error = f"{spec.name}: {_describe(e)}"
            return _record(block, "error", f"{spec.name} failed: {_describe(e)}")
        return _record(block, result.outcome, result.content)

    async def _execute_tool(self, spec: ToolSpec, call: ToolCall) -> ToolResult:
        result: ToolResult = await workflow.execute_activity(
            spec.activity_name,
            call,
            result_type=ToolResult,
            start_to_close_timeout=spec.start_to_close_timeout,
            schedule_to_close_timeout=spec.schedule_to_close_timeout,
            heartbeat_timeout=spec.heartbeat_timeout,
            retry_policy=spec.retry_policy,
            summary=_tool_summary(spec.name, call.arguments),
        )
        return result

    def _append_user(self, blocks: list[ContentBlock]) -> None:
        """Add user content, merging into a trailing user message so roles alternate
        (a turn cut short leaves tool results last)."""
        if self._messages and self._messages[-1].role == "user":
            self._messages[-1].content.extend(blocks)
        else:
            self._messages.append(Message(role="user", content=blocks))


def _parse_message(raw: RawValue) -> UserMessage:
    try:
        message = workflow.payload_converter().from_payload(raw.payload, UserMessage)
    except (ValidationError, ValueError, TypeError) as e:
        detail = (
            describe_validation_error(e, root="message")
            if isinstance(e, ValidationError)
            else str(e)
        )
        raise ApplicationError(
            f'malformed message, expected {{"text": "..."}}: {detail}',
            type=INVALID_MESSAGE,
            non_retryable=True,
        ) from None
    assert isinstance(message, UserMessage)
    return message


def _record(block: ToolUseBlock, outcome: Any, result: str) -> ToolCallRecord:
    return ToolCallRecord(
        id=block.id, name=block.name, arguments=block.input, outcome=outcome, result=result
    )


def _text(response: ModelResponse) -> str:
    return "".join(b.text for b in response.content if isinstance(b, TextBlock))


def _describe(error: ActivityError) -> str:
    """What went wrong, in the activity's words: the first ``ApplicationError`` (or
    timeout) under the activity failure."""
    cause: BaseException | None = error.__cause__
    while cause is not None:
        if isinstance(cause, ApplicationError):
            return cause.message
        if cause.__cause__ is None:
            return str(cause) or type(cause).__name__
        cause = cause.__cause__
    return str(error)


def _tool_summary(name: str, arguments: dict[str, Any]) -> str:
    args = ", ".join(str(v) for v in arguments.values())
    summary = f"{name}({args})"
    return summary if len(summary) <= 80 else summary[:77] + "..."
