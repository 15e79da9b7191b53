"""A model's compact JSON leaves out fields at their defaults and decodes back exactly."""

from __future__ import annotations

import base64
import json
import zlib
from decimal import Decimal
from typing import Annotated, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, ValidationError
from temporalio.contrib.pydantic import pydantic_data_converter

from durable_agent.budget import Budget
from durable_agent.client import start_input
from durable_agent.compact import compact_json
from durable_agent.contract import (
    PACKED,
    PACKED_MAX_BYTES,
    WORKFLOW_REVISION,
    AnsweredMessage,
    ContinuedState,
    ConversationInput,
    Message,
    Reply,
    TextBlock,
    ToolUseBlock,
    Usage,
    pack_continued,
)
from durable_agent.dependencies import DependencyHealth

REPLIES = st.builds(
    Reply,
    text=st.text(max_size=30),
    turn=st.integers(1, 10**6),
    usage=st.builds(Usage, input_tokens=st.integers(0, 10), output_tokens=st.integers(0, 10)),
    status=st.sampled_from(["ok", "budget_exceeded", "rate_limited"]),
    detail=st.none() | st.text(max_size=5),
    cost_usd=st.decimals(min_value=Decimal(0), max_value=Decimal(1), places=2),
    retry_after_seconds=st.none() | st.floats(0, 1e6, allow_nan=False),
)


@settings(max_examples=100, deadline=None)
@given(REPLIES)
def test_a_compact_reply_decodes_to_the_same_json(reply: Reply) -> None:
    compact = compact_json(reply)
    assert Reply.model_validate_json(compact).model_dump_json() == reply.model_dump_json()
    assert len(compact) <= len(reply.model_dump_json())


def test_a_carried_input_drops_its_defaults_and_keeps_tags_and_written_forms() -> None:
    messages = [
        Message(role="user", content=[TextBlock(text="hi")]),
        Message(role="assistant", content=[ToolUseBlock(id="t1", name="calc", input={})]),
    ]
    continued = ContinuedState(
        runs=1, messages=messages, turns=1, model_calls=1, last_error=None,
        budget=Budget(), health=DependencyHealth(), priced_model=None, flags=[], decisions=[],
        answered=[], event_seq=3,
    )  # fmt: skip
    reply = Reply(text="42", turn=1, cost_usd=Decimal("0.00"))  # equal to the default, not alike
    input = ConversationInput(tools=["calculator"], continued=continued)
    for model in (input, reply):
        compact = compact_json(model)
        back = type(model).model_validate_json(compact)
        assert back.model_dump_json() == model.model_dump_json()
    text = compact_json(input).decode()
    assert len(text) * 3 < len(input.model_dump_json())
    assert '"type":"text"' in text and '"type":"tool_use"' in text  # a block's tag stays
    assert "system_prompt" not in text and '"tools":["calculator"]' in text
    assert compact_json(reply) == b'{"text":"42","turn":1,"cost_usd":"0.00"}'


class _Plain(BaseModel):
    kind: Literal["plain", "other"] = "plain"
    text: str = ""


class _Loud(BaseModel):
    kind: Literal["loud"]
    text: str = ""


class _Holder(BaseModel):
    item: Annotated[_Plain | _Loud, Field(discriminator="kind")]


def test_a_form_that_would_not_decode_is_given_in_full() -> None:
    holder = _Holder(item=_Plain(text="x"))  # its tag has two values: left out, unreadable
    assert compact_json(holder) == holder.model_dump_json().encode()


def _carried(reply_text: str) -> ContinuedState:
    replies = [
        AnsweredMessage(update_id=f"u{n}", reply=Reply(text=reply_text, turn=n)) for n in range(4)
    ]
    return ContinuedState(
        runs=1, messages=[], turns=4, model_calls=4, last_error=None, budget=Budget(),
        health=DependencyHealth(), priced_model=None, flags=[], decisions=[], answered=replies,
    )  # fmt: skip


def test_a_packed_carried_state_decodes_to_the_same_input_and_is_smaller() -> None:
    input = ConversationInput(continued=_carried("I can help with arithmetic. " * 4))
    document = json.loads(compact_json(input))
    plain = json.dumps(document["continued"]).encode()
    packed = pack_continued(plain)
    assert packed.startswith(PACKED) and len(packed) * 2 < len(plain)
    back = ConversationInput.model_validate_json(json.dumps(document | {"continued": packed}))
    assert back == input
    assert ConversationInput.model_validate_json(json.dumps(document)) == input  # unpacked too


@pytest.mark.parametrize(
    ("packed", "why"),
    [
        (PACKED + "not base64!", "not zlib in base64"),
        (PACKED + base64.b64encode(b"not zlib").decode(), "not zlib in base64"),
        (PACKED + base64.b64encode(zlib.compress(b'{"runs": 1}')[:-4]).decode(), "truncated"),
        (PACKED + base64.b64encode(zlib.compress(b"[1, 2")).decode(), "not JSON"),
    ],
)
def test_a_bad_packed_carried_state_is_a_validation_error(packed: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        ConversationInput.model_validate({"continued": packed})


def test_a_packed_carried_state_that_unpacks_too_large_is_refused() -> None:
    bomb = zlib.compress(b" " * (PACKED_MAX_BYTES + 1), 9)  # ~64 KiB packed
    with pytest.raises(ValidationError, match="over"):
        ConversationInput.model_validate({"continued": PACKED + base64.b64encode(bomb).decode()})


def test_a_start_input_is_compact_and_decodes_to_the_input() -> None:
    input = ConversationInput(tools=["calculator"], tenant="acme", search_attributes=True)
    payload = start_input(input).payload
    decoded = pydantic_data_converter.payload_converter.from_payload(payload, ConversationInput)
    assert decoded == input.model_copy(update={"revision": WORKFLOW_REVISION})  # named
    assert payload.metadata["encoding"] == b"json/plain"
    assert len(payload.data) * 5 < len(input.model_dump_json())
