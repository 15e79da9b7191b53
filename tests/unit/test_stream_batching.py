"""The history budget of a streamed model call (``durable_agent.stream_batching``)."""

from __future__ import annotations

import itertools

import pytest

from durable_agent.contract import ModelDelta
from durable_agent.stream_batching import DeltaBuffer, FlushCredit, FlushPolicy

POLICY = FlushPolicy(interval_seconds=0.25, events_per_flush=4.0)


def delta(kind: str = "text", text: str = "", attempt: int = 1, **kw: object) -> ModelDelta:
    return ModelDelta.model_validate(
        {"turn": 1, "model_call": 1, "attempt": attempt, "kind": kind, "text": text, **kw}
    )


def simulate(policy: FlushPolicy, arrivals: list[float]) -> list[float]:
    """When a publisher flushes deltas arriving at ``arrivals`` (as ``DeltaPublisher``
    does): a delta arriving when nothing waits is flushed when the budget affords it,
    deltas arriving meanwhile join its batch, and what waits at the end rides the
    call's result (no flush)."""
    credit = FlushCredit(policy, arrivals[0])
    flushes: list[float] = []
    due: float | None = None  # when the waiting batch goes out
    for t in arrivals:
        if due is not None and due <= t:
            credit.spend(due)
            flushes.append(due)
            due = None
        if due is None:
            due = t + credit.wait(t)
            if due == t:
                credit.spend(t)
                flushes.append(t)
                due = None
    return flushes


def test_first_flush_is_immediate() -> None:
    credit = FlushCredit(POLICY, now=100.0)
    assert credit.wait(100.0) == 0.0


def test_a_flush_costs_its_events_and_credit_comes_back_over_time() -> None:
    credit = FlushCredit(POLICY, now=0.0)
    credit.spend(0.0)  # the first, on credit
    assert credit.balance(0.0) == -4.0
    assert credit.wait(0.0) == pytest.approx(2.0)  # 8 events at one per 250 ms
    assert credit.wait(1.5) == pytest.approx(0.5)
    assert credit.wait(2.0) == 0.0
    credit.spend(2.0)
    assert credit.wait(2.0) == pytest.approx(1.0)  # then one flush a second


def test_credit_does_not_accumulate_beyond_one_flush() -> None:
    credit = FlushCredit(POLICY, now=0.0)
    credit.spend(0.0)
    assert credit.balance(60.0) == POLICY.events_per_flush
    credit.spend(60.0)
    assert credit.wait(60.0) == pytest.approx(1.0)  # no burst after a quiet minute


def test_a_relayed_calls_last_flush_may_overdraw() -> None:
    credit = FlushCredit(POLICY, now=0.0)
    credit.spend(0.0)
    credit.spend(0.1)  # the end of a relayed call: paid whatever the balance
    assert credit.balance(0.1) < -4
    assert credit.wait(0.1) > 2.0


@pytest.mark.parametrize("seconds", [0.5, 2.0, 10.0, 60.0])
@pytest.mark.parametrize("tokens_per_second", [20.0, 200.0])
def test_history_stays_within_budget(seconds: float, tokens_per_second: float) -> None:
    """However fast tokens come, a call of T seconds flushes once at the start and
    then at most once per ``gap_seconds`` once the first is paid for: ≤ 1 event per
    250 ms for a call of a second or more, one flush for a shorter one."""
    step = 1 / tokens_per_second
    arrivals = [i * step for i in range(int(seconds / step) + 1)]
    flushes = simulate(POLICY, arrivals)
    assert flushes[0] == 0.0  # the first delta goes out at once
    events = len(flushes) * POLICY.events_per_flush
    budget = arrivals[-1] / POLICY.interval_seconds
    assert events <= max(budget, POLICY.events_per_flush)
    gaps = [b - a for a, b in itertools.pairwise(flushes)]
    assert all(g >= POLICY.gap_seconds - 1e-9 for g in gaps)
    assert not gaps or gaps[0] >= 2 * POLICY.gap_seconds - 1e-9


def test_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="positive"):
        FlushPolicy(interval_seconds=0)
    assert FlushPolicy().gap_seconds == 1.0


def test_buffer_joins_consecutive_text() -> None:
    buffer = DeltaBuffer()
    for word in ["Hello", " streaming", " world"]:
        buffer.add(delta(text=word))
    buffer.add(delta("tool_use_started", call_id="t1", tool="calculator"))
    buffer.add(delta("tool_use_finished", call_id="t1", tool="calculator"))
    buffer.add(delta("thinking", "hm"))
    buffer.add(delta("thinking", "m"))
    buffer.add(delta(text="done"))
    taken = buffer.take()
    assert [(d.kind, d.text) for d in taken] == [
        ("text", "Hello streaming world"),
        ("tool_use_started", ""),
        ("tool_use_finished", ""),
        ("thinking", "hmm"),
        ("text", "done"),
    ]
    assert len(buffer) == 0 and buffer.take() == []


def test_buffer_keeps_attempts_apart() -> None:
    buffer = DeltaBuffer()
    buffer.add(delta(text="a", attempt=1))
    buffer.add(delta("restarted", attempt=2))
    buffer.add(delta(text="b", attempt=2))
    buffer.add(delta(text="c", attempt=2))
    assert [(d.kind, d.text, d.attempt) for d in buffer.take()] == [
        ("text", "a", 1),
        ("restarted", "", 2),
        ("text", "bc", 2),
    ]
