"""The health of a conversation's dependencies: one circuit breaker per dependency
(``model``, ``tool:<name>``), in workflow state.

Pure (time passed in), serialisable: it survives a worker kill, continue-as-new and
replay unchanged. Which failures count is the caller's decision: a dependency that
answered, even with an error the model should read, is healthy.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from durable_agent.breaker import BreakerConfig, BreakerStatus, CircuitBreaker

MODEL = "model"


def tool_dependency(name: str) -> str:
    """The dependency name of a tool."""
    return f"tool:{name}"


class DependencyHealth(BaseModel):
    """Breakers by dependency name, with their configuration."""

    model_config = ConfigDict(extra="forbid")

    config: BreakerConfig = BreakerConfig()
    """Applies to every dependency without an override."""
    overrides: dict[str, BreakerConfig] = {}
    breakers: dict[str, CircuitBreaker] = {}

    def config_for(self, dependency: str) -> BreakerConfig:
        return self.overrides.get(dependency, self.config)

    def _breaker(self, dependency: str) -> CircuitBreaker:
        breaker = self.breakers.get(dependency)
        if breaker is None:  # built only when missing: a model costs a validation
            breaker = self.breakers[dependency] = CircuitBreaker()
        return breaker

    def allows(self, dependency: str, now: float) -> bool:
        """Whether a call to ``dependency`` may go ahead (open → half-open after the
        cooldown happens here)."""
        return self._breaker(dependency).allows(self.config_for(dependency), now)

    def record(self, dependency: str, healthy: bool, now: float) -> None:
        """Record the outcome of one call."""
        breaker, config = self._breaker(dependency), self.config_for(dependency)
        if healthy:
            breaker.record_success(config, now)
        else:
            breaker.record_failure(config, now)

    def force(self, dependency: str, mode: Literal["open", "closed"] | None, now: float) -> None:
        """Operator override; ``None`` returns to automatic behaviour."""
        self._breaker(dependency).force(mode, now)

    def degraded(self, now: float) -> list[str]:
        """Dependencies whose breaker is not closed, sorted."""
        return sorted(
            name
            for name, breaker in self.breakers.items()
            if breaker.effective_state(self.config_for(name), now) != "closed"
        )

    def snapshot(self, now: float) -> dict[str, BreakerStatus]:
        """Every breaker's state, for the ``status`` query."""
        return {
            name: breaker.snapshot(self.config_for(name), now)
            for name, breaker in sorted(self.breakers.items())
        }
