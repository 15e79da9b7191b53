"""API keys of the gateway and their tenants, and the per-key request rate limit.

Keys are configured hashed (SHA-256 of the key, hex): the gateway never holds a key in
plain text, so a leaked configuration grants nothing. Keys are long random strings
(``python -m durable_agent.gateway new-key``), so a fast hash is the right one (no
password stretching needed). Pure code: no I/O, time passed in.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, field_validator

KEY_PREFIX = "dak_"
"""Prefix of generated keys, so secret scanners can recognise them."""
TENANT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
"""Tenants of gateway keys: conversation ids are ``<tenant>.<id>``, so no dots."""


def hash_key(key: str) -> str:
    """The configured form of ``key``: SHA-256, hex."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh random API key (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


class GatewayKey(BaseModel):
    """One API key in the gateway's configuration (``AGENT_GATEWAY_KEYS``, a JSON list)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100)
    """Who holds the key; approvals made with it are recorded as by this name."""
    tenant: str = Field(pattern=TENANT_PATTERN)
    """The tenant whose conversations the key may see and start."""
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    """SHA-256 of the key (``python -m durable_agent.gateway new-key`` prints it)."""
    requests_per_second: float | None = Field(default=None, gt=0)
    """Sustained request rate of this key on each gateway replica; ``None``: the
    gateway's default (``AGENT_GATEWAY_REQUESTS_PER_SECOND``)."""
    burst: int | None = Field(default=None, ge=1)

    @field_validator("sha256", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


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
            self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


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
