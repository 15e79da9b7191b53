"""The model request's size, measured message by message, is exactly the size of the
whole request's JSON, as the transcript grows, merges and is replaced."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from durable_agent.activity_models import (
    ModelRequest,
    StreamTarget,
    ToolDefinition,
    TranscriptWindow,
)
from durable_agent.contract import ContentBlock, Message, TextBlock, ToolResultBlock, ToolUseBlock
from workflows.transcript import RequestSize

TEXT = st.text(max_size=40)  # any unicode: sizes in chars and in UTF-8 bytes differ
BLOCKS: st.SearchStrategy[ContentBlock] = st.one_of(
    st.builds(TextBlock, text=TEXT),
    st.builds(ToolUseBlock, id=TEXT, name=TEXT, input=st.dictionaries(TEXT, TEXT, max_size=3)),
    st.builds(ToolResultBlock, tool_use_id=TEXT, content=TEXT, is_error=st.booleans()),
)
STEPS = st.lists(
    st.tuples(st.sampled_from(["append", "merge", "replace"]), st.lists(BLOCKS, max_size=3)),
    max_size=25,
)


def request(messages: list[Message], system: str) -> ModelRequest:
    tool = ToolDefinition(name="calc", description="é", input_schema={"type": "object"})
    return ModelRequest(model=None, system=system, messages=messages, tools=[tool], max_tokens=100)


@settings(max_examples=150, deadline=None)
@given(STEPS, TEXT)
def test_the_size_is_exactly_the_whole_requests(steps: list, system: str) -> None:
    messages: list[Message] = []
    size = RequestSize()
    for action, blocks in steps:
        if action == "append" or not messages:
            messages.append(Message(role="user", content=list(blocks) or [TextBlock(text="")]))
        elif action == "merge":
            messages[-1].content.extend(blocks)  # as _append_user does
        else:
            messages = [Message(role="assistant", content=list(blocks))]
            size.reset()
        whole = request(messages, system).model_dump_json()
        measured = size.of(request(messages, system))
        assert (measured.chars, measured.bytes) == (len(whole), len(whole.encode()))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(BLOCKS, min_size=1, max_size=3), max_size=8), st.integers(0, 8), TEXT)
def test_an_archived_prefix_counts_exactly_as_if_it_were_sent(
    contents: list[list[ContentBlock]], split: int, system: str
) -> None:
    from activities.transcripts import archive_of

    messages = [Message(role="user", content=list(blocks)) for blocks in contents]
    earlier, recent = messages[:split], messages[split:]
    _, archive = archive_of("transcript/c/run-1", earlier)
    whole = request(messages, system).model_dump_json()
    with_archive = request(recent, system).model_copy(
        update={"archive": archive if earlier else None}
    )
    measured = RequestSize().of(with_archive)
    assert (measured.chars, measured.bytes) == (len(whole), len(whole.encode()))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(BLOCKS, min_size=1, max_size=3), max_size=5), TEXT, TEXT)
def test_every_other_field_counts_exactly(
    contents: list[list[ContentBlock]], system: str, model: str
) -> None:
    messages = [Message(role="user", content=list(blocks)) for blocks in contents]
    full = request(messages, system).model_copy(
        update={
            "model": model,
            "window": TranscriptWindow(workflow_id=model, run_id="r", base=1, context_seq=2),
            "context_omitted": True,
            "stream": StreamTarget(turn=1, model_call=2, workflow_id=system),
        }
    )
    whole = full.model_dump_json()
    measured = RequestSize().of(full)
    assert (measured.chars, measured.bytes) == (len(whole), len(whole.encode()))
