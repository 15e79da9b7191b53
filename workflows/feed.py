"""The event feed of a conversation: what each turn does, as it happens.

The workflow records a ``ConversationEvent`` at every step (turn started, model call
started/finished, tool call started/finished, approval requested/decided, reply) and
the ``events`` query pages through them by sequence number. A reader (the HTTP
gateway's Server-Sent Events stream) asks for what came after the last event it saw,
so it never reads the whole transcript, and any gateway replica can serve any reader:
the cursor is the reader's, the events are workflow state.

Events are rebuilt exactly on replay (same numbers, same workflow times), so a reader
resumes across a worker crash; the newest ones are carried across continue-as-new.
Only the newest ``EVENTS_HELD`` are kept in memory (a cached conversation is light): a
reader that falls further behind is told how many it missed. A reply event carries the
reply with tool results cut to a preview (the full reply is the update's result and in
the transcript). Recording changes no command, so it needs no patch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from durable_agent.contract import (
        ConversationEvent,
        EventKind,
        EventPage,
        EventsRequest,
        Reply,
    )

EVENTS_HELD = 64
"""Events held in memory: a reader polling once a second misses none of a busy turn."""
CARRIED_EVENTS = 16
"""Events carried into the next run: two busy turns, more than a reader polling once a
second can fall behind by (the run continues as new right after a reply)."""
RESULT_PREVIEW = 200
"""Characters of a tool result a reply event keeps."""


class EventFeed:
    """The newest events of one conversation, numbered from 1 across its runs."""

    def __init__(self, carried: Sequence[ConversationEvent] = (), seq: int = 0) -> None:
        self._events: deque[ConversationEvent] = deque(carried, maxlen=EVENTS_HELD)
        self._seq = seq

    def emit(self, kind: EventKind, turn: int, **fields: Any) -> None:
        """Record one event at the current workflow time."""
        self._seq += 1
        reply = fields.get("reply")
        if isinstance(reply, Reply) and any(
            len(c.result) > RESULT_PREVIEW for c in reply.tool_calls
        ):
            fields["reply"] = reply.model_copy(
                update={
                    "tool_calls": [
                        c.model_copy(update={"result": c.result[:RESULT_PREVIEW]})
                        for c in reply.tool_calls
                    ]
                }
            )
        self._events.append(
            ConversationEvent(seq=self._seq, at=workflow.now(), kind=kind, turn=turn, **fields)
        )

    def page(self, request: EventsRequest, ended: bool) -> EventPage:
        """Events after ``request.after``, oldest first, at most ``request.limit``."""
        oldest = self._events[0].seq if self._events else self._seq + 1
        start = max(request.after + 1, oldest)
        skip = start - oldest
        events = [
            self._events[i] for i in range(skip, min(len(self._events), skip + request.limit))
        ]
        return EventPage(
            events=events,
            last_seq=self._seq,
            missed=max(0, oldest - request.after - 1) if request.after < self._seq else 0,
            ended=ended,
        )

    def carry(self) -> tuple[list[ConversationEvent], int]:
        """The newest events and the sequence number, for the next run."""
        return list(self._events)[-CARRIED_EVENTS:], self._seq
