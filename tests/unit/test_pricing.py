"""The price table, model-id matching and exact costs."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from durable_agent.pricing import (
    DEFAULT_PRICE,
    PRICES,
    Price,
    cost,
    most_expensive,
    price_for,
)
from durable_agent.usage import Usage


def test_cache_prices_follow_the_published_multipliers() -> None:
    price = Price.from_input_output("0.80", 4)
    assert price == Price(
        input=Decimal("0.80"),
        output=Decimal(4),
        cache_write=Decimal("1.00"),
        cache_read=Decimal("0.08"),
    )
    assert price.max_input == Decimal("1.00")


@pytest.mark.parametrize(
    ("model", "usage", "expected"),
    [
        # 1000*3 + 500*15 + 2000*3.75 + 10000*0.30 = 21000 micro-dollars
        (
            "claude-sonnet-4-6",
            Usage(
                input_tokens=1000,
                output_tokens=500,
                cache_creation_input_tokens=2000,
                cache_read_input_tokens=10000,
            ),
            Decimal("0.021"),
        ),
        # a million of each kind: 5 + 25 + 6.25 + 0.50
        (
            "claude-opus-4-5",
            Usage(
                input_tokens=1_000_000,
                output_tokens=1_000_000,
                cache_creation_input_tokens=1_000_000,
                cache_read_input_tokens=1_000_000,
            ),
            Decimal("36.75"),
        ),
        # one of each kind: 15 + 75 + 18.75 + 1.50 = 110.25 micro-dollars
        (
            "claude-opus-4-1",
            Usage(
                input_tokens=1,
                output_tokens=1,
                cache_creation_input_tokens=1,
                cache_read_input_tokens=1,
            ),
            Decimal("0.00011025"),
        ),
        # 1234*0.80 + 567*4 + 100*1.00 + 1000*0.08 = 3435.2 micro-dollars
        (
            "claude-3-5-haiku",
            Usage(
                input_tokens=1234,
                output_tokens=567,
                cache_creation_input_tokens=100,
                cache_read_input_tokens=1000,
            ),
            Decimal("0.0034352"),
        ),
        ("claude-haiku-4-5", Usage(input_tokens=3, output_tokens=7), Decimal("0.000038")),
    ],
)
def test_costs_are_exact(model: str, usage: Usage, expected: Decimal) -> None:
    assert cost(usage, price_for(model)) == expected


@pytest.mark.parametrize(
    ("model", "input_price"),
    [
        ("claude-sonnet-4-6-20260101", "3"),
        ("claude-sonnet-4-20250514", "3"),
        ("claude-opus-4-5-20251101", "5"),  # the longest prefix wins over claude-opus-4
        ("claude-opus-4-5@20251101", "5"),  # Vertex AI spelling
        ("claude-opus-4-20250514", "15"),
        ("claude-opus-4-1-20250805", "15"),
        ("claude-3-5-haiku-latest", "0.80"),
    ],
)
def test_dated_snapshots_match_their_family(model: str, input_price: str) -> None:
    assert price_for(model).input == Decimal(input_price)


def test_a_prefix_matches_only_at_a_boundary() -> None:
    cheap, dear = Price.from_input_output(1, 1), Price.from_input_output(9, 9)
    table = {"m-1": cheap, "m": dear}
    assert price_for("m-1-2026", table) == cheap
    assert price_for("m-10", table) == dear  # not m-1
    assert price_for("m1", table) == DEFAULT_PRICE  # no boundary after "m"
    with pytest.raises(KeyError):
        price_for("m1", table, default=None)


def test_unknown_models_get_the_most_expensive_known_price() -> None:
    assert price_for("some-future-model") == DEFAULT_PRICE
    assert price_for("") == DEFAULT_PRICE  # the workflow before any model is known
    assert Price.from_input_output(15, 75) == DEFAULT_PRICE
    for price in PRICES.values():
        assert price.input <= DEFAULT_PRICE.input
        assert price.output <= DEFAULT_PRICE.output
        assert price.cache_write <= DEFAULT_PRICE.cache_write
        assert price.cache_read <= DEFAULT_PRICE.cache_read


def test_most_expensive_is_component_wise() -> None:
    a = Price(input=Decimal(1), output=Decimal(9), cache_write=Decimal(2), cache_read=Decimal(0))
    b = Price(input=Decimal(3), output=Decimal(1), cache_write=Decimal(1), cache_read=Decimal(1))
    assert most_expensive({"a": a, "b": b}) == Price(
        input=Decimal(3), output=Decimal(9), cache_write=Decimal(2), cache_read=Decimal(1)
    )
    with pytest.raises(ValueError, match="empty"):
        most_expensive({})


def test_without_a_default_an_unknown_model_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="no price for model 'gpt-x'"):
        price_for("gpt-x", default=None)
    assert price_for("claude-haiku-4-5-20251001", default=None).output == Decimal(5)


def test_the_offline_model_is_free() -> None:
    usage = Usage(
        input_tokens=10**9,
        output_tokens=10**9,
        cache_creation_input_tokens=10**9,
        cache_read_input_tokens=10**9,
    )
    assert cost(usage, price_for("offline-planner")) == 0


def test_prices_validate_and_round_trip() -> None:
    with pytest.raises(ValidationError):
        Price.from_input_output(-1, 5)
    with pytest.raises(ValidationError):
        Price.from_input_output("NaN", 5)
    price = price_for("claude-3-5-haiku")
    assert Price.model_validate_json(price.model_dump_json()) == price
    with pytest.raises(ValidationError):
        price.input = Decimal(0)  # type: ignore[misc]  # frozen
