"""What one load test does (``python -m bench.load``'s options): the drivers, the faults
it may inject and their mix. Apart from ``bench.load`` so its report can name the
configuration without importing the runner."""

from __future__ import annotations

from dataclasses import dataclass

from durable_agent.testing.faults import Fault

DRIVERS = ("client", "gateway")
FAULTS: dict[str, Fault] = {
    "429": Fault(status=429, retry_after=1),
    "529": Fault(status=529, retry_after=1),
    "500": Fault(status=500),
    "cut": Fault(cut_stream_after=3),
    "drop": Fault(drop=True),
}
"""What ``--faults`` may name: rate limited and overloaded with the server's
``retry-after``, a server error, a stream cut after its first events, a connection
closed before any response."""


@dataclass(frozen=True)
class LoadConfig:
    """What one load test does."""

    conversations: int = 20
    """Conversations at once, per driver."""
    duration: float = 60.0
    """Seconds each driver keeps sending."""
    fault_rate: float = 0.05
    """Share of model requests that get a fault."""
    faults: tuple[str, ...] = ("429", "529", "500")
    """Which faults (keys of ``FAULTS``), drawn uniformly."""
    via: tuple[str, ...] = DRIVERS
    """Drivers, one phase each, in order."""
    seed: int = 0
    """Seeds the messages and the fault draws."""
    drain: float = 60.0
    """Seconds messages in flight at the end of ``duration`` may take to finish."""
    max_messages: int = 5000
    """Per conversation: a bound on messages sent, whatever the timing."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.faults) - set(FAULTS)) + sorted(set(self.via) - set(DRIVERS))
        if unknown:
            raise ValueError(f"unknown {unknown}: faults are {list(FAULTS)}, drivers {DRIVERS}")
        if self.conversations < 1 or self.duration <= 0 or self.drain < 0:
            raise ValueError("needs conversations ≥ 1, duration > 0 and drain ≥ 0")
        if not 0 <= self.fault_rate <= 1:
            raise ValueError(f"fault rate {self.fault_rate} is not between 0 and 1")
