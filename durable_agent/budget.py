"""Budgets per turn and per conversation that a conversation can never overrun.

Pure: no Temporal, no I/O, no clock. Budgets are pydantic models that live in workflow
state, cross continue-as-new and come back identical after replay. Money is ``Decimal``
US dollars, tokens are ints. The workflow follows one protocol, one model call at a time:

    plan = plan_model_call([("turn", turn), ("conversation", conversation)],
                           input_tokens_upper=…, requested_max_tokens=…, price=…)
    if plan.allowed:  call the model with max_tokens=plan.max_tokens,
                      then record_model_call(b, usage, price) for each budget
    k = plan_tool_calls([turn, conversation], n); record_tool_calls(b, k); run k calls

Why no limit can be overrun: a plan allows a call only if its worst case fits every
budget. The worst case is ``input_tokens_upper`` input tokens (a true upper bound, see
``input_tokens_upper_bound``), each priced as the dearest input kind whatever the cache
does, plus ``max_tokens`` output tokens, which the API never exceeds; ``max_tokens`` is
clamped until that worst case fits. So what is recorded is at most what was planned, and
that is at most what was left. A plan holds nothing back: the caller records one call
before planning the next (the tenant governor reserves across conversations).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import ROUND_FLOOR, Decimal
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from durable_agent.pricing import Price, cost
from durable_agent.usage import Usage

LimitName = Literal["model_calls", "tool_calls", "input_tokens", "output_tokens", "usd"]
_PER_MILLION = Decimal(1_000_000)
_N = TypeVar("_N", int, Decimal)

# Tokens the API adds that are not bytes of the request (see input_tokens_upper_bound):
_PER_REQUEST_TOKENS = 64  # framing of the request and of the system prompt
_PER_MESSAGE_TOKENS = 8  # role markers (a message's JSON adds ~40 bytes that cover them too)
_PER_TOOL_TOKENS = 32  # the wrapper each tool definition is rendered in
# The tool-use system prompt, added when tools are offered: Anthropic documents 159 to
# 530 tokens depending on the model; doubled for models it has not documented.
_TOOL_USE_PROMPT_TOKENS = 1024


class BudgetLimits(BaseModel):
    """Hard ceilings; ``None`` is unlimited."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_calls: int | None = Field(default=None, ge=0)
    tool_calls: int | None = Field(default=None, ge=0)
    input_tokens: int | None = Field(default=None, ge=0)
    """Input tokens of every kind: uncached, cache writes and cache reads."""
    output_tokens: int | None = Field(default=None, ge=0)
    """Output tokens (thinking included)."""
    usd: Decimal | None = Field(default=None, ge=0, allow_inf_nan=False)
    """US dollars, by the price table."""


class Spent(BaseModel):
    """What a budget has recorded so far."""

    model_config = ConfigDict(extra="forbid")

    model_calls: int = Field(default=0, ge=0)
    tool_calls: int = Field(default=0, ge=0)
    usage: Usage = Field(default_factory=Usage)
    usd: Decimal = Field(default=Decimal(0), ge=0, allow_inf_nan=False)
    """The exact sum of the recorded calls' costs."""

    @property
    def total_input_tokens(self) -> int:
        """Input tokens of every kind, as ``BudgetLimits.input_tokens`` counts them."""
        u = self.usage
        return u.input_tokens + u.cache_creation_input_tokens + u.cache_read_input_tokens


class Budget(BaseModel):
    """One scope's limits and spend; the record functions mutate it in place."""

    model_config = ConfigDict(extra="forbid")

    limits: BudgetLimits = Field(default_factory=BudgetLimits)
    spent: Spent = Field(default_factory=Spent)


_NEED = {
    "usd": "a call may cost up to",
    "model_calls": "a call needs",
    "input_tokens": "a call may send up to",
    "output_tokens": "a call needs at least",
    "tool_calls": "the calls need",
}


class BudgetExceeded(BaseModel):
    """Why a call was refused: which budget, which limit, and by how much."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scope: str
    """The budget's name as passed to ``plan_model_call`` (``turn``, ``conversation``)."""
    limit: LimitName
    limit_value: Decimal
    spent: Decimal
    needed: Decimal
    """What the call would need on top of ``spent`` (its worst case, or its minimum)."""

    @property
    def message(self) -> str:
        """For people, e.g. ``conversation budget: usd limit 1.00, spent 0.98, a call may
        cost up to 0.05``."""
        return (
            f"{self.scope} budget: {self.limit} limit {self.limit_value:f}, "
            f"spent {self.spent:f}, {_NEED[self.limit]} {self.needed:f}"
        )


class ModelCallPlan(BaseModel):
    """Whether the next model call may be made, and with which ``max_tokens``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    allowed: bool
    max_tokens: int = 0
    """The ``max_tokens`` to send: the request's, clamped to what every budget affords."""
    reason: BudgetExceeded | None = None
    """Set when refused."""
    reserved_usd: Decimal = Decimal(0)
    """The call's worst-case cost (what the tenant governor is asked to reserve)."""


def input_tokens_upper_bound(payload_bytes: int, messages: int, tools: int) -> int:
    """A true upper bound on the input tokens of a request whose JSON is ``payload_bytes``
    long. Claude's tokenizer is a byte-level BPE: every token stands for at least one
    byte of text, so text of n UTF-8 bytes is at most n tokens, and JSON quoting and
    escaping only add bytes. What the API adds that is not in the payload (message
    markers, tool rendering, the tool-use system prompt) is added here as overheads."""
    overhead = _PER_REQUEST_TOKENS + messages * _PER_MESSAGE_TOKENS + tools * _PER_TOOL_TOKENS
    return payload_bytes + overhead + (_TOOL_USE_PROMPT_TOKENS if tools else 0)


def plan_model_call(
    budgets: Sequence[tuple[str, Budget]],
    *,
    input_tokens_upper: int,
    requested_max_tokens: int,
    price: Price,
    min_output_tokens: int = 1,
) -> ModelCallPlan:
    """Plan the next model call against named budgets (the tightest wins). Refused when
    a budget has no model call left, cannot take the worst-case input, or cannot afford
    ``min_output_tokens`` (capped at ``requested_max_tokens``) after that input."""
    if input_tokens_upper < 0 or requested_max_tokens < 1 or min_output_tokens < 1:
        raise ValueError("input_tokens_upper must be >= 0, the token counts >= 1")
    floor = min(min_output_tokens, requested_max_tokens)
    input_usd = input_tokens_upper * price.max_input / _PER_MILLION
    max_tokens, tightest = requested_max_tokens, None
    for scope, budget in budgets:
        limits, spent = budget.limits, budget.spent
        if limits.model_calls is not None and spent.model_calls >= limits.model_calls:
            return _refused(scope, "model_calls", limits.model_calls, spent.model_calls, 1)
        used_input = spent.total_input_tokens
        if (
            limits.input_tokens is not None
            and used_input + input_tokens_upper > limits.input_tokens
        ):
            return _refused(
                scope, "input_tokens", limits.input_tokens, used_input, input_tokens_upper
            )
        used_output = spent.usage.output_tokens
        if limits.output_tokens is not None and limits.output_tokens - used_output < max_tokens:
            max_tokens = limits.output_tokens - used_output
            tightest = _refused(scope, "output_tokens", limits.output_tokens, used_output, floor)
        if limits.usd is not None:
            cap = _affordable(limits.usd - spent.usd - input_usd, price.output, max_tokens)
            if cap < max_tokens:
                worst = input_usd + floor * price.output / _PER_MILLION
                max_tokens, tightest = cap, _refused(scope, "usd", limits.usd, spent.usd, worst)
    if max_tokens < floor and tightest is not None:  # tightest is set whenever it clamped
        return tightest
    reserved = input_usd + max_tokens * price.output / _PER_MILLION
    return ModelCallPlan(allowed=True, max_tokens=max_tokens, reserved_usd=reserved)


def record_model_call(budget: Budget, usage: Usage, price: Price) -> None:
    """Record a model call that was made, at the price of the model that answered."""
    spent = budget.spent
    spent.model_calls += 1
    spent.usage = spent.usage + usage
    spent.usd += cost(usage, price)


def cost_of(usage: Usage, price: Price) -> Decimal:
    """What one call cost (``pricing.cost``; here so the workflow needs one module)."""
    return cost(usage, price)


def plan_tool_calls(budgets: Iterable[Budget], requested: int) -> int:
    """How many of ``requested`` tool calls every budget still allows."""
    allowed = requested
    for budget in budgets:
        if budget.limits.tool_calls is not None:
            allowed = min(allowed, budget.limits.tool_calls - budget.spent.tool_calls)
    return max(allowed, 0)


def record_tool_calls(budget: Budget, count: int) -> None:
    """Record ``count`` tool calls (those ``plan_tool_calls`` allowed)."""
    if count < 0:
        raise ValueError(f"a negative tool-call count ({count})")
    budget.spent.tool_calls += count


def remaining(budget: Budget) -> BudgetLimits:
    """What is left of each limit (``None``: unlimited), for the ``status`` query."""
    limits, spent = budget.limits, budget.spent
    return BudgetLimits(
        model_calls=_left(limits.model_calls, spent.model_calls),
        tool_calls=_left(limits.tool_calls, spent.tool_calls),
        input_tokens=_left(limits.input_tokens, spent.total_input_tokens),
        output_tokens=_left(limits.output_tokens, spent.usage.output_tokens),
        usd=_left(limits.usd, spent.usd),
    )


def _left(limit: _N | None, used: _N) -> _N | None:
    return None if limit is None else max(limit - used, limit * 0)  # limit * 0: a typed zero


def _affordable(left_usd: Decimal, output_price: Decimal, at_most: int) -> int:
    """The most output tokens, up to ``at_most``, that ``left_usd`` pays for; -1 when not
    even the input fits."""
    if left_usd < 0:
        return -1
    if output_price == 0:
        return at_most
    budget = left_usd * _PER_MILLION
    n = min(at_most, int((budget / output_price).to_integral_value(rounding=ROUND_FLOOR)))
    # The division rounds to 28 digits and may round up onto an unaffordable count:
    # step back until the exact product fits (at most once in practice).
    while n > 0 and n * output_price > budget:
        n -= 1
    return n


def _refused(
    scope: str, limit: LimitName, value: Decimal | int, spent: Decimal | int, needed: Decimal | int
) -> ModelCallPlan:
    reason = BudgetExceeded(scope=scope, limit=limit, limit_value=value, spent=spent, needed=needed)
    return ModelCallPlan(allowed=False, reason=reason)
