"""A circuit breaker per dependency, as a pure state machine.

Time is a float ``now`` in seconds passed in by the caller (the workflow passes
``workflow.now().timestamp()``): no clock, no I/O, no Temporal. A breaker is a pydantic
model, so it lives in workflow state, crosses continue-as-new and is identical after
replay. The configuration is passed to every call instead of being stored, so a changed
configuration applies to existing breakers.

              failure_threshold consecutive failures, or a failure
              rate >= failure_rate_threshold over >= minimum_calls
    +--------+ --------------------------------------------> +------+
    | closed |                                               | open | <------+
    +--------+ <------------+                                +------+        |
                            |                                   |            |
                            |                   allows() once   |            |
                            |                   cooldown_seconds|            |
                            |                   have passed     v            |
                            |  success_threshold          +-----------+      |
                            +------- successes ---------- | half_open | -----+
                                                          +-----------+  one failure

Outcomes that arrive while open (calls started before it opened) are only recorded.
An operator can force it open (every call refused) or closed (every call allowed; the
automatic state restarts from closed); outcomes are still recorded while forced, but
``allows`` moves nothing, and ``force(None)`` resumes from the automatic state.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

BreakerState = Literal["closed", "open", "half_open"]
ForcedMode = Literal["open", "closed"]


class BreakerConfig(BaseModel):
    """When a breaker opens and how it recovers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    failure_threshold: int = Field(default=5, ge=1)
    """Consecutive failures that open a closed breaker."""
    cooldown_seconds: float = Field(default=60.0, ge=0, allow_inf_nan=False)
    """How long an open breaker refuses calls before it lets probes through (half-open)."""
    success_threshold: int = Field(default=2, ge=1)
    """Successful probes in half-open that close the breaker."""
    window_size: int = Field(default=20, ge=1, le=1000)
    """How many of the most recent outcomes the failure-rate rule looks at. Bounded
    because the window lives in workflow state."""
    minimum_calls: int = Field(default=10, ge=1)
    """The failure-rate rule applies only once the window holds at least this many
    outcomes; at most ``window_size``, or the rule could never apply."""
    failure_rate_threshold: float = Field(default=0.5, gt=0, le=1)
    """Open when failures / outcomes in the window reach this (given ``minimum_calls``).
    1.0 opens only on a window of nothing but failures; with ``minimum_calls >=
    failure_threshold`` the consecutive rule always fires first, which turns this off."""

    @model_validator(mode="after")
    def _minimum_fits_window(self) -> BreakerConfig:
        if self.minimum_calls > self.window_size:
            raise ValueError(
                f"minimum_calls ({self.minimum_calls}) must not exceed "
                f"window_size ({self.window_size})"
            )
        return self


class BreakerStatus(BaseModel):
    """A breaker as the ``status`` query shows it."""

    model_config = ConfigDict(extra="forbid")

    state: BreakerState
    """The effective state: what ``allows`` would act on now, an override included."""
    forced: ForcedMode | None = None
    """The operator override, if any."""
    consecutive_failures: int = 0
    failure_rate: float = 0.0
    """Failures / outcomes in the window; 0.0 when it is empty."""
    window_calls: int = 0
    """Outcomes in the window."""
    opened_at: float | None = None
    """When it last opened (seconds, the caller's clock)."""
    seconds_until_half_open: float | None = None
    """Only while (effectively, automatically) open."""
    opened_count: int = 0
    """Times it has opened."""


class CircuitBreaker(BaseModel):
    """One dependency's breaker; the workflow mutates it in place."""

    model_config = ConfigDict(extra="forbid")

    state: BreakerState = "closed"
    """The automatic state; ``forced`` overrides what it allows."""
    consecutive_failures: int = Field(default=0, ge=0)
    """Failures in a row while closed (outcomes while open or half-open leave it alone)."""
    window: list[bool] = []
    """The most recent outcomes, oldest first, True for a failure; cleared on closing."""
    opened_at: float | None = None
    """When it last opened; ``None`` while closed."""
    half_open_successes: int = Field(default=0, ge=0)
    """Successful probes since it went half-open."""
    forced: ForcedMode | None = None
    """Operator override; ``None`` is automatic behaviour."""
    opened_count: int = Field(default=0, ge=0)
    """Times it has opened (for status and metrics)."""

    @model_validator(mode="after")
    def _open_has_a_time(self) -> CircuitBreaker:
        if self.state != "closed" and self.opened_at is None:
            raise ValueError(f"a {self.state} breaker needs opened_at")
        return self

    def allows(self, config: BreakerConfig, now: float) -> bool:
        """Whether a call may go ahead now. Mutates: an open breaker whose cooldown has
        passed becomes half-open here, and then lets every call through as a probe
        (the workflow may run several at once). While forced, nothing moves."""
        if self.forced is not None:
            return self.forced == "closed"
        if self._cooled_down(config, now):
            self.state = "half_open"  # half_open_successes was zeroed on opening
        return self.state != "open"

    def record_success(self, config: BreakerConfig, now: float) -> None:
        """A call succeeded. ``now`` is unused; it is taken for symmetry."""
        self._remember(False, config)
        if self.state == "closed":
            self.consecutive_failures = 0
        elif self.state == "half_open":
            self.half_open_successes += 1
            if self.half_open_successes >= config.success_threshold:
                self._close()

    def record_failure(self, config: BreakerConfig, now: float) -> None:
        """A call failed: may open a closed breaker, and reopens a half-open one."""
        self._remember(True, config)
        if self.state == "closed":
            self.consecutive_failures += 1
            if self.consecutive_failures >= config.failure_threshold or self._rate_trips(config):
                self._open(now)
        elif self.state == "half_open":
            self._open(now)

    def force(self, mode: ForcedMode | None, now: float) -> None:
        """Operator override. ``"closed"`` also restarts the automatic state from closed;
        ``"open"`` opens it now; ``None`` returns to automatic behaviour from there."""
        self.forced = mode
        if mode == "closed":
            self._close()
        elif mode == "open":
            self._open(now)

    def effective_state(self, config: BreakerConfig, now: float) -> BreakerState:
        """The state ``allows`` would act on now, without changing anything."""
        if self.forced is not None:
            return self.forced
        return "half_open" if self._cooled_down(config, now) else self.state

    def snapshot(self, config: BreakerConfig, now: float) -> BreakerStatus:
        """What the ``status`` query shows."""
        window = self.window[-config.window_size :]
        state = self.effective_state(config, now)
        until = None
        if state == "open" and self.forced is None and self.opened_at is not None:
            until = self.opened_at + config.cooldown_seconds - now
        return BreakerStatus(
            state=state,
            forced=self.forced,
            consecutive_failures=self.consecutive_failures,
            failure_rate=sum(window) / len(window) if window else 0.0,
            window_calls=len(window),
            opened_at=self.opened_at,
            seconds_until_half_open=until,
            opened_count=self.opened_count,
        )

    def _cooled_down(self, config: BreakerConfig, now: float) -> bool:
        return (
            self.state == "open"
            and self.opened_at is not None
            and now - self.opened_at >= config.cooldown_seconds
        )

    def _rate_trips(self, config: BreakerConfig) -> bool:
        n = len(self.window)  # just trimmed to window_size
        return n >= config.minimum_calls and sum(self.window) / n >= config.failure_rate_threshold

    def _remember(self, failed: bool, config: BreakerConfig) -> None:
        self.window.append(failed)
        del self.window[: -config.window_size]

    def _open(self, now: float) -> None:
        if self.state != "open":  # forcing an open breaker open again is no new opening
            self.opened_count += 1
        self.state, self.opened_at, self.half_open_successes = "open", now, 0

    def _close(self) -> None:
        self.state, self.opened_at = "closed", None
        self.consecutive_failures = self.half_open_successes = 0
        self.window = []
