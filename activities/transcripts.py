"""The model activity's view of a conversation's transcript.

The workflow sends each model call only the messages the activity may not have seen
(``TranscriptWindow``): history then holds every message about once, and its size per
turn stays flat however long the conversation gets. The worker keeps the transcripts of
recent conversations in a bounded LRU cache; on a miss (another worker served the last
call, the worker restarted, the entry was evicted) it asks the workflow for the earlier
messages with the ``transcript_prefix`` query. Either way the model sees exactly the
transcript the workflow holds. The system prompt and tool definitions travel the same
way: a call sends them only when they differ from the previous call's
(``ModelRequest.context_omitted``), and the cache (or the query) supplies them.

At continue-as-new the transcript so far goes to the blob store (``transcript.archive``,
``TranscriptArchive``) instead of through history; requests of the next run name the
archive, and its messages go in front of the run's own.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from durable_agent.activity_models import (
    QUERY_TRANSCRIPT_PREFIX,
    Messages,
    ModelContext,
    ModelRequest,
    TranscriptPrefix,
    TranscriptWindow,
)
from durable_agent.contract import ContentBlock, Message, ToolResultBlock, TranscriptArchive
from durable_agent.stores.blobs import (
    BlobNotFound,
    BlobStore,
    BlobStoreError,
    archived_messages,
)

TRANSCRIPT_UNAVAILABLE = "TranscriptUnavailable"
"""``ApplicationError.type`` when the workflow could not be asked for its transcript
(retried: the workflow answers once a worker has it)."""


@dataclass
class _Entry:
    run_id: str
    messages: list[Message]
    context: ModelContext | None = None


class TranscriptCache:
    """The latest transcript (and model context) of up to ``capacity`` conversations,
    least recently used evicted first. One per worker; shared by its model activities."""

    def __init__(self, capacity: int = 256) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._archives: OrderedDict[str, list[Message]] = OrderedDict()
        self._contexts: dict[str, ModelContext] = {}
        """Distinct system prompts and tools, by their JSON: conversations alike share
        one copy (read only)."""
        self.hits = 0
        self.misses = 0

    def prefix(self, workflow_id: str, run_id: str, end: int) -> list[Message] | None:
        """The first ``end`` messages, if cached for this run."""
        entry = self._entries.get(workflow_id)
        if entry is None or entry.run_id != run_id or len(entry.messages) < end:
            self.misses += 1
            return None
        self._entries.move_to_end(workflow_id)
        self.hits += 1
        return entry.messages[:end]

    def context(self, workflow_id: str, run_id: str, seq: int) -> ModelContext | None:
        """The system prompt and tools numbered ``seq`` in this run, if cached."""
        entry = self._entries.get(workflow_id)
        if entry is None or entry.run_id != run_id or not entry.context:
            return None
        return entry.context if entry.context.seq == seq else None

    def archived(self, key: str) -> list[Message] | None:
        """An archive's messages, if cached (archives never change)."""
        messages = self._archives.get(key)
        if messages is not None:
            self._archives.move_to_end(key)
        return messages

    def put_archive(self, key: str, messages: list[Message]) -> None:
        self._archives[key] = messages
        self._archives.move_to_end(key)
        while len(self._archives) > self._capacity:
            self._archives.popitem(last=False)

    def put(
        self,
        workflow_id: str,
        run_id: str,
        messages: list[Message],
        context: ModelContext | None = None,
    ) -> None:
        previous = self._entries.get(workflow_id)
        if context is None and previous is not None and previous.run_id == run_id:
            context = previous.context
        elif context is not None:
            context = self._alike(context)
        self._entries[workflow_id] = _Entry(run_id, messages, context)
        self._entries.move_to_end(workflow_id)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def _alike(self, context: ModelContext) -> ModelContext:
        """``context`` with the system prompt and tools of an equal one already cached."""
        key = context.model_copy(update={"seq": 0}).model_dump_json()
        shared = self._contexts.get(key)
        if shared is None:
            if len(self._contexts) < self._capacity:
                self._contexts[key] = context
            return context
        return context.model_copy(update={"system": shared.system, "tools": shared.tools})


async def full_request(
    request: ModelRequest, client: Client, cache: TranscriptCache, blobs: BlobStore
) -> ModelRequest:
    """``request`` with the whole transcript in ``messages``, and every offloaded tool
    result in full."""
    messages = request.messages
    window = request.window
    update: dict[str, object] = {}
    if window is not None:
        earlier = await prefix(window, client, cache)
        messages = [*earlier, *messages]
        context = None
        if request.context_omitted:
            context = await _context(window, client, cache)
            update = {"system": context.system, "tools": context.tools}
        elif window.context_seq:
            context = ModelContext(
                seq=window.context_seq, system=request.system, tools=request.tools
            )
        cache.put(window.workflow_id, window.run_id, messages, context)
    if request.archive is not None:
        messages = [*await archived(request.archive, cache, blobs), *messages]
    return request.model_copy(
        update=update
        | {
            "messages": await _with_results(messages, blobs),
            "window": None,
            "archive": None,
            "context_omitted": False,
        }
    )


async def archived(
    archive: TranscriptArchive | None, cache: TranscriptCache, blobs: BlobStore
) -> list[Message]:
    """The messages of an archive (none for ``None``): cached, or read back."""
    if archive is None:
        return []
    messages = cache.archived(archive.key)
    if messages is None:
        try:
            messages = await archived_messages(blobs, archive)
        except (BlobNotFound, BlobStoreError) as e:
            raise ApplicationError(
                f"transcript archive {archive.key} unreadable: {e}", type=TRANSCRIPT_UNAVAILABLE
            ) from e
        cache.put_archive(archive.key, messages)
    return messages


def archive_of(key: str, messages: list[Message]) -> tuple[bytes, TranscriptArchive]:
    """The blob to store and its description (sizes as ``RequestSize`` counts them)."""
    texts = [m.model_dump_json() for m in messages]
    description = TranscriptArchive(
        key=key,
        messages=len(messages),
        chars=sum(len(t) for t in texts),
        bytes=sum(len(t.encode()) for t in texts),
    )
    return ("[" + ",".join(texts) + "]").encode(), description


async def _context(
    window: TranscriptWindow, client: Client, cache: TranscriptCache
) -> ModelContext:
    """The system prompt and tools the call uses: cached, or asked of the workflow."""
    cached = cache.context(window.workflow_id, window.run_id, window.context_seq)
    if cached is not None:
        return cached
    answer = await _query(client, window, TranscriptPrefix(end=0, context=True))
    if answer.context is None or answer.context.seq != window.context_seq:
        raise ApplicationError(  # cannot happen: the workflow waits for this call
            f"the model context of {window.workflow_id} moved on "
            f"(seq {answer.context.seq if answer.context else None}, "
            f"expected {window.context_seq})",
            type=TRANSCRIPT_UNAVAILABLE,
        )
    return answer.context


async def prefix(window: TranscriptWindow, client: Client, cache: TranscriptCache) -> list[Message]:
    """The messages before ``window.base``: from the cache, or asked of the workflow."""
    if not window.base:
        return []
    cached = cache.prefix(window.workflow_id, window.run_id, window.base)
    if cached is None:
        cached = await _ask(client, window.workflow_id, window.run_id, window.base)
    return cached


async def _with_results(messages: list[Message], blobs: BlobStore) -> list[Message]:
    """``messages`` with each offloaded tool result read back from the blob store."""
    if not any(isinstance(b, ToolResultBlock) and b.ref for m in messages for b in m.content):
        return messages
    resolved = []
    for message in messages:
        blocks: list[ContentBlock] = []
        for block in message.content:
            if isinstance(block, ToolResultBlock) and block.ref:
                try:
                    content = (await blobs.get(block.ref)).decode()
                except (BlobNotFound, BlobStoreError) as e:
                    raise ApplicationError(
                        f"tool result {block.ref} unreadable: {e}", type=TRANSCRIPT_UNAVAILABLE
                    ) from e
                block = block.model_copy(update={"content": content, "ref": None})
            blocks.append(block)
        resolved.append(message.model_copy(update={"content": blocks}))
    return resolved


async def _query(client: Client, window: TranscriptWindow, asked: TranscriptPrefix) -> Messages:
    handle = client.get_workflow_handle(window.workflow_id, run_id=window.run_id)
    try:
        answer: Messages = await handle.query(QUERY_TRANSCRIPT_PREFIX, asked, result_type=Messages)
    except RPCError as e:
        raise ApplicationError(
            f"could not read the transcript of {window.workflow_id}: {e.message}",
            type=TRANSCRIPT_UNAVAILABLE,
        ) from e
    return answer


async def _ask(client: Client, workflow_id: str, run_id: str, end: int) -> list[Message]:
    window = TranscriptWindow(workflow_id=workflow_id, run_id=run_id, base=end)
    answer = await _query(client, window, TranscriptPrefix(end=end))
    if len(answer.messages) != end:
        raise ApplicationError(
            f"the transcript of {workflow_id} has {len(answer.messages)} messages, expected {end}",
            type=TRANSCRIPT_UNAVAILABLE,
        )
    return answer.messages
