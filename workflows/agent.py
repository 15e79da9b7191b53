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
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Literal, TypeVar

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.approvals import ApprovalDesk, within_deadline
from workflows.feed import EventFeed
from workflows.permits import GovernorUnavailable, PermitRefused, TenantPermits
from workflows.telemetry import ConversationTelemetry
from workflows.transcript import RequestSize

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ValidationError

    from durable_agent import budget as budgets
    from durable_agent import provenance as prov
    from durable_agent import search_attributes as attributes
    from durable_agent.activity_models import (
        COMPACT_ACTIVITY,
        MODEL_ACTIVITY,
        QUERY_TRANSCRIPT_PREFIX,
        CompactRequest,
        CompactResult,
        Messages,
        ModelContext,
        ModelRequest,
        ModelResponse,
        ToolCall,
        ToolResult,
        TranscriptPrefix,
        TranscriptWindow,
    )
    from durable_agent.budget import Budget, BudgetLimits
    from durable_agent.contract import (
        CONVERSATION_ENDED,
        INVALID_APPROVAL,
        INVALID_MESSAGE,
        MESSAGE_BLOCKED,
        WORKFLOW_TYPE,
        AnsweredMessage,
        ApprovalRecord,
        Approvals,
        ApproveCall,
        BreakerCommand,
        BudgetScope,
        BudgetStatus,
        Clearance,
        ClearUntrusted,
        ContentBlock,
        ContinuedState,
        ConversationInput,
        ConversationResult,
        ConversationState,
        ConversationStatus,
        EventPage,
        EventsRequest,
        Message,
        Provenance,
        RejectCall,
        Reply,
        SafetyFlag,
        TextBlock,
        ToolCallRecord,
        ToolOutcome,
        ToolResultBlock,
        ToolUseBlock,
        Transcript,
        TurnStatus,
        UserMessage,
    )
    from durable_agent.dependencies import MODEL, DependencyHealth, tool_dependency
    from durable_agent.injection import InjectionDetector, Screening
    from durable_agent.pricing import Price, price_for
    from durable_agent.retry_classification import NON_RETRYABLE_TYPES
    from durable_agent.safety import approval_reason, message_problem, quotes, untrusted
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

ANSWERED_KEPT = 16
"""Replies kept by update id for retries that arrive after continue-as-new."""

MIN_OUTPUT_TOKENS = 64
"""A model call that could not produce at least this many tokens is not worth making."""

GOVERNOR = "governor"
"""Dependency name of the tenant governor in degraded replies."""

LEAN_TURN_PATCH = "lean-turn-v1"
"""Runs since: tenant leases instead of a permit per model call, fast tools as local
activities, search attributes upserted only when they change. A run that has it takes
every older patch below as given (one marker per run instead of six)."""

SEARCH_ATTRIBUTES_PATCH = "search-attributes-v1"
"""Runs recorded before conversations kept their search attributes up to date."""

PROVENANCE_PATCH = "provenance-v1"
"""Runs since: untrusted content in the context (not only a detector flag in the turn)
makes write/execute/admin calls wait for approval, and guards outbound calls."""

SAFETY_PATCH = "safety-v1"
"""Runs recorded before screening, approvals and the approval-aware turn deadline."""

COMPACTION_PATCH = "compaction-v1"
"""Runs recorded before old turns were compacted near the context window."""

CONTINUE_AS_NEW_PATCH = "continue-as-new-v1"
"""Runs recorded before conversations continued as new between turns."""

RESILIENCE_PATCH = "resilience-v1"
"""Runs recorded before breakers, budgets, the tenant governor and the turn deadline
replay without the governor's activity and the deadline's timer."""


@dataclass
class _Pending:
    """A message accepted by the update and waiting for its turn."""

    update_id: str
    message: UserMessage


@dataclass
class _Turn:
    """What one turn has done so far."""

    number: int
    budget: Budget
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    model_calls: int = 0
    degraded: list[str] = field(default_factory=list)
    last_response: ModelResponse | None = None
    tainted_by: list[str] = field(default_factory=list)
    """What in this turn was flagged as a possible prompt injection (``user``,
    ``tool:<name>``): from then on, calls that can change anything need approval."""
    rate_limited: tuple[float, str] | None = None
    """While waiting out the tenant's rate limit: when the wait ends, and why."""

    def waiting_out_rate_limit(self, wait: tuple[float, str] | None) -> None:
        """The turn waits out the tenant's rate limit (until when, why), or no longer."""
        self.rate_limited = wait

    def reply(
        self,
        text: str,
        status: TurnStatus = "ok",
        detail: str | None = None,
        *,
        budget_scope: BudgetScope | None = None,
        retry_after_seconds: float | None = None,
    ) -> Reply:
        response = self.last_response
        return Reply(
            text=text,
            turn=self.number,
            tool_calls=self.tool_calls,
            usage=self.budget.spent.usage,
            model=response.model if response else "",
            backend=response.backend if response else "",
            model_calls=self.model_calls,
            status=status,
            detail=detail,
            degraded=sorted(set(self.degraded)),
            cost_usd=self.budget.spent.usd,
            budget_scope=budget_scope,
            retry_after_seconds=retry_after_seconds,
        )


class _TurnOver(Exception):
    """Raised inside a turn to end it early with a typed reply."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


@workflow.defn(name=WORKFLOW_TYPE)
class AgentWorkflow:
    """A durable, multi-turn conversation with tool use."""

    @workflow.init
    def __init__(self, input: ConversationInput) -> None:
        self._input = input
        self._messages: list[Message] = []
        self._pending: list[_Pending] = []
        self._replies: dict[str, Reply] = {}
        # Replies of recent messages by update id, carried across continue-as-new: a
        # retried update (the gateway's Idempotency-Key) that reaches the next run gets
        # the reply it had (Temporal deduplicates update ids only within a run).
        self._answered: dict[str, Reply] = (
            {a.update_id: a.reply for a in input.continued.answered} if input.continued else {}
        )
        self._state: ConversationState = "idle"
        self._turns = 0
        self._model_calls = 0
        self._last_error: str | None = None
        self._end_requested = False
        # Resolved here, not in run: signals and queries of the first activation see it.
        self._tools: dict[str, ToolSpec] = {}
        self._input_error: str | None = None
        try:
            self._tools = {spec.name: spec for spec in select_tools(input.tools)}
        except KeyError as e:
            self._input_error = str(e)
        self._detector = InjectionDetector.create(input.safety.injection_patterns)
        carried = input.continued
        self._desk = ApprovalDesk(
            input.safety.approval_timeout_seconds,
            carried.decisions if carried else (),
            input.safety.approvers,
        )
        self._flags: list[SafetyFlag] = list(carried.flags) if carried else []
        # Untrusted content in the context (``PROVENANCE_PATCH``; decided at the first turn).
        self._provenance = (carried.provenance if carried else None) or Provenance()
        self._guarded: bool | None = None
        # Whether this run screens, asks for approvals and pauses the deadline for them
        # (``SAFETY_PATCH``); decided at the first turn.
        self._safety = False
        self._budget = Budget(limits=input.limits.conversation)
        self._health = DependencyHealth(config=input.breakers, overrides=input.breaker_overrides)
        # The model a price is looked up for: named, or learnt from the first response.
        # Until then the conservative default price applies, so budgets err on the safe side.
        self._priced_model: str | None = input.model
        self._telemetry = ConversationTelemetry()
        # Messages before this index are unchanged since the last model call was sent, so
        # the next call sends only the rest (see ``TranscriptWindow``).
        self._sent = 0
        self._request_size = RequestSize()
        # The system prompt and tools last sent to the model activity (see ``_windowed``).
        self._context: ModelContext | None = None
        self._runs = 1
        self._compactions = 0
        self._permits = TenantPermits(input.tenant, carried.lease if carried else None)
        # Whether this run is lean (``LEAN_TURN_PATCH``); decided when the run starts.
        self._lean = False
        # The search attributes last upserted; a new run starts with the previous run's
        # (continue-as-new carries them), so it upserts only what changes.
        self._published: tuple[str, str, int, int, Decimal] | None = None
        self._events = EventFeed(carried.events, carried.event_seq) if carried else EventFeed()
        if carried:
            self._restore(carried)
            spent = self._budget.spent
            self._published = (input.tenant, "idle", self._turns, spent.usage.total_tokens,
                               spent.usd)  # fmt: skip
        self._turns_at_start = self._turns

    @workflow.run
    async def run(self, input: ConversationInput) -> ConversationResult:
        """Serve messages in arrival order until ``end`` (or cancellation)."""
        if self._input_error:
            raise ApplicationError(
                self._input_error, type="InvalidConversationInput", non_retryable=True
            )
        self._lean = workflow.patched(LEAN_TURN_PATCH)
        if self._lean:
            self._permits.resume()
        self._publish("idle")
        try:
            await self._serve()
        except asyncio.CancelledError:
            if self._lean:  # the tenant gets back what the lease did not spend
                self._permits.release()
                await self._permits.delivered()
            raise
        self._state = "ended"
        self._events.emit("ended", self._turns)
        self._publish("ended")
        if self._lean:
            self._permits.release()
        await self._permits.delivered()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return ConversationResult(turns=self._turns, usage=self._budget.spent.usage)

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
            if continuing:
                await self._permits.delivered()  # before the reply: no message meanwhile
            self._replies[pending.update_id] = reply
            self._answered[pending.update_id] = reply
            if len(self._answered) > ANSWERED_KEPT:
                del self._answered[next(iter(self._answered))]
            self._events.emit("reply", reply.turn, reply=reply)
            self._publish("idle" if reply.status == "ok" else reply.status)
            if continuing:
                # Between turns, once every handler has returned (the reply just
                # delivered, approvals); a message arriving meanwhile is served first.
                await workflow.wait_condition(
                    lambda: workflow.all_handlers_finished() or bool(self._pending)
                )
                if not self._pending and not self._end_requested:
                    workflow.continue_as_new(
                        self._input.model_copy(update={"continued": self._carry()})
                    )

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
        if update_id in self._answered and self._runs > 1:
            return self._answered[update_id]  # a retry from before continue-as-new
        self._pending.append(_Pending(update_id, _parse_message(message)))
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
        problem = message_problem(_parse_message(message).text, self._input.safety, self._detector)
        if problem:
            kind, why = problem
            raise ApplicationError(
                why,
                type=INVALID_MESSAGE if kind == "invalid" else MESSAGE_BLOCKED,
                non_retryable=True,
            )

    @workflow.update(name="approve")
    async def approve(self, decision: RawValue) -> ApprovalRecord:
        """A person approves a waiting tool call (an ``ApproveCall``), optionally with
        edited arguments; returns the audit record once the call has resumed."""
        return await self._desk.answer(_parse(decision, ApproveCall, "approval", _APPROVE_SHAPE))

    @approve.validator
    def validate_approve(self, decision: RawValue) -> None:
        """Only a waiting call, with arguments its tool accepts."""
        answer = _parse(decision, ApproveCall, "approval", _APPROVE_SHAPE)
        pending = self._desk.get(answer.call_id, answer.by)
        if answer.arguments is not None:
            try:
                self._tools[pending.tool].validate(answer.arguments)
            except ValidationError as e:
                raise ApplicationError(
                    f"edited arguments for {pending.tool}: {describe_validation_error(e)}",
                    "arguments",  # details: what was wrong (the call still waits)
                    type=INVALID_APPROVAL,
                    non_retryable=True,
                ) from None

    @workflow.update(name="reject")
    async def reject(self, decision: RawValue) -> ApprovalRecord:
        """A person rejects a waiting tool call (a ``RejectCall``); the model is told
        the reason. Returns the audit record."""
        return await self._desk.answer(_parse(decision, RejectCall, "rejection", _REJECT_SHAPE))

    @reject.validator
    def validate_reject(self, decision: RawValue) -> None:
        """Only a waiting call."""
        answer = _parse(decision, RejectCall, "rejection", _REJECT_SHAPE)
        self._desk.get(answer.call_id, answer.by)

    @workflow.update(name="clear_untrusted")
    def clear_untrusted(self, request: RawValue) -> Clearance:
        """A person vouches for the context (a ``ClearUntrusted``): calls stop waiting
        for approval because of the untrusted content in it, until more comes in.
        Returns the audit record."""
        clearing = _parse(request, ClearUntrusted, "clearance", _CLEAR_SHAPE)
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
        clearing = _parse(request, ClearUntrusted, "clearance", _CLEAR_SHAPE)
        self._desk.check_approver(clearing.by, "the context stays untrusted")
        if not self._provenance.untrusted:
            raise ApplicationError(
                "the context holds no untrusted content", type=INVALID_APPROVAL, non_retryable=True
            )

    @workflow.signal(name="end")
    def end(self) -> None:
        """Finish the queued turns, then end the conversation."""
        self._end_requested = True

    @workflow.signal(name="force_breaker")
    def force_breaker(self, command: BreakerCommand) -> None:
        """Operators: force a dependency's breaker open or closed, or back to automatic."""
        known = [MODEL, *(tool_dependency(name) for name in self._tools)]
        if command.dependency not in known:
            self._last_error = (
                f"force_breaker: unknown dependency {command.dependency!r}; known: {known}"
            )
            workflow.logger.warning(self._last_error)
            return
        mode = None if command.mode == "auto" else command.mode
        self._health.force(command.dependency, mode, self._now())
        workflow.logger.info("breaker %s forced %s", command.dependency, command.mode)

    @workflow.signal(dynamic=True)
    def unknown_signal(self, name: str, args: Sequence[RawValue]) -> None:
        """A signal nobody handles is recorded, not buffered forever."""
        self._last_error = f"unknown signal {name!r}; known signals: ['end', 'force_breaker']"
        workflow.logger.warning("ignored unknown signal %r", name)

    @workflow.query(name="status")
    def status(self) -> ConversationStatus:
        """Where the conversation is, what it has used, what is degraded, and which tool
        calls wait for approval."""
        now = self._now()
        return ConversationStatus(
            state="awaiting_approval" if self._desk.waiting else self._state,
            turns=self._turns,
            queued_messages=len(self._pending),
            usage=self._budget.spent.usage,
            model_calls=self._model_calls,
            tool_calls=self._budget.spent.tool_calls,
            tenant=self._input.tenant,
            last_error=self._last_error,
            cost_usd=self._budget.spent.usd,
            budget=BudgetStatus(
                limits=self._budget.limits,
                spent=self._budget.spent,
                remaining=budgets.remaining(self._budget),
            ),
            breakers=self._health.snapshot(now),
            degraded=self._health.degraded(now),
            pending_approvals=self._desk.pending(),
            runs=self._runs,
            untrusted=self._provenance.untrusted,
        )

    @workflow.query(name="transcript")
    def transcript(self) -> Transcript:
        """The system prompt, every message so far, and what screening flagged."""
        return Transcript(
            system_prompt=self._input.system_prompt, messages=self._messages, flags=self._flags
        )

    @workflow.query(name=QUERY_TRANSCRIPT_PREFIX)
    def transcript_prefix(self, prefix: TranscriptPrefix) -> Messages:
        """Internal: the first messages of the transcript, for a model activity that was
        sent only the newer ones and has not cached the rest."""
        return Messages(
            messages=self._messages[: prefix.end],
            context=self._context if prefix.context else None,
        )

    @workflow.query(name="approvals")
    def approvals(self) -> Approvals:
        """Tool calls waiting for approval, and the audit list of every decision."""
        return self._desk.snapshot()

    @workflow.query(name="events")
    def events(self, request: EventsRequest) -> EventPage:
        """The steps of the turns, after ``request.after`` (see ``EventFeed``)."""
        return self._events.page(request, ended=self._state == "ended")

    # --- one turn --------------------------------------------------------------------------

    async def _run_turn(self, message: UserMessage) -> Reply:
        """One user message in, one reply out; every way a turn can fail is a typed reply."""
        turn = _Turn(number=self._turns + 1, budget=Budget(limits=self._turn_limits()))
        self._append_user([TextBlock(text=message.text)])
        self._events.emit("turn_started", turn.number)
        self._safety = self._patched(SAFETY_PATCH)
        if self._safety and self._guarded is None:  # a new patch: never implied by lean
            self._guarded = workflow.patched(PROVENANCE_PATCH)
        if self._safety and self._input.safety.screen_user_messages != "off":
            self._screen(turn, "user", message.text)
        try:
            if self._safety:
                reply = await within_deadline(  # a Reply, or raises
                    asyncio.ensure_future(self._agent_loop(turn)),
                    self._input.turn_timeout_seconds,
                    self._desk,
                )
            elif workflow.patched(RESILIENCE_PATCH):
                reply = await asyncio.wait_for(
                    self._agent_loop(turn), timeout=self._input.turn_timeout_seconds
                )
            else:
                reply = await self._agent_loop(turn)
        except _TurnOver as over:
            reply = over.reply
        except TimeoutError:
            reply = self._timeout_reply(turn)
        self._close_turn(reply)
        self._telemetry.breakers(self._health.snapshot(self._now()))
        log = workflow.logger.info if reply.status == "ok" else workflow.logger.warning
        log(
            "turn %d ended %s",
            turn.number,
            reply.status,
            extra={
                "event": "turn",
                "turn": turn.number,
                "status": reply.status,
                "detail": reply.detail,
                "model_calls": turn.model_calls,
                "tool_calls": len(turn.tool_calls),
                "cost_usd": str(turn.budget.spent.usd),
            },
        )
        self._turns = turn.number
        self._state = "idle"
        return reply

    async def _agent_loop(self, turn: _Turn) -> Reply:
        """Model → tools (concurrently) → model … until the model answers."""
        while True:
            response = await self._model_step(turn)
            tool_uses = [b for b in response.content if isinstance(b, ToolUseBlock)]
            if response.stop_reason != "tool_use" or not tool_uses:
                return self._final_reply(turn, _text(response))
            await self._tool_step(turn, tool_uses)

    async def _model_step(self, turn: _Turn) -> ModelResponse:
        """One model call, if breakers and budgets allow it; the response joins the
        transcript and the spend is recorded everywhere."""
        if turn.model_calls >= self._input.max_model_calls_per_turn:
            raise _TurnOver(
                turn.reply(
                    f"I stopped after {turn.model_calls} model calls in this turn without a "
                    "final answer.",
                    "max_model_calls",
                )
            )
        self._state = "thinking"
        if not self._health.allows(MODEL, self._now()):
            raise _TurnOver(self._degraded_reply(turn, MODEL))
        withheld = self._withheld()
        turn.degraded.extend(tool_dependency(name) for name in withheld)
        request = self._model_request(withheld)
        size = self._request_size.of(request)
        if await self._compact_if_needed(turn, size.chars):
            request = self._model_request()
            size = self._request_size.of(request)
        price = self._price()
        request_bytes = size.bytes
        plan = budgets.plan_model_call(
            [("turn", turn.budget), ("conversation", self._budget)],
            input_tokens_upper=budgets.input_tokens_upper_bound(
                request_bytes, len(request.messages), len(request.tools)
            ),
            requested_max_tokens=request.max_tokens,
            price=price,
            min_output_tokens=min(MIN_OUTPUT_TOKENS, request.max_tokens),
        )
        if not plan.allowed:
            assert plan.reason is not None
            raise _TurnOver(
                turn.reply(
                    f"I can't continue: {plan.reason.message}.",
                    "budget_exceeded",
                    detail=plan.reason.message,
                    budget_scope="turn" if plan.reason.scope == "turn" else "conversation",
                )
            )
        request = self._windowed(request.model_copy(update={"max_tokens": plan.max_tokens}))
        call_id = f"{turn.number}/{turn.model_calls}"
        reservation = f"{workflow.info().workflow_id}/{call_id}"
        lease_id: str | None = None
        governed = not self._lean and workflow.patched(RESILIENCE_PATCH)
        try:
            if self._lean:
                lease_id = await self._permits.take(
                    call_id, plan.reserved_usd, turn.waiting_out_rate_limit, _describe
                )
            elif governed:
                await self._permits.permit(
                    reservation, plan.reserved_usd, turn.waiting_out_rate_limit, _describe
                )
        except PermitRefused as refused:
            raise _TurnOver(
                turn.reply(
                    f"I can't continue: {refused.message}.",
                    "budget_exceeded",
                    detail=refused.message,
                    budget_scope="tenant",
                    retry_after_seconds=refused.retry_after_seconds,
                )
            ) from None
        except GovernorUnavailable as e:
            self._last_error = f"governor: {e}"  # no permit, no spend: fail closed
            raise _TurnOver(self._degraded_reply(turn, GOVERNOR)) from None

        turn.model_calls += 1
        self._model_calls += 1
        self._events.emit("model_call_started", turn.number, model_call=turn.model_calls)
        started = self._now()
        try:
            response = await self._call_model(request, request_bytes // 4)
        except ActivityError as e:
            if lease_id is not None:
                self._permits.settle(lease_id, plan.reserved_usd, Decimal(0))  # not billed
            elif governed:
                await self._permits.settle_permit(reservation, Decimal(0))  # not billed
            self._last_error = _describe(e)
            outcome = "invalid_request" if _is_request_error(e) else "unavailable"
            self._events.emit(
                "model_call_finished",
                turn.number,
                model_call=turn.model_calls,
                outcome=outcome,
                detail=self._last_error,
            )
            self._telemetry.model_call(
                turn.number, self._priced_model or "unknown", outcome, self._now() - started
            )
            if _is_request_error(e):
                raise _TurnOver(
                    turn.reply(
                        f"Sorry, the model refused the request: {self._last_error}",
                        "model_error",
                        detail=self._last_error,
                    )
                ) from None
            self._health.record(MODEL, False, self._now())
            raise _TurnOver(self._degraded_reply(turn, MODEL)) from None
        self._health.record(MODEL, True, self._now())
        self._priced_model = self._priced_model or response.model
        actual = self._price(response.model)
        for budget in (turn.budget, self._budget):
            budgets.record_model_call(budget, response.usage, actual)
        cost = budgets.cost_of(response.usage, actual)
        self._telemetry.model_call(
            turn.number, response.model, "ok", self._now() - started, response, cost
        )
        self._events.emit(
            "model_call_finished",
            turn.number,
            model_call=turn.model_calls,
            outcome="ok",
            detail=response.stop_reason,
            usage=response.usage,
            cost_usd=cost,
        )
        if lease_id is not None:
            self._permits.settle(lease_id, plan.reserved_usd, cost)
        elif governed:
            await self._permits.settle_permit(reservation, cost)
        turn.last_response = response
        self._messages.append(Message(role="assistant", content=response.content))
        return response

    async def _compact_if_needed(self, turn: _Turn, request_chars: int) -> bool:
        """Fold the oldest turns into a summary when the transcript nears the model's
        context window; the originals stay in the blob store. A failed compaction is
        logged and the call goes ahead uncompacted. Returns whether it compacted."""
        # About 3 bytes of request JSON per token: errs towards compacting early.
        estimate = request_chars // 3
        if estimate < self._input.context_window_tokens * self._input.compact_at_fraction:
            return False
        starts = [
            i
            for i, m in enumerate(self._messages)
            if m.role == "user" and any(isinstance(b, TextBlock) for b in m.content)
        ]
        keep = self._input.keep_recent_turns
        if len(starts) <= keep or starts[-keep] < 3 or not self._patched(COMPACTION_PATCH):
            return False  # nothing old enough to fold (or a run from before compaction)
        cut, info = starts[-keep], workflow.info()
        self._compactions += 1
        key = f"transcript/{info.workflow_id}/{self._compactions}"
        request = CompactRequest(
            window=TranscriptWindow(workflow_id=info.workflow_id, run_id=info.run_id, base=cut),
            archive_key=key,
            model=self._input.model,
        )
        try:
            result: CompactResult = await workflow.execute_activity(
                COMPACT_ACTIVITY,
                request,
                result_type=CompactResult,
                start_to_close_timeout=MODEL_START_TO_CLOSE,
                schedule_to_close_timeout=MODEL_SCHEDULE_TO_CLOSE,
                heartbeat_timeout=MODEL_HEARTBEAT,
                retry_policy=MODEL_RETRY_POLICY,
                summary=f"compact {cut} messages into {key}",
            )
        except ActivityError as e:
            self._last_error = f"compaction: {_describe(e)}"
            workflow.logger.warning("compaction failed: %s", self._last_error)
            return False
        price = self._price(result.model)
        for budget in (turn.budget, self._budget):
            budgets.record_model_call(budget, result.usage, price)
        summary = f"[Summary of {cut} earlier messages; originals archived as {key}]\n"
        self._messages = [
            Message(role="user", content=[TextBlock(text=summary + result.summary)]),
            Message(role="assistant", content=[TextBlock(text="Noted; I'll go on from there.")]),
            *self._messages[cut:],
        ]
        self._sent = 0  # every message moved
        self._request_size.reset()
        workflow.logger.info(
            "compacted %d messages into %s",
            cut,
            key,
            extra={"event": "compaction", "turn": turn.number, "archive": key},
        )
        return True

    async def _tool_step(self, turn: _Turn, tool_uses: list[ToolUseBlock]) -> None:
        """Run the tool calls of one response concurrently, as far as budgets and
        breakers allow; every call gets a tool_result."""
        self._state = "running_tools"
        allowed = budgets.plan_tool_calls([turn.budget, self._budget], len(tool_uses))
        turn_allows = budgets.plan_tool_calls([turn.budget], len(tool_uses))
        for budget in (turn.budget, self._budget):
            budgets.record_tool_calls(budget, allowed)
        first = len(turn.tool_calls)
        results = list(
            await asyncio.gather(
                *(
                    self._timed_tool(turn, first + i, block)
                    for i, block in enumerate(tool_uses[:allowed])
                )
            )
        )
        results += [
            _record(block, "skipped", "not run: the tool-call budget is exhausted")
            for block in tool_uses[allowed:]
        ]
        turn.tool_calls.extend(results)
        self._append_user(
            [
                ToolResultBlock(
                    tool_use_id=r.id,
                    content=r.result,
                    is_error=r.outcome != "ok",
                    ref=r.result_ref,
                )
                for r in results
            ]
        )
        down = [
            tool_dependency(r.name)
            for r in results
            if r.outcome == "unavailable" and self._tools[r.name].criticality == "critical"
        ]
        if down:
            raise _TurnOver(self._degraded_reply(turn, *down))
        if allowed < len(tool_uses):
            raise _TurnOver(
                turn.reply(
                    "I can't continue: the tool-call budget is exhausted.",
                    "budget_exceeded",
                    detail=f"tool-call budget: {len(tool_uses) - allowed} call(s) not run",
                    budget_scope="turn" if turn_allows == allowed else "conversation",
                )
            )

    async def _timed_tool(self, turn: _Turn, index: int, block: ToolUseBlock) -> ToolCallRecord:
        started = self._now()
        self._events.emit(
            "tool_call_started",
            turn.number,
            call_id=block.id,
            tool=block.name,
            arguments=block.input,
        )
        record = await self._run_tool(turn, index, block)
        self._telemetry.tool_call(turn.number, record, self._now() - started)
        self._events.emit(
            "tool_call_finished",
            turn.number,
            call_id=block.id,
            tool=block.name,
            outcome=record.outcome,
        )
        return record

    async def _run_tool(self, turn: _Turn, index: int, block: ToolUseBlock) -> ToolCallRecord:
        """Run one tool call; every failure becomes a tool_result the model can read."""
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
        arguments, approval = block.input, None
        # Decided before any call of this step returns: a result the model has not seen
        # cannot have steered the calls it asked for alongside.
        gate = self._gate(turn, spec, block) if self._safety else None
        if gate and gate.action == "block":
            workflow.logger.warning(
                "tool call %s (%s) refused: %s",
                block.id,
                spec.name,
                gate.reason,
                extra={"event": "tool_call_blocked", "call_id": block.id, "tool": spec.name},
            )
            return _record(
                block, "rejected", f"not run: the safety policy refuses it: {gate.reason}"
            )
        if gate:
            reason = gate.reason
            self._publish("awaiting_approval")
            self._events.emit(
                "approval_requested", turn.number, call_id=block.id, tool=spec.name, detail=reason
            )
            approval = await self._desk.request(
                call_id=block.id,
                tool=spec.name,
                permission=spec.permission,
                arguments=block.input,
                reason=reason,
                turn=turn.number,
                severity=gate.severity,
                untrusted_sources=gate.untrusted,
            )
            self._telemetry.approval(spec.name, approval.decision)
            self._events.emit(
                "approval_decided",
                turn.number,
                call_id=block.id,
                tool=spec.name,
                outcome=approval.decision,
                detail=approval.by,
            )
            if not self._desk.waiting:
                self._publish("running_tools")
            if approval.decision != "approved":
                return _record(block, "rejected", _rejection(approval), approval=approval)
            arguments = approval.arguments or block.input
        dependency = tool_dependency(spec.name)
        if not self._health.allows(dependency, self._now()):
            turn.degraded.append(dependency)
            return _record(
                block,
                "unavailable",
                f"{spec.name} is temporarily unavailable after repeated failures; "
                "answer without it and tell the user.",
            )
        screens = self._safety and self._input.safety.screen_tool_results != "off"
        call = ToolCall(
            tool=spec.name,
            arguments=arguments,
            idempotency_key=f"{workflow.info().workflow_id}/{turn.number}/{index}",
            conversation_id=workflow.info().workflow_id,
            tenant=self._input.tenant,
            injection_patterns=self._input.safety.injection_patterns if screens else None,
        )
        try:
            result = await self._execute_tool(spec, call)
        except ActivityError as e:
            self._health.record(dependency, False, self._now())
            self._last_error = f"{spec.name}: {_describe(e)}"
            return _record(block, "error", f"{spec.name} failed: {_describe(e)}", approval=approval)
        self._health.record(dependency, True, self._now())
        content, flags = result.content, list(result.flags)
        if flags:  # an offloaded result, screened whole (and fenced) by the activity
            turn.tainted_by.append(f"tool:{spec.name}")
            self._flag(turn, f"tool:{spec.name}", flags, content[:80], block.id)
        elif screens and result.outcome == "ok" and result.ref is None:
            screening = self._screen(turn, f"tool:{spec.name}", content, tool_use_id=block.id)
            if screening.flagged:
                content, flags = untrusted(spec.name, content, screening), screening.categories
        if self._guarded and result.outcome == "ok":
            self._note_provenance(turn, spec, block, flags)
        if approval and approval.arguments is not None:
            content = (
                f"(run with arguments edited by {approval.by}: {json.dumps(arguments)})\n{content}"
            )
        return _record(
            block, result.outcome, content, flags=flags, approval=approval, ref=result.ref
        )

    # --- activities ------------------------------------------------------------------------

    async def _call_model(self, request: ModelRequest, tokens_estimate: int) -> ModelResponse:
        response: ModelResponse = await workflow.execute_activity(
            MODEL_ACTIVITY,
            request,
            result_type=ModelResponse,
            start_to_close_timeout=MODEL_START_TO_CLOSE,
            schedule_to_close_timeout=MODEL_SCHEDULE_TO_CLOSE,
            heartbeat_timeout=MODEL_HEARTBEAT,
            retry_policy=MODEL_RETRY_POLICY,
            summary=(
                f"{self._priced_model or 'default model'} · ~{tokens_estimate:,} tokens in · "
                f"{len(self._messages)} message{'' if len(self._messages) == 1 else 's'}"
            ),
        )
        return response

    async def _execute_tool(self, spec: ToolSpec, call: ToolCall) -> ToolResult:
        if spec.local and self._lean:
            local: ToolResult = await workflow.execute_local_activity(
                spec.activity_name,
                call,
                result_type=ToolResult,
                start_to_close_timeout=spec.start_to_close_timeout,
                schedule_to_close_timeout=spec.schedule_to_close_timeout,
                retry_policy=spec.retry_policy,
                summary=_tool_summary(spec.name, call.arguments),
            )
            return local
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

    # --- helpers --------------------------------------------------------------------------

    def _publish(self, status: str) -> None:
        """Show where the conversation is in the Temporal UI: current details, and the
        ``Agent*`` search attributes when the server has them."""
        spent = self._budget.spent
        workflow.set_current_details(
            f"{self._turns} turns · {status} · {spent.usage.total_tokens:,} tokens · "
            f"${spent.usd:.4f} · tenant {self._input.tenant}"
        )
        if not self._input.search_attributes or not self._patched(SEARCH_ATTRIBUTES_PATCH):
            return
        values = (self._input.tenant, status, self._turns, spent.usage.total_tokens, spent.usd)
        if self._lean and values == self._published:
            return  # unchanged: no command, no event
        self._published = values
        tenant, status, turns, tokens, usd = values
        workflow.upsert_search_attributes(
            [
                attributes.TENANT.value_set(tenant),
                attributes.STATUS.value_set(status),
                attributes.TURNS.value_set(turns),
                attributes.TOKENS.value_set(tokens),
                attributes.COST_USD.value_set(float(usd)),
            ]
        )

    def _now(self) -> float:
        return workflow.now().timestamp()

    def _patched(self, patch_id: str) -> bool:
        """Whether this run has an older patch: lean runs have them all (see
        ``LEAN_TURN_PATCH``), without recording a marker for each."""
        return self._lean or workflow.patched(patch_id)

    def _windowed(self, request: ModelRequest) -> ModelRequest:
        """The request as sent: only the messages the activity may not have yet."""
        if not self._patched(CONTINUE_AS_NEW_PATCH):
            return request
        info = workflow.info()
        base, self._sent = self._sent, len(request.messages)
        update: dict[str, object] = {}
        context = self._context
        if context is not None and (context.system, context.tools) == (
            request.system,
            request.tools,
        ):
            # The same system prompt and tools as the last call: not sent again.
            update = {"system": "", "tools": [], "context_omitted": True}
        else:
            seq = context.seq + 1 if context else 1
            context = self._context = ModelContext(
                seq=seq, system=request.system, tools=request.tools
            )
        window = TranscriptWindow(
            workflow_id=info.workflow_id, run_id=info.run_id, base=base, context_seq=context.seq
        )
        return request.model_copy(
            update=update | {"messages": request.messages[base:], "window": window}
        )

    def _should_continue_as_new(self) -> bool:
        if not self._patched(CONTINUE_AS_NEW_PATCH):
            return False
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or self._turns - self._turns_at_start >= self._input.continue_as_new_after_turns
            or info.get_current_history_size() >= self._input.continue_as_new_history_bytes
        )

    def _carry(self) -> ContinuedState:
        """The state the next run starts from (see ``_restore``)."""
        workflow.logger.info(
            "continuing as new after %d turns in this run",
            self._turns - self._turns_at_start,
            extra={"event": "continue_as_new", "run": self._runs},
        )
        events, event_seq = self._events.carry()
        return ContinuedState(
            runs=self._runs,
            messages=self._messages,
            turns=self._turns,
            model_calls=self._model_calls,
            last_error=self._last_error,
            budget=self._budget,
            health=self._health,
            priced_model=self._priced_model,
            flags=self._flags,
            decisions=self._desk.decisions(),
            compactions=self._compactions,
            events=events,
            event_seq=event_seq,
            answered=[
                AnsweredMessage(update_id=update_id, reply=reply)
                for update_id, reply in self._answered.items()
            ],
            lease=self._permits.carry(),
            provenance=self._provenance if self._guarded else None,
        )

    def _restore(self, carried: ContinuedState) -> None:
        self._runs = carried.runs + 1
        self._messages = list(carried.messages)
        self._turns = carried.turns
        self._model_calls = carried.model_calls
        self._last_error = carried.last_error
        self._budget = carried.budget
        self._health = carried.health
        self._priced_model = carried.priced_model
        self._compactions = carried.compactions

    def _screen(
        self, turn: _Turn, source: str, text: str, tool_use_id: str | None = None
    ) -> Screening:
        """Screen ``text`` for prompt injection; a flag is recorded (transcript, log,
        metric) and taints the turn."""
        screening = self._detector.screen(text)
        if screening.flagged:
            turn.tainted_by.append(source)
            self._flag(
                turn, source, screening.categories, screening.matches[0].excerpt, tool_use_id
            )
            if self._guarded and source == "user":  # a pasted document: untrusted from now on
                prov.record(self._provenance, source, turn.number, flagged=screening.categories)
        return screening

    def _flag(
        self,
        turn: _Turn,
        source: str,
        categories: list[str],
        excerpt: str,
        tool_use_id: str | None = None,
        action: Literal["flagged", "withheld"] = "flagged",
    ) -> None:
        flag = SafetyFlag(
            turn=turn.number,
            source=source,
            tool_use_id=tool_use_id,
            categories=categories,
            excerpt=excerpt,
            action=action,
        )
        self._flags.append(flag)
        self._telemetry.safety_flag(flag)

    def _gate(self, turn: _Turn, spec: ToolSpec, block: ToolUseBlock) -> prov.Gate | None:
        """Whether the call needs approval (or is refused): by provenance, or in runs
        from before it by the turn's flags."""
        policy = self._input.safety
        if not self._guarded:
            reason = approval_reason(
                spec.name,
                spec.permission,
                block.input,
                policy,
                tainted_by=turn.tainted_by,
                system_prompt=self._input.system_prompt,
            )
            return prov.Gate("approve", reason, "normal") if reason else None
        texts = None
        if spec.outbound and self._provenance.untrusted:
            texts = prov.context_texts(
                self._messages,
                self._input.system_prompt,
                [
                    s.name
                    for s in self._tools.values()
                    if prov.result_trust(s.name, s.trust, policy) == "untrusted"
                ],
                self._provenance,
                summarised=self._compactions > 0,
            )
        return prov.gate(
            spec.name,
            spec.permission,
            block.input,
            policy,
            self._provenance,
            outbound=spec.outbound,
            system_prompt=self._input.system_prompt,
            texts=texts,
        )

    def _note_provenance(
        self, turn: _Turn, spec: ToolSpec, block: ToolUseBlock, flags: list[str]
    ) -> None:
        """A result of an untrusted tool (or a flagged one) makes the context untrusted."""
        trust = prov.result_trust(spec.name, spec.trust, self._input.safety)
        if trust == "untrusted" or flags:
            prov.record(self._provenance, f"tool:{spec.name}", turn.number, block.id, flags)

    def _final_reply(self, turn: _Turn, text: str) -> Reply:
        """The model's answer, unless it quotes the system prompt (then withheld)."""
        protect = self._safety and self._input.safety.protect_system_prompt
        if protect and quotes(text, self._input.system_prompt):
            self._flag(turn, "reply", ["system_prompt_leak"], text[:80], action="withheld")
            return turn.reply(
                "I can't share that: my answer repeated my instructions, so it was withheld.",
                detail="reply withheld: it quoted the system prompt",
            )
        return turn.reply(text)

    def _timeout_reply(self, turn: _Turn) -> Reply:
        """The turn's deadline passed: while it waited out the tenant's rate limit, or
        while it worked."""
        if turn.rate_limited:
            until, why = turn.rate_limited
            return turn.reply(
                "The tenant's rate limit outlasted this turn; try again shortly.",
                "rate_limited",
                detail=why,
                retry_after_seconds=max(0.0, until - self._now()),
            )
        seconds = self._input.turn_timeout_seconds
        return turn.reply(
            f"This turn ran out of time ({seconds:g}s) and was stopped.",
            "timeout",
            detail=f"turn deadline of {seconds:g}s passed",
        )

    def _turn_limits(self) -> BudgetLimits:
        limits = self._input.limits.turn
        if limits.model_calls is None:
            limits = limits.model_copy(update={"model_calls": self._input.max_model_calls_per_turn})
        return limits

    def _price(self, model: str | None = None) -> Price:
        return price_for(model or self._priced_model or "")

    def _model_request(self, withheld: list[str] | None = None) -> ModelRequest:
        """The next model call: optional tools whose breaker is open (``withheld``, if
        just computed) are withheld, and the model is told so it can say what it cannot
        do."""
        withheld = self._withheld() if withheld is None else withheld
        offered = [spec.definition() for spec in self._tools.values() if spec.name not in withheld]
        system = self._input.system_prompt
        if withheld:
            system += (
                f"\n\nThese tools are temporarily unavailable: {', '.join(withheld)}. "
                "If the user needs them, say so and answer as well as you can without them."
            )
        return ModelRequest(
            model=self._input.model,
            system=system,
            messages=self._messages,
            tools=offered,
            max_tokens=self._input.max_tokens,
        )

    def _withheld(self) -> list[str]:
        """Optional tools whose breaker is open: not offered to the model."""
        now = self._now()
        return [
            spec.name
            for spec in self._tools.values()
            if spec.criticality == "optional"
            and not self._health.allows(tool_dependency(spec.name), now)
        ]

    def _degraded_reply(self, turn: _Turn, *dependencies: str) -> Reply:
        turn.degraded.extend(dependencies)
        now = self._now()
        waits = [
            s.seconds_until_half_open
            for name, s in self._health.snapshot(now).items()
            if name in dependencies and s.seconds_until_half_open is not None
        ]
        when = f" Try again in about {max(waits):.0f}s." if waits else ""
        names = ", ".join(d.removeprefix("tool:") for d in dependencies)
        return turn.reply(
            f"Sorry, {names} {'is' if len(dependencies) == 1 else 'are'} unavailable right "
            f"now, so I can't answer this fully.{when}",
            "degraded",
            detail=f"unavailable: {', '.join(dependencies)}",
        )

    def _append_user(self, blocks: list[ContentBlock]) -> None:
        """Add user content, merging into a trailing user message so roles alternate
        (a turn cut short leaves tool results last)."""
        if self._messages and self._messages[-1].role == "user":
            self._messages[-1].content.extend(blocks)
            self._sent = min(self._sent, len(self._messages) - 1)  # that one changed
        else:
            self._messages.append(Message(role="user", content=blocks))

    def _close_turn(self, reply: Reply) -> None:
        """Leave the transcript valid for the next model call however the turn ended:
        tool_use blocks cut off by the deadline get results, and a turn that ended
        without the model's answer gets the reply the user saw as the assistant's word."""
        last = self._messages[-1]
        dangling = [b for b in last.content if isinstance(b, ToolUseBlock)]
        if last.role == "assistant" and dangling:
            self._append_user(
                [
                    ToolResultBlock(
                        tool_use_id=b.id, content="not run: the turn was stopped", is_error=True
                    )
                    for b in dangling
                ]
            )
        if self._messages[-1].role == "user":
            self._messages.append(Message(role="assistant", content=[TextBlock(text=reply.text)]))


def _parse_message(raw: RawValue) -> UserMessage:
    return _parse(raw, UserMessage, "message", '{"text": "..."}', INVALID_MESSAGE)


_P = TypeVar("_P", bound=BaseModel)
_APPROVE_SHAPE = '{"call_id": "...", "by": "...", "arguments": {...}?, "reason": "..."?}'
_REJECT_SHAPE = '{"call_id": "...", "by": "...", "reason": "..."}'
_CLEAR_SHAPE = '{"by": "...", "reason": "..."?}'


def _parse(
    raw: RawValue,
    model: type[_P],
    label: str,
    expected: str,
    error_type: str = INVALID_APPROVAL,
) -> _P:
    """Decode an update's raw argument as ``model``; a precise typed error otherwise."""
    try:
        value = workflow.payload_converter().from_payload(raw.payload, model)
    except (ValidationError, ValueError, TypeError) as e:
        detail = (
            describe_validation_error(e, root=label) if isinstance(e, ValidationError) else str(e)
        )
        raise ApplicationError(
            f"malformed {label}, expected {expected}: {detail}", type=error_type, non_retryable=True
        ) from None
    if not isinstance(value, model):
        raise ApplicationError(f"malformed {label}", type=error_type, non_retryable=True)
    return value


def _record(
    block: ToolUseBlock,
    outcome: ToolOutcome,
    result: str,
    *,
    flags: list[str] | None = None,
    approval: ApprovalRecord | None = None,
    ref: str | None = None,
) -> ToolCallRecord:
    return ToolCallRecord(
        id=block.id,
        name=block.name,
        arguments=block.input,
        outcome=outcome,
        result=result,
        flags=flags or [],
        approval=approval,
        result_ref=ref,
    )


def _rejection(approval: ApprovalRecord) -> str:
    """What the model is told about a call a person did not approve."""
    if approval.decision == "timed_out":
        return f"not run: {approval.reason}"
    return f"not run: {approval.by} rejected the call: {approval.reason}"


def _text(response: ModelResponse) -> str:
    return "".join(b.text for b in response.content if isinstance(b, TextBlock))


def _is_request_error(error: ActivityError) -> bool:
    """Whether the model refused the request itself (our fault, not the dependency's)."""
    cause = error.__cause__
    return isinstance(cause, ApplicationError) and cause.type in NON_RETRYABLE_TYPES


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


def _tool_summary(name: str, arguments: dict[str, object]) -> str:
    args = ", ".join(str(v) for v in arguments.values())
    summary = f"{name}({args})"
    return summary if len(summary) <= 80 else summary[:77] + "..."
