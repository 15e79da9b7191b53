"""The load test's figures and its no-lost-turn check, on recorded turns (no I/O)."""

from __future__ import annotations

import io
import math

import pytest

from bench.load import LoadConfig
from bench.load_report import (
    LoadReport,
    Phase,
    Turn,
    check_conversation,
    per_second,
    summarize,
)
from bench.progress import Counts, progress, render


def replied(text: str, turn: int, sent_at: float = 0.0, seconds: float = 1.0) -> Turn:
    return Turn(0, text, sent_at, seconds, "ok", turn)


def failed(text: str, outcome: str, sent_at: float = 0.0, seconds: float = 0.1) -> Turn:
    return Turn(0, text, sent_at, seconds, outcome)


# --- figures ----------------------------------------------------------------------------


def test_percentiles_are_nearest_rank_over_replied_turns_only() -> None:
    turns = [replied(f"m{i}", i, sent_at=i, seconds=i / 100) for i in range(1, 101)]
    turns.append(failed("refused", "http 503", seconds=50.0))  # no reply: not a latency

    summary = summarize(turns)

    assert summary.latency_ms["p50"] == pytest.approx(500)
    assert summary.latency_ms["p95"] == pytest.approx(950)
    assert summary.latency_ms["p99"] == pytest.approx(990)
    assert summary.latency_ms["max"] == pytest.approx(1000)
    assert summary.latency_ms["mean"] == pytest.approx(505)


def test_error_rates_are_by_outcome_over_every_message_sent() -> None:
    turns = [replied(f"m{i}", i) for i in range(1, 7)]
    turns += [
        Turn(0, "slow", 0.0, 1.0, "reply:timeout", 7),  # answered, but not ok
        failed("a", "http 429 rate-limited"),
        failed("b", "http 429 rate-limited"),
        Turn(0, "in flight", 0.0),  # never finished
    ]

    summary = summarize(turns)

    assert (summary.sent, summary.replied, summary.ok) == (10, 7, 6)
    assert summary.outcomes == {
        "http 429 rate-limited": 2,
        "ok": 6,
        "reply:timeout": 1,
        "unanswered": 1,
    }
    assert summary.error_rate == pytest.approx(0.4)
    assert summary.error_rates == pytest.approx(
        {"http 429 rate-limited": 0.2, "reply:timeout": 0.1, "unanswered": 0.1}
    )


def test_throughput_is_replies_over_the_window_from_first_send_to_last_answer() -> None:
    turns = [replied("a", 1, sent_at=1.0, seconds=1.0), replied("b", 2, sent_at=2.0, seconds=3.0)]
    turns.append(failed("c", "RPCError", sent_at=4.0, seconds=1.0))  # ends the window at 5

    summary = summarize(turns)

    assert summary.window_seconds == pytest.approx(4.0)
    assert summary.throughput == pytest.approx(0.5)
    assert summary.timeline == [0, 0, 1, 0, 0, 1]  # replies at 2.0 and 5.0


def test_no_turns_give_zeros_and_nan_latencies() -> None:
    summary = summarize([])

    assert (summary.sent, summary.throughput, summary.error_rate) == (0, 0.0, 0.0)
    assert all(math.isnan(v) for v in summary.latency_ms.values())
    assert summary.as_json()["replies_per_second"] == []


def test_per_second_counts_whole_seconds_and_skips_nan() -> None:
    assert per_second([0.1, 0.9, 2.5, math.nan]) == [2, 0, 1]
    assert per_second([]) == []


# --- no lost turn -------------------------------------------------------------------------


def test_a_conversation_that_answered_every_message_once_passes() -> None:
    sent = [
        replied("one", 1),
        failed("refused", "MessageRejected:InvalidMessage"),
        replied("two", 2),
    ]

    assert check_conversation("c", sent, ["one", "two"], completed=2) == []


def test_a_reply_for_a_message_the_conversation_does_not_have_is_lost() -> None:
    sent = [replied("one", 1), replied("two", 2)]

    found = check_conversation("c", sent, ["one"], completed=1)

    assert {v.kind for v in found} == {"lost"}
    assert any("'two'" in v.detail for v in found)


def test_a_message_taken_twice_is_duplicated() -> None:
    sent = [replied("one", 1), replied("two", 2)]

    found = check_conversation("c", sent, ["one", "two", "two"], completed=3)

    assert "duplicated" in {v.kind for v in found}


def test_two_replies_with_one_turn_number_are_duplicated() -> None:
    sent = [replied("one", 1), replied("two", 1)]

    found = check_conversation("c", sent, ["one", "two"], completed=2)

    assert [v.kind for v in found] == ["duplicated"]


def test_a_message_taken_whose_sender_got_no_reply_is_unreplied() -> None:
    sent = [replied("one", 1), failed("two", "http timeout")]

    found = check_conversation("c", sent, ["one", "two"], completed=2)

    assert [v.kind for v in found] == ["unreplied"]
    assert "http timeout" in found[0].detail


def test_more_turns_completed_than_replies_is_caught_without_a_transcript_entry() -> None:
    found = check_conversation("c", [replied("one", 1)], ["one"], completed=2)

    assert [v.kind for v in found] == ["unreplied"]


def test_fewer_turns_completed_than_replies_is_lost() -> None:
    found = check_conversation("c", [replied("one", 1), replied("two", 2)], ["one", "two"], 1)

    assert [v.kind for v in found] == ["lost"]


def test_messages_nobody_sent_and_a_changed_order_are_mismatches() -> None:
    sent = [replied("one", 1), replied("two", 2)]

    assert [v.kind for v in check_conversation("c", sent, ["two", "one"], 2)] == ["mismatch"]
    stranger = check_conversation("c", sent, ["one", "two", "three"], 3)
    assert "mismatch" in {v.kind for v in stranger}


# --- progress line ------------------------------------------------------------------------


def test_progress_line_shows_clock_bar_and_counts() -> None:
    line = render("client", 30.0, 60.0, Counts(turns=150, errors=2, in_flight=20))

    assert line.startswith("[load client] 00:30/01:00 ")
    assert "██████████░░░░░░░░░░" in line
    assert "150 turns" in line and "5.0/s" in line
    assert "2 errors" in line and "20 in flight" in line
    assert "\n" not in line


async def test_progress_off_a_terminal_prints_whole_lines_and_a_last_one() -> None:
    stream = io.StringIO()  # not a terminal: no carriage returns

    async with progress("gateway", 5.0, lambda: Counts(3, 0, 1), stream=stream):
        pass

    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and "\r" not in stream.getvalue()
    assert lines[0].startswith("[load gateway] 00:00/00:05") and "3 turns" in lines[0]


# --- the report ---------------------------------------------------------------------------


def test_a_report_with_a_lost_turn_fails_and_says_where() -> None:
    good = Phase("client", conversations=1, tenants=1, turns=[replied("one", 1)])
    bad = Phase("gateway", conversations=1, tenants=1, turns=[replied("two", 1)])
    bad.violations = check_conversation("conversation 0", bad.turns, [], completed=0)
    report = LoadReport(LoadConfig(conversations=1, duration=1.0), [good], wall_seconds=2.0)

    assert report.passed and report.table().endswith("PASSED: no turn lost; wall time 2 s")
    report.phases.append(bad)
    table = report.table()

    assert not report.passed and table.splitlines()[-1].startswith("FAILED")
    assert "! gateway: lost: conversation 0: turn 1 replied to 'two', not in transcript" in table
    document = report.as_json()
    assert document["passed"] is False
    assert document["phases"]["gateway"]["lost_turns"] == 1
    assert document["phases"]["client"]["lost_turns"] == 0
