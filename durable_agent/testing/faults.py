"""Fault scripts for the loopback fake servers (Messages API, tool APIs).

A ``FaultScript`` is a thread-safe queue of ``Fault``s: each request to a fake server
takes the next fault whose ``path`` matches (or none, and is served normally). Tests
and soak scripts use it to drive every failure path: status codes with
``retry-after``, delays, dropped connections, slow or cut streams.
"""

from __future__ import annotations

import threading
from collections import deque
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


class FaultScript:
    """A queue of faults consumed one per matching request, plus an optional fault
    applied to every request after the queue is empty (``always``)."""

    def __init__(self, *faults: Fault, always: Fault | None = None) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Fault] = deque(faults)
        self.always = always

    def add(self, *faults: Fault) -> None:
        """Append faults to the queue."""
        with self._lock:
            self._queue.extend(faults)

    def clear(self) -> None:
        """Drop every queued fault and the ``always`` fault."""
        with self._lock:
            self._queue.clear()
            self.always = None

    def take(self, path: str) -> Fault | None:
        """The fault for a request to ``path``, removing it from the queue."""
        with self._lock:
            for i, fault in enumerate(self._queue):
                if fault.path is None or path.startswith(fault.path):
                    del self._queue[i]
                    return fault
            if self.always is not None and (
                self.always.path is None or path.startswith(self.always.path)
            ):
                return self.always
            return None

    def pending(self) -> int:
        """How many queued faults have not been used yet."""
        with self._lock:
            return len(self._queue)
