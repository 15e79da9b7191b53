"""API keys of the gateway as they are configured: the entry model, hashing, generation.

Keys are configured hashed (SHA-256 of the key, hex): the gateway never holds a key in
plain text, so a leaked configuration grants nothing. Keys are long random strings
(``python -m durable_agent.gateway new-key``), so a fast hash is the right one (no
password stretching needed). Pure code: the settings (``durable_agent.config``) and the
gateway (``durable_agent.gateway.keys``) both use it.
"""

from __future__ import annotations

import hashlib
import secrets

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
