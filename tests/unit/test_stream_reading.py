"""Reading a conversation's stream (``durable_agent.streaming``): the text of a turn as
its deltas come (restarts, retried attempts still writing, later model calls), and a
reader's cursor: its position, what it was told it missed, when it is done, its pace."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from durable_agent.contract import (
    ConversationEvent,
    EventKind,
    ModelDelta,
    StreamItem,
    StreamPage,
)
from durable_agent.streaming import PAGE_LIMIT, Pace, StreamCursor, TurnText


def delta(
    text: str = "", *, turn: int = 1, call: int = 1, attempt: int = 1, **kw: Any
) -> ModelDelta:
    return ModelDelta(
        turn=turn, model_call=call, attempt=attempt, kind=kw.pop("kind", "text"), text=text, **kw
    )


def event(offset: int, kind: EventKind, turn: int = 1) -> StreamItem:
    at = datetime(2026, 12, 7, tzinfo=UTC)
    return StreamItem(
        offset=offset, event=ConversationEvent(seq=offset + 1, at=at, kind=kind, turn=turn)
    )


def deltas(start: int, *texts: str) -> list[StreamItem]:
    return [StreamItem(offset=start + i, delta=delta(t)) for i, t in enumerate(texts)]


def page(items: list[StreamItem], *, missed: int = 0, ended: bool = False) -> StreamPage:
    next_offset = items[-1].offset + 1 if items else 0
    return StreamPage(items=items, next_offset=next_offset, missed=missed, ended=ended)


def cursor(**kw: Any) -> StreamCursor:
    return StreamCursor(handle=None, pace=Pace(0.1, 1.0), **kw)  # type: ignore[arg-type]


# --- TurnText ----------------------------------------------------------------------------


def test_text_is_the_concatenation_of_the_turns_text_deltas() -> None:
    text = TurnText(turn=2)
    changed = [text.apply(delta(t, turn=2)) for t in ["The ", "result ", "is 42."]]
    assert changed == [True, True, True] and text.text == "The result is 42."
    assert not text.apply(delta("other turn", turn=3))
    assert not text.apply(
        delta(kind="tool_use_started", turn=2, call_id="toolu_1", tool="calculator")
    )
    assert text.text == "The result is 42." and text.restarts == 0


def test_a_restart_discards_the_earlier_attempts_text() -> None:
    text = TurnText(turn=1)
    text.apply(delta("The answer is 4"))
    assert text.apply(delta(kind="restarted", attempt=2))
    assert text.text == "" and text.restarts == 1
    text.apply(delta("The answer ", attempt=2))
    # The first attempt, still running after its retry began, is not shown.
    assert not text.apply(delta("1. Oops", attempt=1))
    text.apply(delta("is 42.", attempt=2))
    assert text.text == "The answer is 42."


def test_a_later_attempt_without_a_restart_delta_still_starts_again() -> None:
    text = TurnText(turn=1)
    text.apply(delta("partial"))
    text.apply(delta("whole", attempt=3))
    assert text.text == "whole" and text.attempt == 3


def test_a_model_call_after_tool_calls_starts_the_reply_again() -> None:
    text = TurnText(turn=1)
    text.apply(delta("Let me compute that."))
    text.apply(delta(kind="tool_use_started", call_id="toolu_1", tool="calculator"))
    text.apply(delta("The result is 42.", call=2))
    assert text.text == "The result is 42." and text.model_call == 2
    assert not text.apply(delta("late words of call 1"))


# --- StreamCursor ------------------------------------------------------------------------


def test_the_cursor_advances_and_never_yields_an_item_twice() -> None:
    reader = cursor()
    items, missed = reader.take(page([event(0, "turn_started"), *deltas(1, "a", "b")]))
    assert [i.offset for i in items] == [0, 1, 2] and missed == 0 and reader.after == 2
    # A page that repeats what was read (asked again after a retry) yields only news.
    again = page([*deltas(1, "a", "b"), event(3, "model_call_finished")])
    items, _ = reader.take(again)
    assert [i.offset for i in items] == [3] and reader.after == 3


def test_with_deltas_left_out_an_empty_page_moves_the_cursor_to_the_logs_end() -> None:
    reader = cursor(after=3, deltas=False)
    items, _ = reader.take(StreamPage(items=[], next_offset=10))
    assert items == [] and reader.after == 9


def test_missed_items_are_counted() -> None:
    reader = cursor(after=5)
    _, missed = reader.take(page([event(40, "reply")], missed=34))
    assert missed == 34 and reader.missed == 34 and reader.after == 40


def test_an_ended_stream_is_drained_only_after_its_last_page() -> None:
    reader = cursor()
    full = [event(i, "tool_call_finished") for i in range(PAGE_LIMIT)]
    reader.take(page(full, ended=True))
    assert reader.more and not reader.drained and reader.wait_seconds() == 0
    reader.take(page([event(PAGE_LIMIT, "ended")], ended=True))
    assert reader.drained and not reader.more


def test_the_pace_is_fast_for_a_first_delta_slower_as_deltas_flow_and_backs_off_otherwise() -> None:
    reader = cursor()
    reader.take(page([event(0, "model_call_started")]))
    assert reader.writing and reader.wait_seconds() == 0.1
    waits = []
    for _ in range(6):  # the model is slow to start: fast, slowing to the flowing pace
        reader.take(StreamPage(items=[], next_offset=1))
        waits.append(round(reader.wait_seconds(), 3))
    assert waits == [0.125, 0.156, 0.195, 0.244, 0.25, 0.25]
    reader.take(page(deltas(1, "x")))  # its batches come about a second apart
    assert reader.wait_seconds() == 0.25
    reader.take(StreamPage(items=[], next_offset=2))
    assert reader.wait_seconds() == 0.25
    reader.take(page([event(2, "model_call_finished"), event(3, "tool_call_started")]))
    assert not reader.writing and reader.wait_seconds() == 0.1  # something came
    waits = []
    for _ in range(6):  # a slow tool: back off to the idle interval
        reader.take(StreamPage(items=[], next_offset=4))
        waits.append(reader.wait_seconds())
    assert waits == [0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    reader.wake()
    assert reader.wait_seconds() == 0.1


def test_the_flowing_pace_stays_between_the_others() -> None:
    assert Pace(0.5, 2.0).flowing_seconds == 0.5
    assert Pace(0.05, 0.1).flowing_seconds == 0.1


@pytest.mark.parametrize(
    ("active", "idle", "message"),
    [(0, 1, "poll_seconds must be > 0"), (2, 1, r"idle_poll_seconds \(1\) must be at least")],
)
def test_a_pace_that_makes_no_sense_is_refused(active: float, idle: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Pace(active, idle)
