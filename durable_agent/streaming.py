"""Reading a conversation's stream from outside: its step events and its model output
on one offset-addressed log, read with the ``stream`` query.

Readers poll the query instead of subscribing with the Workflow Streams library's
long-poll update: a query writes nothing to the conversation's history, while each
accepted poll update adds events and holds one of the server's ten in-flight updates
per workflow for as long as it waits, which ``send_message`` and ``approve`` need. The
price is latency (at most one poll interval) and queries: a reader polls fast while the
model writes and backs off otherwise (``StreamCursor``).

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
"""Poll interval while the model writes: the most a delta waits at the reader's end."""
DEFAULT_IDLE_POLL_SECONDS = 1.0
"""The longest interval between polls while nothing is written (between turns, while
tools run or a call waits for a person)."""
PAGE_LIMIT = 256
"""Items one poll asks for."""


@dataclass(frozen=True)
class Pace:
    """How often a reader polls."""

    active_seconds: float = DEFAULT_POLL_SECONDS
    """Interval while the model writes, and right after anything was read."""
    idle_seconds: float = DEFAULT_IDLE_POLL_SECONDS
    """Longest interval: otherwise (tools running, a call waiting for a person, no turn
    running) the interval doubles from ``active_seconds`` up to this after each empty
    poll."""

    def __post_init__(self) -> None:
        if not self.active_seconds > 0:
            raise ValueError(f"poll_seconds must be > 0, not {self.active_seconds!r}")
        if not self.idle_seconds >= self.active_seconds:
            raise ValueError(
                f"idle_poll_seconds ({self.idle_seconds!r}) must be at least poll_seconds "
                f"({self.active_seconds!r})"
            )


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
        if items:
            last = items[-1]
            self.writing = last.delta is not None or (
                last.event is not None and last.event.kind == "model_call_started"
            )
        if items or self.writing:
            self._interval = self.pace.active_seconds
        else:
            self._interval = min(
                max(self._interval, self.pace.active_seconds / 2) * 2, self.pace.idle_seconds
            )
        return items, missed

    def wait_seconds(self) -> float:
        """How long to wait before the next poll: none when more is ready, the active
        interval while the model writes, backing off to the idle one otherwise."""
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
        """Take one delta (of any turn); whether ``text`` changed."""
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
