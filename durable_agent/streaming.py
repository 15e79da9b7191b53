"""Reading a conversation's stream from outside: its step events and its model output
on one offset-addressed log, read with the ``stream`` query.

Readers poll the query instead of subscribing with the Workflow Streams library's
long-poll update: a query writes nothing to the conversation's history, while each
accepted poll update adds events and holds one of the server's ten in-flight updates
per workflow for as long as it waits, which ``send_message`` and ``approve`` need. The
price is latency (at most one poll interval) and queries, each about 5 ms of worker CPU:
a reader polls fast while it waits for a model call's first words, every quarter second
while the words flow, and backs off to once a second otherwise (``Pace``).

- ``StreamCursor``: one reader's position and pace; ``poll`` asks once. Used by the
  client API's iterator (``durable_agent.client.ConversationStream``) and by the
  gateway's Server-Sent Events.
- ``TurnText``: the reply's text as deltas arrive, restarts applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio.client import WorkflowHandle

from durable_agent.contract import (
    QUERY_STREAM,
    STREAM_ITEMS_KEPT,
    ModelDelta,
    StreamItem,
    StreamPage,
    StreamRequest,
)

DEFAULT_POLL_SECONDS = 0.1
"""Poll interval once a model call starts: the most its first delta waits at the
reader's end (for a model that starts writing within a second or so)."""
FLOWING_POLL_SECONDS = 0.25
"""Interval while a model call's deltas flow: its batches come about a second apart
(``AGENT_STREAM_*``), so polling faster would only cost queries (each one about 5 ms of
worker CPU)."""
DEFAULT_IDLE_POLL_SECONDS = 1.0
"""The longest interval between polls while nothing is written (between turns, while
tools run or a call waits for a person)."""
PAGE_LIMIT = 256
"""Items one poll asks for."""


@dataclass(frozen=True)
class Pace:
    """How often a reader polls."""

    active_seconds: float = DEFAULT_POLL_SECONDS
    """Interval right after anything was read, and while waiting for a model call's
    first delta (growing by a quarter per empty poll up to ``flowing_seconds``)."""
    idle_seconds: float = DEFAULT_IDLE_POLL_SECONDS
    """Longest interval: when the model is not writing (tools running, a call waiting
    for a person, no turn running) the interval doubles up to this after each empty
    poll."""
    flowing_seconds: float = FLOWING_POLL_SECONDS
    """Interval while a call's deltas flow (kept between the other two)."""

    def __post_init__(self) -> None:
        if not self.active_seconds > 0:
            raise ValueError(f"poll_seconds must be > 0, not {self.active_seconds!r}")
        if not self.idle_seconds >= self.active_seconds:
            raise ValueError(
                f"idle_poll_seconds ({self.idle_seconds!r}) must be at least poll_seconds "
                f"({self.active_seconds!r})"
            )
        clamped = min(max(self.flowing_seconds, self.active_seconds), self.idle_seconds)
        object.__setattr__(self, "flowing_seconds", clamped)


@dataclass
class StreamCursor:
    """One reader's place in a conversation's stream: the last offset it has, whether
    the model is writing (how fast to poll), and whether the stream has ended.

    ``handle`` should name the workflow id only (no run id): queries then reach the
    newest run, so a reader follows the conversation across continue-as-new."""

    handle: WorkflowHandle[Any, Any]
    after: int = -1
    """The offset of the last item read (-1: none yet)."""
    deltas: bool = True
    pace: Pace = field(default_factory=Pace)
    rpc_timeout: timedelta | None = None
    missed: int = 0
    """Items that were no longer kept when this reader asked for them (it fell behind)."""
    queries: int = 0
    """``stream`` queries made."""
    drained: bool = False
    """The conversation has ended and every item has been read."""
    more: bool = False
    """The last poll returned a full page: more is ready now."""
    writing: bool = False
    """A model call seems to be writing (the last item read was its start or a delta):
    deltas are coming, so polls keep the active pace instead of backing off."""
    _interval: float = 0.0

    async def poll(self) -> tuple[list[StreamItem], int]:
        """Ask once for the items after ``after``; returns them (oldest first, none
        already read) and how many were missed since the last poll. Raises what the
        query raises (``RPCError``, ``WorkflowQueryFailedError``)."""
        request = StreamRequest(after=self.after, limit=PAGE_LIMIT, deltas=self.deltas)
        self.queries += 1
        page: StreamPage = await self.handle.query(
            QUERY_STREAM, request, result_type=StreamPage, rpc_timeout=self.rpc_timeout
        )
        return self.take(page)

    def take(self, page: StreamPage) -> tuple[list[StreamItem], int]:
        """Advance past ``page`` (the answer to a poll from ``after``)."""
        items = [item for item in page.items if item.offset > self.after]
        missed = page.missed
        self.missed += missed
        if items:
            self.after = items[-1].offset
        else:  # nothing of ours (deltas left out, say): skip to the end of the log
            self.after = max(self.after, page.next_offset - 1)
        self.more = len(page.items) >= min(PAGE_LIMIT, STREAM_ITEMS_KEPT)
        self.drained = page.ended and not self.more
        self._pace_after(items)
        return items, missed

    def _pace_after(self, items: list[StreamItem]) -> None:
        """The next interval: deltas flowing, the flowing pace; a model call just
        started, fast and slowing to the flowing pace until its first delta; anything
        else read, fast; nothing read, slowing to the idle pace."""
        pace = self.pace
        if items:
            last = items[-1]
            started = last.event is not None and last.event.kind == "model_call_started"
            self.writing = last.delta is not None or started
            flowing = last.delta is not None
            self._interval = pace.flowing_seconds if flowing else pace.active_seconds
        elif self.writing:
            self._interval = min(self._interval * 1.25, pace.flowing_seconds)
        else:
            self._interval = min(
                max(self._interval, pace.active_seconds / 2) * 2, pace.idle_seconds
            )

    def wait_seconds(self) -> float:
        """How long to wait before the next poll: none when more is ready, else as
        ``Pace`` says."""
        return 0.0 if self.more else self._interval

    def wake(self) -> None:
        """Something is about to happen (this reader sent a message): poll fast again."""
        self._interval = self.pace.active_seconds


@dataclass
class TurnText:
    """The text of one turn's reply as it is written, from the turn's deltas.

    A turn's reply is the text of its last model call, so ``text`` is the newest model
    call's text (a call after tool calls starts it again). A ``restarted`` delta, or a
    delta of a later attempt, discards the text of earlier attempts of that call;
    deltas of an attempt older than the newest seen (a retried activity still running)
    are ignored. Deltas are not the record: the ``Reply`` is."""

    turn: int
    model_call: int = 0
    attempt: int = 0
    text: str = ""
    restarts: int = 0
    """Attempts of this turn's model calls that began again after a failure."""

    def apply(self, delta: ModelDelta) -> bool:
        """Take one delta (of any turn); whether ``text`` changed. A sub-agent's relayed
        output (``delegation``) is its own, not this turn's reply."""
        if delta.delegation is not None:
            return False
        if delta.turn != self.turn or delta.model_call < self.model_call:
            return False
        if delta.model_call == self.model_call and delta.attempt < self.attempt:
            return False  # an earlier attempt, still writing
        before = self.text
        if delta.model_call > self.model_call:
            self.model_call, self.attempt, self.text = delta.model_call, delta.attempt, ""
        elif delta.attempt > self.attempt:
            self.attempt, self.text = delta.attempt, ""
        if delta.kind == "restarted":
            self.restarts += 1
        elif delta.kind == "text":
            self.text += delta.text
        return self.text != before
