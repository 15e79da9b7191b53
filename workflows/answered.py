"""Replies a run keeps by update id (``ANSWERED_KEPT``), as their JSON.

A retried update that reaches the next run gets the reply it had (Temporal deduplicates
update ids only within a run), so recent replies are kept and carried across
continue-as-new; they are read back only for such a retry, for the carry and for a
sub-agent's answer. Kept as JSON text they take about a quarter of the memory of the
models (a cached idle conversation holds up to 16). Reading one back gives a reply
equal to the one stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from durable_agent.contract import Reply


class Answered(MutableMapping[str, Reply]):
    """Update id → ``Reply``, in the order they were stored."""

    def __init__(self, replies: Iterable[tuple[str, Reply]] = ()) -> None:
        self._json: dict[str, str] = {}
        for update_id, reply in replies:
            self[update_id] = reply

    def __getitem__(self, update_id: str) -> Reply:
        return Reply.model_validate_json(self._json[update_id])

    def __setitem__(self, update_id: str, reply: Reply) -> None:
        self._json[update_id] = reply.model_dump_json()

    def __delitem__(self, update_id: str) -> None:
        del self._json[update_id]

    def __contains__(self, update_id: object) -> bool:
        return update_id in self._json

    def __iter__(self) -> Iterator[str]:
        return iter(self._json)

    def __len__(self) -> int:
        return len(self._json)
