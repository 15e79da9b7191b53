"""Per-tenant limits shared by all of a tenant's conversations: a daily dollar budget
and a token-bucket rate limit on model calls.

Pure decision logic (time passed in, no I/O) held by one long-lived
``TenantGovernorWorkflow`` per tenant. Serialisable, so it survives crashes and
continue-as-new exactly.

**Leases** (conversations recorded since ``governor-lease``): a conversation asks the
governor for a lease — up to N model calls and $X, until T — and spends it in its own
workflow state, one model call at a time, with no round trip. It asks again when the
lease runs out or expires, reporting what it spent in the same request; it reports
(``release``) when the lease expires while it holds it and when it ends. A lease's
dollars count against the day's budget from grant to report; its calls are taken from
the token bucket at grant and, since they may be made at any moment until the lease
expires, count against the bucket's size until then (the bucket refills only up to the
burst less the calls lent out; unused ones return on a report before expiry). So the
day's budget and the rate hold exactly; to keep idle leases from holding the bucket
down, leases are short once more than half of the burst is lent out. A lease never
reported (its conversation was terminated) returns to the tenant's budget
``grace_seconds`` after it expires, as if unspent; spend reported after that still
counts. Tenants with no limits never reach the governor (``unlimited_lease``).

**Permits** (older conversations): one grant per model call reserving its worst-case
cost until the conversation settles it with the actual cost.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from durable_agent.token_bucket import refill_lent, wait_lent

LEASE_SHARE = 2
"""A lease takes at most 1/(this + open leases) of the dollars left today and of the
tokens in the bucket: the more conversations hold leases, the smaller a new one (down to
one call), instead of a few conversations holding everything."""
CALLS_PER_LEASE = 4
"""A lease covers at least this many calls of the next call's worst case, if the day's
share allows: a long conversation (a large worst case) still renews every few calls."""

PRESSED_LEASE_SECONDS = 5.0
"""Lease lifetime once more than half the day's budget is committed: lent money comes
back sooner (conversations report a lease when it expires). Also the longest lifetime
once more than half the burst is lent out: lent calls hold the bucket down until their
lease expires, used or not, so an idle conversation's are back within this."""
MIN_PRESSED_LEASE_SECONDS = 1.0
"""The shortest lifetime of a lease shortened for the rate (the bucket's refill time,
``burst / rate``, when that is shorter than ``PRESSED_LEASE_SECONDS``): the
conversation must still receive the lease and start a call on it."""

MAX_EXPIRED_KEPT = 1_000
"""Unreported, returned leases remembered for a late report (oldest forgotten first)."""

GOVERNOR_ACTIVITY = "governor.acquire"
"""Registered name of the activity that asks a tenant's governor for a permit."""
LEASE_ACTIVITY = "governor.lease"
"""Registered name of the (local) activity that asks a tenant's governor for a lease."""


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


class LeaseSizing(_Model):
    """How big a lease the governor grants; from the worker's configuration."""

    calls: int = Field(default=16, ge=1)
    """Model calls per lease (fewer when the token bucket holds fewer)."""
    usd: Decimal = Field(default=Decimal("0.50"), gt=0)
    """Dollars per lease (more if the next call's worst case needs it; less near the
    end of the day's budget)."""
    seconds: float = Field(default=60.0, gt=0)
    """How long a lease may be spent from."""
    grace_seconds: float = Field(default=900.0, ge=0)
    """After expiry, how long an unreported lease still counts against the budget (a
    model call started just before expiry may run this long)."""


class LeaseReport(_Model):
    """What a conversation did with a lease."""

    lease_id: str
    spent_usd: Decimal = Field(default=Decimal(0), ge=0)
    """Actual spend, plus the worst case of any call still running (conservative)."""
    calls_used: int = Field(default=0, ge=0)


class LeaseRequest(_Model):
    """A conversation asks for a lease (and reports the one it held)."""

    tenant: str
    conversation_id: str
    lease_id: str
    """Unique per lease and stable across retries: asking twice is answered once."""
    min_usd: Decimal = Field(default=Decimal(0), ge=0)
    """The next call's worst-case cost: a smaller lease is of no use."""
    previous: LeaseReport | None = None
    limits: TenantLimits | None = None
    """Set by the activity from the worker's configuration; the latest one applies."""
    sizing: LeaseSizing | None = None
    """Set by the activity from the worker's configuration."""


class Lease(_Model):
    """A grant: spend up to ``usd`` on up to ``calls`` model calls until ``expires_at``;
    ``None`` means unlimited. A refusal says why and when to ask again."""

    lease_id: str
    granted: bool
    calls: int | None = None
    usd: Decimal | None = None
    expires_at: float = 0.0
    """Unix time; the conversation starts no call on the lease from then on."""
    reason: Literal["ok", "rate_limited", "daily_budget", "budget_held"] = "ok"
    """``budget_held``: what is left of the day is lent to other conversations' leases
    for now; ask again after ``retry_after_seconds`` (like ``rate_limited``)."""
    retry_after_seconds: float = 0.0
    message: str = ""

    @property
    def unlimited(self) -> bool:
        """A lease of a tenant without limits (nothing to report)."""
        return self.calls is None and self.usd is None


class LeaseBatch(_Model):
    """Lease requests of one tenant, sent together (one update per batch)."""

    requests: list[LeaseRequest]


class LeaseBatchResult(_Model):
    """The answers, in request order."""

    leases: list[Lease]


class OpenLease(_Model):
    """A granted lease the governor has not had reported yet."""

    conversation_id: str
    usd: Decimal | None
    calls: int | None
    expires_at: float
    grant: Lease
    """The answer given, repeated to a retried request."""


def unlimited_lease(lease_id: str, now: float, sizing: LeaseSizing) -> Lease:
    """The lease of a tenant without limits: nothing to count, nothing to report."""
    return Lease(lease_id=lease_id, granted=True, expires_at=now + sizing.seconds)


def is_unlimited(limits: TenantLimits) -> bool:
    """Whether ``limits`` limit nothing (the tenant needs no governor)."""
    return limits.daily_usd is None and limits.model_calls_per_minute is None


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
    """Tokens in the bucket (calls lent to open leases are not in it); negative means
    full (not yet used)."""
    bucket_updated_at: float = 0.0
    """When ``bucket_tokens`` was computed; the bucket is brought up to date before any
    lease is granted, reported or forgotten (its size depends on the open leases)."""
    granted: int = 0
    denied: int = 0
    sizing: LeaseSizing = LeaseSizing()
    leases: dict[str, OpenLease] = {}
    """Granted leases not yet reported: lease id → what was granted."""
    expired: dict[str, Decimal] = {}
    """Leases returned unreported after their grace (lease id → dollars granted): a late
    report still counts its spend. Cleared when the day rolls over."""
    leased_calls: int = 0
    """Model calls granted by leases (today and before)."""

    def committed_usd(self) -> Decimal:
        """Spent today plus everything granted and not yet settled or reported."""
        open_usd = sum((lease.usd or Decimal(0) for lease in self.leases.values()), Decimal(0))
        return self.spent_usd + sum(self.reservations.values(), Decimal(0)) + open_usd

    def lease(self, request: LeaseRequest, now: datetime) -> Lease:
        """Report the previous lease (if any) and grant or refuse a new one at ``now``."""
        if request.limits is not None:
            self.limits = request.limits
        if request.sizing is not None:
            self.sizing = request.sizing
        self._roll_day(now)
        self._tokens(now.timestamp())  # before any lease comes or goes
        self._expire(now.timestamp())
        held = self.leases.get(request.lease_id)
        if held is not None:
            return held.grant  # a retry of a request already answered
        if request.previous is not None:
            self.report(request.previous, now)
        at = now.timestamp()
        limits, sizing = self.limits, self.sizing
        if is_unlimited(limits):
            grant = unlimited_lease(request.lease_id, at, sizing)
            self._open(request, grant)
            return grant
        usd: Decimal | None = None
        seconds = sizing.seconds
        if limits.daily_usd is not None:
            available = limits.daily_usd - self.committed_usd()
            if self.spent_usd + request.min_usd > limits.daily_usd:
                self.denied += 1
                return self._refused_for_budget(request, now, available)
            if available < request.min_usd or available <= 0:
                self.denied += 1  # lent out, not spent: it comes back as leases end
                return self._held(request, at)
            # A share of what remains, smaller the more leases are open, so concurrent
            # conversations do not hold the day between them; never less than the call
            # asked for needs.
            share = available / (LEASE_SHARE + len(self.leases))
            wanted = max(sizing.usd, request.min_usd * CALLS_PER_LEASE)
            usd = max(request.min_usd, min(wanted, share))
            if (available - usd) * 2 < limits.daily_usd:
                seconds = min(seconds, PRESSED_LEASE_SECONDS)  # come back sooner
        calls: int | None = None
        if limits.model_calls_per_minute is not None:
            tokens = self._tokens(at)
            if tokens < 1.0:
                self.denied += 1
                return self._rate_limited(request, at)
            lent = self._lent_calls(at)
            calls = min(sizing.calls, max(1, int(tokens / (LEASE_SHARE + len(lent)))))
            self.bucket_tokens = tokens - calls
            self.leased_calls += calls
            if (sum(lent) + calls) * 2 > limits.burst:
                seconds = min(seconds, self._pressed_seconds())  # lent calls come back sooner
        grant = Lease(
            lease_id=request.lease_id,
            granted=True,
            calls=calls,
            usd=usd,
            expires_at=at + seconds,
        )
        self._open(request, grant)
        return grant

    def report(self, report: LeaseReport, now: datetime) -> None:
        """A conversation says what it did with a lease: its spend counts; its unused
        calls return to the bucket if it has not expired yet (from its expiry on, they
        no longer count against the bucket's size, used or not). A report of an
        unknown lease (already reported) changes nothing."""
        self._roll_day(now)
        at = now.timestamp()
        tokens = self._tokens(at)  # before the lease goes
        held = self.leases.pop(report.lease_id, None)
        if held is not None:
            self.spent_usd += report.spent_usd
            rated = self.limits.model_calls_per_minute is not None
            if held.calls is not None and rated and at < held.expires_at:
                unused = max(0, held.calls - report.calls_used)
                # Lent and back in the bucket are both within the burst: no more room.
                room = max(0.0, self.limits.burst - sum(self._lent_calls(at)))
                self.bucket_tokens = min(room, tokens + unused)
        elif self.expired.pop(report.lease_id, None) is not None:
            self.spent_usd += report.spent_usd  # late: it was returned as unspent

    def _open(self, request: LeaseRequest, grant: Lease) -> None:
        self.granted += 1
        self.leases[request.lease_id] = OpenLease(
            conversation_id=request.conversation_id,
            usd=grant.usd,
            calls=grant.calls,
            expires_at=grant.expires_at,
            grant=grant,
        )

    def _expire(self, now: float) -> None:
        """Return leases unreported past their grace (their conversation is gone)."""
        for lease_id, held in list(self.leases.items()):
            if held.expires_at + self.sizing.grace_seconds <= now:
                del self.leases[lease_id]
                if held.usd is not None:
                    self.expired[lease_id] = held.usd
        while len(self.expired) > MAX_EXPIRED_KEPT:
            del self.expired[next(iter(self.expired))]

    def _rate_limited(self, request: LeaseRequest, at: float) -> Lease:
        """No token in the bucket: ask again when there will be one."""
        wait = self._token_wait(at)
        lent = sum(self._lent_calls(at))
        return Lease(
            lease_id=request.lease_id,
            granted=False,
            reason="rate_limited",
            retry_after_seconds=wait,
            message=(
                f"tenant {self.tenant!r} is over {self.limits.model_calls_per_minute} "
                f"model calls per minute ({lent} of its burst of {self.limits.burst} lent "
                f"to open leases); retry in {wait:.2f}s"
            ),
        )

    def _held(self, request: LeaseRequest, at: float) -> Lease:
        """The day's rest is lent to open leases: ask again when the first one ends."""
        ends = min((lease.expires_at for lease in self.leases.values()), default=at)
        wait = min(max(ends - at, 0.0) + 0.1, PRESSED_LEASE_SECONDS)
        return Lease(
            lease_id=request.lease_id,
            granted=False,
            reason="budget_held",
            retry_after_seconds=wait,
            message=(
                f"tenant {self.tenant!r} daily budget is lent to {len(self.leases)} open "
                f"leases; retry in {wait:.2f}s"
            ),
        )

    def _refused_for_budget(
        self, request: LeaseRequest, now: datetime, available: Decimal
    ) -> Lease:
        return Lease(
            lease_id=request.lease_id,
            granted=False,
            reason="daily_budget",
            retry_after_seconds=_until_midnight(now),
            message=(
                f"tenant {self.tenant!r} daily budget: limit {self.limits.daily_usd} USD, "
                f"spent {self.spent_usd}, committed {self.committed_usd() - self.spent_usd}, "
                f"this call may cost up to {request.min_usd}"
            ),
        )

    def acquire(self, request: PermitRequest, now: datetime) -> PermitDecision:
        """Grant or refuse one model call at ``now`` (UTC)."""
        if request.limits is not None:
            self.limits = request.limits
        self._roll_day(now)
        if request.reservation_id in self.reservations:
            return PermitDecision(granted=True, message="already granted")
        limits = self.limits
        if limits.daily_usd is not None:
            committed = self.committed_usd()
            if committed + request.reserved_usd > limits.daily_usd:
                self.denied += 1
                return PermitDecision(
                    granted=False,
                    reason="daily_budget",
                    retry_after_seconds=_until_midnight(now),
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
            self.expired = {}

    def _tokens(self, now: float) -> float:
        """Bring the bucket up to ``now`` and return its tokens: refilled at the rate up
        to the burst less the calls lent to leases not yet expired (``refill_lent``)."""
        if self.limits.model_calls_per_minute is None:
            return float(self.limits.burst)  # unused: no rate limit
        now = max(now, self.bucket_updated_at)
        self.bucket_tokens = refill_lent(
            None if self.bucket_tokens < 0 else self.bucket_tokens,
            self.bucket_updated_at,
            now,
            rate=self.limits.model_calls_per_minute / 60.0,
            burst=float(self.limits.burst),
            lent=self._loans(),
        )
        self.bucket_updated_at = now
        return self.bucket_tokens

    def _loans(self) -> list[tuple[float, float]]:
        """Calls lent to open leases: (expiry, calls) of each."""
        return [(held.expires_at, held.calls) for held in self.leases.values() if held.calls]

    def _lent_calls(self, at: float) -> list[int]:
        """Calls of each lease that may still be spent at ``at`` (not expired)."""
        return [held.calls for held in self.leases.values() if held.calls and held.expires_at > at]

    def _token_wait(self, at: float) -> float:
        """Seconds from ``at`` (the bucket brought up to it) until it holds a token."""
        return wait_lent(
            self.bucket_tokens,
            at,
            rate=(self.limits.model_calls_per_minute or 0.0) / 60.0,
            burst=float(self.limits.burst),
            lent=self._loans(),
        )

    def _pressed_seconds(self) -> float:
        """Lifetime of a lease once more than half the burst is lent: at most the
        bucket's refill time, so lent calls an idle conversation holds are back (and
        a waiting one gets a call) about as soon as the rate allows."""
        refill_seconds = self.limits.burst / ((self.limits.model_calls_per_minute or 1.0) / 60)
        return min(PRESSED_LEASE_SECONDS, max(MIN_PRESSED_LEASE_SECONDS, refill_seconds))

    def _take_token(self, now: float) -> float:
        """Take one token; 0 if taken, else seconds until one is available."""
        if self.limits.model_calls_per_minute is None:
            return 0.0
        tokens = self._tokens(now)
        if tokens >= 1.0:
            self.bucket_tokens = tokens - 1.0
            return 0.0
        return self._token_wait(now)


def _until_midnight(now: datetime) -> float:
    """Seconds until the day (``now``'s timezone, UTC for the governor) rolls over."""
    midnight = datetime(now.year, now.month, now.day, tzinfo=now.tzinfo) + timedelta(days=1)
    return (midnight - now).total_seconds()


class HeldLease(_Model):
    """A lease as its conversation holds and spends it, in workflow state (carried
    across continue-as-new); ``None`` fields are unlimited."""

    lease_id: str
    calls_left: int | None = None
    usd_left: Decimal | None = None
    expires_at: float = 0.0
    spent_usd: Decimal = Decimal(0)
    calls_used: int = 0
    in_flight_usd: Decimal = Decimal(0)
    """Worst case of the call running on the lease now, if any."""

    @classmethod
    def of(cls, lease: Lease) -> HeldLease:
        """The conversation's copy of a granted lease."""
        return cls(
            lease_id=lease.lease_id,
            calls_left=lease.calls,
            usd_left=lease.usd,
            expires_at=lease.expires_at,
        )

    @property
    def unlimited(self) -> bool:
        """Nothing to count, nothing to report."""
        return self.calls_left is None and self.usd_left is None

    def covers(self, reserved_usd: Decimal, now: float) -> bool:
        """Whether one more call of worst case ``reserved_usd`` may start at ``now``."""
        return (
            now < self.expires_at
            and (self.calls_left is None or self.calls_left >= 1)
            and (self.usd_left is None or self.usd_left >= reserved_usd)
        )

    def take(self, reserved_usd: Decimal) -> None:
        """A call starts: its worst case is set aside."""
        self.calls_used += 1
        if self.calls_left is not None:
            self.calls_left -= 1
        if self.usd_left is not None:
            self.usd_left -= reserved_usd
        self.in_flight_usd += reserved_usd

    def settle(self, reserved_usd: Decimal, actual_usd: Decimal) -> None:
        """The call ended and cost ``actual_usd`` (0 if it failed)."""
        self.in_flight_usd = max(Decimal(0), self.in_flight_usd - reserved_usd)
        self.spent_usd += actual_usd
        if self.usd_left is not None:
            self.usd_left += reserved_usd - actual_usd

    def report(self) -> LeaseReport:
        """What to tell the governor: spend so far plus any call still running."""
        return LeaseReport(
            lease_id=self.lease_id,
            spent_usd=self.spent_usd + self.in_flight_usd,
            calls_used=self.calls_used,
        )
