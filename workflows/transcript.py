"""How big a model request is, without serialising the whole transcript every call.

Budgets reserve a call's worst case from the request's size, and compaction starts when
the request nears the context window, so every model call needs the size of the JSON the
whole request would be. Serialising the whole transcript for that is O(transcript) per
call — O(n²) over a long conversation, paid again on every replay. ``RequestSize``
serialises each message once (again only if it grows) and adds the sizes up: the result
is exactly ``len(request.model_dump_json())`` (chars) and its UTF-8 length (bytes).

Deterministic: its state is a function of the transcript's history (messages only ever
grow at the end, or the whole list is replaced, which ``reset`` marks).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from durable_agent.activity_models import ModelRequest
    from durable_agent.contract import Message


@dataclass(frozen=True)
class Size:
    """Length of a JSON text in characters and in UTF-8 bytes."""

    chars: int
    bytes: int


@dataclass
class RequestSize:
    """Sizes of the transcript's messages, each measured once per content length."""

    _keys: list[int] = field(default_factory=list)
    """Per message: the number of content blocks it had when measured."""
    _sizes: list[Size] = field(default_factory=list)

    def reset(self) -> None:
        """The transcript was replaced (compaction, a new run): measure afresh."""
        self._keys.clear()
        self._sizes.clear()

    def of(self, request: ModelRequest) -> Size:
        """The size of ``request.model_dump_json()`` as the model activity sends it (the
        archive's messages in front of ``request.messages``, the transcript this tracker
        follows)."""
        messages = request.messages
        archive = request.archive  # earlier runs' messages, sent in front
        chars = archive.chars if archive else 0
        bytes_ = archive.bytes if archive else 0
        for i, message in enumerate(messages):
            size = self._measured(i, message)
            chars += size.chars
            bytes_ += size.bytes
        empty = request.model_copy(update={"messages": [], "archive": None}).model_dump_json()
        commas = max(0, len(messages) + (archive.messages if archive else 0) - 1)
        return Size(chars=len(empty) + chars + commas, bytes=len(empty.encode()) + bytes_ + commas)

    def _measured(self, index: int, message: Message) -> Size:
        if index < len(self._keys) and self._keys[index] == len(message.content):
            return self._sizes[index]
        text = message.model_dump_json()
        size = Size(chars=len(text), bytes=len(text.encode()))
        if index < len(self._keys):
            self._keys[index], self._sizes[index] = len(message.content), size
            del self._keys[index + 1 :], self._sizes[index + 1 :]  # nothing after may be stale
        else:
            self._keys.append(len(message.content))
            self._sizes.append(size)
        return size
