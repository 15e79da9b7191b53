"""Human approval of tool calls, inside a conversation's workflow state.

A tool call that needs approval is *requested* here: it shows in ``status`` and the
``approvals`` query, and its coroutine waits until an ``approve``/``reject`` update
answers it or the policy's timeout passes (a timeout is a rejection by ``system``).
Every outcome becomes an ``ApprovalRecord`` in the audit list, which lives in workflow
state: a worker that dies mid-wait loses nothing, and the replacement rebuilds the
same pending calls and decisions from history.

A sub-agent's call that waits is *forwarded* to its parent's desk (``forward``): it shows
there under ``<delegation call>:<its call id>``, and ``relay`` hands the parent's answer
on; the sub-agent ``take``s it like a person's (docs/delegation.md).

Deterministic workflow code: ``workflow.now()`` and timers only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from durable_agent.contract import (
        INVALID_APPROVAL,
        ApprovalRecord,
        Approvals,
        ApproveCall,
        PendingApproval,
        Permission,
        RejectCall,
        Severity,
    )

_R = TypeVar("_R")

SYSTEM = "system"
"""Who decided a call nobody answered in time."""


class ApprovalDesk:
    """Pending approvals and the audit list of one conversation."""

    def __init__(
        self,
        timeout_seconds: float,
        decisions: Sequence[ApprovalRecord] = (),
        approvers: Sequence[str] = (),
    ) -> None:
        self._timeout = timeout_seconds
        self._approvers = frozenset(approvers)
        self._pending: dict[str, PendingApproval] = {}
        self._answers: dict[str, ApproveCall | RejectCall] = {}
        self._decisions: dict[str, ApprovalRecord] = {d.call_id: d for d in decisions}
        self._forwarded: dict[str, frozenset[str]] = {}
        """Sub-agents' calls shown here, with the sub-agent's approvers."""
        self._via: dict[str, str] = {}
        """Answers given through the parent: the parent's workflow id."""

    @property
    def waiting(self) -> bool:
        """Whether some call waits for a person."""
        return bool(self._pending)

    def pending(self) -> list[PendingApproval]:
        return list(self._pending.values())

    def decisions(self) -> list[ApprovalRecord]:
        return list(self._decisions.values())

    def snapshot(self) -> Approvals:
        return Approvals(pending=self.pending(), decisions=list(self._decisions.values()))

    def check_approver(
        self, by: str, waiting: str = "the call still waits for one of them"
    ) -> None:
        """An ``InvalidApproval`` error when ``by`` is not one of the policy's approvers
        (anyone is, when the policy names none)."""
        if self._approvers and identity(by) not in self._approvers:
            raise ApplicationError(
                f"{identity(by)!r} is not one of this conversation's approvers; {waiting}",
                "approver",  # details: what was wrong (clients map it to a 403)
                type=INVALID_APPROVAL,
                non_retryable=True,
            )

    def get(self, call_id: str, by: str | None = None) -> PendingApproval:
        """The pending call ``call_id``; an ``InvalidApproval`` error naming the pending
        ones when there is no such call (or it is already answered), or when ``by`` is
        not one of the policy's approvers. Validators call it, so a refusal leaves no
        trace in history."""
        if by is not None:
            self.check_approver(by)
            theirs = self._forwarded.get(call_id)
            if theirs and identity(by) not in theirs:
                raise ApplicationError(
                    f"{identity(by)!r} is not one of the sub-agent's approvers",
                    "approver",
                    type=INVALID_APPROVAL,
                    non_retryable=True,
                )
        pending = self._pending.get(call_id)
        if pending is None or call_id in self._answers:
            if call_id in self._decisions:
                decided = self._decisions[call_id]
                problem = f"call {call_id!r} was already {decided.decision} by {decided.by}"
            else:
                problem = f"no tool call {call_id!r} is waiting for approval"
            waiting = [c for c in self._pending if c not in self._answers]
            raise ApplicationError(
                f"{problem}; waiting: {waiting or 'none'}",
                type=INVALID_APPROVAL,
                non_retryable=True,
            )
        return pending

    async def answer(self, answer: ApproveCall | RejectCall) -> ApprovalRecord:
        """Hand a person's answer to the waiting call; return the audit record once the
        call has taken it."""
        self.get(answer.call_id)  # a concurrent answer may have come first
        self._answers[answer.call_id] = answer
        await workflow.wait_condition(lambda: answer.call_id in self._decisions)
        return self._decisions[answer.call_id]

    async def request(
        self,
        *,
        call_id: str,
        tool: str,
        permission: Permission,
        arguments: dict[str, Any],
        reason: str,
        turn: int,
        severity: Severity = "normal",
        untrusted_sources: Sequence[str] = (),
        announce: Callable[[PendingApproval | None, str], None] | None = None,
    ) -> ApprovalRecord:
        """Wait for a person to approve or reject this call; the timeout rejects it.
        ``announce`` is told when the call starts and stops waiting (a sub-agent tells
        its parent)."""
        now = workflow.now()
        self._pending[call_id] = PendingApproval(
            call_id=call_id,
            tool=tool,
            permission=permission,
            arguments=arguments,
            reason=reason,
            turn=turn,
            requested_at=now,
            expires_at=now + timedelta(seconds=self._timeout),
            severity=severity,
            untrusted_sources=list(untrusted_sources),
        )
        if announce:
            announce(self._pending[call_id], call_id)
        workflow.logger.warning(
            "tool call %s (%s) waits for approval: %s",
            call_id,
            tool,
            reason,
            extra={"event": "approval_requested", "call_id": call_id, "tool": tool, "turn": turn},
        )
        timed_out = False
        try:
            await workflow.wait_condition(lambda: call_id in self._answers, timeout=self._timeout)
        except TimeoutError:
            timed_out = True
            self._answers[call_id] = RejectCall(
                call_id=call_id,
                by=SYSTEM,
                reason=f"nobody approved the call within {self._timeout:g}s",
            )
        finally:
            pending = self._pending.pop(call_id)
        record = _record(pending, self._answers.pop(call_id), workflow.now(), timed_out)
        if call_id in self._via:
            record.via_workflow_id = self._via.pop(call_id)
        self._decisions[call_id] = record
        if announce:
            announce(None, call_id)
        workflow.logger.info(
            "tool call %s (%s) %s by %s",
            call_id,
            tool,
            record.decision,
            record.by,
            extra={
                "event": "approval_decided",
                "call_id": call_id,
                "tool": tool,
                "turn": turn,
                "decision": record.decision,
                "by": record.by,
                "reason": record.reason,
            },
        )
        return record

    def forward(self, pending: PendingApproval, approvers: Sequence[str]) -> None:
        """Show a sub-agent's waiting call here (``pending.call_id`` names it here)."""
        self._pending[pending.call_id] = pending
        self._forwarded[pending.call_id] = frozenset(approvers)

    def withdraw(self, call_id: str) -> None:
        """A forwarded call no longer waits (decided in the sub-agent, or it ended)."""
        if call_id in self._forwarded and call_id not in self._answers:
            self._pending.pop(call_id, None)
            self._forwarded.pop(call_id)

    def withdraw_under(self, prefix: str) -> None:
        """Withdraw every forwarded call of one delegation (``<its call id>:``)."""
        for call_id in [c for c in self._forwarded if c.startswith(prefix)]:
            self.withdraw(call_id)

    async def relay(self, call_id: str) -> ApproveCall | RejectCall | None:
        """Wait for a person's answer to a forwarded call and record it here; ``None``
        when the call was withdrawn first."""
        await workflow.wait_condition(
            lambda: call_id in self._answers or call_id not in self._forwarded
        )
        if call_id not in self._answers:
            return None
        pending, answer = self._pending.pop(call_id), self._answers.pop(call_id)
        self._forwarded.pop(call_id)
        record = _record(pending, answer, workflow.now(), False)
        record.child_workflow_id, record.child_call_id = (
            pending.child_workflow_id,
            pending.child_call_id,
        )
        self._decisions[call_id] = record
        return answer

    def take(self, answer: ApproveCall | RejectCall, via: str) -> bool:
        """A person's answer given through the parent (workflow ``via``); ``False`` when
        the call no longer waits for one."""
        if answer.call_id not in self._pending or answer.call_id in self._answers:
            return False
        self._answers[answer.call_id] = answer
        self._via[answer.call_id] = via
        return True


def identity(by: str) -> str:
    """Who a decision's ``by`` names for the approvers check: the gateway records
    ``<tenant>/<key> for <person>``, and only the key is authenticated."""
    return by.split(" for ", 1)[0].strip()


def _record(
    pending: PendingApproval, answer: ApproveCall | RejectCall, now: datetime, timed_out: bool
) -> ApprovalRecord:
    approved = isinstance(answer, ApproveCall)
    edited = isinstance(answer, ApproveCall) and answer.arguments not in (None, pending.arguments)
    return ApprovalRecord(
        call_id=pending.call_id,
        tool=pending.tool,
        turn=pending.turn,
        decision="approved" if approved else ("timed_out" if timed_out else "rejected"),
        by=answer.by,
        reason=answer.reason,
        requested_because=pending.reason,
        requested_arguments=pending.arguments,
        arguments=answer.arguments if isinstance(answer, ApproveCall) and edited else None,
        requested_at=pending.requested_at,
        decided_at=now,
        severity=pending.severity,
    )


async def within_deadline(loop: asyncio.Future[_R], seconds: float, desk: ApprovalDesk) -> _R:
    """Wait for ``loop`` (a turn's work) for at most ``seconds`` of workflow time, not
    counting time spent waiting for a person; past it, cancel ``loop`` and raise
    ``TimeoutError``. ``loop`` is cancelled too if this wait is (the workflow was)."""
    left = seconds
    try:
        while not loop.done():
            started = workflow.now()
            try:
                await workflow.wait_condition(
                    lambda: loop.done() or desk.waiting,
                    timeout=max(left, 0.0),
                    timeout_summary=f"turn deadline: {max(left, 0.0):g}s of work left",
                )
            except TimeoutError:
                loop.cancel()
                await workflow.wait([loop])
                if not loop.cancelled():
                    loop.exception()  # retrieved: a call cut short may end the loop itself
                raise
            left -= (workflow.now() - started).total_seconds()
            await workflow.wait_condition(lambda: loop.done() or not desk.waiting)
    finally:
        if not loop.done():
            loop.cancel()
    return loop.result()
