"""``AgentWorkflow``: one conversation with the agent, as a Temporal workflow.

A message arrives by the ``send_message`` update and waits in a queue; the main loop
takes messages in order and runs a turn for each:

    receive → check breakers and budgets → ask the tenant's governor → call the model
            → run the tools it asks for (concurrently) → … → reply

Every model call and tool call is an activity, so a killed worker loses nothing:
another worker replays the history and carries on. Breakers, budgets, counters and the
transcript live in workflow state and are rebuilt exactly on replay.

Deterministic code only: no I/O, no clock (``workflow.now()``), no randomness.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from workflows.continuation import Continues
from workflows.deadline import TurnClock
from workflows.feed import restored_feed
from workflows.journal import Journal
from workflows.parsing import APPROVE_SHAPE, CLEAR_SHAPE, REJECT_SHAPE, parse, parse_message
from workflows.policies import ANSWERED_KEPT, MODEL_RETRY_POLICY
from workflows.turn import Pending, Turn, TurnOver, text_of
from workflows.versions import (
    LEAN_TURN_PATCH,
    LEAN_TURN_V2_PATCH,
    MARKERLESS_REVISION,
    PACED_REVISION,
    PROVENANCE_PATCH,
    RESILIENCE_PATCH,
    SAFETY_PATCH,
    TIMERLESS_REVISION,
)

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from durable_agent import provenance as prov
    from durable_agent import search_attributes as attributes
    from durable_agent.activity_models import (
        QUERY_TRANSCRIPT_PREFIX,
        Messages,
        TranscriptPrefix,
    )
    from durable_agent.budget import Budget
    from durable_agent.contract import (
        CONVERSATION_ENDED,
        INVALID_APPROVAL,
        INVALID_MESSAGE,
        MESSAGE_BLOCKED,
        QUERY_APPROVALS,
        QUERY_EVENTS,
        QUERY_STATUS,
        QUERY_STREAM,
        QUERY_TRANSCRIPT,
        SIGNAL_END,
        SIGNAL_FORCE_BREAKER,
        UPDATE_APPROVE,
        UPDATE_CLEAR_UNTRUSTED,
        UPDATE_REJECT,
        UPDATE_SEND_MESSAGE,
        WORKFLOW_TYPE,
        ApprovalRecord,
        Approvals,
        ApproveCall,
        BreakerCommand,
        Clearance,
        ClearUntrusted,
        ConversationInput,
        ConversationResult,
        ConversationStatus,
        EventPage,
        EventsRequest,
        RejectCall,
        Reply,
        StreamPage,
        StreamRequest,
        TextBlock,
        ToolUseBlock,
        Transcript,
        UserMessage,
    )
    from durable_agent.dependencies import MODEL
    from durable_agent.safety import message_problem
    from durable_agent.tools.registry import describe_validation_error
    from durable_agent.toolsets import server_dependency

__all__ = ["MODEL_RETRY_POLICY", "AgentWorkflow"]


@workflow.defn(name=WORKFLOW_TYPE)
class AgentWorkflow(Continues):
    """A durable, multi-turn conversation with tool use."""

    @workflow.init
    def __init__(self, input: ConversationInput) -> None:
        # Here, not in run: signals and queries of the first activation see the state.
        self._set_up(input)
        self._journal = Journal(restored_feed(input.continued))  # the stream: here or nowhere
        workflow.set_dynamic_signal_handler(self.unknown_signal)

    @workflow.run
    async def run(self, input: ConversationInput) -> ConversationResult:
        """Serve messages in arrival order until ``end`` (or cancellation)."""
        if self._input_error:
            raise ApplicationError(
                self._input_error, type="InvalidConversationInput", non_retryable=True
            )
        self._lean2 = self._input.revision >= MARKERLESS_REVISION or workflow.patched(
            LEAN_TURN_V2_PATCH
        )
        self._lean = self._lean2 or workflow.patched(LEAN_TURN_PATCH)
        self._timerless = self._input.revision >= TIMERLESS_REVISION
        self._paced = self._input.revision >= PACED_REVISION
        # Set by the start request, or (paced) as the last run left them, a non-ok
        # status included: continue-as-new carries them.
        if (self._timerless and self._published is None) or self._paced:
            self._published = attributes.values_of(workflow.info().typed_search_attributes)
        if self._lean2:
            self._guarded = True  # provenance-v1, taken as given
        if self._lean:
            self._permits.resume()
        self._start_delegation()  # sub-agents offered; a sub-agent queues its task
        self._publish("idle")
        try:
            await self._serve()
        except asyncio.CancelledError:
            if self._paced:
                self._publish_held()
            if self._lean:  # the tenant gets back what the lease did not spend
                self._permits.release()
                await self._permits.delivered()
            raise
        self._state = "ended"
        self._journal.ended(self._turns)
        self._publish("ended")
        if self._lean:
            self._permits.release()
        await self._permits.delivered()
        self._journal.feed.stream.detach_pollers()  # release the library's subscribers
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._result()

    async def _serve(self) -> None:
        """Run a turn for each message, in order, until ``end``; continue as new between
        turns when the history is long."""
        while True:
            await workflow.wait_condition(lambda: bool(self._pending) or self._end_requested)
            if not self._pending:
                break
            pending = self._pending.pop(0)
            reply = await self._run_turn(pending.message)
            continuing = self._should_continue_as_new()
            if continuing:  # before the reply, so no message comes meanwhile:
                await self._permits.delivered()
                transcript = await self._transcript_for_next_run()
            self._replies[pending.update_id] = reply
            self._answered[pending.update_id] = reply
            if len(self._answered) > ANSWERED_KEPT:
                del self._answered[next(iter(self._answered))]
            self._journal.replied(reply)
            # The next run starts from what was upserted last: nothing held back.
            self._publish("idle" if reply.status == "ok" else reply.status, flush=continuing)
            if continuing:
                # Between turns, once every handler has returned (the reply just
                # delivered, approvals, the library's subscribers: released, they
                # follow to the next run); a message arriving meanwhile is served first.
                self._journal.feed.stream.detach_pollers()
                await workflow.wait_condition(
                    lambda: workflow.all_handlers_finished() or bool(self._pending)
                )
                if self._pending or self._end_requested:
                    self._journal.feed.stream.attach_pollers()  # this run goes on
                    del transcript
                else:
                    workflow.continue_as_new(self._next_run_input(*transcript))
            # Not held while the conversation waits for its next message (a cached
            # conversation is light: the reply alone was ~1.4 KiB).
            del pending, reply

    # --- the public surface: update, signals, queries ------------------------------------

    # On `end` every queued message is answered before the workflow completes; only
    # cancellation abandons waiting callers (they get "workflow execution already
    # completed"), which is what cancel means.
    @workflow.update(
        name=UPDATE_SEND_MESSAGE, unfinished_policy=workflow.HandlerUnfinishedPolicy.ABANDON
    )
    async def send_message(self, message: RawValue) -> Reply:
        """Queue a user message (a ``UserMessage``) and return the reply once its turn
        has run. Taken raw so a malformed payload gets a precise rejection, not a
        generic decoding failure."""
        update_id = workflow.current_update_info().id  # type: ignore[union-attr]
        if update_id in self._answered and self._runs > 1:
            return self._answered[update_id]  # a retry from before continue-as-new
        self._pending.append(Pending(update_id, parse_message(message)))
        await workflow.wait_condition(lambda: update_id in self._replies)
        return self._replies.pop(update_id)

    @send_message.validator
    def validate_message(self, message: RawValue) -> None:
        """Reject what must never enter history: malformed, empty, oversized or binary
        text, a blocked pattern (or injection, if the policy blocks them), or any
        message after ``end``."""
        if self._end_requested:
            raise ApplicationError(
                "the conversation has ended; start a new one",
                type=CONVERSATION_ENDED,
                non_retryable=True,
            )
        problem = message_problem(parse_message(message).text, self._input.safety, self._detector)
        if problem:
            kind, why = problem
            raise ApplicationError(
                why,
                type=INVALID_MESSAGE if kind == "invalid" else MESSAGE_BLOCKED,
                non_retryable=True,
            )

    @workflow.update(name=UPDATE_APPROVE)
    async def approve(self, decision: RawValue) -> ApprovalRecord:
        """A person approves a waiting tool call (an ``ApproveCall``), optionally with
        edited arguments; returns the audit record once the call has resumed."""
        return await self._desk.answer(parse(decision, ApproveCall, "approval", APPROVE_SHAPE))

    @approve.validator
    def validate_approve(self, decision: RawValue) -> None:
        """Only a waiting call, with arguments its tool accepts."""
        answer = parse(decision, ApproveCall, "approval", APPROVE_SHAPE)
        pending = self._desk.get(answer.call_id, answer.by)
        if answer.arguments is not None:
            try:
                self._spec_for(pending).validate(answer.arguments)
            except ValidationError as e:
                raise ApplicationError(
                    f"edited arguments for {pending.tool}: {describe_validation_error(e)}",
                    "arguments",  # details: what was wrong (the call still waits)
                    type=INVALID_APPROVAL,
                    non_retryable=True,
                ) from None

    @workflow.update(name=UPDATE_REJECT)
    async def reject(self, decision: RawValue) -> ApprovalRecord:
        """A person rejects a waiting tool call (a ``RejectCall``); the model is told
        the reason. Returns the audit record."""
        return await self._desk.answer(parse(decision, RejectCall, "rejection", REJECT_SHAPE))

    @reject.validator
    def validate_reject(self, decision: RawValue) -> None:
        """Only a waiting call."""
        answer = parse(decision, RejectCall, "rejection", REJECT_SHAPE)
        self._desk.get(answer.call_id, answer.by)

    @workflow.update(name=UPDATE_CLEAR_UNTRUSTED)
    def clear_untrusted(self, request: RawValue) -> Clearance:
        """A person vouches for the context (a ``ClearUntrusted``): calls stop waiting
        for approval because of the untrusted content in it, until more comes in.
        Returns the audit record."""
        clearing = parse(request, ClearUntrusted, "clearance", CLEAR_SHAPE)
        clearance = prov.clear(
            self._provenance, clearing.by, clearing.reason, workflow.now(), self._turns
        )
        workflow.logger.warning(
            "untrusted content cleared by %s",
            clearing.by,
            extra={"event": "untrusted_cleared", "by": clearing.by, "reason": clearing.reason},
        )
        return clearance

    @clear_untrusted.validator
    def validate_clear_untrusted(self, request: RawValue) -> None:
        """Only an approver, and only when there is something to clear."""
        clearing = parse(request, ClearUntrusted, "clearance", CLEAR_SHAPE)
        self._desk.check_approver(clearing.by, "the context stays untrusted")
        if not self._provenance.untrusted:
            raise ApplicationError(
                "the context holds no untrusted content", type=INVALID_APPROVAL, non_retryable=True
            )

    @workflow.signal(name=SIGNAL_END)
    def end(self) -> None:
        """Finish the queued turns, then end the conversation."""
        self._end_requested = True

    @workflow.signal(name=SIGNAL_FORCE_BREAKER)
    def force_breaker(self, command: BreakerCommand) -> None:
        """Operators: force a dependency's breaker open or closed, or back to automatic."""
        known = [
            MODEL,
            *dict.fromkeys(spec.dependency for spec in self._tools.values()),
            *(server_dependency(name) for name in self._input.toolsets),
        ]
        if command.dependency not in known:
            self._last_error = (
                f"force_breaker: unknown dependency {command.dependency!r}; known: {known}"
            )
            workflow.logger.warning(self._last_error)
            return
        mode = None if command.mode == "auto" else command.mode
        self._health.force(command.dependency, mode, self._now())
        workflow.logger.info("breaker %s forced %s", command.dependency, command.mode)

    def unknown_signal(self, name: str, args: Sequence[RawValue]) -> None:
        """A signal nobody handles is recorded, not buffered forever. (Registered in
        ``__init__``, after the stream's: a class-level dynamic handler would take the
        stream's publish signals that arrive before ``__init__`` has run.)"""
        self._last_error = (
            f"unknown signal {name!r}; known signals: {[SIGNAL_END, SIGNAL_FORCE_BREAKER]}"
        )
        workflow.logger.warning("ignored unknown signal %r", name)

    @workflow.query(name=QUERY_STATUS)
    def status(self) -> ConversationStatus:
        """Where the conversation is, what it has used, what is degraded, and which tool
        calls wait for approval."""
        return self._status()

    @workflow.query(name=QUERY_TRANSCRIPT)
    def transcript(self) -> Transcript:
        """The system prompt, every message so far, and what screening flagged."""
        return Transcript(
            system_prompt=self._input.system_prompt,
            messages=self._messages,
            flags=self._flags,
            archived=self._archive,
            delegations=self._delegation_records(),
        )

    @workflow.query(name=QUERY_TRANSCRIPT_PREFIX)
    def transcript_prefix(self, prefix: TranscriptPrefix) -> Messages:
        """Internal: the first messages of the transcript, for a model activity that was
        sent only the newer ones and has not cached the rest."""
        return Messages(
            messages=self._messages[: prefix.end],
            context=self._context if prefix.context else None,
        )

    @workflow.query(name=QUERY_APPROVALS)
    def approvals(self) -> Approvals:
        """Tool calls waiting for approval, and the audit list of every decision."""
        return self._desk.snapshot()

    @workflow.query(name=QUERY_EVENTS)
    def events(self, request: EventsRequest) -> EventPage:
        """The steps of the turns, after ``request.after`` (see ``EventFeed``)."""
        return self._journal.feed.page(request, ended=self._state == "ended")

    @workflow.query(name=QUERY_STREAM)
    def stream(self, request: StreamRequest) -> StreamPage:
        """Steps and model output, after offset ``request.after`` (see ``EventFeed``)."""
        return self._journal.feed.read(request, ended=self._state == "ended")

    # --- one turn --------------------------------------------------------------------------

    async def _run_turn(self, message: UserMessage) -> Reply:
        """One user message in, one reply out; every way a turn can fail is a typed reply."""
        turn = Turn(number=self._turns + 1, budget=Budget(limits=self._turn_limits()))
        turn.streamed = self._input.stream if message.stream is None else message.stream
        self._append_user([TextBlock(text=message.text)])
        self._journal.turn_started(turn.number)
        self._safety = self._patched(SAFETY_PATCH)
        if self._safety and self._guarded is None:  # not implied by lean-turn-v1
            self._guarded = workflow.patched(PROVENANCE_PATCH)
        if self._safety and self._input.safety.screen_user_messages != "off":
            self._screen(turn, "user", message.text)
        try:
            if self._safety:
                turn.clock = TurnClock(self._input.turn_timeout_seconds, timerless=self._timerless)
                reply = await turn.clock.bound(  # a Reply, or raises
                    asyncio.ensure_future(self._agent_loop(turn)), self._desk
                )
            elif workflow.patched(RESILIENCE_PATCH):
                reply = await asyncio.wait_for(
                    self._agent_loop(turn), timeout=self._input.turn_timeout_seconds
                )
            else:
                reply = await self._agent_loop(turn)
        except TurnOver as over:
            reply = over.reply
        except TimeoutError:
            reply = self._timeout_reply(turn)
        self._close_turn(reply)
        self._journal.turn_ended(turn, reply, lambda: self._health.snapshot(self._now()))
        self._turns = turn.number
        self._state = "idle"
        return reply

    async def _agent_loop(self, turn: Turn) -> Reply:
        """Model → tools (concurrently) → model … until the model answers."""
        if self._input.toolsets:
            await self._load_toolsets(turn)
        while True:
            response = await self._model_step(turn)
            tool_uses = [b for b in response.content if isinstance(b, ToolUseBlock)]
            if response.stop_reason != "tool_use" or not tool_uses:
                return self._final_reply(turn, text_of(response))
            await self._tool_step(turn, tool_uses)
