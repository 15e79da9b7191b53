"""What ``workflows.feed`` relies on in the experimental Workflow Streams library,
beyond its public API: a new temporalio that changes these fails here, not in a
conversation."""

from __future__ import annotations

import dataclasses
import inspect
import re

from temporalio.contrib.workflow_streams import WorkflowStream, WorkflowStreamState, _stream, _types
from temporalio.contrib.workflow_streams._types import _WorkflowStreamWireItem

from workflows.feed import CARRIED_MAX, HELD, IDLE_HELD, ConversationStream


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
