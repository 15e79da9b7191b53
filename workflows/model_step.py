"""The model step: one model call, if breakers, budgets and the tenant's lease allow
it; its request is windowed (only what the activity may not have) and its spend
recorded everywhere."""

from __future__ import annotations

from decimal import Decimal

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from durable_agent.activity_models import (
        MODEL_ACTIVITY,
        ModelContext,
        ModelRequest,
        ModelResponse,
        StreamTarget,
        TranscriptWindow,
    )
    from durable_agent.contract import (
        Message,
    )
    from durable_agent.dependencies import MODEL
    from durable_agent.toolsets import server_dependency

from workflows.compaction import Compacts
from workflows.deadline import Step
from workflows.permits import GovernorUnavailable, PermitRefused
from workflows.policies import (
    GOVERNOR,
    MIN_OUTPUT_TOKENS,
    MODEL_HEARTBEAT,
    MODEL_RETRY_POLICY,
    MODEL_SCHEDULE_TO_CLOSE,
    MODEL_START_TO_CLOSE,
)
from workflows.turn import Turn, TurnOver, describe, is_request_error
from workflows.versions import CONTINUE_AS_NEW_PATCH, RESILIENCE_PATCH


class ModelStep(Compacts):
    """One model call: checked, windowed, paid for and recorded."""

    async def _model_step(self, turn: Turn) -> ModelResponse:
        """One model call, if breakers and budgets allow it; the response joins the
        transcript and the spend is recorded everywhere."""
        if turn.model_calls >= self._input.max_model_calls_per_turn:
            raise TurnOver(
                turn.reply(
                    f"I stopped after {turn.model_calls} model calls in this turn without a "
                    "final answer.",
                    "max_model_calls",
                )
            )
        self._state = "thinking"
        now = self._now()  # the activation's time: the same until the next await
        if not self._health.allows(MODEL, now):
            raise TurnOver(self._degraded_reply(turn, MODEL))
        withheld = self._withheld(now)
        turn.degraded.extend(self._tools[name].dependency for name in withheld)
        turn.degraded.extend(server_dependency(name) for name in sorted(self._toolsets_down))
        request = self._model_request(withheld)
        size = self._request_size.of(request)
        if await self._compact_if_needed(turn, size.chars):
            request = self._model_request()
            size = self._request_size.of(request)
        request_bytes = size.bytes
        plan = self._spend.plan_model_call(
            turn.budget,
            request_bytes=request_bytes,
            messages=len(request.messages) + (request.archive.messages if request.archive else 0),
            tools=len(request.tools),
            max_tokens=request.max_tokens,
            min_output_tokens=MIN_OUTPUT_TOKENS,
        )
        if not plan.allowed:
            reason = plan.reason
            why = reason.message if reason else "the budget is spent"
            raise TurnOver(
                turn.reply(
                    f"I can't continue: {why}.",
                    "budget_exceeded",
                    detail=why,
                    budget_scope="turn" if reason and reason.scope == "turn" else "conversation",
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
                    call_id, plan.reserved_usd, turn.waiting_out_rate_limit, describe, turn.clock
                )
            elif governed:
                await self._permits.permit(
                    reservation, plan.reserved_usd, turn.waiting_out_rate_limit, describe
                )
        except PermitRefused as refused:
            raise TurnOver(
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
            raise TurnOver(self._degraded_reply(turn, GOVERNOR)) from None

        try:
            step = turn.clock.step(MODEL_SCHEDULE_TO_CLOSE)
        except TimeoutError:  # no time left to start the call: nothing spent
            if lease_id is not None:
                self._permits.settle(lease_id, plan.reserved_usd, Decimal(0))
            raise
        turn.model_calls += 1
        self._model_calls += 1
        if turn.streamed:
            target = StreamTarget(turn=turn.number, model_call=turn.model_calls)
            if (task := self._input.delegated) is not None:  # to the parent, under its call
                target.workflow_id, target.delegation = task.parent_workflow_id, task.call_id
            request = request.model_copy(update={"stream": target})
        self._journal.model_call_started(turn.number, turn.model_calls)
        started = self._now()
        try:
            response = await self._call_model(request, request_bytes // 4, step)
        except ActivityError as e:
            if lease_id is not None:
                self._permits.settle(lease_id, plan.reserved_usd, Decimal(0))  # not billed
            elif governed:
                await self._permits.settle_permit(reservation, Decimal(0))  # not billed
            self._last_error = describe(e)
            outcome = "invalid_request" if is_request_error(e) else "unavailable"
            self._journal.model_call_failed(
                turn.number,
                turn.model_calls,
                self._spend.priced_model or "unknown",
                outcome,
                self._last_error,
                self._now() - started,
            )
            step.check(e)  # cut off by the turn's deadline: not the model's failure
            if is_request_error(e):
                raise TurnOver(
                    turn.reply(
                        f"Sorry, the model refused the request: {self._last_error}",
                        "model_error",
                        detail=self._last_error,
                    )
                ) from None
            self._health.record(MODEL, False, self._now())
            raise TurnOver(self._degraded_reply(turn, MODEL)) from None
        now = self._now()
        self._health.record(MODEL, True, now)
        cost = self._spend.model_call(turn.budget, response.usage, response.model)
        self._journal.feed.publish_deltas(response.stream_tail)
        self._journal.model_call_finished(
            turn.number, turn.model_calls, response, cost, now - started
        )
        if lease_id is not None:
            self._permits.settle(lease_id, plan.reserved_usd, cost)
        elif governed:
            await self._permits.settle_permit(reservation, cost)
        turn.last_response = response
        self._messages.append(Message(role="assistant", content=response.content))
        return response

    async def _call_model(
        self, request: ModelRequest, tokens_estimate: int, step: Step
    ) -> ModelResponse:
        response: ModelResponse = await workflow.execute_activity(
            MODEL_ACTIVITY,
            request,
            result_type=ModelResponse,
            start_to_close_timeout=MODEL_START_TO_CLOSE,
            schedule_to_close_timeout=step.timeout,
            heartbeat_timeout=MODEL_HEARTBEAT,
            retry_policy=MODEL_RETRY_POLICY,
            summary=self._model_summary(tokens_estimate) if self._input.summaries else None,
        )
        return response

    def _model_summary(self, tokens_estimate: int) -> str:
        """The model call as the Temporal UI shows it (``ConversationInput.summaries``)."""
        messages = len(self._messages)
        return (
            f"{self._spend.priced_model or 'default model'} · ~{tokens_estimate:,} tokens in · "
            f"{messages} message{'' if messages == 1 else 's'}"
        )

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
        if self._toolsets_down:
            system += (
                f"\n\nThese toolsets are unavailable right now: "
                f"{', '.join(sorted(self._toolsets_down))}. If the user needs them, say so."
            )
        return ModelRequest(
            model=self._input.model,
            system=system,
            messages=self._messages,
            tools=offered,
            max_tokens=self._input.max_tokens,
            archive=self._archive,
        )

    def _withheld(self, now: float | None = None) -> list[str]:
        """Optional tools whose breaker is open (at ``now``, if known): not offered to
        the model."""
        now = self._now() if now is None else now
        return [
            spec.name
            for spec in self._tools.values()
            if spec.criticality == "optional" and not self._health.allows(spec.dependency, now)
        ]

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
