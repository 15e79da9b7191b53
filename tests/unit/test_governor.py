"""The tenant governor's decisions: daily budget, token bucket, idempotent grants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from durable_agent.governor import GovernorState, PermitRequest, Settlement, TenantLimits

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def request(n: int, usd: str = "0.10", limits: TenantLimits | None = None) -> PermitRequest:
    return PermitRequest(
        tenant="acme",
        conversation_id="c",
        reservation_id=f"c/1/{n}",
        reserved_usd=Decimal(usd),
        limits=limits,
    )


def test_daily_budget_counts_spend_and_open_reservations() -> None:
    state = GovernorState(tenant="acme")
    limits = TenantLimits(daily_usd=Decimal("1.00"), model_calls_per_minute=None)
    assert state.acquire(request(1, "0.60", limits), T0).granted
    denied = state.acquire(request(2, "0.50", limits), T0)
    assert not denied.granted and denied.reason == "daily_budget"
    assert "limit 1.00 USD" in denied.message and "reserved 0.60" in denied.message
    assert denied.retry_after_seconds == 12 * 3600  # until midnight UTC
    state.settle(Settlement(reservation_id="c/1/1", actual_usd=Decimal("0.20")), T0)
    assert state.acquire(request(3, "0.50", limits), T0).granted
    assert state.spent_usd == Decimal("0.20") and state.granted == 2 and state.denied == 1


def test_the_day_rolls_over_at_midnight_utc() -> None:
    state = GovernorState(
        tenant="acme", limits=TenantLimits(daily_usd=Decimal("1"), model_calls_per_minute=None)
    )
    state.acquire(request(1, "0.9"), T0)
    state.settle(Settlement(reservation_id="c/1/1", actual_usd=Decimal("0.9")), T0)
    assert not state.acquire(request(2, "0.5"), T0).granted
    assert state.acquire(request(2, "0.5"), T0 + timedelta(hours=12)).granted
    assert state.day == "2026-11-24" and state.spent_usd == 0


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    limits = TenantLimits(daily_usd=None, model_calls_per_minute=60, burst=3)
    state = GovernorState(tenant="acme", limits=limits)
    assert all(state.acquire(request(n), T0).granted for n in range(3))
    denied = state.acquire(request(3), T0)
    assert not denied.granted and denied.reason == "rate_limited"
    assert abs(denied.retry_after_seconds - 1.0) < 1e-9  # one call per second
    assert state.acquire(request(3), T0 + timedelta(seconds=1)).granted


def test_asking_twice_for_one_reservation_is_granted_once() -> None:
    limits = TenantLimits(daily_usd=None, model_calls_per_minute=60, burst=1)
    state = GovernorState(tenant="acme", limits=limits)
    assert state.acquire(request(1), T0).granted
    again = state.acquire(request(1), T0)  # an activity retry after a lost answer
    assert again.granted and state.granted == 1


def test_state_survives_a_json_round_trip() -> None:
    state = GovernorState(tenant="acme")
    state.acquire(request(1, "0.25"), T0)
    copy = GovernorState.model_validate_json(state.model_dump_json())
    assert copy == state and copy.reservations == {"c/1/1": Decimal("0.25")}


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=30),  # seconds since the previous request
            st.decimals(min_value=0, max_value=1, places=2),  # reserved
            st.decimals(min_value=0, max_value=1, places=2),  # actual ≤ reserved
        ),
        max_size=60,
    )
)
def test_grants_never_exceed_the_rate_or_the_daily_budget(steps: list) -> None:
    limits = TenantLimits(daily_usd=Decimal("5"), model_calls_per_minute=30, burst=4)
    state = GovernorState(tenant="acme", limits=limits)
    now = T0
    grants: list[datetime] = []
    for n, (gap, reserved, actual) in enumerate(steps):
        now += timedelta(seconds=gap)
        if state.acquire(request(n, str(reserved)), now).granted:
            grants.append(now)
            state.settle(
                Settlement(reservation_id=f"c/1/{n}", actual_usd=min(actual, reserved)), now
            )
        assert state.spent_usd + sum(state.reservations.values()) <= limits.daily_usd
    # In any window of w seconds, at most burst + w * rate grants.
    for i, start in enumerate(grants):
        for j in range(i, len(grants)):
            window = (grants[j] - start).total_seconds()
            assert j - i + 1 <= 4 + window * 0.5 + 1e-6
