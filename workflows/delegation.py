"""Sub-agents as child workflows: a ``delegate_to_<name>`` call starts an
``AgentWorkflow`` for that profile with the task as its one message and a budget carved
out of this conversation's (``durable_agent.delegation``), and its answer is the tool
result. Calls of one response run in parallel; a child that fails, times out or is
cancelled is a tool error; cancelling the turn or the conversation cancels it.

Crash-safe by construction: the reservation is workflow state before the start command,
the child's id is ``<parent id>/<turn>/<call id>`` (a replayed call matches the recorded
start, and the id cannot start twice), and the settlement runs once, when the child's
result (or failure) is in this workflow's history.

A child's call that waits for approval shows in this conversation's ``status`` and
``approvals`` (``workflows.relay``).
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, ChildWorkflowError
from temporalio.workflow import ChildWorkflowCancellationType, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from durable_agent import delegation as carve
    from durable_agent import search_attributes as attributes
    from durable_agent.activity_models import ToolResult
    from durable_agent.budget import BudgetLimits, Spent
    from durable_agent.contract import (
        DELEGATION_DEPTH_EXCEEDED,
        INVALID_APPROVAL,
        SUBAGENT_FAILED,
        WORKFLOW_TYPE,
        ConversationInput,
        ConversationResult,
        ConversationStatus,
        Delegated,
        DelegationOutcome,
        DelegationRecord,
        PendingApproval,
        SubAgent,
        ToolUseBlock,
        UserMessage,
    )
    from durable_agent.tools.delegates import DelegateSpec, delegate_specs
    from durable_agent.tools.registry import ToolSpec

from workflows.relay import RelaysApprovals
from workflows.turn import Pending, Turn
from workflows.versions import DELEGATION_PATCH, revision_to_write

DELEGATED_TASK = "delegated-task"
"""The update id a sub-agent's task is answered under."""
RECORDS_KEPT = 64


class Delegates(RelaysApprovals):
    """Sub-agents as tools, run as child workflows."""

    def _start_delegation(self) -> None:
        """At the start of a run: offer the sub-agents as tools, and a sub-agent queues
        its task as its one message (then ends)."""
        if not (self._input.subagents or self._input.delegated):
            return
        if not (self._lean2 or workflow.patched(DELEGATION_PATCH)):
            return
        self._tools.update({s.name: s for s in delegate_specs(self._input.subagents)})
        task = self._input.delegated
        if task and self._input.continued is None:
            self._pending.append(
                Pending(DELEGATED_TASK, UserMessage(text=task.task, stream=task.stream))
            )
            self._end_requested = True

    def _result(self) -> ConversationResult:
        """What the workflow returns: a sub-agent adds its answer and its spend."""
        delegated = self._input.delegated is not None
        return ConversationResult(
            turns=self._turns,
            usage=self._spend.conversation.spent.usage,
            spent=self._spend.conversation.spent if delegated else None,
            answer=self._answered.get(DELEGATED_TASK) if delegated else None,
        )

    def _delegation_records(self) -> list[DelegationRecord]:
        return list(self._delegations.records.values())

    def _status(self) -> ConversationStatus:
        """The ``status`` query's answer, with the newest delegations."""
        return super()._status().model_copy(update={"delegations": self._delegation_records()})

    def _plan_delegations(self, tool_uses: list[ToolUseBlock]) -> None:
        """Number this response's delegations in the order asked (the fan-out limit)."""
        calls = [b.id for b in tool_uses if isinstance(self._tools.get(b.name), DelegateSpec)]
        self._delegations.positions = {call_id: i for i, call_id in enumerate(calls)}

    def _spec_for(self, pending: PendingApproval) -> ToolSpec:
        """The tool whose edited arguments an approval carries; a sub-agent's call is
        edited at the sub-agent."""
        if pending.child_workflow_id:
            raise ApplicationError(
                f"edit the arguments of a sub-agent's call at {pending.child_workflow_id}",
                "arguments",
                type=INVALID_APPROVAL,
                non_retryable=True,
            )
        return self._tools[pending.tool]

    async def _delegate(
        self, turn: Turn, block: ToolUseBlock, spec: DelegateSpec, task: str
    ) -> ToolResult:
        """Hand ``task`` to the sub-agent: carve its budget, run it as a child workflow,
        settle, and return its answer (or why not) as the tool result."""
        state = self._delegations
        sub = next(s for s in self._input.subagents if s.name == spec.agent)
        child_id = f"{workflow.info().workflow_id}/{turn.number}/{block.id}"
        record = DelegationRecord(
            call_id=block.id,
            agent=sub.name,
            child_workflow_id=child_id,
            turn=turn.number,
            budget=sub.budget,
        )
        state.records[child_id] = record
        while len(state.records) > RECORDS_KEPT:
            del state.records[next(iter(state.records))]
        try:
            record.budget, child = self._carve(turn, block, sub, child_id)
        except carve.DelegationRefused as refused:
            record.outcome, record.detail = "refused", refused.message
            return ToolResult(outcome="error", content=f"not run: {refused.message}",
                              error_type=refused.type)  # fmt: skip
        revision = revision_to_write(self._input.revision)
        started = child.model_copy(update={"delegated": Delegated(
            parent_workflow_id=workflow.info().workflow_id, call_id=block.id, agent=sub.name,
            depth=self._depth() + 1, task=task, budget=record.budget,
            stream=turn.streamed), "revision": revision})  # fmt: skip
        try:
            result: ConversationResult = await workflow.execute_child_workflow(
                WORKFLOW_TYPE,
                started,
                id=child_id,
                task_queue=workflow.info().task_queue,
                result_type=ConversationResult,
                parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
                cancellation_type=ChildWorkflowCancellationType.TRY_CANCEL,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                static_summary=f"sub-agent {sub.name}: {_short(task)}",
                static_details=f"delegated by call {block.id} of turn {turn.number}",
                # Shown from its start, so its first workflow task upserts none of them.
                search_attributes=(
                    attributes.at_start(started.tenant)
                    if started.search_attributes and self._timerless
                    else None
                ),
            )
        except ChildWorkflowError as e:
            self._settle(turn, record, None, "failed", _why(e))
            return ToolResult(outcome="error", content=f"{sub.name} failed: {record.detail}",
                              error_type=SUBAGENT_FAILED)  # fmt: skip
        except asyncio.CancelledError:
            self._settle(turn, record, None, "cancelled", "the turn was stopped")
            raise
        finally:
            self._desk.withdraw_under(f"{block.id}:")
        answer = result.answer
        if answer is None:
            self._settle(turn, record, result.spent, "failed", "it ended without an answer")
            return ToolResult(outcome="error", content=f"{sub.name} ended without an answer",
                              error_type=SUBAGENT_FAILED)  # fmt: skip
        if answer.status != "ok":
            why = f"it stopped ({answer.status}: {answer.detail or 'no detail'})"
            self._settle(turn, record, result.spent, "stopped", why)
            return ToolResult(outcome="error", content=f"{sub.name}: {why}. {answer.text}")
        self._settle(turn, record, result.spent, "ok", None)
        return ToolResult(outcome="ok", content=answer.text)

    def _carve(
        self, turn: Turn, block: ToolUseBlock, sub: SubAgent, child_id: str
    ) -> tuple[BudgetLimits, ConversationInput]:
        """Check the limits and hold the child's budget; its start input."""
        policy = self._input.delegation
        carve.check_fan_out(self._delegations.positions.get(block.id, 0), policy)
        carve.check_depth(self._depth(), policy)
        if sub.input is None:
            raise carve.DelegationRefused(
                DELEGATION_DEPTH_EXCEEDED, f"{sub.name} is past the delegation depth limit"
            )
        own = sub.input.limits.conversation
        grant = carve.reserve(
            self._delegations.ledger,
            child_id,
            carve.tightest(sub.budget, own),
            [carve.turn_view(turn.budget), self._spend.conversation],
        )
        child = sub.input.model_copy(
            update={
                "tenant": self._input.tenant,  # the governor counts it for the same tenant
                "delegation": policy,
                "search_attributes": self._input.search_attributes,
                "limits": sub.input.limits.model_copy(update={"conversation": grant}),
            }
        )
        return grant, child

    def _settle(
        self,
        turn: Turn,
        record: DelegationRecord,
        spent: Spent | None,
        outcome: DelegationOutcome,
        detail: str | None,
    ) -> None:
        """Charge the child's spend (its whole carve-out if unknown), once."""
        charged = carve.settle(self._delegations.ledger, record.child_workflow_id, spent)
        carve.record_spent(turn.budget, charged, model_calls=False)
        carve.record_spent(self._spend.conversation, charged)
        record.spent, record.outcome, record.detail = charged, outcome, detail
        workflow.logger.info(
            "sub-agent %s (%s) %s",
            record.agent,
            record.child_workflow_id,
            outcome,
            extra={"event": "delegation", "child": record.child_workflow_id, "outcome": outcome,
                   "cost_usd": str(charged.usd)},
        )  # fmt: skip

    def _depth(self) -> int:
        return self._input.delegated.depth if self._input.delegated else 0


def _short(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= 100 else line[:97] + "..."


def _why(error: ChildWorkflowError) -> str:
    cause: BaseException | None = error.cause
    while cause is not None and cause.__cause__ is not None:
        if isinstance(cause, ApplicationError):
            break
        cause = cause.__cause__
    return str(cause or error)
