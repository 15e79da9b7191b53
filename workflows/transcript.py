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


@dataclass(frozen=True)
class Size:
    """Length of a JSON text in characters and in UTF-8 bytes."""

    chars: int
    bytes: int


@dataclass
class RequestSize:
    """Sizes of the transcript's messages, each measured once per content length, and
    their running sums: a call costs O(messages added or changed since the last)."""

    _keys: list[int] = field(default_factory=list)
    """Per message: the number of content blocks it had when measured."""
    _sums: list[Size] = field(default_factory=lambda: [Size(0, 0)])
    """``_sums[i]``: the sizes of the first ``i`` messages measured, added up."""

    def reset(self) -> None:
        """The transcript was replaced (compaction, a new run): measure afresh."""
        self._keys.clear()
        del self._sums[1:]

    def of(self, request: ModelRequest) -> Size:
        """The size of ``request.model_dump_json()`` as the model activity sends it (the
        archive's messages in front of ``request.messages``, the transcript this tracker
        follows).

        Only the last message measured and those after it are looked at again: messages
        before it never change in place (the transcript grows at the end, a user turn
        may extend only the last message, anything else replaces the list and calls
        ``reset``), which ``ModelStep._windowed`` relies on as well."""
        messages = request.messages
        count = len(messages)
        start = min(len(self._keys), count)
        if start and self._keys[start - 1] != len(messages[start - 1].content):
            start -= 1  # the last one measured has grown since
        if start < len(self._keys):
            del self._keys[start:], self._sums[start + 1 :]  # nothing after may be stale
        total = self._sums[start]
        for message in messages[start:]:
            text = message.model_dump_json()
            total = Size(chars=total.chars + len(text), bytes=total.bytes + len(text.encode()))
            self._keys.append(len(message.content))
            self._sums.append(total)
        archive = request.archive  # earlier runs' messages, sent in front
        chars = total.chars + (archive.chars if archive else 0)
        bytes_ = total.bytes + (archive.bytes if archive else 0)
        # The request without its messages and archive: the two fields left out cost
        # `"messages":[],` and `"archive":null,` (ASCII; a field's comma whichever side
        # it is on). Dumped directly: a model_copy to empty them cost ~4x the dump.
        rest = request.model_dump_json(exclude=_MEASURED_APART)
        chars = chars + len(rest) + _EMPTIED
        bytes_ = bytes_ + len(rest.encode()) + _EMPTIED
        commas = max(0, count + (archive.messages if archive else 0) - 1)
        return Size(chars=chars + commas, bytes=bytes_ + commas)


_MEASURED_APART = {"messages", "archive"}
_EMPTIED = len('"messages":[],') + len('"archive":null,')
