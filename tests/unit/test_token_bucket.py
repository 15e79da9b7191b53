"""The one token bucket (``durable_agent.token_bucket``): the pure rule the gateway's
per-key limit and the tenant governor's call rate share."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from durable_agent.token_bucket import TokenBucket, refill, wait_seconds


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
