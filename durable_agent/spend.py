"""One conversation's spending in one object: its budget, the running turn's, and the
price of the model it pays for. Every model call is planned and recorded here, every
tool call counted here, so the two budgets and the price can never disagree (a call
recorded in one budget and not the other, or priced at another model's rate).

Pure: no clock, no I/O. The workflow holds one ``Spend`` (``_spend``) and carries its
parts across continue-as-new (``ContinuedState.budget``/``priced_model``).
"""

from __future__ import annotations

from decimal import Decimal

from durable_agent.budget import (
    Budget,
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


class Spend:
    """What one conversation may spend and has spent, and at which price."""

    def __init__(self, conversation: Budget, priced_model: str | None) -> None:
        self.conversation = conversation
        self.priced_model = priced_model
        """The model a price is looked up for: named, or learnt from the first response.
        Until then the conservative default price applies, so budgets err on the safe
        side."""

    def price(self, model: str | None = None) -> Price:
        """The price of ``model``, or of the model the conversation is priced for."""
        return price_for(model or self.priced_model or "")

    def plan_model_call(
        self,
        turn: Budget,
        *,
        request_bytes: int,
        messages: int,
        tools: int,
        max_tokens: int,
        min_output_tokens: int,
    ) -> ModelCallPlan:
        """Whether the next model call fits the turn's and the conversation's budgets
        (the tightest wins), and with which ``max_tokens``."""
        return plan_model_call(
            [("turn", turn), ("conversation", self.conversation)],
            input_tokens_upper=input_tokens_upper_bound(request_bytes, messages, tools),
            requested_max_tokens=max_tokens,
            price=self.price(),
            min_output_tokens=min(min_output_tokens, max_tokens),
        )

    def model_call(self, turn: Budget, usage: Usage, model: str) -> Decimal:
        """Record a model call made, in both budgets, at the price of the model that
        answered (which the conversation is priced for from then on, if it was not
        named); returns what it cost."""
        self.priced_model = self.priced_model or model
        price = self.price(model)
        for budget in (turn, self.conversation):
            record_model_call(budget, usage, price)
        return cost(usage, price)

    def compaction(self, turn: Budget, usage: Usage, model: str) -> None:
        """Record a compaction's model call (it teaches the conversation no price)."""
        price = self.price(model)
        for budget in (turn, self.conversation):
            record_model_call(budget, usage, price)

    def tool_calls(self, turn: Budget, requested: int) -> tuple[int, bool]:
        """Count as many of ``requested`` tool calls as both budgets allow; returns how
        many, and whether the turn's budget is the one that stopped the rest."""
        allowed = plan_tool_calls([turn, self.conversation], requested)
        turn_allows = plan_tool_calls([turn], requested)
        for budget in (turn, self.conversation):
            record_tool_calls(budget, allowed)
        return allowed, turn_allows == allowed

    def remaining(self) -> BudgetLimits:
        """What is left of the conversation's budget (``None``: unlimited)."""
        return remaining(self.conversation)
