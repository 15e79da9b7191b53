"""``while_not_ready``: what it repeats, for how long, and what it leaves alone (the
real server's refusal is in tests/integration/test_not_ready.py)."""

from __future__ import annotations

import time

import pytest
from temporalio.service import RPCError, RPCStatusCode

from durable_agent.client import conversation_not_ready, while_not_ready

NOT_READY = RPCError(
    "Unable to perform workflow execution update due to Workflow Task in failed state.",
    RPCStatusCode.FAILED_PRECONDITION,
    b"",
)


class Calls:
    def __init__(self, *outcomes: BaseException | str) -> None:
        self.outcomes = list(outcomes)
        self.count = 0

    async def __call__(self) -> str:
        self.count += 1
        outcome = self.outcomes.pop(0) if self.outcomes else "done"
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


async def test_a_refusal_is_repeated_until_the_call_succeeds() -> None:
    call = Calls(NOT_READY, NOT_READY)
    assert await while_not_ready(call, 10) == "done"
    assert call.count == 3


async def test_it_gives_up_after_its_seconds_with_the_refusal() -> None:
    call = Calls(*[NOT_READY] * 100)
    started = time.monotonic()
    with pytest.raises(RPCError) as raised:
        await while_not_ready(call, 0.5)
    assert raised.value is NOT_READY
    assert call.count >= 2 and time.monotonic() - started < 5


@pytest.mark.parametrize(
    "error",
    [
        RPCError("workflow not found", RPCStatusCode.NOT_FOUND, b""),
        RPCError("another precondition", RPCStatusCode.FAILED_PRECONDITION, b""),
        RPCError("unavailable", RPCStatusCode.UNAVAILABLE, b""),
        ValueError("not an RPC error"),
    ],
)
async def test_other_errors_are_raised_at_once(error: Exception) -> None:
    call = Calls(error)
    with pytest.raises(type(error)):
        await while_not_ready(call, 10)
    assert call.count == 1
    assert not (isinstance(error, RPCError) and conversation_not_ready(error))
