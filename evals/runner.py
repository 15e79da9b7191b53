"""Run evaluation cases as real conversations, through the public client API.

Each case is one ``AgentWorkflow`` started with ``start_conversation``; its messages go
through ``Conversation.send_message`` one after another, a reviewer answers waiting tool
calls as the case says (``approve``/``reject``), and the replies, the transcript's
safety flags and the wall time of each turn become a ``CaseRun`` for scoring. The
loopback tool server is set up per case (extra search pages, faults) and reset after,
so cases run one at a time. Every wait is bounded: each turn by ``turn_timeout``, the
whole run by ``deadline``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from temporalio.client import (
    Client,
)

from durable_agent.client import (
    SEND_FAILURES,
    Conversation,
    MessageRejected,
    start_conversation,
)
from durable_agent.contract import Reply
from durable_agent.testing.fake_tools import FakeToolServer
from durable_agent.testing.faults import Fault
from evals.cases import Approval, Case, ToolServerSpec, Turn
from evals.scoring import CallSeen, CaseRun, CaseScore, TurnSeen, score_case

APPROVAL_POLL_SECONDS = 0.05
"""How often a turn with approval steps looks for waiting calls."""
TURN_FAILURES: tuple[type[Exception], ...] = (TimeoutError, *SEND_FAILURES)
"""How a turn can fail to give a reply: no reply in time, a refused approval, the
conversation closed, the server unreachable or the update aborted. The case fails."""
CALL_SECONDS = 30.0
"""Bound on every other call to the server (start, queries, end)."""


@dataclass(frozen=True)
class Target:
    """Where cases run: a Temporal client, a task queue some worker polls, and the
    loopback tool server that worker's HTTP tools call."""

    client: Client
    task_queue: str
    tool_server: FakeToolServer


def configure_tool_server(server: FakeToolServer, spec: ToolServerSpec) -> None:
    """Forget the previous case, then serve this case's pages and faults."""
    server.reset()
    server.pages = [(p.title, p.url, p.content) for p in spec.pages]
    for fault in spec.faults:
        planned = Fault(
            status=fault.status,
            retry_after=fault.retry_after,
            delay=fault.delay,
            drop=fault.drop,
            path=fault.path,
        )
        if fault.times == "always":
            server.faults.always = planned
        else:
            server.faults.add(*[planned] * fault.times)


async def _decide_waiting(
    conversation: Conversation, remaining: list[Approval], decided: set[str]
) -> None:
    """Approve or reject each waiting call the turn's approval steps name."""
    for pending in (await conversation.status()).pending_approvals:
        step = next((a for a in remaining if a.tool == pending.tool), None)
        if pending.call_id in decided or step is None:
            continue
        remaining.remove(step)
        decided.add(pending.call_id)
        if step.decision == "approve":
            await conversation.approve(
                pending.call_id, by=step.by, arguments=step.arguments, reason=step.reason
            )
        else:
            await conversation.reject(pending.call_id, by=step.by, reason=step.reason)


async def send(conversation: Conversation, turn: Turn, timeout: float) -> Reply:
    """Send the turn's message and wait for the reply, acting as the reviewer meanwhile;
    raises ``TimeoutError`` after ``timeout`` seconds."""
    reply = asyncio.ensure_future(conversation.send_message(turn.user))
    deadline = time.monotonic() + timeout
    remaining, decided = list(turn.approvals), set[str]()
    try:
        while not reply.done():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no reply within {timeout:.0f}s")
            wait = min(left, APPROVAL_POLL_SECONDS) if remaining else left
            await asyncio.wait({reply}, timeout=wait)
            if remaining and not reply.done():
                await asyncio.wait_for(
                    _decide_waiting(conversation, remaining, decided), CALL_SECONDS
                )
        return reply.result()
    finally:
        if not reply.done():
            reply.cancel()
            with contextlib.suppress(asyncio.CancelledError, *TURN_FAILURES):
                await reply


def observe(turn: Turn, reply: Reply, down: Sequence[str], seconds: float) -> TurnSeen:
    """A reply as the scorer sees it; ``down``: the dependencies the ``status`` query
    named as degraded right after it (flags are added from the transcript later)."""
    return TurnSeen(
        user=turn.user,
        status=reply.status,
        text=reply.text,
        tool_calls=[
            CallSeen(
                name=c.name,
                arguments=c.arguments,
                outcome=c.outcome,
                flags=c.flags,
                approval=c.approval.decision if c.approval else None,
            )
            for c in reply.tool_calls
        ],
        model_calls=reply.model_calls,
        cost_usd=reply.cost_usd,
        input_tokens=reply.usage.input_tokens
        + reply.usage.cache_creation_input_tokens
        + reply.usage.cache_read_input_tokens,
        output_tokens=reply.usage.output_tokens,
        degraded=sorted({*reply.degraded, *down}),
        seconds=seconds,
    )


async def run_case(
    target: Target, case: Case, *, turn_timeout: float = 120.0, stop_at: float | None = None
) -> CaseRun:
    """One case's conversation, turn by turn; never raises for what the agent does. Each
    turn may take ``turn_timeout`` seconds, and none runs past ``stop_at`` (a
    ``time.monotonic()`` value)."""
    started = time.monotonic()
    stop_at = started + turn_timeout * len(case.turns) if stop_at is None else stop_at
    configure_tool_server(target.tool_server, case.tool_server)
    run = CaseRun()
    conversation: Conversation | None = None
    turn_numbers: list[int | None] = []
    try:
        conversation = await asyncio.wait_for(
            start_conversation(target.client, case.input, task_queue=target.task_queue),
            CALL_SECONDS,
        )
        run.conversation_id = conversation.id
        for turn in case.turns:
            sent = time.monotonic()
            if sent >= stop_at:
                run.turns.append(TurnSeen(user=turn.user, error="not run: the deadline passed"))
                break
            try:
                reply = await send(conversation, turn, min(turn_timeout, stop_at - sent))
            except MessageRejected as e:
                run.turns.append(TurnSeen(user=turn.user, refused=e.type, text=e.reason))
                turn_numbers.append(None)
                continue
            except TURN_FAILURES as e:
                run.turns.append(TurnSeen(user=turn.user, error=f"{type(e).__name__}: {e}"))
                break
            seconds = round(time.monotonic() - sent, 3)
            down = (await asyncio.wait_for(conversation.status(), CALL_SECONDS)).degraded
            run.turns.append(observe(turn, reply, down, seconds))
            turn_numbers.append(reply.turn)
        flags = (await asyncio.wait_for(conversation.transcript(), CALL_SECONDS)).flags
        for seen, number in zip(run.turns, turn_numbers, strict=False):
            seen.flags = sorted(
                {f.source for f in flags if number is not None and f.turn == number}
            )
    except TURN_FAILURES as e:  # starting it, or a query after the turns
        run.error = f"{type(e).__name__}: {e}"
    finally:
        if conversation is not None:
            await _close(conversation, cancel=run.error is not None or _timed_out(run))
        target.tool_server.reset()
    run.seconds = round(time.monotonic() - started, 3)
    return run


def _timed_out(run: CaseRun) -> bool:
    return any(t.error is not None for t in run.turns)


async def _close(conversation: Conversation, *, cancel: bool) -> None:
    """End the conversation (cancel it when a turn is stuck) without waiting for it."""
    with contextlib.suppress(*TURN_FAILURES):
        await asyncio.wait_for(
            conversation.cancel() if cancel else conversation.end(), CALL_SECONDS
        )


async def run_cases(
    target: Target,
    cases: Sequence[Case],
    *,
    turn_timeout: float = 120.0,
    deadline: float = 540.0,
    on_score: Callable[[CaseScore], None] | None = None,
) -> list[CaseScore]:
    """Run and score ``cases`` in order. Cases still waiting when ``deadline`` seconds
    have passed are scored as not run (they fail)."""
    stop_at = time.monotonic() + deadline
    scores = []
    for case in cases:
        if time.monotonic() >= stop_at:
            run = CaseRun(error=f"not run: the run's deadline of {deadline:g}s passed")
        else:
            run = await run_case(target, case, turn_timeout=turn_timeout, stop_at=stop_at)
        score = score_case(case, run)
        scores.append(score)
        if on_score is not None:
            on_score(score)
    return scores
