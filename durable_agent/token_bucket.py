"""The token bucket: ``rate`` tokens a second on average, at most ``burst`` at once.

Pure: time is a parameter (seconds, any clock that does not go back), no I/O. Forms
of one rule: ``refill`` and ``wait_seconds`` work on a level kept elsewhere;
``refill_lent`` and ``wait_lent`` too, for a bucket whose tokens may be lent out and
spent later (the tenant governor's leases; it keeps its bucket in workflow state, which
crosses continue-as-new); ``TokenBucket`` keeps the level itself (the gateway's per-key
request limit).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

Lent = Iterable[tuple[float, float]]
"""Tokens lent out: ``(until, count)`` pairs; ``count`` tokens may be spent before
``until`` (seconds, the bucket's clock), not from then on."""


def refill(tokens: float | None, since: float, now: float, *, rate: float, burst: float) -> float:
    """Tokens at ``now`` of a bucket that held ``tokens`` at ``since``, refilled at
    ``rate`` a second up to ``burst``. ``None``: never used, so full."""
    if tokens is None:
        return burst
    return min(burst, tokens + max(0.0, now - since) * rate)


def wait_seconds(tokens: float, rate: float, needed: float = 1.0) -> float:
    """Seconds until a bucket holding ``tokens`` has ``needed``; 0 if it has them."""
    return 0.0 if tokens >= needed else (needed - tokens) / rate


def refill_lent(
    tokens: float | None, since: float, now: float, *, rate: float, burst: float, lent: Lent
) -> float:
    """``refill`` for a bucket with tokens ``lent`` out: a lent token may be spent at
    any moment until it expires, so while it is out the bucket refills only up to
    ``burst`` less what is lent. The level and the lent tokens together never hold more
    than ``burst``, and whatever is spent, from the bucket or from a loan, came out of
    one bucket of ``burst`` refilled at ``rate``: in any ``w`` seconds at most ``burst +
    w * rate`` tokens are spent. The size rises as each loan expires, one step at a time
    (a lazy refill at the final size would count refills that were not allowed).
    ``None``: never used, so full."""
    at, level = since, tokens
    for until, size in _sizes(burst, lent, since):
        level = refill(size if level is None else level, at, min(until, now), rate=rate,
                       burst=size)  # fmt: skip
        if until >= now:
            break
        at = until
    return level if level is not None else burst  # not reached: the last step is endless


def wait_lent(
    tokens: float, now: float, *, rate: float, burst: float, lent: Lent, needed: float = 1.0
) -> float:
    """Seconds until a bucket holding ``tokens`` at ``now``, with tokens ``lent`` out,
    has ``needed`` (``refill_lent``'s rule: loans hold its size down until they expire);
    ``inf`` if it never will (``burst < needed``)."""
    at, level = now, tokens
    for until, size in _sizes(burst, lent, now):
        if size >= needed:
            ready = at + wait_seconds(level, rate, needed)
            if ready <= until:
                return ready - now
        level = refill(level, at, until, rate=rate, burst=size)
        at = until
    return math.inf  # the last step is endless: only a burst below ``needed`` gets here


def _sizes(burst: float, lent: Lent, since: float) -> Iterator[tuple[float, float]]:
    """The bucket's size from ``since`` on, as steps ``(until, size)`` in time order:
    ``burst`` less the loans not yet expired; the last step lasts for ever."""
    loans = sorted((until, count) for until, count in lent if until > since)
    out = sum(count for _, count in loans)
    for until, count in loans:
        yield until, max(0.0, burst - out)
        out -= count
    yield math.inf, max(0.0, burst - out)


@dataclass
class TokenBucket:
    """``rate`` requests per second on average, ``burst`` at once."""

    rate: float
    burst: int
    tokens: float = field(init=False)
    updated: float | None = None
    """When the bucket was last used (``None``: never; it starts full)."""

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def take(self, now: float) -> float:
        """Take one token at ``now`` (seconds); returns 0 when granted, else how long
        until one is available."""
        if self.updated is not None:
            self.tokens = refill(self.tokens, self.updated, now, rate=self.rate, burst=self.burst)
        self.updated = now
        wait = wait_seconds(self.tokens, self.rate)
        if wait == 0.0:
            self.tokens -= 1
        return wait
