"""Replies kept by update id read back equal to what was stored, in order, and cross
continue-as-new once."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from durable_agent.budget import Budget
from durable_agent.contract import (
    AnsweredMessage,
    CarriedItem,
    CarriedStream,
    ContinuedState,
    ConversationEvent,
    Reply,
    ToolCallRecord,
    Usage,
)
from durable_agent.dependencies import DependencyHealth
from workflows.answered import Answered, carried_replies, restored_replies

AT = datetime(2026, 12, 1, tzinfo=UTC)

REPLIES = st.builds(
    Reply,
    text=st.text(max_size=30),
    turn=st.integers(1, 10**6),
    tool_calls=st.lists(
        st.builds(
            ToolCallRecord,
            id=st.text(max_size=8),
            name=st.just("calculator"),
            arguments=st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5)),
            outcome=st.just("ok"),
            result=st.text(max_size=20),
        ),
        max_size=2,
    ),
    usage=st.builds(Usage, input_tokens=st.integers(0, 10**6), output_tokens=st.integers(0, 10**6)),
    cost_usd=st.decimals(min_value=Decimal(0), max_value=Decimal(100), places=6),
    retry_after_seconds=st.none() | st.floats(0, 1e6, allow_nan=False),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.text(min_size=1, max_size=6), REPLIES), max_size=6))
def test_replies_read_back_equal_in_insertion_order(stored: list[tuple[str, Reply]]) -> None:
    answered = Answered(stored)
    expected = dict(stored)
    assert list(answered) == list(expected)
    assert dict(answered.items()) == expected
    for update_id, reply in expected.items():
        assert update_id in answered and answered[update_id] == reply
    first = next(iter(expected), None)
    if first is not None:
        del answered[first]
        assert first not in answered and len(answered) == len(expected) - 1
    assert answered.get("never stored") is None


def _carried(events: list[ConversationEvent]) -> CarriedStream:
    return CarriedStream(base_offset=0, items=[CarriedItem(event=e) for e in events])


def _reply_event(seq: int, reply: Reply) -> ConversationEvent:
    return ConversationEvent(seq=seq, at=AT, kind="reply", turn=reply.turn, reply=reply)


def test_a_reply_the_carried_stream_holds_is_carried_once() -> None:
    """Replies in a carried reply event go by its ``seq``; the others (older, or shown
    cut to a preview) whole; the next run reads back every one, equal."""
    old, cut, last = (Reply(text=f"reply {n}", turn=n) for n in (1, 2, 3))
    shown_cut = cut.model_copy(update={"text": "repl"})  # not the same reply
    answered = Answered([("a", old), ("b", cut), ("c", last)])
    stream = _carried([_reply_event(7, shown_cut), _reply_event(9, last)])
    carried = carried_replies(answered, 3, stream)
    assert [(a.update_id, a.reply, a.seq) for a in carried] == [
        ("a", old, None), ("b", cut, None), ("c", None, 9),
    ]  # fmt: skip
    continued = ContinuedState.model_validate(
        {
            "runs": 1, "messages": [], "turns": 3, "model_calls": 3, "last_error": None,
            "budget": Budget(), "health": DependencyHealth(), "priced_model": None,
            "flags": [], "decisions": [], "answered": carried, "stream": stream,
        }
    )  # fmt: skip
    assert dict(restored_replies(continued).items()) == {"a": old, "b": cut, "c": last}
    assert carried_replies(answered, 1, stream) == [AnsweredMessage(update_id="c", seq=9)]
    assert not restored_replies(None)
