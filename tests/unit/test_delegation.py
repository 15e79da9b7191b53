"""Delegation's pure core: carve-outs never let a parent's spend pass its limits, for
any sequence of reservations, settlements, the parent's own spend and retries after a
crash; depth and fan-out limits refuse with typed errors."""

from __future__ import annotations

import contextlib
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from durable_agent.budget import Budget, BudgetLimits, Spent
from durable_agent.contract import (
    DELEGATION_BUDGET_EXHAUSTED,
    DELEGATION_DEPTH_EXCEEDED,
    DELEGATION_FAN_OUT_EXCEEDED,
    DelegationPolicy,
)
from durable_agent.delegation import (
    DelegationRefused,
    Ledger,
    available,
    check_depth,
    check_fan_out,
    record_spent,
    reserve,
    settle,
    tool_name,
    turn_view,
)
from durable_agent.usage import Usage

LIMITS = ("model_calls", "tool_calls", "input_tokens", "output_tokens", "usd")


def spent(**values: object) -> Spent:
    usage = Usage(
        input_tokens=int(values.pop("input_tokens", 0)),  # type: ignore[call-overload]
        output_tokens=int(values.pop("output_tokens", 0)),  # type: ignore[call-overload]
    )
    return Spent(usage=usage, **values)  # type: ignore[arg-type]


def used(budget: Budget, name: str) -> int | Decimal:
    s = budget.spent
    if name == "input_tokens":
        return s.total_input_tokens
    if name == "output_tokens":
        return s.usage.output_tokens
    value: int | Decimal = getattr(s, name)
    return value


# --- examples --------------------------------------------------------------------------


def test_a_grant_is_the_request_cut_down_to_what_every_scope_has_left() -> None:
    turn = Budget(limits=BudgetLimits(usd=Decimal("1"), tool_calls=10, model_calls=8))
    conversation = Budget(limits=BudgetLimits(usd=Decimal("0.30")), spent=spent(usd="0.10"))
    ledger = Ledger()
    request = BudgetLimits(usd=Decimal("0.50"), model_calls=4, tool_calls=8)
    grant = reserve(ledger, "c1", request, [turn_view(turn), conversation])
    # usd: the conversation's 0.20 left; model calls: the turn's loop limit does not cut.
    assert grant == BudgetLimits(usd=Decimal("0.20"), model_calls=4, tool_calls=8)
    # The second child gets what the first does not hold: no usd left, so refused.
    with pytest.raises(DelegationRefused) as refused:
        reserve(ledger, "c2", request, [turn_view(turn), conversation])
    assert refused.value.type == DELEGATION_BUDGET_EXHAUSTED and "usd" in refused.value.message


def test_what_a_child_does_not_spend_returns_to_the_parent() -> None:
    conversation = Budget(limits=BudgetLimits(usd=Decimal("1"), model_calls=10))
    ledger = Ledger()
    request = BudgetLimits(usd=Decimal("0.60"), model_calls=6)
    reserve(ledger, "c1", request, [conversation])
    assert available([conversation], ledger.held()).usd == Decimal("0.40")
    charged = settle(ledger, "c1", spent(usd="0.05", model_calls=2, output_tokens=40))
    record_spent(conversation, charged)
    assert conversation.spent.usd == Decimal("0.05") and conversation.spent.model_calls == 2
    assert available([conversation], ledger.held()) == BudgetLimits(
        usd=Decimal("0.95"), model_calls=8
    )
    # Settling again (a replayed settlement) charges nothing.
    assert settle(ledger, "c1", spent(usd="0.05")) == Spent()


def test_a_child_whose_spend_is_unknown_is_charged_its_whole_grant() -> None:
    conversation = Budget(limits=BudgetLimits(usd=Decimal("1"), model_calls=10, tool_calls=5))
    ledger = Ledger()
    grant = reserve(ledger, "c1", BudgetLimits(usd=Decimal("0.25"), model_calls=3), [conversation])
    assert grant.tool_calls == 5  # unlimited request: everything left, held
    charged = settle(ledger, "c1", None)
    assert (charged.usd, charged.model_calls, charged.tool_calls) == (Decimal("0.25"), 3, 5)


def test_a_retried_reservation_returns_the_same_grant_and_holds_nothing_more() -> None:
    conversation = Budget(limits=BudgetLimits(usd=Decimal("1")))
    ledger = Ledger()
    request = BudgetLimits(usd=Decimal("0.40"))
    first = reserve(ledger, "c1", request, [conversation])
    again = reserve(ledger, "c1", request, [conversation])
    assert first == again and len(ledger.held()) == 1


def test_a_claimed_overrun_is_charged_at_most_the_grant() -> None:
    conversation = Budget(limits=BudgetLimits(usd=Decimal("1"), input_tokens=1000))
    ledger = Ledger()
    reserve(ledger, "c", BudgetLimits(usd=Decimal("0.1"), input_tokens=100), [conversation])
    charged = settle(ledger, "c", spent(usd="5", input_tokens=5000))
    assert charged.usd == Decimal("0.1") and charged.total_input_tokens == 100


def test_a_turn_records_its_childrens_spend_but_not_their_model_calls() -> None:
    turn = Budget(limits=BudgetLimits(model_calls=8))
    record_spent(turn, spent(model_calls=3, usd="0.1", tool_calls=2), model_calls=False)
    assert (turn.spent.model_calls, turn.spent.tool_calls, turn.spent.usd) == (
        0,
        2,
        Decimal("0.1"),
    )


def test_depth_and_fan_out_limits_refuse_with_typed_errors() -> None:
    policy = DelegationPolicy(max_depth=2, max_children_per_response=4)
    assert check_depth(0, policy) == 1 and check_depth(1, policy) == 2
    with pytest.raises(DelegationRefused) as deep:
        check_depth(2, policy)
    assert deep.value.type == DELEGATION_DEPTH_EXCEEDED and "limit is 2" in deep.value.message
    check_fan_out(3, policy)
    with pytest.raises(DelegationRefused) as wide:
        check_fan_out(4, policy)
    assert wide.value.type == DELEGATION_FAN_OUT_EXCEEDED
    assert tool_name("researcher") == "delegate_to_researcher"


# --- the property ----------------------------------------------------------------------

amounts = st.integers(min_value=0, max_value=40)
dollars = st.decimals(min_value=0, max_value=3, places=2)
optional = st.one_of(st.none(), amounts)
limits = st.builds(
    BudgetLimits,
    model_calls=optional,
    tool_calls=optional,
    input_tokens=st.one_of(st.none(), st.integers(0, 4000)),
    output_tokens=st.one_of(st.none(), st.integers(0, 4000)),
    usd=st.one_of(st.none(), dollars),
)
spends = st.builds(
    spent,
    model_calls=amounts,
    tool_calls=amounts,
    input_tokens=st.integers(0, 5000),
    output_tokens=st.integers(0, 5000),
    usd=dollars,
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("reserve"), st.integers(0, 5), limits),
        st.tuples(st.just("settle"), st.integers(0, 5), st.one_of(st.none(), spends)),
        st.tuples(st.just("parent"), spends),  # the parent's own spend, within its room
        st.tuples(st.just("crash"), st.booleans()),  # state from history, last step again
    ),
    max_size=40,
)


@settings(max_examples=400, deadline=None)
@given(turn_limits=limits, conversation_limits=limits, steps=steps)
def test_no_sequence_of_carve_outs_passes_the_parents_limits(
    turn_limits: BudgetLimits, conversation_limits: BudgetLimits, steps: list[tuple]
) -> None:
    turn, conversation, ledger = (
        Budget(limits=turn_limits),
        Budget(limits=conversation_limits),
        Ledger(),
    )
    last: tuple | None = None

    def scopes() -> list[Budget]:
        return [turn_view(turn), conversation]

    def apply(step: tuple) -> None:
        kind = step[0]
        if kind == "reserve":
            with contextlib.suppress(DelegationRefused):
                reserve(ledger, f"c{step[1]}", step[2], scopes())
        elif kind == "settle" and f"c{step[1]}" in ledger.reservations:
            charged = settle(ledger, f"c{step[1]}", step[2])
            record_spent(turn, charged, model_calls=False)
            record_spent(conversation, charged)
        elif kind == "parent":  # the parent spends only what is neither spent nor held
            room = available([turn, conversation], ledger.held())
            fits = all(
                getattr(room, n) is None or _amount(step[1], n) <= getattr(room, n) for n in LIMITS
            )
            if fits:
                record_spent(turn, step[1])
                record_spent(conversation, step[1])

    for step in steps:
        if step[0] == "crash":
            # The workflow's state comes back from history exactly; the interrupted step
            # runs again (a retried reservation or settlement).
            turn = Budget.model_validate_json(turn.model_dump_json())
            conversation = Budget.model_validate_json(conversation.model_dump_json())
            ledger = Ledger.model_validate_json(ledger.model_dump_json())
            if last is not None and step[1]:
                apply(last)
            continue
        apply(step)
        last = step
        for scope, model_calls in ((turn, False), (conversation, True)):
            for name in LIMITS:
                limit = getattr(scope.limits, name)
                if limit is None or (name == "model_calls" and not model_calls):
                    continue
                held = sum(
                    (getattr(g, name) or 0 for g in ledger.held()),
                    Decimal(0) if name == "usd" else 0,
                )
                assert used(scope, name) + held <= limit, (name, scope, ledger)


def _amount(s: Spent, name: str) -> int | Decimal:
    return used(Budget(spent=s), name)
