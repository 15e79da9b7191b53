"""When a model call's deltas are published: a history budget spent as credit.

Each publish to a conversation's stream is a signal, and a signal to an idle workflow
costs about four history events (``WorkflowExecutionSignaled`` and the workflow task it
wakes: scheduled, started, completed; ``bench/streaming.py`` measures it). Publishing
every token would grow history with every token. ``FlushCredit`` bounds it: credit is
earned at one history event per ``interval_seconds`` and a flush spends what it costs,
so history grows at most one event per interval however fast the model writes. The
first flush of a call goes out at once (that is the latency a reader feels) on credit:
the balance starts at nothing, so the flush after it waits until the first is paid
for too (2 s with the defaults), and a call of T ≥ 1 s costs at most T / interval
events. What is left when the call returns rides its result, which the workflow
publishes for free (``ModelResponse.stream_tail``); a call shorter than one flush's
worth of budget still pays that one first flush.

``DeltaBuffer`` holds the deltas waiting for a flush and joins consecutive text (or
thinking) into one, so a batch is a few items, not one per token.

Pure code: time is a parameter, no Temporal, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from durable_agent.contract import ModelDelta

_JOINABLE = frozenset({"text", "thinking"})


@dataclass(frozen=True)
class FlushPolicy:
    """How fast a streamed model call may publish (``AGENT_STREAM_*`` settings)."""

    interval_seconds: float = 0.25
    """One history event of budget is earned per interval."""
    events_per_flush: float = 4.0
    """History events one publish costs: the signal and the workflow task it wakes."""

    def __post_init__(self) -> None:
        if self.interval_seconds <= 0 or self.events_per_flush <= 0:
            raise ValueError("interval_seconds and events_per_flush must be positive")

    @property
    def gap_seconds(self) -> float:
        """Time between two flushes at the steady rate (1 s with the defaults)."""
        return self.interval_seconds * self.events_per_flush


class FlushCredit:
    """The history budget of one streamed model call, in events.

    Starts with nothing; the first flush is allowed at once on credit. Holds at most
    one flush's worth, so a quiet spell does not save up a burst of flushes."""

    def __init__(self, policy: FlushPolicy, now: float) -> None:
        self._policy = policy
        self._credit = 0.0
        self._at = now
        self._first = True

    def balance(self, now: float) -> float:
        """Events of budget available at ``now``."""
        earned = max(0.0, now - self._at) / self._policy.interval_seconds
        return min(self._policy.events_per_flush, self._credit + earned)

    def wait(self, now: float) -> float:
        """Seconds from ``now`` until a flush is affordable (0: flush now)."""
        if self._first:
            return 0.0
        missing = self._policy.events_per_flush - self.balance(now)
        return max(0.0, missing * self._policy.interval_seconds)

    def spend(self, now: float) -> None:
        """Record a flush at ``now``; the balance may go below zero (the first flush,
        and a relayed call's last, are paid whatever the balance)."""
        self._credit = self.balance(now) - self._policy.events_per_flush
        self._at = now
        self._first = False


class DeltaBuffer:
    """Deltas waiting to be published, consecutive text (or thinking) joined."""

    def __init__(self) -> None:
        self._deltas: list[ModelDelta] = []

    def __len__(self) -> int:
        return len(self._deltas)

    def add(self, delta: ModelDelta) -> None:
        """Append ``delta``, joined to the last one when both are the same kind of text
        from the same attempt."""
        last = self._deltas[-1] if self._deltas else None
        if (
            last is not None
            and delta.kind in _JOINABLE
            and last.kind == delta.kind
            and (last.turn, last.model_call, last.attempt)
            == (delta.turn, delta.model_call, delta.attempt)
        ):
            self._deltas[-1] = last.model_copy(update={"text": last.text + delta.text})
        else:
            self._deltas.append(delta)

    def take(self) -> list[ModelDelta]:
        """Everything buffered, oldest first; the buffer is left empty."""
        taken, self._deltas = self._deltas, []
        return taken
