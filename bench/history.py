"""Measurement 5: history growth per turn over a long conversation, and its replay.

One agent conversation runs to the last checkpoint, and beside it one bare-baseline
conversation (``bench.bare``) the same way. Its turns are greetings (one model
call, no tool: half the time of a calculator turn, so 1,000 of them fit the suite's
ten minutes; the transcript, and so any growth, accumulates the same way), sent five
at a time (each conversation, the bare one too, runs them back to back, in order). At
each checkpoint ``n`` the bytes and events per turn are those the second half of the
turns added: (size after ``n`` - size after ``n / 2``) / (``n / 2``). A
conversation may continue as new, so its size is summed over every run of its
workflow id (followed back through ``continued_execution_run_id``). Bytes are the
protobuf sizes of the events, as the server counts them against its limits.

Flatness turn by turn: every turn's bytes (``bench.breakdown.turn_bytes``: from one
reply to the next, so the turn right after a continue-as-new carries the new run's
input) and the largest against the median.

Then the conversations end and, once the measurements running alongside are done,
every run of the agent's is replayed with the workers' replayer: the replay time is
their sum (the strict reading; a worker that lost its cache replays only the current
run, so the longest run is reported too). Replay per turn is held against the bare
conversation's, replayed in the same run; the agent's replay at the first checkpoint
is reported beside it.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import asdict, dataclass

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from bench.bare import BareWorkflow
from bench.breakdown import spread, turn_bytes
from bench.harness import (
    AgentChat,
    BareChat,
    Bench,
    Deadline,
    Figure,
    Result,
    greetings,
    open_chat,
    timed_turns,
)
from durable_agent import converter
from durable_agent.contract import ConversationInput
from workflows import WORKFLOW_RUNNER
from workflows.replay import replayer

BYTES_TARGET = 1.2
LARGEST_TURN_TARGET = 3.0
"""The largest single turn's bytes over the median turn's."""
REPLAY_TARGET_SECONDS = 5.0
REPLAY_PER_TURN_TARGET = 1.5
"""Replay time per turn, agent over bare."""
TASK_COMPLETED = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
UPDATE_COMPLETED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED
REPLAY_RESERVE = 45.0
"""Seconds of the suite's bound kept for the replay."""
BATCH = 5
"""Messages sent at once (the conversation queues them and runs them back to back),
to spare the 1,000 turns a client round trip each; checkpoints end a batch."""
MAX_RUNS = 1000
"""Runs followed back from the latest (a bound, not an expectation)."""


@dataclass
class Size:
    """A conversation's history over all its runs so far."""

    bytes: int
    events: int
    runs: int
    at: float = 0.0
    """``time.monotonic()`` when it was measured."""


async def all_runs(client: Client, workflow_id: str) -> list[WorkflowHistory]:
    """The history of every run of ``workflow_id``, oldest first."""
    histories: list[WorkflowHistory] = []
    run_id: str | None = None
    for _ in range(MAX_RUNS):
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        histories.append(history)
        started = history.events[0].workflow_execution_started_event_attributes
        run_id = started.continued_execution_run_id or None
        if run_id is None:
            break
    return histories[::-1]


def size_of(histories: list[WorkflowHistory]) -> Size:
    events = [e for h in histories for e in h.events]
    return Size(sum(e.ByteSize() for e in events), len(events), len(histories))


def window(n: int) -> int:
    """Turns the figure at turn ``n`` averages over: the second half, so a
    continue-as-new (whose new run carries the transcript in its input) counts as
    often as it happens, not by the luck of where it falls."""
    return max(1, n // 2)


async def _drive(
    bench: Bench, chat: AgentChat | BareChat, deadline: Deadline, result: Result
) -> tuple[dict[int, Size], list[WorkflowHistory]]:
    """Run the conversation to the last checkpoint: its size at every turn a checkpoint
    needs, and its histories at the first checkpoint (the replay baseline)."""
    checkpoints = bench.scale.history_checkpoints
    wanted = {n for c in checkpoints for n in (c - window(c), c)}
    texts = greetings(f"{bench.seed}/history")
    sizes: dict[int, Size] = {}
    early: list[WorkflowHistory] = []
    turn = 0
    for stop in sorted(wanted | set(range(BATCH, max(checkpoints) + 1, BATCH))):
        batch = stop - turn
        latency = await timed_turns(chat, texts, batch, deadline, result.problems, 1, batch)
        if len(latency) < batch:
            break  # the deadline passed, or a turn failed
        turn = stop
        if turn in wanted:
            histories = await all_runs(bench.client, chat.id)
            sizes[turn] = size_of(histories)
            sizes[turn].at = time.monotonic()
            early = early or (histories if turn == checkpoints[0] else [])
    return sizes, early


def _per_turn(sizes: dict[int, Size], n: int) -> tuple[float, float, float] | None:
    """Bytes, events and wall-clock milliseconds per turn at turn ``n``."""
    w = window(n)
    if n not in sizes or n - w not in sizes:
        return None
    end, start = sizes[n], sizes[n - w]
    return (
        (end.bytes - start.bytes) / w,
        (end.events - start.events) / w,
        (end.at - start.at) * 1000 / w,
    )


def bare_replayer() -> Replayer:
    """A replayer of the bare baseline, with the workers' sandbox and data converter."""
    return Replayer(
        workflows=[BareWorkflow],
        data_converter=converter.data_converter,
        workflow_runner=WORKFLOW_RUNNER,
    )


async def _replay(
    histories: list[WorkflowHistory], deadline: Deadline, replay: Replayer
) -> list[float]:
    """Seconds to replay each history with ``replay``, as many as the deadline allows.
    A run whose first workflow task has not completed has nothing to replay (and the
    replayer would wait for that task forever), so it is skipped."""
    seconds = []
    for history in histories:
        if not any(e.event_type == TASK_COMPLETED for e in history.events):
            continue
        started = time.perf_counter()
        await asyncio.wait_for(replay.replay_workflow(history), deadline.left())
        seconds.append(time.perf_counter() - started)
    return seconds


def _flatness(result: Result, histories: list[WorkflowHistory]) -> None:
    """The largest turn against the median, and the turns that opened a new run."""
    sizes = turn_bytes(histories)
    found = spread(sizes)
    result.add(
        Figure(
            "largest turn vs median",
            "B",
            found["largest"],
            found["median"],
            "median turn",
            "<=",
            LARGEST_TURN_TARGET,
        )
    )
    completed = [
        sum(e.event_type == UPDATE_COMPLETED for e in history.events) for history in histories
    ]
    firsts = [sum(completed[:i]) + 1 for i in range(1, len(histories))]
    result.details["largest_turn"] = found["largest_turn"]
    result.details["turn_bytes"] = sizes
    result.details["turns_after_continue_as_new"] = {
        str(turn): sizes[turn - 1] for turn in firsts if turn <= len(sizes)
    }


async def measure(bench: Bench) -> Result:
    """Bytes and events per turn at each checkpoint; replay time of the whole."""
    checkpoints = bench.scale.history_checkpoints
    first, last = checkpoints[0], checkpoints[-1]
    result = Result("history", f"5. history per turn up to turn {last}, replay")
    deadline = bench.deadline(bench.scale.history_seconds, reserve=REPLAY_RESERVE)
    per_run = bench.scale.history_turns_per_run
    chat = await open_chat(
        bench.client,
        bench.hosts["agent"],
        ConversationInput(tools=["calculator"], continue_as_new_after_turns=per_run)
        if per_run
        else None,
    )
    bare_chat = await open_chat(bench.client, bench.hosts["bare"])
    (sizes, early), (bare_sizes, bare_early) = await asyncio.gather(
        _drive(bench, chat, deadline, result), _drive(bench, bare_chat, deadline, result)
    )
    base = _per_turn(sizes, first)
    for n in checkpoints:
        measured = _per_turn(sizes, n)
        if measured is None or base is None:
            result.complete = False
            continue
        target = n == last and n != first
        result.add(
            Figure(
                f"history bytes/turn @{n}",
                "B",
                measured[0],
                base[0],
                f"turn {first}",
                "<=" if target else None,
                BYTES_TARGET if target else None,
            )
        )
        result.add(
            Figure(f"history events/turn @{n}", "events", measured[1], base[1], f"turn {first}")
        )
    for ended in (chat, bare_chat):
        await ended.end()
        await asyncio.wait_for(bench.client.get_workflow_handle(ended.id).result(), 60)
    histories = await all_runs(bench.client, chat.id)
    bare_histories = await all_runs(bench.client, bare_chat.id)
    turns, bare_turns = max(sizes, default=0), max(bare_sizes, default=0)
    _flatness(result, histories)
    await asyncio.wait_for(bench.others_done.wait(), deadline.left() + 60)  # a quiet machine
    replaying = Deadline(REPLAY_RESERVE * 2, bench.suite)
    try:
        # Each replayer replays the first checkpoint first: what its first replay costs
        # once (imports) is not a cost per turn.
        agent_replayer, bare = replayer(), bare_replayer()
        baseline = await _replay(early, replaying, agent_replayer)
        runs = await _replay(histories, replaying, agent_replayer)
        await _replay(bare_early, replaying, bare)
        bare_runs = await _replay(bare_histories, replaying, bare)
    except (NondeterminismError, TimeoutError) as e:
        # E.g. workflows/agent.py changed on disk while the suite ran: the replayer
        # loads the new code, the history was made by the old.
        result.problems.append(f"replay failed: {type(e).__name__}: {e}"[:500])
        runs, baseline, bare_runs = [math.nan], [], [math.nan]
    result.add(
        Figure(
            "replay time per turn",
            "ms",
            sum(runs) * 1000 / max(1, turns),
            sum(bare_runs) * 1000 / max(1, bare_turns),
            f"bare, {bare_turns} turns",
            "<=",
            REPLAY_PER_TURN_TARGET,
        )
    )
    result.add(
        Figure(
            f"replay time, {turns} turns ({len(runs)} run{'s' if len(runs) > 1 else ''})",
            "s",
            sum(runs),
            None,
            "",
            "<",
            REPLAY_TARGET_SECONDS,
            "value",
        )
    )
    result.add(Figure("replay time, longest run", "s", max(runs, default=math.nan)))
    result.details = {
        "conversation": chat.id,
        "per_turn": {
            str(n): dict(zip(("bytes", "events", "ms"), map(round, found), strict=True))
            for n in checkpoints
            if (found := _per_turn(sizes, n))
        },
        "sizes": {str(n): asdict(s) for n, s in sorted(sizes.items())},
        "replay_seconds_by_run": [round(r, 3) for r in runs],
        "replay_seconds_at_first_checkpoint": round(sum(baseline), 3),
        "bare": {
            "conversation": bare_chat.id,
            "turns": bare_turns,
            "sizes": {str(n): asdict(s) for n, s in sorted(bare_sizes.items())},
            "replay_seconds": round(sum(bare_runs), 3),
        },
        **result.details,
    }
    result.complete = result.complete and max(checkpoints) in sizes
    return result
