"""API keys of the gateway and their tenants, and the per-key request rate limit.

The configured entry (``GatewayKey``) and key hashing live in ``durable_agent.api_keys``
(the settings read them too) and are re-exported here; this module finds a presented
key and keeps one token bucket (``durable_agent.token_bucket``) per key. Pure code: no
I/O, time passed in.
"""

from __future__ import annotations

import hmac
import re

from durable_agent.api_keys import KEY_PREFIX, TENANT_PATTERN, GatewayKey, hash_key, new_key
from durable_agent.token_bucket import TokenBucket

__all__ = [
    "KEY_PREFIX",
    "TENANT_PATTERN",
    "GatewayKey",
    "KeyRing",
    "RateLimits",
    "TokenBucket",
    "conversation_id",
    "hash_key",
    "new_key",
    "owns",
]


class KeyRing:
    """Finds the configured key a presented key hashes to."""

    def __init__(self, keys: list[GatewayKey]) -> None:
        self._by_hash = {k.sha256: k for k in keys}
        if len(self._by_hash) != len(keys):
            raise ValueError("AGENT_GATEWAY_KEYS lists the same key twice")

    def __len__(self) -> int:
        return len(self._by_hash)

    def find(self, presented: str) -> GatewayKey | None:
        """The key ``presented`` is, or ``None``. Compared in constant time."""
        digest = hash_key(presented)
        for known, key in self._by_hash.items():
            if hmac.compare_digest(known, digest):
                return key
        return None


class RateLimits:
    """One bucket per key (per replica: each replica admits its share)."""

    def __init__(self, rate: float, burst: int, max_keys: int = 10_000) -> None:
        self._rate = rate
        self._burst = burst
        self._buckets: dict[str, TokenBucket] = {}
        self._max_keys = max_keys

    def take(self, key: GatewayKey, now: float) -> float:
        """0 when ``key`` may make a request at ``now``; else seconds to wait."""
        bucket = self._buckets.get(key.sha256)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._buckets.clear()  # bounded memory; a reset only ever admits more
            bucket = TokenBucket(key.requests_per_second or self._rate, key.burst or self._burst)
            self._buckets[key.sha256] = bucket
        return bucket.take(now)


_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")


def conversation_id(tenant: str, local: str) -> str:
    """The workflow id of a gateway conversation: namespaced by its tenant."""
    return f"{tenant}.{local}"


def owns(tenant: str, conversation: str) -> bool:
    """Whether ``conversation`` (a workflow id) belongs to ``tenant``."""
    prefix, dot, local = conversation.partition(".")
    return bool(dot) and prefix == tenant and bool(_ID.fullmatch(local))
