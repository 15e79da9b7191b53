"""Conversations with alike inputs share their common parts, and each still holds
exactly the input it was given."""

from __future__ import annotations

from temporalio.contrib.pydantic import pydantic_data_converter

from durable_agent.contract import ConversationInput, SafetyPolicy
from workflows.sharing import share_alike


def decoded(input: ConversationInput) -> ConversationInput:
    """``input`` as a workflow gets it: decoded afresh from its payload."""
    converter = pydantic_data_converter.payload_converter
    payload = converter.to_payloads([input])[0]
    value: ConversationInput = converter.from_payloads([payload], [ConversationInput])[0]
    return value


def test_alike_inputs_share_their_common_parts_and_keep_their_values() -> None:
    given = ConversationInput(tools=["calculator"], tenant="a")
    first, second = decoded(given), decoded(given.model_copy(update={"tenant": "b"}))
    assert first.safety is not second.safety
    share_alike(first)
    share_alike(second)
    for part in ("system_prompt", "limits", "breakers", "safety", "delegation"):
        assert getattr(first, part) is getattr(second, part)
    assert first == given
    assert second == given.model_copy(update={"tenant": "b"})


def test_different_parts_are_not_shared() -> None:
    strict = ConversationInput(safety=SafetyPolicy(approval_levels=["write"]))
    plain, other = decoded(ConversationInput()), decoded(strict)
    share_alike(plain)
    share_alike(other)
    assert other.safety is not plain.safety
    assert other == strict
    assert other.limits is plain.limits  # what is alike is still shared


def test_a_shared_part_changed_in_place_is_not_handed_out_again() -> None:
    strict = ConversationInput(safety=SafetyPolicy(approval_tools=["save_note"]))
    first = decoded(strict)
    share_alike(first)
    first.safety.approval_tools.append("web_search")  # a bug somewhere: shared, mutated
    second = decoded(strict)
    share_alike(second)
    assert second.safety is not first.safety
    assert second == strict  # the policy it was given, not the changed one
