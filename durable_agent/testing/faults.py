"""Fault scripts for the loopback fake servers (Messages API, tool APIs).

A ``FaultScript`` is a thread-safe queue of ``Fault``s: each request to a fake server
takes the next fault whose ``path`` matches (or none, and is served normally). Tests
and soak scripts use it to drive every failure path: status codes with
``retry-after``, delays, dropped connections, slow or cut streams. Load scripts add a
``FaultMix``: a seeded share of the remaining requests gets a fault drawn at random.
"""

from __future__ import annotations

import random
import threading
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Fault:
    """What to do to one request instead of (or before) serving it normally."""

    status: int | None = None
    """Answer with this HTTP status and an error body instead of the normal response."""
    error_type: str | None = None
    """Error ``type`` in the body (e.g. ``rate_limit_error``); derived from status if None."""
    retry_after: float | None = None
    """Value of the ``retry-after`` header, in seconds."""
    delay: float = 0.0
    """Seconds to wait before answering (or before dropping)."""
    drop: bool = False
    """Close the connection without any response."""
    stream_event_delay: float = 0.0
    """Streaming only: seconds between events (a slow stream)."""
    cut_stream_after: int | None = None
    """Streaming only: close the connection after this many events."""
    stream_error: str | None = None
    """Streaming only: send an ``event: error`` of this type after ``message_start``."""
    path: str | None = None
    """Only requests whose path starts with this take the fault; ``None`` matches any."""
    message: str | None = None
    """The error body's message (default: "Injected fault: HTTP <status>"); ``{auth}``
    is replaced by the request's credentials, as a careless or hostile server might echo
    them."""

    @property
    def kind(self) -> str:
        """A short name for reports: the status (``"529"``), ``"drop"``, ``"cut"``,
        ``"stream_error"``, ``"delay"`` or ``"none"``."""
        if self.status is not None:
            return str(self.status)
        if self.drop:
            return "drop"
        if self.cut_stream_after is not None:
            return "cut"
        if self.stream_error is not None:
            return "stream_error"
        return "delay" if self.delay or self.stream_event_delay else "none"


@dataclass(frozen=True)
class FaultMix:
    """Faults at a rate: each matching request the queue leaves unfaulted gets one of
    ``faults`` (chosen uniformly) with probability ``rate``. The draws come from a
    ``random.Random(seed)``, so a run that sends its requests in the same order gets the
    same faults; under concurrency the order varies, the rate does not."""

    rate: float
    """Probability, 0 to 1, that a request gets a fault."""
    faults: Sequence[Fault]
    """What to inject, chosen uniformly."""
    seed: int | str = 0
    """Seeds the draws."""
    path: str | None = None
    """Only requests whose path starts with this are drawn for; ``None`` matches any."""

    def __post_init__(self) -> None:
        if not 0 <= self.rate <= 1:
            raise ValueError(f"rate {self.rate} is not between 0 and 1")
        if self.rate > 0 and not self.faults:
            raise ValueError("a fault rate above 0 needs at least one fault to draw")

    def applies(self, path: str) -> bool:
        """Whether requests to ``path`` are drawn for at all."""
        return self.rate > 0 and (self.path is None or path.startswith(self.path))


class FaultScript:
    """A queue of faults consumed one per matching request, then an optional random
    ``mix``, then an optional fault applied to every request (``always``)."""

    def __init__(
        self, *faults: Fault, always: Fault | None = None, mix: FaultMix | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Fault] = deque(faults)
        self.always = always
        self._mix = mix
        self._rng = random.Random(mix.seed if mix else 0)
        self._drawn: Counter[str] = Counter()

    @property
    def mix(self) -> FaultMix | None:
        """The random faults, if any."""
        return self._mix

    def injected(self) -> dict[str, int]:
        """How many faults the ``mix`` has injected so far, by ``Fault.kind``."""
        with self._lock:
            return dict(self._drawn)

    def add(self, *faults: Fault) -> None:
        """Append faults to the queue."""
        with self._lock:
            self._queue.extend(faults)

    def clear(self) -> None:
        """Drop every queued fault, the ``mix`` and the ``always`` fault."""
        with self._lock:
            self._queue.clear()
            self.always = None
            self._mix = None

    def take(self, path: str) -> Fault | None:
        """The fault for a request to ``path``, removing it from the queue."""
        with self._lock:
            for i, fault in enumerate(self._queue):
                if fault.path is None or path.startswith(fault.path):
                    del self._queue[i]
                    return fault
            mix = self._mix
            if mix is not None and mix.applies(path) and self._rng.random() < mix.rate:
                drawn = self._rng.choice(mix.faults)
                self._drawn[drawn.kind] += 1
                return drawn
            if self.always is not None and (
                self.always.path is None or path.startswith(self.always.path)
            ):
                return self.always
            return None

    def pending(self) -> int:
        """How many queued faults have not been used yet."""
        with self._lock:
            return len(self._queue)
