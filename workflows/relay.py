"""Approvals across a delegation: a sub-agent's call that waits for approval is
signalled up (``child_approval``) and shows in its parent's ``status``/``approvals``
(and so in the root's, one hop at a time) under ``<delegation call>:<its call id>``; a
person's answer there is signalled down (``parent_decision``) and resolves the call in
the sub-agent, whose audit list names the parent (``via_workflow_id``) and the
parent's names the sub-agent (``child_workflow_id``). Nothing polls."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field

from temporalio import workflow
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from durable_agent import delegation as carve
    from durable_agent.contract import (
        SIGNAL_CHILD_APPROVAL,
        SIGNAL_PARENT_DECISION,
        ApproveCall,
        ChildApproval,
        DelegationRecord,
        ParentDecision,
        PendingApproval,
        RejectCall,
    )

from workflows.model_step import ModelStep


@dataclass
class _Delegations:
    """This run's delegations: carve-outs, records, this response's fan-out."""

    ledger: carve.Ledger = field(default_factory=carve.Ledger)
    records: dict[str, DelegationRecord] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)
    sending: set[asyncio.Future[None]] = field(default_factory=set)


class RelaysApprovals(ModelStep):
    """The approvals half of delegation, and this run's delegation state."""

    @property
    def _delegations(self) -> _Delegations:
        state: _Delegations | None = self.__dict__.get("_delegation_state")
        if state is None:
            state = self.__dict__["_delegation_state"] = _Delegations()
        return state

    def _announce(self, pending: PendingApproval | None, call_id: str) -> None:
        """A sub-agent tells its parent that ``call_id`` waits (or no longer does)."""
        task = self._input.delegated
        if task is None:
            return
        signal = ChildApproval(
            child_workflow_id=workflow.info().workflow_id,
            call_id=task.call_id,
            child_call_id=call_id,
            pending=pending,
            approvers=self._input.safety.approvers,
        )
        parent = workflow.get_external_workflow_handle(task.parent_workflow_id)
        sending = asyncio.ensure_future(_signal(parent.signal(SIGNAL_CHILD_APPROVAL, signal)))
        self._delegations.sending.add(sending)  # kept until sent
        sending.add_done_callback(self._delegations.sending.discard)

    @workflow.signal(name=SIGNAL_CHILD_APPROVAL)
    async def child_approval(self, signal: ChildApproval) -> None:
        """A sub-agent's call waits for approval: show it here until a person answers
        here (then hand the answer down) or it stops waiting."""
        record = self._delegations.records.get(signal.child_workflow_id)
        call_id = f"{signal.call_id}:{signal.child_call_id}"  # URL-safe: a path segment
        if signal.pending is None or record is None or record.outcome != "running":
            self._desk.withdraw(call_id)
            self._announce(None, call_id)  # and further up, if this is a sub-agent too
            return
        pending = signal.pending.model_copy(
            update={
                "call_id": call_id,
                "agent": signal.pending.agent or record.agent,
                "child_workflow_id": signal.child_workflow_id,
                "child_call_id": signal.child_call_id,
            }
        )
        self._desk.forward(pending, signal.approvers)
        self._announce(pending, call_id)
        answer = await self._desk.relay(call_id)
        if answer is None:
            return
        self._announce(None, call_id)  # answered here: no longer waits further up
        decision = ParentDecision(
            parent_workflow_id=workflow.info().workflow_id,
            call_id=signal.child_call_id,
            approved=isinstance(answer, ApproveCall),
            by=answer.by,
            reason=answer.reason,
        )
        child = workflow.get_external_workflow_handle(signal.child_workflow_id)
        await _signal(child.signal(SIGNAL_PARENT_DECISION, decision))

    @workflow.signal(name=SIGNAL_PARENT_DECISION)
    def parent_decision(self, decision: ParentDecision) -> None:
        """A person answered one of this sub-agent's waiting calls through the parent."""
        answer: ApproveCall | RejectCall = (
            ApproveCall(call_id=decision.call_id, by=decision.by, reason=decision.reason)
            if decision.approved
            else RejectCall(call_id=decision.call_id, by=decision.by,
                            reason=decision.reason or "rejected through the parent")
        )  # fmt: skip
        if not self._desk.take(answer, decision.parent_workflow_id):
            workflow.logger.warning("decision for %s came too late", decision.call_id)


async def _signal(sending: Awaitable[None]) -> None:
    """Send a signal to the other side of a delegation; one that is gone is logged."""
    try:
        await sending
    except FailureError as e:
        workflow.logger.warning("delegation signal not delivered: %s", e)
