"""What ``workflows.feed`` relies on in the experimental Workflow Streams library,
beyond its public API: a new temporalio that changes these fails here, not in a
conversation."""

from __future__ import annotations

import dataclasses
import inspect
import re
from datetime import UTC, datetime

from pydantic_core import to_json
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.contrib.workflow_streams import WorkflowStream, WorkflowStreamState, _stream, _types
from temporalio.contrib.workflow_streams._types import _WorkflowStreamWireItem

from durable_agent.contract import ConversationEvent, ModelDelta, Reply, ToolCallRecord
from durable_agent.converter import data_converter
from workflows.feed import (
    CARRIED_MAX,
    HELD,
    IDLE_HELD,
    RESULT_PREVIEW,
    ConversationStream,
    _encoded,
    _event,
    _Packed,
)


def test_the_library_keeps_its_log_where_the_feed_reads_it() -> None:
    source = inspect.getsource(WorkflowStream.__init__)
    assert "self._log" in source and "self._base_offset" in source
    assert "def truncate" in inspect.getsource(WorkflowStream)
    assert issubclass(ConversationStream, WorkflowStream)


def test_carried_state_has_the_fields_the_feed_fills() -> None:
    assert [f.name for f in dataclasses.fields(_WorkflowStreamWireItem)] == [
        "topic", "data", "offset",
    ]  # fmt: skip
    assert {f.name for f in dataclasses.fields(WorkflowStreamState)} == {
        "log", "base_offset", "publishers",
    }  # fmt: skip


def test_retention_is_ordered() -> None:
    assert CARRIED_MAX < IDLE_HELD < HELD


def test_the_library_reads_an_items_data_only_as_bytes() -> None:
    # ConversationStream keeps items packed (feed._Packed): only these two reads work on them.
    reads = set(re.findall(r"(\w+)\(item\.data", inspect.getsource(WorkflowStream)))
    assert reads == {"_encode_payload", "_payload_wire_size", "_decode_payload"}
    assert "payload.SerializeToString()" in inspect.getsource(_types._encode_payload)
    assert "payload.ByteSize()" in inspect.getsource(_stream._payload_wire_size)
    # _decode_payload(item.data) decodes a carried wire item, not a log item:
    assert "prior_state.log" in inspect.getsource(WorkflowStream.__init__)
    assert "item.data" not in inspect.getsource(WorkflowStream.truncate)


def test_an_item_kept_as_its_value_encodes_as_the_library_would() -> None:
    # While a run replays, items are kept as values and encoded when first read.
    converter = pydantic_data_converter.payload_converter
    event = ConversationEvent(seq=3, at=datetime(2026, 1, 2, tzinfo=UTC), kind="reply", turn=1)
    eager = converter.to_payloads([event])[0]
    lazy = _Packed.later(lambda: event, converter)
    assert lazy.ByteSize() == eager.ByteSize()
    assert lazy.SerializeToString() == eager.SerializeToString()
    assert lazy.payload() == eager


def test_a_reply_event_cuts_tool_results_to_a_preview_and_leaves_the_reply_whole() -> None:
    # Made at emit time while live, and when first read while replaying: the same event.
    long = ToolCallRecord(id="t1", name="fetch", arguments={}, outcome="ok", result="x" * 500)
    reply = Reply(text="done", turn=2, tool_calls=[long])
    fields = {"reply": reply}
    at = datetime(2026, 1, 2, tzinfo=UTC)
    event = _event(7, at, "reply", 2, fields)
    assert event.reply is not None
    assert event.reply.tool_calls[0].result == "x" * RESULT_PREVIEW
    assert reply.tool_calls[0].result == "x" * 500 and fields == {"reply": reply}
    assert _event(7, at, "reply", 2, fields) == event


def test_a_live_item_is_encoded_as_the_workflows_converter_would() -> None:
    # Published live, an event skips the converter chain (feed._encoded): same bytes.
    long = ToolCallRecord(id="t1", name="fetch", arguments={"q": "é"}, outcome="ok", result="r")
    values = [
        ConversationEvent(seq=3, at=datetime(2026, 1, 2, tzinfo=UTC), kind="turn_started", turn=1),
        ConversationEvent(
            seq=4,
            at=datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
            kind="reply",
            turn=1,
            reply=Reply(text="ünïcode ✓", turn=1, tool_calls=[long]),
        ),
        ModelDelta(turn=1, model_call=2, kind="text", text=" word"),
    ]
    # Data at each edge of its length prefix's size (1 to 4 bytes): 127/128, 16,383/16,384
    # and 2,097,151/2,097,152 bytes (an empty text delta is 106).
    deltas = [
        ModelDelta(turn=1, model_call=1, kind="text", text="x" * (size - 106))
        for size in (127, 128, 16_383, 16_384, 2_097_151, 2_097_152)
    ]
    assert [len(to_json(d)) for d in deltas] == [127, 128, 16_383, 16_384, 2_097_151, 2_097_152]
    values += deltas
    for value in values:
        for converter in (
            data_converter.payload_converter,
            pydantic_data_converter.payload_converter,
        ):
            assert _encoded(value) == converter.to_payloads([value])[0].SerializeToString()
