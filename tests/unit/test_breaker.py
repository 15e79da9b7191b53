"""The circuit breaker: every transition, and a property test against a reference model."""

from __future__ import annotations

from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from durable_agent.breaker import BreakerConfig, BreakerState, CircuitBreaker

DEFAULT = BreakerConfig()
T0 = 1_000.0


def state(breaker: CircuitBreaker) -> BreakerState:
    """The automatic state (a call, so mypy does not keep an earlier assert's narrowing)."""
    return breaker.state


def failing(n: int, config: BreakerConfig = DEFAULT, now: float = T0) -> CircuitBreaker:
    breaker = CircuitBreaker()
    for _ in range(n):
        breaker.record_failure(config, now)
    return breaker


def test_defaults() -> None:
    assert (DEFAULT.failure_threshold, DEFAULT.cooldown_seconds) == (5, 60.0)
    assert (DEFAULT.success_threshold, DEFAULT.window_size) == (2, 20)
    assert (DEFAULT.minimum_calls, DEFAULT.failure_rate_threshold) == (10, 0.5)
    breaker = CircuitBreaker()
    assert state(breaker) == "closed" and breaker.allows(DEFAULT, T0)


@pytest.mark.parametrize(
    "bad",
    [
        {"failure_threshold": 0},
        {"cooldown_seconds": -1},
        {"cooldown_seconds": float("inf")},
        {"success_threshold": 0},
        {"window_size": 0},
        {"minimum_calls": 0},
        {"minimum_calls": 21},  # larger than the window: the rate rule could never apply
        {"failure_rate_threshold": 0},
        {"failure_rate_threshold": 1.01},
        {"unknown": 1},
    ],
)
def test_config_rejects_out_of_range_values(bad: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        BreakerConfig.model_validate(bad)


def test_five_consecutive_failures_open_it() -> None:
    breaker = failing(4)
    assert state(breaker) == "closed" and breaker.consecutive_failures == 4
    breaker.record_failure(DEFAULT, T0 + 1)
    assert state(breaker) == "open" and breaker.opened_at == T0 + 1 and breaker.opened_count == 1
    assert not breaker.allows(DEFAULT, T0 + 1)


def test_a_success_resets_the_consecutive_count() -> None:
    breaker = failing(4)
    breaker.record_success(DEFAULT, T0)
    assert breaker.consecutive_failures == 0 and breaker.window == [True] * 4 + [False]
    breaker.record_failure(DEFAULT, T0)
    assert state(breaker) == "closed"


def test_failure_rate_opens_it_once_the_window_holds_minimum_calls() -> None:
    config = BreakerConfig(failure_threshold=100, window_size=10, minimum_calls=6)
    breaker = CircuitBreaker()
    for failed in [True, False, True, False, True]:  # 60 % but only 5 calls
        (breaker.record_failure if failed else breaker.record_success)(config, T0)
    assert state(breaker) == "closed"
    breaker.record_success(config, T0)  # 6 calls, 50 %: a success never opens it
    assert state(breaker) == "closed"
    breaker.record_failure(config, T0)  # 7 calls, 4 failures
    assert state(breaker) == "open"


def test_the_window_slides() -> None:
    config = BreakerConfig(failure_threshold=3, window_size=4, minimum_calls=4)
    breaker = failing(2, config)
    for _ in range(3):
        breaker.record_success(config, T0)
    assert breaker.window == [True, False, False, False]  # the oldest failure slid out
    breaker.record_failure(config, T0)  # [F, F, F, T]: 25 %
    assert state(breaker) == "closed" and len(breaker.window) == 4
    breaker.record_failure(config, T0)  # [F, F, T, T]: 50 %, only 2 in a row
    assert state(breaker) == "open" and breaker.consecutive_failures == 2


def test_cooldown_then_two_probe_successes_close_it() -> None:
    breaker = failing(5)
    assert not breaker.allows(DEFAULT, T0 + 59.9) and state(breaker) == "open"
    assert breaker.effective_state(DEFAULT, T0 + 60) == "half_open"
    assert state(breaker) == "open"  # effective_state does not mutate
    assert breaker.allows(DEFAULT, T0 + 60) and state(breaker) == "half_open"
    assert breaker.allows(DEFAULT, T0 + 60)  # concurrent probes are allowed
    breaker.record_success(DEFAULT, T0 + 61)
    assert state(breaker) == "half_open" and breaker.half_open_successes == 1
    breaker.record_success(DEFAULT, T0 + 62)
    assert state(breaker) == "closed" and breaker.opened_at is None
    assert breaker.window == [] and breaker.consecutive_failures == 0
    assert breaker.opened_count == 1


def test_a_failed_probe_reopens_it() -> None:
    breaker = failing(5)
    assert breaker.allows(DEFAULT, T0 + 60)
    breaker.record_success(DEFAULT, T0 + 61)
    breaker.record_failure(DEFAULT, T0 + 62)
    assert state(breaker) == "open" and breaker.opened_at == T0 + 62
    assert breaker.half_open_successes == 0 and breaker.opened_count == 2
    assert not breaker.allows(DEFAULT, T0 + 121) and breaker.allows(DEFAULT, T0 + 122)


def test_stragglers_while_open_are_only_recorded() -> None:
    breaker = failing(5)
    breaker.record_success(DEFAULT, T0 + 1)
    breaker.record_success(DEFAULT, T0 + 2)
    breaker.record_failure(DEFAULT, T0 + 3)
    assert state(breaker) == "open" and breaker.opened_at == T0 and breaker.opened_count == 1
    assert breaker.consecutive_failures == 5 and breaker.window[-3:] == [False, False, True]
    # A straggler is recorded as such even after the cooldown, until allows() moves it.
    breaker.record_success(DEFAULT, T0 + 100)
    assert state(breaker) == "open" and breaker.half_open_successes == 0


def test_forced_open_refuses_and_does_not_cool_down() -> None:
    breaker = CircuitBreaker()
    breaker.force("open", T0)
    assert state(breaker) == "open" and breaker.opened_at == T0 and breaker.opened_count == 1
    assert not breaker.allows(DEFAULT, T0 + 1_000) and state(breaker) == "open"
    assert breaker.effective_state(DEFAULT, T0 + 1_000) == "open"
    breaker.force("open", T0 + 5)  # already open: restarts the cooldown, no new opening
    assert breaker.opened_at == T0 + 5 and breaker.opened_count == 1
    breaker.force(None, T0 + 10)  # automatic again: open since T0 + 5
    assert not breaker.allows(DEFAULT, T0 + 64) and breaker.allows(DEFAULT, T0 + 65)


def test_forced_closed_allows_and_resets() -> None:
    breaker = failing(5)
    breaker.force("closed", T0 + 1)
    assert state(breaker) == "closed" and breaker.window == [] and breaker.opened_at is None
    assert breaker.consecutive_failures == 0 and breaker.opened_count == 1
    for i in range(6):  # outcomes are still tracked while forced
        breaker.record_failure(DEFAULT, T0 + 2 + i)
    assert state(breaker) == "open" and breaker.opened_at == T0 + 6
    assert breaker.allows(DEFAULT, T0 + 7) and breaker.effective_state(DEFAULT, T0 + 7) == "closed"
    breaker.force(None, T0 + 8)
    assert breaker.effective_state(DEFAULT, T0 + 8) == "open"
    assert not breaker.allows(DEFAULT, T0 + 8)


def test_a_changed_config_applies_to_an_existing_breaker() -> None:
    breaker = failing(3)
    strict = BreakerConfig(failure_threshold=3, cooldown_seconds=5)
    breaker.record_failure(strict, T0)
    assert state(breaker) == "open" and breaker.allows(strict, T0 + 5)


def test_snapshot() -> None:
    breaker = CircuitBreaker()
    empty = breaker.snapshot(DEFAULT, T0)
    assert empty.state == "closed" and empty.failure_rate == 0.0 and empty.window_calls == 0
    assert empty.seconds_until_half_open is None and empty.opened_at is None

    breaker.record_success(DEFAULT, T0)
    for _ in range(5):
        breaker.record_failure(DEFAULT, T0)
    status = breaker.snapshot(DEFAULT, T0 + 20)
    assert status.state == "open" and status.forced is None
    assert status.consecutive_failures == 5 and status.window_calls == 6
    assert status.failure_rate == 5 / 6 and status.opened_at == T0
    assert status.seconds_until_half_open == 40.0 and status.opened_count == 1

    assert breaker.snapshot(DEFAULT, T0 + 60).state == "half_open"
    assert breaker.snapshot(DEFAULT, T0 + 60).seconds_until_half_open is None
    breaker.force("open", T0 + 61)
    forced = breaker.snapshot(DEFAULT, T0 + 62)
    assert forced.state == "open" and forced.forced == "open"
    assert forced.seconds_until_half_open is None
    # A window longer than a newly shrunk window_size is read from its most recent end.
    narrow = BreakerConfig(window_size=2, minimum_calls=1)
    assert breaker.snapshot(narrow, T0).failure_rate == 1.0


def test_json_round_trip_behaves_the_same() -> None:
    breaker = failing(5)
    breaker.allows(DEFAULT, T0 + 60)
    breaker.record_success(DEFAULT, T0 + 61)
    copy = CircuitBreaker.model_validate_json(breaker.model_dump_json())
    assert copy == breaker and state(copy) == "half_open"
    for b in (breaker, copy):
        b.record_success(DEFAULT, T0 + 62)
    assert copy == breaker and state(copy) == "closed"
    config = BreakerConfig(window_size=7, minimum_calls=3, failure_rate_threshold=0.25)
    assert BreakerConfig.model_validate_json(config.model_dump_json()) == config


def test_an_open_breaker_without_a_time_is_invalid() -> None:
    with pytest.raises(ValidationError):
        CircuitBreaker.model_validate({"state": "open"})


# --- property test against a reference model -------------------------------------------


class Reference:
    """The spec written the obvious way: counts are recomputed from full outcome lists
    (no window trimming, no counters kept in step)."""

    def __init__(self, config: BreakerConfig) -> None:
        self.config = config
        self.phase: BreakerState = "closed"
        self.since_closed: list[bool] = []  # every outcome since it last closed
        self.probe_successes = 0
        self.opened_at = 0.0
        self.openings = 0
        self.forced: Literal["open", "closed"] | None = None

    def cooled(self, now: float) -> bool:
        return self.phase == "open" and now - self.opened_at >= self.config.cooldown_seconds

    def effective(self, now: float) -> BreakerState:
        if self.forced:
            return self.forced
        return "half_open" if self.cooled(now) else self.phase

    def allows(self, now: float) -> bool:
        if self.forced:
            return self.forced == "closed"
        if self.cooled(now):
            self.phase, self.probe_successes = "half_open", 0
        return self.phase != "open"

    def trailing_failures(self) -> int:
        run = 0
        for failed in reversed(self.since_closed):
            if not failed:
                break
            run += 1
        return run

    def window(self) -> list[bool]:
        return self.since_closed[-self.config.window_size :]

    def should_open(self) -> bool:
        c, window = self.config, self.window()
        by_rate = len(window) >= c.minimum_calls
        by_rate = by_rate and window.count(True) / len(window) >= c.failure_rate_threshold
        return self.trailing_failures() >= c.failure_threshold or by_rate

    def open(self, now: float) -> None:
        if self.phase != "open":
            self.openings += 1
        self.phase, self.opened_at = "open", now

    def close(self) -> None:
        self.phase, self.since_closed = "closed", []

    def outcome(self, failed: bool, now: float) -> None:
        if self.phase == "closed":
            self.since_closed.append(failed)
            if failed and self.should_open():  # only a failure can open it
                self.open(now)
        elif self.phase == "half_open":
            if failed:
                self.open(now)
            else:
                self.probe_successes += 1
                if self.probe_successes >= self.config.success_threshold:
                    self.close()

    def force(self, mode: Literal["open", "closed"] | None, now: float) -> None:
        self.forced = mode
        if mode == "open":
            self.open(now)
        elif mode == "closed":
            self.close()


configs = st.builds(
    lambda ft, cd, st_, ws, mc_frac, rate: BreakerConfig(
        failure_threshold=ft,
        cooldown_seconds=cd,
        success_threshold=st_,
        window_size=ws,
        minimum_calls=max(1, round(ws * mc_frac)),
        failure_rate_threshold=rate,
    ),
    st.integers(1, 6),
    st.sampled_from([0.0, 1.0, 5.0, 60.0]) | st.floats(0, 30),
    st.integers(1, 4),
    st.integers(1, 12),
    st.floats(0, 1),
    st.sampled_from([0.1, 0.25, 1 / 3, 0.5, 0.75, 1.0]) | st.floats(0.01, 1.0),
)
# Steps are drawn from a fixed list (cheap to generate); together with the sampled
# cooldowns they land exactly on a cooldown's end, and the big ones jump far past it.
STEPS = [0.0, 0.5, 1.0, 2.5, 5.0, 60.0, 500.0]
OPERATIONS: list[tuple[str, object]] = [
    *[(kind, None) for kind in ["allows", "success", "failure"] for _ in range(4)],
    *[("advance", step) for step in STEPS],
    *[("force", mode) for mode in ["open", "closed", None, None]],
    ("roundtrip", None),
]
ops = st.lists(st.sampled_from(OPERATIONS), min_size=30, max_size=100)


@settings(max_examples=300, deadline=None)
@given(config=configs, operations=ops)
def test_agrees_with_the_reference_model(
    config: BreakerConfig, operations: list[tuple[str, object]]
) -> None:
    breaker, twin, ref = CircuitBreaker(), CircuitBreaker(), Reference(config)
    now = T0
    for kind, arg in operations:
        if kind == "allows":
            predicted = breaker.effective_state(config, now)
            allowed = breaker.allows(config, now)
            assert allowed == ref.allows(now) == twin.allows(config, now)
            assert allowed == (predicted != "open")
            assert breaker.forced is not None or state(breaker) == predicted
        elif kind in ("success", "failure"):
            for b in (breaker, twin):
                (b.record_failure if kind == "failure" else b.record_success)(config, now)
            ref.outcome(kind == "failure", now)
        elif kind == "roundtrip":
            breaker = CircuitBreaker.model_validate_json(breaker.model_dump_json())
        elif kind == "advance":
            assert isinstance(arg, float)
            now += arg
        elif kind == "force":
            assert arg in ("open", "closed", None)
            for b in (breaker, twin):
                b.force(arg, now)
            ref.force(arg, now)

        assert breaker == twin  # round trips change nothing
        assert breaker.effective_state(config, now) == ref.effective(now)
        assert breaker.state == ref.phase and breaker.forced == ref.forced
        assert breaker.opened_count == ref.openings
        assert len(breaker.window) <= config.window_size
        assert state(breaker) == "closed" or breaker.opened_at is not None
        status = breaker.snapshot(config, now)
        assert status.state == ref.effective(now) and 0.0 <= status.failure_rate <= 1.0
        if state(breaker) == "closed":
            assert breaker.window == ref.window()
            assert breaker.consecutive_failures == ref.trailing_failures()
        else:
            assert breaker.opened_at == ref.opened_at
        if state(breaker) == "half_open":
            assert breaker.half_open_successes == ref.probe_successes
