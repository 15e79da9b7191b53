"""When a conversation upserts its search attributes (``hold_back``)."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from durable_agent.search_attributes import Values, hold_back

IDLE: Values = ("acme", "idle", 3, 1200, Decimal("0.01"))
NEXT_TURN: Values = ("acme", "idle", 4, 1600, Decimal("0.02"))


def test_a_change_of_status_goes_at_once_with_the_counters() -> None:
    for status in ("running_tools", "awaiting_approval", "ended", "degraded"):
        changed = ("acme", status, *NEXT_TURN[2:])
        assert hold_back(IDLE, changed, since=0.0, interval=30.0) == 0.0


@pytest.mark.parametrize(
    ("since", "wait"),
    [(0.0, 30.0), (12.5, 17.5), (29.998, 0.002), (29.9995, 0.0), (30.0, 0.0), (500.0, 0.0)],
)
def test_counters_alone_wait_for_the_interval(since: float, wait: float) -> None:
    assert hold_back(IDLE, NEXT_TURN, since=since, interval=30.0) == pytest.approx(wait)


def test_the_first_upsert_of_a_run_and_interval_zero_go_at_once() -> None:
    assert hold_back(IDLE, NEXT_TURN, since=math.inf, interval=30.0) == 0.0
    assert hold_back(IDLE, NEXT_TURN, since=0.0, interval=0.0) == 0.0


def test_unknown_or_unchanged_values_are_never_held() -> None:
    assert hold_back(None, NEXT_TURN, since=0.0, interval=30.0) == 0.0
    assert hold_back(NEXT_TURN, NEXT_TURN, since=0.0, interval=30.0) == 0.0
