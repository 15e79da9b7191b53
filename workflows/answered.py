"""Replies a run keeps by update id (``ANSWERED_KEPT``), as their JSON.

A retried update that reaches the next run gets the reply it had (Temporal deduplicates
update ids only within a run), so recent replies are kept and carried across
continue-as-new (once: a reply the carried stream holds is carried by reference to it);
they are read back only for such a retry, for the carry and for a sub-agent's answer.
Kept as JSON text they take about a quarter of the memory of the models (a cached idle
conversation holds up to 16). Reading one back gives a reply equal to the one stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from durable_agent.contract import AnsweredMessage, CarriedStream, ContinuedState, Reply


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


def carried_replies(
    answered: Answered, newest: int, stream: CarriedStream
) -> list[AnsweredMessage]:
    """The ``newest`` replies, for the next run: those the carried stream holds in a
    reply event (the last turn's, at least) by that event's ``seq``, so each is carried
    once. (A reply event's tool results may be cut to a preview: then it is not the
    same reply, and the reply is carried whole.)"""
    shown = _shown(stream)
    carried = []
    for update_id in list(answered)[-newest:]:
        reply = answered[update_id]
        seq = next((seq for seq, event_reply in shown.items() if event_reply == reply), None)
        kept = reply if seq is None else None
        carried.append(AnsweredMessage(update_id=update_id, reply=kept, seq=seq))
    return carried


def restored_replies(carried: ContinuedState | None) -> Answered:
    """The replies a run starts with: those the previous run carried (see
    ``carried_replies``)."""
    if carried is None:
        return Answered()
    shown = _shown(carried.stream)
    answered = Answered()
    for message in carried.answered:
        reply = message.reply if message.seq is None else shown.get(message.seq)
        if reply is not None:
            answered[message.update_id] = reply
    return answered


def _shown(stream: CarriedStream | None) -> dict[int, Reply]:
    """The replies of the stream's reply events, by ``seq``."""
    events = (item.event for item in stream.items) if stream else ()
    return {event.seq: event.reply for event in events if event and event.reply}
