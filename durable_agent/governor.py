"""Per-tenant limits shared by all of a tenant's conversations: a daily dollar budget
and a token-bucket rate limit on model calls.

Pure decision logic (time passed in, no I/O) held by one long-lived
``TenantGovernorWorkflow`` per tenant, which every conversation asks before each model
call. Serialisable, so it survives crashes and continue-as-new exactly.

A grant reserves the call's worst-case cost until the conversation settles it with the
actual cost, so concurrent conversations cannot jointly overspend the day's budget.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

GOVERNOR_ACTIVITY = "governor.acquire"
"""Registered name of the activity that asks a tenant's governor for a permit."""


def governor_id(tenant: str) -> str:
    """Workflow id of a tenant's governor."""
    return f"tenant-governor:{tenant}"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TenantLimits(_Model):
    """A tenant's limits; ``None`` means unlimited."""

    daily_usd: Decimal | None = Field(default=Decimal("100"), ge=0)
    """US dollars all of the tenant's conversations may spend per UTC day."""
    model_calls_per_minute: float | None = Field(default=600.0, gt=0)
    """Sustained rate of model calls across the tenant's conversations."""
    burst: int = Field(default=60, ge=1)
    """Model calls allowed at once before the rate applies (the bucket's size)."""


class PermitRequest(_Model):
    """A conversation asks to make one model call."""

    tenant: str
    conversation_id: str
    reservation_id: str
    """Unique per model call and stable across retries: asking twice is answered once."""
    reserved_usd: Decimal = Decimal(0)
    """The call's worst-case cost."""
    limits: TenantLimits | None = None
    """Set by the activity from the worker's configuration; the latest one applies."""


class PermitDecision(_Model):
    """The governor's answer."""

    granted: bool
    reason: Literal["ok", "rate_limited", "daily_budget"] = "ok"
    retry_after_seconds: float = 0.0
    """When asking again may succeed (rate limit), or the time until the day rolls over."""
    message: str = ""


class Settlement(_Model):
    """After the call: what it really cost (releases the reservation)."""

    reservation_id: str
    actual_usd: Decimal


class GovernorState(_Model):
    """Everything a governor knows; carried across continue-as-new."""

    tenant: str
    limits: TenantLimits = TenantLimits()
    day: str = ""
    """UTC date (``YYYY-MM-DD``) that ``spent_usd`` belongs to."""
    spent_usd: Decimal = Decimal(0)
    reservations: dict[str, Decimal] = {}
    """Granted calls not yet settled: reservation id → worst-case cost."""
    bucket_tokens: float = -1.0
    """Tokens in the bucket; negative means full (not yet used)."""
    bucket_updated_at: float = 0.0
    granted: int = 0
    denied: int = 0

    def acquire(self, request: PermitRequest, now: datetime) -> PermitDecision:
        """Grant or refuse one model call at ``now`` (UTC)."""
        if request.limits is not None:
            self.limits = request.limits
        self._roll_day(now)
        if request.reservation_id in self.reservations:
            return PermitDecision(granted=True, message="already granted")
        limits = self.limits
        if limits.daily_usd is not None:
            committed = self.spent_usd + sum(self.reservations.values(), Decimal(0))
            if committed + request.reserved_usd > limits.daily_usd:
                self.denied += 1
                midnight = datetime(now.year, now.month, now.day, tzinfo=now.tzinfo) + timedelta(
                    days=1
                )
                return PermitDecision(
                    granted=False,
                    reason="daily_budget",
                    retry_after_seconds=(midnight - now).total_seconds(),
                    message=(
                        f"tenant {self.tenant!r} daily budget: limit {limits.daily_usd} USD, "
                        f"spent {self.spent_usd}, reserved {committed - self.spent_usd}, "
                        f"this call may cost up to {request.reserved_usd}"
                    ),
                )
        wait = self._take_token(now.timestamp())
        if wait > 0:
            self.denied += 1
            return PermitDecision(
                granted=False,
                reason="rate_limited",
                retry_after_seconds=wait,
                message=(
                    f"tenant {self.tenant!r} is over {limits.model_calls_per_minute} model "
                    f"calls per minute; retry in {wait:.2f}s"
                ),
            )
        self.reservations[request.reservation_id] = request.reserved_usd
        self.granted += 1
        return PermitDecision(granted=True)

    def settle(self, settlement: Settlement, now: datetime) -> None:
        """Replace a reservation by the actual cost (unknown ids still count)."""
        self._roll_day(now)
        self.reservations.pop(settlement.reservation_id, None)
        self.spent_usd += settlement.actual_usd

    def _roll_day(self, now: datetime) -> None:
        today = now.date().isoformat()
        if today != self.day:
            self.day = today
            self.spent_usd = Decimal(0)

    def _take_token(self, now: float) -> float:
        """Take one token; 0 if taken, else seconds until one is available."""
        rate_per_minute = self.limits.model_calls_per_minute
        if rate_per_minute is None:
            return 0.0
        rate = rate_per_minute / 60.0
        capacity = float(self.limits.burst)
        if self.bucket_tokens < 0:
            tokens = capacity
        else:
            elapsed = max(0.0, now - self.bucket_updated_at)
            tokens = min(capacity, self.bucket_tokens + elapsed * rate)
        self.bucket_updated_at = now
        if tokens >= 1.0:
            self.bucket_tokens = tokens - 1.0
            return 0.0
        self.bucket_tokens = tokens
        return (1.0 - tokens) / rate
