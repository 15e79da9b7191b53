"""Governor leases: a conversation spends a lease in its own state; the tenant's daily
budget and rate hold exactly, unreported leases return after their grace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from durable_agent.governor import (
    GovernorState,
    HeldLease,
    LeaseReport,
    LeaseRequest,
    LeaseSizing,
    TenantLimits,
)

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SIZING = LeaseSizing(calls=4, usd=Decimal("0.40"), seconds=60, grace_seconds=600)


def ask(
    state: GovernorState,
    lease_id: str,
    now: datetime,
    *,
    min_usd: str = "0.10",
    previous: LeaseReport | None = None,
    conversation: str = "c",
) -> HeldLease | None:
    grant = state.lease(
        LeaseRequest(
            tenant="acme",
            conversation_id=conversation,
            lease_id=lease_id,
            min_usd=Decimal(min_usd),
            previous=previous,
            sizing=SIZING,
        ),
        now,
    )
    return HeldLease.of(grant) if grant.granted else None


def test_a_lease_counts_against_the_budget_until_reported() -> None:
    state = GovernorState(
        tenant="acme", limits=TenantLimits(daily_usd=Decimal("0.25"), model_calls_per_minute=None)
    )
    first = ask(state, "c/1", T0)  # half of the day: less than a full lease
    assert first and first.usd_left == Decimal("0.125") and first.calls_left is None
    assert ask(state, "d/1", T0, conversation="d")
    third = state.lease(LeaseRequest(tenant="acme", conversation_id="e", lease_id="e/1",
                                     min_usd=Decimal("0.10")), T0)  # fmt: skip
    # Lent out, not spent: ask again soon (a lease ends within 5 s under pressure).
    assert not third.granted and third.reason == "budget_held"
    assert "lent to 2 open leases" in third.message and third.retry_after_seconds <= 5
    # Reporting frees the unspent part; the next lease folds the report in.
    first.take(Decimal("0.10"))
    first.settle(Decimal("0.10"), Decimal("0.02"))
    assert first.usd_left == Decimal("0.105")
    renewed = ask(state, "c/2", T0, previous=first.report())
    assert renewed and state.spent_usd == Decimal("0.02") and set(state.leases) == {"c/2", "d/1"}
    assert state.committed_usd() == Decimal("0.22")
    last = ask(state, "e/2", T0, min_usd="0.01", conversation="e")
    assert last and last.usd_left == Decimal("0.01")
    # Spent, not lent: refused until midnight.
    state.report(LeaseReport(lease_id="d/1", spent_usd=Decimal("0.20")), T0)
    spent = state.lease(LeaseRequest(tenant="acme", conversation_id="f", lease_id="f/1",
                                     min_usd=Decimal("0.04")), T0)  # fmt: skip
    assert not spent.granted and spent.reason == "daily_budget"
    assert spent.retry_after_seconds == 12 * 3600 and "spent 0.22" in spent.message


def test_leases_shrink_as_the_day_fills_instead_of_refusing() -> None:
    state = GovernorState(
        tenant="acme", limits=TenantLimits(daily_usd=Decimal("10"), model_calls_per_minute=None)
    )
    leases = [ask(state, f"c{n}/1", T0, min_usd="0.01", conversation=f"c{n}") for n in range(80)]
    granted = [lease.usd_left for lease in leases if lease]
    assert granted[0] == SIZING.usd and granted == sorted(granted, reverse=True)
    assert len(granted) == 80  # 25 leases of the full size would have filled the day
    assert state.committed_usd() <= Decimal("10")
    # Once more than half the day is lent, leases are short: lent money comes back soon.
    assert leases[-1] and leases[-1].expires_at - T0.timestamp() == 5.0


def test_a_retried_request_gets_the_same_lease_and_counts_its_report_once() -> None:
    state = GovernorState(tenant="acme", limits=TenantLimits(daily_usd=Decimal("5")))
    first = ask(state, "c/1", T0)
    assert first
    report = LeaseReport(lease_id="c/1", spent_usd=Decimal("0.25"), calls_used=2)
    again = [ask(state, "c/2", T0, previous=report) for _ in range(3)]
    assert again[0] == again[1] == again[2]
    assert state.spent_usd == Decimal("0.25") and state.granted == 2
    state.report(report, T0)  # a release signal after the renewal: already counted
    assert state.spent_usd == Decimal("0.25")


def test_leased_calls_come_from_the_bucket_and_unused_ones_return() -> None:
    limits = TenantLimits(daily_usd=None, model_calls_per_minute=60, burst=2)
    state = GovernorState(tenant="acme", limits=limits)
    first = ask(state, "c/1", T0)
    second = ask(state, "d/1", T0, conversation="d")
    assert first and second and first.calls_left == 1 and second.calls_left == 1
    refused = state.lease(LeaseRequest(tenant="acme", conversation_id="e", lease_id="e/1"), T0)
    assert not refused.granted and refused.reason == "rate_limited"
    # Both lent calls may still be made: the bucket stays empty until the second lease
    # (short: more than half of the burst is lent) expires at 2 s, then refills a call.
    assert refused.retry_after_seconds == 3.0
    assert "2 of its burst of 2 lent" in refused.message
    state.report(first.report(), T0)  # its one call unused: it returns
    third = ask(state, "e/1", T0, conversation="e")
    assert third and third.calls_left == 1
    # A lease takes at most half the bucket, less the more leases are open.
    roomy = GovernorState(
        tenant="acme", limits=TenantLimits(daily_usd=None, model_calls_per_minute=60, burst=9)
    )
    sizes = [ask(roomy, f"c{n}/1", T0, conversation=f"c{n}") for n in range(3)]
    assert [lease.calls_left for lease in sizes if lease] == [4, 1, 1]


def test_an_unreported_lease_returns_after_its_grace_and_a_late_report_still_counts() -> None:
    state = GovernorState(tenant="acme", limits=TenantLimits(daily_usd=Decimal("0.50")))
    orphan = ask(state, "c/1", T0, min_usd="0.45")
    assert orphan and not ask(state, "d/1", T0, min_usd="0.20", conversation="d")
    after = T0 + timedelta(seconds=SIZING.seconds + SIZING.grace_seconds)
    assert ask(state, "d/1", after, min_usd="0.20", conversation="d")
    assert state.expired == {"c/1": Decimal("0.45")}
    state.report(LeaseReport(lease_id="c/1", spent_usd=Decimal("0.05")), after)
    assert state.spent_usd == Decimal("0.05") and not state.expired


def test_a_tenant_without_limits_gets_unlimited_leases() -> None:
    state = GovernorState(
        tenant="acme", limits=TenantLimits(daily_usd=None, model_calls_per_minute=None)
    )
    lease = ask(state, "c/1", T0, min_usd="1000")
    assert lease and lease.unlimited and lease.covers(Decimal("1000"), T0.timestamp())
    assert not lease.covers(Decimal(0), T0.timestamp() + SIZING.seconds)


def test_a_held_lease_covers_calls_until_it_runs_out_or_expires() -> None:
    lease = HeldLease(lease_id="c/1", calls_left=2, usd_left=Decimal("0.30"), expires_at=100)
    assert lease.covers(Decimal("0.30"), 99) and not lease.covers(Decimal("0.31"), 99)
    lease.take(Decimal("0.20"))
    assert lease.report() == LeaseReport(lease_id="c/1", spent_usd=Decimal("0.20"), calls_used=1)
    lease.settle(Decimal("0.20"), Decimal("0.05"))
    assert lease.usd_left == Decimal("0.25") and lease.spent_usd == Decimal("0.05")
    lease.take(Decimal("0.01"))
    assert not lease.covers(Decimal(0), 50)  # no calls left
    assert not HeldLease(lease_id="x", expires_at=100).covers(Decimal(0), 100)


def test_governor_state_with_leases_survives_a_json_round_trip() -> None:
    state = GovernorState(tenant="acme")
    ask(state, "c/1", T0)
    copy = GovernorState.model_validate_json(state.model_dump_json())
    assert copy == state and set(copy.leases) == {"c/1"}


def test_lent_calls_count_against_the_burst_until_their_lease_expires() -> None:
    limits = TenantLimits(daily_usd=None, model_calls_per_minute=30, burst=4)
    state = GovernorState(tenant="acme", limits=limits)
    first = ask(state, "c/1", T0)  # half the bucket, for 60 s
    assert first and first.calls_left == 2 and first.expires_at == T0.timestamp() + 60
    # Eight seconds later the bucket would be full again, but the two lent calls may
    # still be made now: only two more can start at the same moment.
    later = T0 + timedelta(seconds=8)
    more = [ask(state, f"d{n}/1", later, conversation=f"d{n}") for n in range(4)]
    assert sum(lease.calls_left or 0 for lease in more if lease) == 2
    # Lent calls hold the bucket down until their lease expires, used or not; an
    # unused lent call reported before then goes back to the bucket.
    state.report(first.report(), later)
    again = ask(state, "c/2", later)
    assert again and again.calls_left == 1 and state.bucket_tokens == 1.0
    # After an expiry the lease's calls no longer count and its report returns nothing.
    after = later + timedelta(seconds=60)
    state.report(again.report(), after)
    assert state.bucket_tokens == 4.0 and not any(
        held.expires_at > after.timestamp() for held in state.leases.values()
    )


def test_idle_leases_do_not_keep_a_new_conversation_from_a_call() -> None:
    """Fifty conversations take leases at once and sit idle (never reporting, as if
    their worker were gone); a new conversation that waits as told gets a call within
    the bucket's refill time (burst / rate = 6 s)."""
    state = GovernorState(tenant="acme", limits=TenantLimits(daily_usd=None))  # 600/min, 60
    sizing = LeaseSizing()  # 16 calls, 60 s
    for n in range(50):
        state.lease(LeaseRequest(tenant="acme", conversation_id=f"c{n}", lease_id=f"c{n}/1",
                                 sizing=sizing), T0)  # fmt: skip
    lent = sum(held.calls or 0 for held in state.leases.values())
    assert lent == 60 and state.bucket_tokens == 0  # the whole burst is lent out
    long = [held.calls for held in state.leases.values() if held.expires_at == T0.timestamp() + 60]
    assert sum(filter(None, long)) <= 30  # long leases hold at most half the burst
    waited = _wait_for_a_call(state, "new", T0)
    assert 0 < waited <= 6.0


def _wait_for_a_call(state: GovernorState, who: str, now: datetime) -> float:
    """Ask for a lease and wait as told until one is granted; seconds waited."""
    start = now
    for attempt in range(100):
        grant = state.lease(LeaseRequest(tenant="acme", conversation_id=who,
                                         lease_id=f"{who}/{attempt}"), now)  # fmt: skip
        if grant.granted:
            return (now - start).total_seconds()
        assert grant.reason == "rate_limited" and grant.retry_after_seconds > 0
        now += timedelta(seconds=grant.retry_after_seconds + 1e-6)
    raise AssertionError("no lease after 100 attempts")


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=1, max_value=20),  # burst
    st.sampled_from([6.0, 30.0, 600.0, 6000.0]),  # calls per minute
    st.lists(
        st.tuples(st.floats(min_value=0, max_value=3), st.booleans()),  # gap, reports
        max_size=60,
    ),
)
def test_a_new_conversation_waits_at_most_a_short_lease_and_one_call(
    burst: int, per_minute: float, idle: list[tuple[float, bool]]
) -> None:
    """Whatever idle conversations hold (they took a lease, maybe used a call, maybe
    reported), a new one that waits as told gets a call within min(5 s, the bucket's
    refill time; at least 1 s) plus one call's refill."""
    limits = TenantLimits(daily_usd=None, model_calls_per_minute=per_minute, burst=burst)
    state = GovernorState(tenant="acme", limits=limits)
    now = T0
    for n, (gap, reports) in enumerate(idle):
        now += timedelta(seconds=gap)
        lease = ask(state, f"c{n}/1", now, conversation=f"c{n}")
        if lease and reports:
            lease.take(Decimal(0))
            state.report(lease.report(), now)
    rate = per_minute / 60
    bound = min(5.0, max(1.0, burst / rate)) + 1 / rate
    assert _wait_for_a_call(state, "new", now) <= bound + 1e-3


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=3),  # which conversation acts
            st.floats(min_value=0, max_value=40),  # seconds since the previous step
            st.decimals(min_value=0, max_value=Decimal("0.5"), places=2),  # worst case
            st.floats(min_value=0, max_value=1),  # actual as a fraction of worst case
            st.booleans(),  # whether the conversation reports when its lease is done
        ),
        max_size=80,
    )
)
def test_spend_never_exceeds_the_daily_budget_nor_calls_the_rate(steps: list) -> None:
    limits = TenantLimits(daily_usd=Decimal("3"), model_calls_per_minute=30, burst=4)
    state = GovernorState(tenant="acme", limits=limits)
    held: dict[int, HeldLease | None] = {}
    unreported = Decimal(0)  # spend of leases dropped without a report (orphans)
    spent = Decimal(0)
    calls: list[datetime] = []
    now = T0
    for n, (who, gap, worst, fraction, reports) in enumerate(steps):
        now += timedelta(seconds=gap)
        lease = held.get(who)
        if lease is None or not lease.covers(worst, now.timestamp()):
            previous = lease.report() if lease and reports else None
            if lease and not reports:
                unreported += lease.spent_usd  # an orphan: never reported
            lease = ask(state, f"{who}/{n}", now, min_usd=str(worst), previous=previous,
                        conversation=str(who))  # fmt: skip
            held[who] = lease
            if lease is None:
                continue
        lease.take(worst)
        actual = (worst * Decimal(str(fraction))).quantize(Decimal("0.0001"))
        lease.settle(worst, actual)
        spent += actual
        calls.append(now)
        # What the governor knows is never over the budget; the spend it does not know
        # of is only that of leases nobody reported (orphans), at most one lease each.
        assert state.committed_usd() <= limits.daily_usd
        assert spent <= limits.daily_usd + unreported
    # Calls in any window of w seconds: at most burst + w * rate.
    for i, start in enumerate(calls):
        for j in range(i, len(calls)):
            window = (calls[j] - start).total_seconds()
            assert j - i + 1 <= 4 + window * 0.5 + 1e-6
