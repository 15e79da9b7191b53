"""The one token bucket (``durable_agent.token_bucket``): the pure rule the gateway's
per-key limit and the tenant governor's call rate share, and its form with tokens lent
out (the governor's leases)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from durable_agent.token_bucket import TokenBucket, refill, refill_lent, wait_lent, wait_seconds


def test_a_bucket_never_used_is_full() -> None:
    assert refill(None, 0.0, 100.0, rate=1.0, burst=5.0) == 5.0


def test_refill_adds_the_rate_up_to_the_burst() -> None:
    assert refill(1.0, 10.0, 12.0, rate=0.5, burst=5.0) == 2.0
    assert refill(1.0, 10.0, 100.0, rate=0.5, burst=5.0) == 5.0


def test_time_going_back_refills_nothing() -> None:
    assert refill(1.0, 10.0, 9.0, rate=1.0, burst=5.0) == 1.0


def test_wait_seconds_is_the_shortfall_at_the_rate() -> None:
    assert wait_seconds(1.5, rate=2.0) == 0.0
    assert wait_seconds(0.5, rate=2.0) == pytest.approx(0.25)
    assert wait_seconds(1.0, rate=1.0, needed=3.0) == 2.0


@given(
    rate=st.floats(0.1, 100.0),
    burst=st.integers(1, 50),
    gaps=st.lists(st.floats(0.0, 5.0), min_size=1, max_size=60),
)
def test_granted_requests_never_exceed_burst_plus_rate_times_time(
    rate: float, burst: int, gaps: list[float]
) -> None:
    bucket, now, granted = TokenBucket(rate=rate, burst=burst), 0.0, 0
    for gap in gaps:
        now += gap
        wait = bucket.take(now)
        assert wait >= 0.0
        granted += wait == 0.0
    assert granted <= burst + rate * now + 1e-9


def test_lent_tokens_hold_the_bucket_down_until_they_expire() -> None:
    lent = [(10.0, 3.0)]  # three tokens out until t=10 (burst 4)
    assert refill(0.0, 0.0, 20.0, rate=1.0, burst=4.0) == 4.0
    assert refill_lent(0.0, 0.0, 8.0, rate=1.0, burst=4.0, lent=lent) == 1.0
    # Refilled step by step: 1 until the loan expires at 10, then 2 more by 12.
    assert refill_lent(0.0, 0.0, 12.0, rate=1.0, burst=4.0, lent=lent) == 3.0
    assert refill_lent(None, 0.0, 5.0, rate=1.0, burst=4.0, lent=lent) == 1.0
    assert wait_lent(0.0, 0.0, rate=1.0, burst=4.0, lent=lent) == 1.0
    assert wait_lent(0.0, 0.0, rate=1.0, burst=4.0, lent=lent, needed=2.0) == 11.0
    assert wait_lent(0.0, 0.0, rate=1.0, burst=1.0, lent=[(10.0, 1.0)]) == 11.0
    assert wait_lent(0.0, 0.0, rate=1.0, burst=1.0, lent=[], needed=2.0) == math.inf


@settings(max_examples=400)
@given(
    rate=st.floats(0.1, 2.0),
    burst=st.integers(1, 6),
    steps=st.lists(
        st.tuples(
            st.sampled_from([0.0, 0.0, 0.5, 1.0, 5.0]),  # gap
            st.sampled_from(["take", "lend", "spend", "return"]),
            st.integers(1, 4),  # tokens to lend
            st.floats(0.5, 10.0),  # loan lifetime
        ),
        max_size=80,
    ),
)
def test_spent_tokens_never_exceed_burst_plus_rate_times_time_with_loans(
    rate: float, burst: int, steps: list[tuple[float, str, int, float]]
) -> None:
    """Tokens taken from the bucket or from loans (spent at any moment before the loan
    expires, or returned unused before then) keep to one bucket's envelope."""
    level: float | None = None
    since, now = 0.0, 0.0
    loans: list[list[float]] = []  # [until, count lent, count still unspent]
    spent: list[float] = []
    for gap, action, count, lifetime in steps:
        now += gap
        lent = [(until, total) for until, total, _ in loans]
        level, since = refill_lent(level, since, now, rate=rate, burst=burst, lent=lent), now
        loans = [loan for loan in loans if loan[0] > now]  # expired: gone, spent or not
        open_loans = [loan for loan in loans if loan[2] >= 1]
        if action == "take" and level >= 1:
            level -= 1
            spent.append(now)
        elif action == "lend" and level >= count:
            level -= count
            loans.append([now + lifetime, count, count])
        elif action == "spend" and open_loans:
            open_loans[0][2] -= 1
            spent.append(now)
        elif action == "return" and loans:
            level += loans.pop(0)[2]  # what is left unspent comes back
    for i, start in enumerate(spent):
        for j in range(i, len(spent)):
            assert j - i + 1 <= burst + rate * (spent[j] - start) + 1e-9
