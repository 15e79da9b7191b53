"""The conversation's spend: both budgets and the price move together."""

from __future__ import annotations

from decimal import Decimal

from durable_agent.budget import Budget, BudgetLimits
from durable_agent.pricing import price_for
from durable_agent.spend import Spend
from durable_agent.usage import Usage

USAGE = Usage(input_tokens=1_000, output_tokens=200)


def test_a_model_call_is_recorded_in_both_budgets_at_the_answering_models_price() -> None:
    spend = Spend(Budget(limits=BudgetLimits(usd=Decimal(5))), None)
    turn = Budget(limits=BudgetLimits(model_calls=3))
    default = spend.price()
    cost = spend.model_call(turn, USAGE, "claude-haiku-4-5")
    assert spend.priced_model == "claude-haiku-4-5"  # learnt from the first response
    assert spend.price() == price_for("claude-haiku-4-5") != default
    for budget in (turn, spend.conversation):
        assert budget.spent.model_calls == 1 and budget.spent.usage == USAGE
        assert budget.spent.usd == cost > 0
    spend.model_call(turn, USAGE, "claude-opus-4-1")  # priced as it answered,
    assert spend.priced_model == "claude-haiku-4-5"  # but the conversation's stays
    assert spend.remaining().usd == Decimal(5) - spend.conversation.spent.usd


def test_a_compaction_is_paid_for_but_teaches_no_price() -> None:
    spend = Spend(Budget(), None)
    turn = Budget()
    spend.compaction(turn, USAGE, "claude-haiku-4-5")
    assert spend.priced_model is None
    assert turn.spent.model_calls == spend.conversation.spent.model_calls == 1


def test_tool_calls_are_cut_to_the_tightest_budget_and_say_which() -> None:
    spend = Spend(Budget(limits=BudgetLimits(tool_calls=5)), None)
    turn = Budget(limits=BudgetLimits(tool_calls=3))
    assert spend.tool_calls(turn, 2) == (2, True)
    assert spend.tool_calls(turn, 4) == (1, True)  # the turn's 3 stop it
    other = Budget(limits=BudgetLimits(tool_calls=10))
    assert spend.tool_calls(other, 4) == (2, False)  # the conversation's 5 stop it
    assert spend.conversation.spent.tool_calls == 5 and turn.spent.tool_calls == 3


def test_a_model_call_is_planned_against_both_budgets() -> None:
    spend = Spend(Budget(limits=BudgetLimits(model_calls=1)), None)
    turn = Budget()
    plan = spend.plan_model_call(
        turn, request_bytes=1_000, messages=2, tools=1, max_tokens=500, min_output_tokens=64
    )
    assert plan.allowed and plan.max_tokens == 500 and plan.reserved_usd > 0
    spend.model_call(turn, USAGE, "claude-haiku-4-5")
    refused = spend.plan_model_call(
        turn, request_bytes=1_000, messages=2, tools=1, max_tokens=500, min_output_tokens=64
    )
    assert not refused.allowed and refused.reason and refused.reason.scope == "conversation"
