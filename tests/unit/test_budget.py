"""Budgets: planning, clamping, refusals, and the property that no limit is overrun."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from durable_agent.budget import (
    Budget,
    BudgetExceeded,
    BudgetLimits,
    ModelCallPlan,
    input_tokens_upper_bound,
    plan_model_call,
    plan_tool_calls,
    record_model_call,
    record_tool_calls,
    remaining,
)
from durable_agent.pricing import Price, cost, price_for
from durable_agent.usage import Usage

SONNET = price_for("claude-sonnet-4-6")  # $3 / $15, cache writes $3.75, reads $0.30
FREE = price_for("offline-planner")


def plan(
    *budgets: tuple[str, Budget],
    upper: int = 1000,
    requested: int = 1024,
    price: Price = SONNET,
    minimum: int = 1,
) -> ModelCallPlan:
    return plan_model_call(
        list(budgets),
        input_tokens_upper=upper,
        requested_max_tokens=requested,
        price=price,
        min_output_tokens=minimum,
    )


def refusal(p: ModelCallPlan) -> BudgetExceeded:
    assert not p.allowed and p.max_tokens == 0 and p.reserved_usd == 0
    assert p.reason is not None
    return p.reason


# --- planning one model call -----------------------------------------------------------


def test_unlimited_budgets_allow_the_request_and_reserve_its_worst_case() -> None:
    p = plan(("turn", Budget()), ("conversation", Budget()))
    assert p.allowed and p.max_tokens == 1024 and p.reason is None
    # 1000 input tokens at the dearest input kind ($3.75) + 1024 output tokens at $15
    assert p.reserved_usd == Decimal("0.00375") + Decimal("0.01536")


def test_max_tokens_is_clamped_to_the_output_tokens_left() -> None:
    budget = Budget(limits=BudgetLimits(output_tokens=70))
    assert plan(("conversation", budget), minimum=64).max_tokens == 70
    record_model_call(budget, Usage(input_tokens=10, output_tokens=20), SONNET)
    reason = refusal(plan(("conversation", budget), minimum=64))
    assert (reason.scope, reason.limit) == ("conversation", "output_tokens")
    assert reason.message == (
        "conversation budget: output_tokens limit 70, spent 20, a call needs at least 64"
    )
    assert plan(("conversation", budget), minimum=50).max_tokens == 50


def test_max_tokens_is_clamped_to_the_dollars_left() -> None:
    # $0.01 - 1000 * $3.75/M = $0.00625, which buys 416 output tokens at $15/M (416.67)
    budget = Budget(limits=BudgetLimits(usd=Decimal("0.01")))
    p = plan(("conversation", budget))
    assert p.allowed and p.max_tokens == 416
    assert p.reserved_usd == Decimal("0.00999") <= Decimal("0.01")


def test_dollar_clamping_survives_decimal_rounding() -> None:
    # $0.009974999…9 buys 132.99…9 tokens at $75/M, a quotient Decimal's 28 digits
    # round up to 133, whose cost ($0.009975) would overrun the limit by 1e-30.
    limit = Decimal("0.009974999999999999999999999999")
    budget = Budget(limits=BudgetLimits(usd=limit))
    p = plan(("conversation", budget), upper=0, price=Price.from_input_output(0, 75))
    assert p.max_tokens == 132 and p.reserved_usd <= limit


def test_a_call_whose_input_alone_does_not_fit_the_dollars_is_refused() -> None:
    budget = Budget(limits=BudgetLimits(usd=Decimal("0.003")))
    reason = refusal(plan(("turn", budget), minimum=64))
    assert (reason.scope, reason.limit) == ("turn", "usd")
    assert reason.needed == Decimal("0.00375") + 64 * Decimal("0.000015")
    assert reason.message == "turn budget: usd limit 0.003, spent 0, a call may cost up to 0.00471"


def test_too_few_affordable_output_tokens_is_a_usd_refusal() -> None:
    # $0.00375 for the input leaves $0.0003: 20 output tokens, fewer than 64.
    budget = Budget(limits=BudgetLimits(usd=Decimal("0.00405")))
    assert plan(("c", budget)).max_tokens == 20
    assert refusal(plan(("c", budget), minimum=64)).limit == "usd"


def test_exhausted_model_calls_are_refused() -> None:
    budget = Budget(limits=BudgetLimits(model_calls=1))
    assert plan(("turn", budget)).allowed
    record_model_call(budget, Usage(input_tokens=5, output_tokens=5), SONNET)
    reason = refusal(plan(("turn", budget)))
    assert reason.limit == "model_calls"
    assert reason.limit_value == reason.spent == reason.needed == 1
    assert reason.message == "turn budget: model_calls limit 1, spent 1, a call needs 1"


def test_input_tokens_count_every_kind_and_must_fit_the_upper_bound() -> None:
    budget = Budget(limits=BudgetLimits(input_tokens=2000))
    usage = Usage(input_tokens=100, cache_creation_input_tokens=200, cache_read_input_tokens=300)
    record_model_call(budget, usage, SONNET)
    assert budget.spent.total_input_tokens == 600
    assert plan(("conversation", budget), upper=1400).allowed
    reason = refusal(plan(("conversation", budget), upper=1401))
    assert reason.limit == "input_tokens"
    assert reason.spent == 600 and reason.needed == 1401


def test_the_tighter_scope_wins_and_is_named() -> None:
    turn = Budget(limits=BudgetLimits(output_tokens=500, usd=Decimal(1)))
    conversation = Budget(limits=BudgetLimits(output_tokens=300))
    assert plan(("turn", turn), ("conversation", conversation)).max_tokens == 300
    reason = refusal(plan(("turn", turn), ("conversation", conversation), minimum=301))
    assert (reason.scope, reason.limit) == ("conversation", "output_tokens")

    conversation = Budget(limits=BudgetLimits(usd=Decimal("0.00405")))  # 20 tokens
    reason = refusal(plan(("turn", turn), ("conversation", conversation), minimum=64))
    assert (reason.scope, reason.limit) == ("conversation", "usd")

    turn = Budget(limits=BudgetLimits(model_calls=0))
    assert refusal(plan(("turn", turn), ("conversation", conversation))).scope == "turn"


def test_a_free_model_is_limited_by_tokens_only() -> None:
    budget = Budget(limits=BudgetLimits(usd=Decimal(0), output_tokens=100))
    p = plan(("conversation", budget), price=FREE, upper=10**9)
    assert p.allowed and p.max_tokens == 100 and p.reserved_usd == 0


def test_a_minimum_above_the_request_is_capped_at_the_request() -> None:
    budget = Budget(limits=BudgetLimits(output_tokens=10))
    assert plan(("turn", budget), requested=8, minimum=64).max_tokens == 8


def test_nonsensical_arguments_are_programming_errors() -> None:
    with pytest.raises(ValueError):
        plan(("turn", Budget()), upper=-1)
    with pytest.raises(ValueError):
        plan(("turn", Budget()), requested=0)
    with pytest.raises(ValueError):
        record_tool_calls(Budget(), -1)


def test_the_input_upper_bound_covers_bytes_and_overheads() -> None:
    bare = input_tokens_upper_bound(1000, 0, 0)
    assert bare >= 1000
    assert input_tokens_upper_bound(1000, 3, 0) > bare
    # Offering tools adds the tool-use system prompt (documented up to 530 tokens).
    assert input_tokens_upper_bound(1000, 3, 1) >= input_tokens_upper_bound(1000, 3, 0) + 530


# --- tool calls, status, serialisation -------------------------------------------------


def test_tool_calls_are_planned_against_every_budget() -> None:
    turn = Budget(limits=BudgetLimits(tool_calls=3))
    conversation = Budget(limits=BudgetLimits(tool_calls=5))
    assert plan_tool_calls([Budget()], 7) == 7
    assert plan_tool_calls([turn, conversation], 4) == 3
    for budget in (turn, conversation):
        record_tool_calls(budget, 3)
    assert plan_tool_calls([turn, conversation], 4) == 0
    turn = Budget(limits=BudgetLimits(tool_calls=3))
    assert plan_tool_calls([turn, conversation], 4) == 2  # the conversation has 2 left


def test_remaining_shows_what_is_left_and_none_for_unlimited() -> None:
    budget = Budget(limits=BudgetLimits(usd=Decimal("0.05"), output_tokens=70, tool_calls=2))
    record_model_call(budget, Usage(input_tokens=100, output_tokens=20), SONNET)
    record_tool_calls(budget, 2)
    assert remaining(budget) == BudgetLimits(
        usd=Decimal("0.05") - Decimal("0.0006"), output_tokens=50, tool_calls=0
    )
    assert remaining(Budget()) == BudgetLimits()


def test_limits_validate() -> None:
    with pytest.raises(ValidationError):
        BudgetLimits(usd=Decimal(-1))
    with pytest.raises(ValidationError):
        BudgetLimits(output_tokens=-1)
    with pytest.raises(ValidationError):
        BudgetLimits.model_validate({"dollars": 1})


def test_everything_round_trips_through_json() -> None:
    budget = Budget(limits=BudgetLimits(usd=Decimal("1.00"), model_calls=8))
    usage = Usage(input_tokens=7, output_tokens=11, cache_read_input_tokens=13)
    record_model_call(budget, usage, price_for("claude-3-5-haiku"))
    record_tool_calls(budget, 2)
    again = Budget.model_validate_json(budget.model_dump_json())
    assert again == budget and again.spent.usd == cost(usage, price_for("claude-3-5-haiku"))

    refused = plan(("conversation", Budget(limits=BudgetLimits(usd=Decimal("0.001")))))
    assert ModelCallPlan.model_validate_json(refused.model_dump_json()) == refused
    allowed = plan(("conversation", budget))
    assert ModelCallPlan.model_validate_json(allowed.model_dump_json()) == allowed


def test_the_message_reads_like_the_brief() -> None:
    reason = BudgetExceeded(
        scope="conversation",
        limit="usd",
        limit_value=Decimal("1.00"),
        spent=Decimal("0.98"),
        needed=Decimal("0.05"),
    )
    assert reason.message == (
        "conversation budget: usd limit 1.00, spent 0.98, a call may cost up to 0.05"
    )


# --- properties ------------------------------------------------------------------------

_counts = st.none() | st.integers(0, 12)
_tokens = st.none() | st.integers(0, 60_000)
_limits = st.builds(
    BudgetLimits,
    model_calls=_counts,
    tool_calls=_counts,
    input_tokens=_tokens,
    output_tokens=st.none() | st.integers(0, 8_000),
    usd=st.none() | st.decimals(min_value=0, max_value=2, places=4),
)
_dollars = st.decimals(min_value=0, max_value=80, places=2)
_prices = st.builds(
    Price, input=_dollars, output=_dollars, cache_write=_dollars, cache_read=_dollars
)


def _at_most(data: st.DataObject, price: Price) -> Price:
    def upto(bound: Decimal) -> Decimal:
        return data.draw(st.decimals(min_value=0, max_value=bound, places=2))

    top = price.max_input
    return Price(
        input=upto(top), output=upto(price.output), cache_write=upto(top), cache_read=upto(top)
    )


def _after_worst_case(budget: Budget, p: ModelCallPlan, input_upper: int) -> Budget:
    """``budget`` as if the planned call had cost the most it can."""
    spent = budget.spent.model_copy(
        update={
            "model_calls": budget.spent.model_calls + 1,
            "usage": budget.spent.usage
            + Usage(input_tokens=input_upper, output_tokens=p.max_tokens),
            "usd": budget.spent.usd + p.reserved_usd,
        }
    )
    return budget.model_copy(update={"spent": spent})


def _within_limits(budget: Budget) -> None:
    limits, spent = budget.limits, budget.spent
    assert limits.model_calls is None or spent.model_calls <= limits.model_calls
    assert limits.tool_calls is None or spent.tool_calls <= limits.tool_calls
    assert limits.input_tokens is None or spent.total_input_tokens <= limits.input_tokens
    assert limits.output_tokens is None or spent.usage.output_tokens <= limits.output_tokens
    assert limits.usd is None or spent.usd <= limits.usd


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    turn_limits=_limits,
    conversation_limits=_limits,
    price=_prices,
    steps=st.lists(st.sampled_from(["model", "model", "tools", "new_turn"]), max_size=25),
)
def test_no_limit_is_ever_overrun(
    data: st.DataObject,
    turn_limits: BudgetLimits,
    conversation_limits: BudgetLimits,
    price: Price,
    steps: list[str],
) -> None:
    turn, conversation = Budget(limits=turn_limits), Budget(limits=conversation_limits)
    turn_costs: list[Decimal] = []  # what each recorded call cost, per budget
    conversation_costs: list[Decimal] = []
    for step in steps:
        if step == "new_turn":
            turn, turn_costs = Budget(limits=turn_limits), []
        elif step == "tools":
            wanted = data.draw(st.integers(0, 6))
            allowed = plan_tool_calls([turn, conversation], wanted)
            assert 0 <= allowed <= wanted
            for budget in (turn, conversation):
                record_tool_calls(budget, allowed)
        else:
            upper = data.draw(st.integers(0, 20_000))
            requested = data.draw(st.integers(1, 4096))
            p = plan(
                ("turn", turn),
                ("conversation", conversation),
                upper=upper,
                requested=requested,
                price=price,
                minimum=data.draw(st.integers(1, 128)),
            )
            event("refused: " + p.reason.limit if p.reason else "allowed")
            if p.allowed:
                assert 1 <= p.max_tokens <= requested
                event("clamped" if p.max_tokens < requested else "as requested")
                for budget in (turn, conversation):  # the worst case fits every budget
                    _within_limits(_after_worst_case(budget, p, upper))
                # The true input, at most the bound, split between the three input kinds;
                # the extremes (everything, nothing) drawn often.
                true_input = data.draw(st.sampled_from([0, upper]) | st.integers(0, upper))
                written = data.draw(st.sampled_from([0, true_input]) | st.integers(0, true_input))
                read = data.draw(st.integers(0, true_input - written))
                usage = Usage(
                    input_tokens=true_input - written - read,
                    cache_creation_input_tokens=written,
                    cache_read_input_tokens=read,
                    output_tokens=data.draw(st.just(p.max_tokens) | st.integers(0, p.max_tokens)),
                )
                # The model that answers may be priced lower than planned (the workflow
                # plans at the conservative default until it knows the model): any price
                # with no input kind above the planned dearest, and output no dearer.
                actual = data.draw(st.sampled_from([price, _at_most(data, price)]))
                assert cost(usage, actual) <= p.reserved_usd
                for budget, costs in ((turn, turn_costs), (conversation, conversation_costs)):
                    record_model_call(budget, usage, actual)
                    costs.append(cost(usage, actual))
        for budget, costs in ((turn, turn_costs), (conversation, conversation_costs)):
            _within_limits(budget)
            assert budget.spent.usd == sum(costs, Decimal(0))
            limit = budget.limits.usd
            assert remaining(budget).usd == (None if limit is None else limit - budget.spent.usd)


@settings(max_examples=300, deadline=None)
@given(
    price=_prices,
    upper=st.integers(0, 10**7),
    requested=st.integers(1, 128_000),
    minimum=st.integers(1, 10**6),
    spent=st.integers(0, 10**6),
)
def test_without_limits_every_call_is_allowed_as_requested(
    price: Price, upper: int, requested: int, minimum: int, spent: int
) -> None:
    budget = Budget()
    record_model_call(budget, Usage(input_tokens=spent, output_tokens=spent), price)
    p = plan(
        ("turn", Budget()),
        ("conversation", budget),
        upper=upper,
        requested=requested,
        price=price,
        minimum=minimum,
    )
    assert p.allowed and p.max_tokens == requested
    assert plan_tool_calls([Budget(), budget], requested) == requested


@settings(max_examples=300, deadline=None)
@given(
    limits=_limits,
    price=_prices,
    upper=st.integers(0, 20_000),
    requested=st.integers(1, 4096),
)
def test_clamping_is_tight(limits: BudgetLimits, price: Price, upper: int, requested: int) -> None:
    """A clamped ``max_tokens`` is the largest whose worst case still fits."""
    budget = Budget(limits=limits)
    p = plan(("conversation", budget), upper=upper, requested=requested, price=price)
    if not p.allowed or p.max_tokens == requested:
        return
    one_more = p.reserved_usd + price.output / 1_000_000
    assert (limits.output_tokens is not None and p.max_tokens + 1 > limits.output_tokens) or (
        limits.usd is not None and one_more > limits.usd
    )
