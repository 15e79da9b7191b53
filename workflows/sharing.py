"""Parts of a conversation's input that conversations have alike — the system prompt,
limits, breaker settings, safety policy and delegation limits — are shared by a
worker's cached conversations instead of each holding a decoded copy of its own: ~7 KiB
of heap per cached conversation with the defaults.

Deterministic: a conversation gets an object equal to the one it decoded, so which of
the equal objects it holds changes nothing it does, on replay either. Shared objects
must never change in place; workflow code reads its input and derives new values with
``model_copy`` (``tests/unit/test_sharing.py`` holds the cache to equal values). The
cache is bounded: past ``MAX_SHARED`` distinct values, new ones are not shared.
"""

from __future__ import annotations

from typing import TypeVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from durable_agent.contract import ConversationInput

MAX_SHARED = 256
"""Distinct values kept (each a few KiB at most, a system prompt its own length)."""

_T = TypeVar("_T")
_shared: dict[tuple[str, str], object] = {}


def share_alike(input: ConversationInput) -> None:
    """Swap ``input``'s common parts for equal ones other conversations already hold.
    In place: the SDK keeps the decoded input for as long as the run is cached."""
    input.system_prompt = _alike("system_prompt", input.system_prompt, input.system_prompt)
    input.limits = _alike("limits", input.limits.model_dump_json(), input.limits)
    input.breakers = _alike("breakers", input.breakers.model_dump_json(), input.breakers)
    input.safety = _alike("safety", input.safety.model_dump_json(), input.safety)
    input.delegation = _alike("delegation", input.delegation.model_dump_json(), input.delegation)


def _alike(field: str, key: str, value: _T) -> _T:
    found = _shared.get((field, key))
    if found is not None:
        if _key_of(found) == key:
            return found  # type: ignore[return-value]  # stored under its field's key
        # Changed in place by some conversation: never handed out again (a policy must
        # not leak between conversations). Loud, so the code that did it gets fixed.
        del _shared[(field, key)]
        if workflow.in_workflow():
            workflow.logger.error(
                "a shared %s was changed in place; not shared any more", field,
                extra={"event": "shared_input_changed", "field": field},
            )  # fmt: skip
        return value
    if len(_shared) < MAX_SHARED:
        _shared.setdefault((field, key), value)
    return value


def _key_of(value: object) -> str:
    return value if isinstance(value, str) else value.model_dump_json()  # type: ignore[attr-defined]
