"""Replies kept by update id read back equal to what was stored, in order."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from durable_agent.contract import Reply, ToolCallRecord, Usage
from workflows.answered import Answered

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
