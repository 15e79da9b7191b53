"""Crash soak: ``kill -9`` the worker again and again under busy conversations, then
check that no turn was lost or done twice.

    python -m bench.crash_soak [--iterations 200] [--seed S] [--conversations C] [--json out.json]

It runs a Temporal dev server (or the caller's), the loopback ``FakeToolServer`` with
small seeded delays on every request (so kills land in the middle of tool calls), a
notes SQLite file, and ``python worker.py`` (offline model) as a child process. A few
conversations take a seeded stream of messages that call tools (arithmetic, "Remember
that soak item #k", the weather in one of the fake's cities, "list my notes"),
sometimes several at once so that they queue. Meanwhile, ``iterations`` times, at a
random moment (mostly while a tool call is in flight) the worker is killed with SIGKILL
and a new one started.

At the end each conversation must show one reply per message, turns exactly 1..M, each
user message once and in turn order in its transcript, ``status.turns == M``,
``status.usage`` equal to its replies' usages summed and state ``idle``; the notes store
must hold exactly one note per "Remember" message. Violations are printed and the exit
status is 1.

Timing: a kill stalls what it interrupts until a timeout fires. A tool call in flight is
retried after its heartbeat timeout (10 s; the model's is 30 s), a workflow task in
flight after its 10 s task timeout, and a conversation cached on the dead worker waits
up to 10 s on that worker's sticky queue. So the soak does not wait for recovery between
kills (conversations not interrupted go on meanwhile), and after each kill it resets the
sticky queues of the conversations and of their tenant's governor
(``ResetStickyTaskQueue``, what a supervisor that saw the worker die would do;
``--keep-sticky`` leaves them, to exercise the sticky timeout instead).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, PendingActivityState, TimeoutType
from temporalio.api.workflowservice.v1 import ResetStickyTaskQueueRequest
from temporalio.client import Client

from bench.harness import user_texts
from bench.processes import wait_polling, worker_process
from durable_agent.breaker import BreakerConfig
from durable_agent.client import SEND_FAILURES, Conversation, connect, start_conversation
from durable_agent.contract import ConversationInput, ConversationStatus, Reply, SafetyPolicy
from durable_agent.dependencies import MODEL, tool_dependency
from durable_agent.devserver import DevServer
from durable_agent.governor import governor_id
from durable_agent.process import exit_now
from durable_agent.stores.notes import open_note_store
from durable_agent.testing.fake_tools import CITIES, FakeToolServer
from durable_agent.testing.faults import Fault, FaultScript
from workflows.replay import replayer

log = logging.getLogger("bench.crash_soak")
PLACES = tuple(dict.fromkeys(city for city, *_ in CITIES))  # only these exist in the fake
MAX_MESSAGES = 500
"""Per conversation: a bound on the messages sent, whatever the timing."""
SEND_ERRORS: tuple[type[Exception], ...] = (TimeoutError, *SEND_FAILURES)


@dataclass(frozen=True)
class SoakConfig:
    """What one soak does."""

    iterations: int = 10
    """Worker kills."""
    seed: int = 0
    """Seeds every random choice: messages, delays, kill moments."""
    conversations: int = 6
    """Conversations driven at once (a kill stalls those it interrupts for ~10 s; the
    others go on)."""
    reset_sticky: bool = True
    """Reset the conversations' sticky queues after each kill (see the module docstring)."""
    mid_tool_share: float = 0.8
    """Share of kills that wait (up to ``tool_wait``) for a tool call in flight."""
    tool_wait: float = 3.0
    """Seconds a kill waits for a tool call before killing anyway."""
    gap: tuple[float, float] = (0.2, 1.5)
    """Seconds between a new worker polling and the next kill, drawn uniformly."""
    tool_delay: tuple[float, float] = (0.05, 0.4)
    """Seconds each tool API request is delayed, drawn uniformly."""
    think: tuple[float, float] = (0.0, 1.0)
    """Seconds a conversation pauses after each burst, drawn uniformly: kills find some
    conversations idle and some in the middle of a turn."""
    reply_timeout: float = 120.0
    """Seconds a message may wait for its reply."""


@dataclass
class Sent:
    """One message sent, and what came of it."""

    text: str
    note: str | None
    """The note a "Remember" message must leave, else None."""
    burst: int
    """Messages of one burst are sent at once; bursts follow each other."""
    reply: Reply | None = None
    error: str | None = None


@dataclass
class SoakReport:
    """Figures of one soak and every violation found.

    ``kills_mid_activity``: kills with an activity of a conversation running on the
    killed worker. ``tool_errors``: tool calls that came back to the model as errors
    (retries exhausted). ``replies_not_ok``: replies whose status is not ``ok``
    (degraded, timeout, ...): answered, but worse. From the conversations' histories:
    ``activity_retries``, attempts after the first; ``sticky_timeouts``, workflow tasks
    that waited out a dead worker's sticky queue; ``workflow_task_timeouts``, workflow
    tasks killed while running and retried after the task timeout.
    """

    seed: int
    iterations: int
    conversations: int
    kills: int = 0
    kills_mid_activity: int = 0
    messages: int = 0
    turns: int = 0
    notes: int = 0
    tool_calls: int = 0
    tool_errors: int = 0
    replies_not_ok: int = 0
    activity_retries: int = 0
    sticky_timeouts: int = 0
    workflow_task_timeouts: int = 0
    wall_seconds: float = 0.0
    violations: list[str] = field(default_factory=list)

    def table(self) -> str:
        """The figures, one per line."""
        rows = {k: v for k, v in asdict(self).items() if k != "violations"}
        rows["violations"] = len(self.violations)
        width = max(map(len, rows))
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows.items())


def make_message(rng: random.Random, conversation: int, index: int) -> tuple[str, str | None]:
    """A message that calls tools, and the note it should save (or None)."""
    note = f"soak item #{conversation * 1000 + index}"
    place = rng.choice(PLACES)
    a, b, c = rng.randint(2, 99), rng.randint(2, 99), rng.randint(2, 99)
    kind = rng.choices(["math", "note", "weather", "both", "list"], weights=[3, 3, 3, 2, 1])[0]
    if kind == "math":
        return f"What is {a} * ({b} + {c})?", None
    if kind == "note":
        return f"Remember that {note}.", note
    if kind == "weather":
        return f"What's the weather in {place}?", None
    if kind == "both":
        return f"Remember that {note} and what's the weather in {place}?", note
    return "List my notes.", None


async def converse(
    conversation: Conversation,
    index: int,
    rng: random.Random,
    stop: asyncio.Event,
    config: SoakConfig,
    sent: list[Sent],
) -> None:
    """Send bursts of one to three messages until ``stop``, appending them to ``sent``;
    each burst waits for its replies."""
    burst = 0
    while not stop.is_set() and len(sent) < MAX_MESSAGES:
        size = rng.choices([1, 2, 3], weights=[6, 3, 1])[0]
        batch = [Sent(*make_message(rng, index, len(sent) + i), burst) for i in range(size)]
        sent.extend(batch)
        await asyncio.gather(*(_deliver(conversation, s, config.reply_timeout) for s in batch))
        burst += 1
        await asyncio.sleep(rng.uniform(*config.think))


async def _deliver(conversation: Conversation, sent: Sent, timeout: float) -> None:
    started = time.monotonic()
    try:
        sent.reply = await asyncio.wait_for(conversation.send_message(sent.text), timeout)
    except SEND_ERRORS as e:  # any failure to reply is a finding, not a crash of the soak
        sent.error = f"{type(e).__name__}: {e}"
        log.info("%s: no reply to %r: %s", conversation.id, sent.text, sent.error)
        return
    took = time.monotonic() - started
    log.info("%s turn %d in %.1f s: %r", conversation.id, sent.reply.turn, took, sent.text)


async def tool_call_arrives(tools: FakeToolServer, timeout: float) -> bool:
    """Wait for the next tool API request; it stays in flight for its fault's delay."""
    seen = len(tools.requests)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(tools.requests) > seen:
            return True
        await asyncio.sleep(0.005)
    return False


async def running_activities(conversations: list[Conversation], pid: int) -> int:
    """Activities the worker process ``pid`` was running, per the server."""
    count = 0
    for conversation in conversations:
        description = await conversation.handle.describe()
        for activity in description.raw_description.pending_activities:
            count += activity.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED and (
                activity.last_worker_identity.startswith(f"{pid}@")
            )
    return count


async def reset_sticky(client: Client, workflow_ids: list[str]) -> None:
    """Send the workflows' next workflow tasks to their shared queue at once."""
    for workflow_id in workflow_ids:
        await client.workflow_service.reset_sticky_task_queue(
            ResetStickyTaskQueueRequest(
                namespace=client.namespace, execution=WorkflowExecution(workflow_id=workflow_id)
            )
        )


async def run_soak(
    config: SoakConfig, workdir: Path, server: DevServer | None = None
) -> SoakReport:
    """Run one soak in ``workdir`` (notes file, logs) against ``server``, or a dev
    server of its own when None."""
    report = SoakReport(config.seed, config.iterations, config.conversations)
    started = time.monotonic()
    own_server = server is None
    if server is None:
        server = DevServer(db_file=workdir / "temporal.sqlite3")
        await server.start()
    delays = random.Random(f"{config.seed}/delays")
    faults = FaultScript(
        *(Fault(delay=delays.uniform(*config.tool_delay)) for _ in range(4000)),
        always=Fault(delay=sum(config.tool_delay) / 2),
    )
    try:
        with FakeToolServer(faults) as tools:
            await _soak(config, workdir, server, tools, report)
    finally:
        if own_server:
            server.stop()
    report.wall_seconds = round(time.monotonic() - started, 1)
    return report


async def _soak(
    config: SoakConfig,
    workdir: Path,
    server: DevServer,
    tools: FakeToolServer,
    report: SoakReport,
) -> None:
    client = await connect(server.address)
    # A tenant, and so a tenant governor, of its own: nothing shared with other runs.
    run = f"soak-{config.seed}-{time.time_ns():x}"
    task_queue, tenant = run, run
    env = {"AGENT_GOVERNOR_TASK_QUEUE": f"{run}-governor"}
    notes_db, log_file = workdir / "notes.sqlite3", workdir / "workers.log"
    # The soak is about durability: notes after weather lookups (untrusted content) run
    # without approval here, an explicit relaxation of the provenance rule.
    start = ConversationInput(
        tenant=tenant, safety=SafetyPolicy(untrusted_allowed_tools=["save_note"])
    )
    conversations = [
        await start_conversation(client, start, task_queue=task_queue)
        for _ in range(config.conversations)
    ]
    sticky = [c.id for c in conversations] + [governor_id(tenant)]
    stop = asyncio.Event()
    async with contextlib.AsyncExitStack() as workers:

        async def new_worker() -> asyncio.subprocess.Process:
            process = await workers.enter_async_context(
                worker_process(server, task_queue, notes_db, tools, log_file=log_file, env=env)
            )
            await wait_polling(client, task_queue, process)
            log.info("worker %d polling", process.pid)
            return process

        worker = await new_worker()
        sent: list[list[Sent]] = [[] for _ in conversations]
        talks = [
            asyncio.create_task(
                converse(c, i, random.Random(f"{config.seed}/{i}"), stop, config, sent[i])
            )
            for i, c in enumerate(conversations)
        ]
        killer = random.Random(f"{config.seed}/kills")
        try:
            for _ in range(config.iterations):
                await asyncio.sleep(killer.uniform(*config.gap))
                if killer.random() < config.mid_tool_share:
                    await tool_call_arrives(tools, config.tool_wait)
                worker.send_signal(signal.SIGKILL)
                await worker.wait()
                report.kills += 1
                if config.reset_sticky:
                    await reset_sticky(client, sticky)
                running = await running_activities(conversations, worker.pid)
                report.kills_mid_activity += running > 0
                log.info("killed worker %d, %d activities running on it", worker.pid, running)
                worker = await new_worker()
        finally:
            stop.set()
            done, _ = await asyncio.wait(talks, timeout=config.reply_timeout + 10)
        for index, task in enumerate(talks):
            if task not in done:
                task.cancel()
                report.violations.append(f"conversation {index}: messages still unanswered")
        for index, conversation in enumerate(conversations):
            await _check_conversation(conversation, index, sent[index], report)
        await _check_notes(notes_db, tenant, [s for messages in sent for s in messages], report)
        for conversation in conversations:
            await conversation.end()
        for conversation in conversations:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(conversation.handle.result(), 10)
    if report.violations:
        tail = log_file.read_text(errors="replace")[-3000:] if log_file.exists() else ""
        report.violations.append(f"worker log tail:\n{tail}")


async def _check_conversation(
    conversation: Conversation, index: int, sent: list[Sent], report: SoakReport
) -> None:
    """One reply per message, turns 1..M, transcript once and in order, status agrees."""
    problems = report.violations
    name = f"conversation {index} ({conversation.id})"
    report.messages += len(sent)
    for s in sent:
        if s.reply is None:
            problems.append(f"{name}: no reply to {s.text!r}: {s.error}")
    answered = sorted(
        ((s, s.reply) for s in sent if s.reply is not None), key=lambda pair: pair[1].turn
    )
    turns = [reply.turn for _, reply in answered]
    if turns != list(range(1, len(sent) + 1)):
        problems.append(f"{name}: turns {turns} are not 1..{len(sent)}")
    bursts = [s.burst for s, _ in answered]
    if bursts != sorted(bursts):
        problems.append(f"{name}: a message was answered before an earlier burst's")
    status = await conversation.status()
    transcript = await conversation.transcript()
    said = user_texts(transcript)
    if said != [s.text for s, _ in answered] or len(said) != len(sent):
        problems.append(f"{name}: transcript user messages differ from the messages sent")
    if status.turns != len(sent) or status.state != "idle":
        problems.append(f"{name}: status turns={status.turns} state={status.state}")
    total: Counter[str] = Counter()
    for _, reply in answered:
        total.update(reply.usage.model_dump())
    if {k: total[k] for k in status.usage.model_dump()} != status.usage.model_dump():
        problems.append(f"{name}: status usage {status.usage} != replies' sum {dict(total)}")
    _check_breakers(name, status, [reply for _, reply in answered], problems)
    report.turns += status.turns
    calls = [call for _, reply in answered for call in reply.tool_calls]
    report.tool_calls += len(calls)
    report.tool_errors += sum(c.outcome != "ok" for c in calls)
    report.replies_not_ok += sum(reply.status != "ok" for _, reply in answered)
    history = await conversation.handle.fetch_history()
    replayed = await replayer().replay_workflow(history, raise_on_replay_failure=False)
    if replayed.replay_failure is not None:
        problems.append(f"{name}: does not replay: {replayed.replay_failure}")
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            report.activity_retries += event.activity_task_started_event_attributes.attempt - 1
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
            timeout = event.workflow_task_timed_out_event_attributes.timeout_type
            if timeout == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START:
                report.sticky_timeouts += 1
            else:
                report.workflow_task_timeouts += 1


def _check_breakers(
    name: str, status: ConversationStatus, replies: list[Reply], problems: list[str]
) -> None:
    """Each breaker's state is what the calls the replies report imply: the kills
    changed nothing. (A tool call whose activity failed through its retries says
    "<tool> failed: …"; any other outcome means the tool answered.)"""
    outcomes: dict[str, list[bool]] = {MODEL: [False] * sum(r.model_calls for r in replies)}
    for reply in replies:
        for call in reply.tool_calls:
            if call.outcome in ("ok", "error"):
                failed = call.result.startswith(f"{call.name} failed:")
                outcomes.setdefault(tool_dependency(call.name), []).append(failed)
    config = BreakerConfig()
    for dependency, seen in outcomes.items():
        breaker = status.breakers.get(dependency)
        if breaker is None:
            problems.append(f"{name}: no breaker for {dependency}")
            continue
        window = seen[-config.window_size :]
        trailing = len(seen) - len("".join("x" if f else "." for f in seen).rstrip("x"))
        rate = sum(window) / len(window) if window else 0.0
        trips = trailing >= config.failure_threshold or (
            len(window) >= config.minimum_calls and rate >= config.failure_rate_threshold
        )
        expected_state = "open" if trips else "closed"
        if (breaker.window_calls, breaker.consecutive_failures, breaker.state) != (
            len(window),
            trailing,
            expected_state,
        ) or abs(breaker.failure_rate - rate) > 1e-9:
            problems.append(f"{name}: breaker {dependency} is {breaker}, calls imply {seen}")


async def _check_notes(notes_db: Path, tenant: str, sent: list[Sent], report: SoakReport) -> None:
    """Exactly one note per "Remember" message, matched by text."""
    store = open_note_store(notes_db)
    try:
        notes = await store.list(tenant=tenant, query=None, limit=10 * MAX_MESSAGES)
    finally:
        await store.close()
    report.notes = len(notes)
    found = Counter(note.text for note in notes)
    expected = Counter(s.note for s in sent if s.note is not None)
    for text in sorted(found.keys() | expected.keys()):
        if found[text] != expected[text]:
            report.violations.append(f"note {text!r}: {found[text]} stored, {expected[text]} sent")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="kill -9 the worker again and again under busy conversations, then "
        "check that no turn was lost or done twice"
    )
    parser.add_argument("--iterations", type=int, default=200, help="worker kills")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--conversations", type=int, default=SoakConfig.conversations)
    parser.add_argument("--keep-sticky", action="store_true", help="no ResetStickyTaskQueue")
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("-v", "--verbose", action="store_true", help="log kills and replies")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run a soak, print its figures and violations; exit 1 on any violation."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(relativeCreated)7.0f ms  %(message)s",
    )
    config = SoakConfig(
        iterations=args.iterations,
        seed=args.seed,
        conversations=args.conversations,
        reset_sticky=not args.keep_sticky,
    )
    with tempfile.TemporaryDirectory(prefix="crash-soak-") as workdir:
        report = asyncio.run(run_soak(config, Path(workdir)))
    print(report.table())
    for violation in report.violations:
        print(f"VIOLATION: {violation}", file=sys.stderr)
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(report), indent=2) + "\n")
    exit_now(1 if report.violations else 0)


if __name__ == "__main__":
    main()
