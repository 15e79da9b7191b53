"""Update arguments decoded as their models: a malformed one gets a precise typed
error naming what was wrong (taken raw, so decoding never fails the workflow task)."""

from __future__ import annotations

from typing import TypeVar

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ValidationError

    from durable_agent.contract import (
        INVALID_APPROVAL,
        INVALID_MESSAGE,
        UserMessage,
    )
    from durable_agent.tools.registry import describe_validation_error


def parse_message(raw: RawValue) -> UserMessage:
    return parse(raw, UserMessage, "message", '{"text": "...", "stream": true?}', INVALID_MESSAGE)


P = TypeVar("P", bound=BaseModel)
APPROVE_SHAPE = '{"call_id": "...", "by": "...", "arguments": {...}?, "reason": "..."?}'
REJECT_SHAPE = '{"call_id": "...", "by": "...", "reason": "..."}'
CLEAR_SHAPE = '{"by": "...", "reason": "..."?}'


def parse(
    raw: RawValue,
    model: type[P],
    label: str,
    expected: str,
    error_type: str = INVALID_APPROVAL,
) -> P:
    """Decode an update's raw argument as ``model``; a precise typed error otherwise."""
    try:
        value = workflow.payload_converter().from_payload(raw.payload, model)
    except (ValidationError, ValueError, TypeError) as e:
        detail = (
            describe_validation_error(e, root=label) if isinstance(e, ValidationError) else str(e)
        )
        raise ApplicationError(
            f"malformed {label}, expected {expected}: {detail}", type=error_type, non_retryable=True
        ) from None
    if not isinstance(value, model):
        raise ApplicationError(f"malformed {label}", type=error_type, non_retryable=True)
    return value
