"""Delegation's pure core: a sub-agent's budget carved out of its parent's, and the
depth and fan-out limits. No Temporal, no I/O: the ledger is a pydantic model that lives
in the parent's workflow state and comes back identical on replay.

The parent follows one protocol for every delegation:

    check_depth(parent_depth, policy)                      # or DelegationRefused
    grant = reserve(ledger, child_id, request, scopes)     # before the child starts
    … the child runs with ``grant`` as its conversation limits …
    charged = settle(ledger, child_id, child_spent_or_None)
    record_spent(scope, charged) for each scope            # exactly once

Why the parent's limits are never overrun: ``reserve`` grants at most what every scope
has left after its spend and every reservation still held, and holds the grant until
``settle``; ``settle`` charges what the child reports spending, never more than the
grant, or the whole grant when the child's spend is unknown (it failed, was cancelled,
or its worker died and it never answered). A reservation is keyed by the child's
workflow id, so asking again for the same child (a retried or replayed call) returns the
same grant, and settling twice charges once.

    DelegationRefused (Exception)   .type is one of the contract's error types
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TypeVar

from pydantic import BaseModel, ConfigDict

from durable_agent.budget import Budget, BudgetLimits, Spent
from durable_agent.contract import (
    DELEGATE_TOOL_PREFIX,
    DELEGATION_BUDGET_EXHAUSTED,
    DELEGATION_DEPTH_EXCEEDED,
    DELEGATION_FAN_OUT_EXCEEDED,
    DelegationPolicy,
)
from durable_agent.usage import Usage

_N = TypeVar("_N", int, Decimal)
_LIMITS = ("model_calls", "tool_calls", "input_tokens", "output_tokens", "usd")
_NEEDED = ("model_calls", "input_tokens", "output_tokens", "usd")
"""Limits a sub-agent cannot work with at zero: it could not make one model call."""


class DelegationRefused(Exception):
    """A delegation the limits refuse; ``type`` is the contract's error type."""

    def __init__(self, type: str, message: str) -> None:
        super().__init__(message)
        self.type = type
        self.message = message


class Reservation(BaseModel):
    """A carve-out held for one child, and what it was charged once settled."""

    model_config = ConfigDict(extra="forbid")

    grant: BudgetLimits
    charged: Spent | None = None
    """``None`` while the child runs."""


class Ledger(BaseModel):
    """The carve-outs of one conversation's run, by child workflow id."""

    model_config = ConfigDict(extra="forbid")

    reservations: dict[str, Reservation] = {}

    def held(self) -> list[BudgetLimits]:
        """The grants of children not settled yet."""
        return [r.grant for r in self.reservations.values() if r.charged is None]


def tool_name(agent: str) -> str:
    """The tool the model sees for sub-agent ``agent``."""
    return DELEGATE_TOOL_PREFIX + agent


def check_depth(parent_depth: int, policy: DelegationPolicy) -> int:
    """The child's depth; ``DelegationRefused`` past ``policy.max_depth``."""
    depth = parent_depth + 1
    if depth > policy.max_depth:
        raise DelegationRefused(
            DELEGATION_DEPTH_EXCEEDED,
            f"a sub-agent here would be at depth {depth}; the limit is {policy.max_depth}",
        )
    return depth


def check_fan_out(position: int, policy: DelegationPolicy) -> None:
    """``DelegationRefused`` for the delegations of one response past the limit
    (``position`` counts from 0, in the order the model asked)."""
    if position >= policy.max_children_per_response:
        raise DelegationRefused(
            DELEGATION_FAN_OUT_EXCEEDED,
            f"one response may start {policy.max_children_per_response} sub-agents; "
            f"this was delegation {position + 1}",
        )


def available(scopes: Sequence[Budget], held: Sequence[BudgetLimits]) -> BudgetLimits:
    """What every scope has left after its spend and the reservations held (``None``:
    no scope limits it)."""
    left: dict[str, int | Decimal | None] = {}
    for name in _LIMITS:
        values = [
            getattr(s.limits, name) - _used(s.spent, name) - _sum(held, name)
            for s in scopes
            if getattr(s.limits, name) is not None
        ]
        left[name] = max(min(values), values[0] * 0) if values else None
    return BudgetLimits.model_validate(left)


def reserve(
    ledger: Ledger, child_id: str, request: BudgetLimits, scopes: Sequence[Budget]
) -> BudgetLimits:
    """Hold a carve-out for ``child_id``: ``request``, cut down to what is available.
    The same child asking again gets its grant again. ``DelegationRefused`` when what is
    left could not pay for one model call."""
    existing = ledger.reservations.get(child_id)
    if existing is not None:
        return existing.grant
    grant = tightest(request, available(scopes, ledger.held()))
    short = [name for name in _NEEDED if getattr(grant, name) == 0]
    if short:
        raise DelegationRefused(
            DELEGATION_BUDGET_EXHAUSTED,
            f"nothing left to give a sub-agent: {', '.join(short)} "
            "(the parent's budgets are spent or held by other sub-agents)",
        )
    ledger.reservations[child_id] = Reservation(grant=grant)
    return grant


def tightest(a: BudgetLimits, b: BudgetLimits) -> BudgetLimits:
    """Each limit at the lower of the two (``None``: unlimited)."""
    return BudgetLimits.model_validate(
        {name: _least(getattr(a, name), getattr(b, name)) for name in _LIMITS}
    )


def settle(ledger: Ledger, child_id: str, actual: Spent | None) -> Spent:
    """Close ``child_id``'s reservation: what to charge the parent (record it with
    ``record_spent``), at most the grant; the whole grant when ``actual`` is unknown.
    Settling again charges nothing."""
    reservation = ledger.reservations[child_id]
    if reservation.charged is not None:
        return Spent()
    grant = reservation.grant
    charged = _whole(grant) if actual is None else _clamped(actual, grant)
    reservation.charged = charged
    return charged


def record_spent(budget: Budget, charged: Spent, *, model_calls: bool = True) -> None:
    """Add a child's charge to one of the parent's budgets. A turn's model-call limit
    stops the agent's own tool loop, so a turn records its children's tokens, dollars and
    tool calls but not their model calls (``model_calls=False``)."""
    spent = budget.spent
    if model_calls:
        spent.model_calls += charged.model_calls
    spent.tool_calls += charged.tool_calls
    spent.usage = spent.usage + charged.usage
    spent.usd += charged.usd


def turn_view(turn: Budget) -> Budget:
    """A turn's budget as a carve-out sees it: without its model-call limit (see
    ``record_spent``)."""
    return Budget(limits=turn.limits.model_copy(update={"model_calls": None}), spent=turn.spent)


def _used(spent: Spent, name: str) -> int | Decimal:
    if name == "input_tokens":
        return spent.total_input_tokens
    if name == "output_tokens":
        return spent.usage.output_tokens
    value: int | Decimal = getattr(spent, name)
    return value


def _sum(held: Sequence[BudgetLimits], name: str) -> int | Decimal:
    return sum((getattr(g, name) or 0 for g in held), Decimal(0) if name == "usd" else 0)


def _least(a: _N | None, b: _N | None) -> _N | None:
    if a is None:
        return b
    return a if b is None else min(a, b)


def _whole(grant: BudgetLimits) -> Spent:
    return Spent(
        model_calls=grant.model_calls or 0,
        tool_calls=grant.tool_calls or 0,
        usage=Usage(input_tokens=grant.input_tokens or 0, output_tokens=grant.output_tokens or 0),
        usd=grant.usd or Decimal(0),
    )


def _clamped(actual: Spent, grant: BudgetLimits) -> Spent:
    """``actual``, with any limit it passed cut down to the grant (a child cannot pass
    its limits; this keeps the parent's sum exact even if one claimed to)."""
    usage = actual.usage
    if grant.input_tokens is not None and actual.total_input_tokens > grant.input_tokens:
        usage = Usage(input_tokens=grant.input_tokens, output_tokens=usage.output_tokens)
    if grant.output_tokens is not None and usage.output_tokens > grant.output_tokens:
        usage = usage.model_copy(update={"output_tokens": grant.output_tokens})
    return Spent(
        model_calls=_least(actual.model_calls, grant.model_calls) or 0,
        tool_calls=_least(actual.tool_calls, grant.tool_calls) or 0,
        usage=usage,
        usd=_least(actual.usd, grant.usd) or Decimal(0),
    )
