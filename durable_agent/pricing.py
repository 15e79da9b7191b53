"""What a model call costs, in US dollars, exactly.

Pure: no I/O, no clock, no floats. Prices are ``Decimal`` US dollars per million tokens
and a cost is ``Decimal`` arithmetic on whole token counts, so the same usage always
costs the same amount, to the last digit, on every worker and after every replay.

A model is priced by its id: an exact entry of the table, else the longest entry that
is a prefix of the id at a ``-`` or ``@`` boundary (dated snapshots such as
``claude-sonnet-4-6-20260101`` and Vertex ids such as ``claude-opus-4-5@20251101``), else
a default. The default is the most expensive price of the table, so a model nobody has
priced yet makes budgets err on the safe side instead of letting them be overrun.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from durable_agent.usage import Usage

CACHE_WRITE_MULTIPLIER = Decimal("1.25")
"""5-minute cache writes cost 1.25 times the base input price (Anthropic's published rule)."""
CACHE_READ_MULTIPLIER = Decimal("0.1")
"""Cache hits cost 0.1 times the base input price."""
_PER_MILLION = Decimal(1_000_000)


class Price(BaseModel):
    """US dollars per million tokens of each kind."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input: Decimal = Field(ge=0, allow_inf_nan=False)
    """Base (uncached) input tokens."""
    output: Decimal = Field(ge=0, allow_inf_nan=False)
    """Output tokens (thinking included)."""
    cache_write: Decimal = Field(ge=0, allow_inf_nan=False)
    """Input tokens written to the prompt cache (5-minute writes)."""
    cache_read: Decimal = Field(ge=0, allow_inf_nan=False)
    """Input tokens read from the prompt cache."""

    @classmethod
    def from_input_output(cls, input: Decimal | int | str, output: Decimal | int | str) -> Price:
        """A price from its input and output prices, the cache prices derived by the
        published multipliers. Takes ``str`` so tables read ``"0.80"``; never floats,
        whose binary rounding would leak into every cost."""
        base = Decimal(input)
        return cls(
            input=base,
            output=Decimal(output),
            cache_write=base * CACHE_WRITE_MULTIPLIER,
            cache_read=base * CACHE_READ_MULTIPLIER,
        )

    @property
    def max_input(self) -> Decimal:
        """The most any one input token can cost, whichever kind it turns out to be."""
        return max(self.input, self.cache_write, self.cache_read)


_OPUS_4_5 = Price.from_input_output(5, 25)
_OPUS_4 = Price.from_input_output(15, 75)
_SONNET = Price.from_input_output(3, 15)

PRICES: dict[str, Price] = {
    # Anthropic list prices for prompts up to 200K tokens, checked 2026-11 against
    # https://platform.claude.com/docs/en/about-claude/pricing (anthropic.com/pricing).
    # The long-context (> 200K-token prompt) rates of the 1M-context beta are not modelled.
    # A snapshot; operators override the table through the worker's configuration.
    "claude-opus-4-6": _OPUS_4_5,
    "claude-opus-4-5": _OPUS_4_5,
    "claude-opus-4-1": _OPUS_4,
    "claude-opus-4": _OPUS_4,  # also claude-opus-4-0 and claude-opus-4-20250514
    "claude-sonnet-4-6": _SONNET,
    "claude-sonnet-4-5": _SONNET,
    "claude-sonnet-4": _SONNET,  # also claude-sonnet-4-0 and claude-sonnet-4-20250514
    "claude-haiku-4-5": Price.from_input_output(1, 5),
    "claude-3-7-sonnet": _SONNET,
    "claude-3-5-haiku": Price.from_input_output("0.80", 4),
    "claude-3-opus": _OPUS_4,
    # The deterministic offline model (durable_agent.models.offline) costs nothing.
    "offline-planner": Price.from_input_output(0, 0),
}
"""Price per model id or id prefix (see ``price_for``)."""


def most_expensive(table: Mapping[str, Price]) -> Price:
    """The component-wise maximum of a table: no model of it costs more for any kind of
    token, so it is a safe price for a model the table does not know."""
    if not table:
        raise ValueError("an empty price table has no most expensive price")
    prices = table.values()
    return Price(
        input=max(p.input for p in prices),
        output=max(p.output for p in prices),
        cache_write=max(p.cache_write for p in prices),
        cache_read=max(p.cache_read for p in prices),
    )


DEFAULT_PRICE = most_expensive(PRICES)
"""Price of a model the table does not know: the most expensive known (today Opus 4 /
4.1 at $15 / $75). Overestimating only refuses calls early; underestimating could let a
conversation spend past its budget."""


def price_for(
    model: str, table: Mapping[str, Price] = PRICES, default: Price | None = DEFAULT_PRICE
) -> Price:
    """The price of ``model``: its exact entry, else the longest entry that prefixes it at
    a ``-`` or ``@`` boundary, else ``default``. Raises ``KeyError`` when nothing matches
    and ``default`` is ``None``."""
    if model in table:
        return table[model]
    # The boundary keeps "claude-opus-4-1" from pricing a hypothetical "claude-opus-4-10".
    matches = [key for key in table if model.startswith(key) and model[len(key)] in "-@"]
    if matches:
        return table[max(matches, key=len)]
    if default is None:
        raise KeyError(f"no price for model {model!r}; known: {', '.join(sorted(table))}")
    return default


def cost(usage: Usage, price: Price) -> Decimal:
    """What ``usage`` costs at ``price``, in US dollars, exactly: whole token counts times
    decimal prices, shifted by six places, all within Decimal's 28 significant digits."""
    total = (
        usage.input_tokens * price.input
        + usage.output_tokens * price.output
        + usage.cache_creation_input_tokens * price.cache_write
        + usage.cache_read_input_tokens * price.cache_read
    )
    return total / _PER_MILLION
