"""The token bucket: ``rate`` tokens a second on average, at most ``burst`` at once.

Pure: time is a parameter (seconds, any clock that does not go back), no I/O. Two
forms of one rule. ``refill`` and ``wait_seconds`` work on a level kept elsewhere (the
tenant governor keeps its bucket in workflow state, which crosses continue-as-new);
``TokenBucket`` keeps the level itself (the gateway's per-key request limit).
"""

from __future__ import annotations

from dataclasses import dataclass, field


def refill(tokens: float | None, since: float, now: float, *, rate: float, burst: float) -> float:
    """Tokens at ``now`` of a bucket that held ``tokens`` at ``since``, refilled at
    ``rate`` a second up to ``burst``. ``None``: never used, so full."""
    if tokens is None:
        return burst
    return min(burst, tokens + max(0.0, now - since) * rate)


def wait_seconds(tokens: float, rate: float, needed: float = 1.0) -> float:
    """Seconds until a bucket holding ``tokens`` has ``needed``; 0 if it has them."""
    return 0.0 if tokens >= needed else (needed - tokens) / rate


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
