"""The ``save_note`` and ``list_notes`` tool activities, on an injected ``NoteStore``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import auto_heartbeat
from activities.tools._common import parse_arguments
from activities.tools._offload import Offloader
from durable_agent.activity_models import ToolCall, ToolResult
from durable_agent.stores.notes import NoteStore, NoteStoreError
from durable_agent.tools.registry import (
    LIST_NOTES,
    SAVE_NOTE,
    TOOL_TRANSIENT_ERROR,
    ListNotesArgs,
    SaveNoteArgs,
)


class NoteTools:
    """Saves and lists the tenant's notes. Store failures (disk, locks, network) raise
    ``TOOL_TRANSIENT_ERROR``, so the tool's retry policy applies; the idempotency key
    makes retried saves safe."""

    def __init__(self, store: NoteStore, offload: Offloader) -> None:
        self._store = store
        self._offload = offload

    @activity.defn(name=SAVE_NOTE.activity_name)
    async def save_note(self, call: ToolCall) -> ToolResult:
        """Save ``text`` once per tool call, however often the activity runs."""
        args = parse_arguments(SaveNoteArgs, call)
        if isinstance(args, ToolResult):
            return args
        async with _store_access():
            saved = await self._store.save(
                key=call.idempotency_key,
                tenant=call.tenant,
                conversation_id=call.conversation_id,
                text=args.text,
            )
        activity.logger.info("note #%s saved (created=%s)", saved.note.id, saved.created)
        # Deliberately the same words whether this attempt wrote the row or found it:
        # a second attempt only runs when the first one's result never reached the
        # workflow, so the model has seen no earlier answer to this call, and it did
        # ask exactly once. "already saved" would describe our retry, not its request.
        return ToolResult(outcome="ok", content=f"saved note #{saved.note.id}")

    @activity.defn(name=LIST_NOTES.activity_name)
    async def list_notes(self, call: ToolCall) -> ToolResult:
        """The tenant's newest notes, one per line: ``#id (YYYY-MM-DD): text``."""
        args = parse_arguments(ListNotesArgs, call)
        if isinstance(args, ToolResult):
            return args
        async with _store_access():
            notes = await self._store.list(tenant=call.tenant, query=args.query, limit=args.limit)
        if not notes:
            empty = f"no notes containing {args.query!r}" if args.query else "no notes"
            return ToolResult(outcome="ok", content=empty)
        lines = [f"#{n.id} ({n.created_at:%Y-%m-%d}): {n.text}" for n in notes]
        return await self._offload(call, ToolResult(outcome="ok", content="\n".join(lines)))


@asynccontextmanager
async def _store_access() -> AsyncIterator[None]:
    """Heartbeat while the store works (it may wait on locks or the network) and turn
    its failures into retryable tool errors."""
    try:
        async with auto_heartbeat():
            yield
    except NoteStoreError as e:
        raise ApplicationError(str(e), type=TOOL_TRANSIENT_ERROR) from e
