"""``TemporalCheck``: a refusal is reported at once, one missed deadline is forgiven
(a loaded machine), two in a row are not (a hung Temporal). The RPC is faked: what it
answers is the point, not a server."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from durable_agent.health import TemporalCheck


def _client(*answers: RPCError | None) -> Client:
    queue = list(answers)

    async def get_system_info(*_: Any, **__: Any) -> None:
        answer = queue.pop(0)
        if answer is not None:
            raise answer

    return cast(Client, SimpleNamespace(workflow_service=SimpleNamespace(
        get_system_info=get_system_info
    )))  # fmt: skip


def _error(status: RPCStatusCode) -> RPCError:
    return RPCError(status.name.lower(), status, b"")


async def test_a_refusal_is_reported_at_once() -> None:
    check = TemporalCheck(_client(_error(RPCStatusCode.UNAVAILABLE)))
    result = await check()
    assert not result.ok and "unreachable (UNAVAILABLE)" in result.reason


async def test_one_missed_deadline_is_forgiven_two_in_a_row_are_not() -> None:
    slow = _error(RPCStatusCode.CANCELLED)
    late = _error(RPCStatusCode.DEADLINE_EXCEEDED)
    check = TemporalCheck(_client(slow, None, late, slow, late), timeout=1.0)
    assert (await check()).ok  # one miss
    assert (await check()).ok  # answered: the count starts again
    assert (await check()).ok  # one miss
    second = await check()
    assert not second.ok and "did not answer within 1s" in second.reason
    assert not (await check()).ok
