"""What every measurement of the benchmark shares: scale, results, worker processes,
conversations driven the same way for the agent and the bare baseline, and clocks.

Every loop of the suite is bounded twice: by a count (the scale) and by a wall-clock
``Deadline``; a measurement that runs out of time reports what it measured, marked
``complete: false``.
"""

from __future__ import annotations

import asyncio
import math
import os
import platform
import random
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal, Protocol

from temporalio.client import Client, WorkflowHandle

from bench.bare import BARE_WORKFLOW, SIGNAL_END, UPDATE_TURN
from bench.processes import ROOT, stop, wait_polling
from durable_agent.client import SEND_FAILURES, Conversation, start_conversation
from durable_agent.contract import ConversationInput, Reply, TextBlock, Transcript, UserMessage
from durable_agent.devserver import DevServer

Kind = Literal["agent", "bare"]
Op = Literal["<=", ">=", "<"]

TURN_TIMEOUT = 60.0
"""Seconds one turn may take before the benchmark gives up on it."""
TURN_FAILURES: tuple[type[Exception], ...] = (TimeoutError, *SEND_FAILURES)
"""How a turn can fail to reply (a timeout surfaces as the SDK's cancellation error; an
overloaded server may abort an update in flight)."""
CLOSED_PORT_URL = "http://127.0.0.1:9"
"""Where the HTTP tools point: nothing listens, nothing leaves the machine."""


@dataclass(frozen=True)
class Scale:
    """How much each measurement does. ``FULL`` is ``make bench``; ``QUICK`` is the
    CI-sized run of ``tests/integration/test_bench.py``."""

    warmup_turns: int
    overhead_rounds: int
    """Step overhead: rounds, each a fresh conversation per variant, in alternating order."""
    overhead_turns: int
    """Step overhead: turns per round and variant."""
    concurrency: tuple[int, ...]
    """Throughput: conversations at once on one worker."""
    throughput_turns: tuple[int, ...]
    """Throughput: turns of each conversation, per level. The full run sends 4 at 50 and
    3 at 200: with one turn each (as until session 9), 200 conversations measured one
    burst of 200 updates, over in about 4.5 s, and the ratio read 0.75-1.05x from run
    to run; three turns measure the worker at a steady state for about 13 s."""
    throughput_rounds: int
    """Throughput: rounds at each level, agent and bare alternating which goes first;
    the figures are the medians (one round read 0.75-1.08x at 200 from run to run on
    two cores shared with the server)."""
    one_tenant: int
    """One tenant: conversations of one tenant on one worker, all at once."""
    one_tenant_turns: int
    """One tenant: turns of each of its conversations."""
    idle_conversations: int
    """Memory: conversations left cached and idle."""
    idle_turns: int
    """Memory: turns of each idle conversation."""
    memory_bare_conversations: int
    """Memory: conversations of the bare worker, for memory per conversation."""
    heap_conversations: int
    """Memory: conversations of each worker that traces its heap (``tracemalloc``
    slows a worker down: fewer than the RSS measurement's)."""
    history_checkpoints: tuple[int, ...]
    """History: turns at which bytes and events per turn are measured; the first is
    the baseline, the last is held to the target and replayed."""
    history_turns_per_run: int
    """History: the conversation continues as new after this many turns (0: the
    product's default), so a short run crosses continue-as-new too."""
    caching_turns: int
    """Prompt caching: turns of the conversation on the Claude path."""
    tuning_settings: tuple[str, ...]
    """Tuning sweep (``--tuning``): the ``bench.tuning.SETTINGS`` to measure."""
    tuning_concurrency: tuple[int, ...]
    """Tuning sweep: conversations at once on one worker, per level."""
    tuning_turns: tuple[int, ...]
    """Tuning sweep: turns of each conversation, per level."""
    step_seconds: float
    """Wall-clock bounds of each measurement (the history's replay comes after its
    bound, on the conversation as far as it got)."""
    throughput_seconds: float
    one_tenant_seconds: float
    memory_seconds: float
    history_seconds: float
    caching_seconds: float
    tuning_seconds: float
    suite_seconds: float
    """Wall-clock bound of the whole suite, start-up included: no measurement runs past
    it (the history keeps ``REPLAY_RESERVE`` of it for its replay)."""

    def __post_init__(self) -> None:
        if len(self.throughput_turns) != len(self.concurrency):
            raise ValueError("throughput_turns needs one entry per concurrency level")
        if len(self.tuning_turns) != len(self.tuning_concurrency):
            raise ValueError("tuning_turns needs one entry per tuning_concurrency level")


FULL = Scale(
    warmup_turns=2,
    overhead_rounds=4,
    overhead_turns=10,
    concurrency=(1, 50, 200),
    throughput_turns=(8, 4, 3),
    throughput_rounds=3,
    one_tenant=200,
    one_tenant_turns=1,
    idle_conversations=1000,
    idle_turns=2,
    memory_bare_conversations=200,
    heap_conversations=100,
    history_checkpoints=(10, 100, 1000),
    history_turns_per_run=0,
    caching_turns=20,
    tuning_settings=(
        "SDK defaults",
        "workflow task slots 20",
        "workflow task slots 400",
        "activity slots 400",
        "pollers 16/16",
        "pollers autoscaling",
        "sticky cache 100",
    ),
    tuning_concurrency=(1, 50, 200),
    tuning_turns=(4, 2, 1),
    step_seconds=45,
    throughput_seconds=300,
    one_tenant_seconds=60,
    memory_seconds=380,
    history_seconds=380,
    caching_seconds=60,
    tuning_seconds=480,
    suite_seconds=600,
)
QUICK = Scale(
    warmup_turns=1,
    overhead_rounds=2,
    overhead_turns=3,
    concurrency=(1, 3, 6),
    throughput_turns=(3, 1, 1),
    throughput_rounds=1,
    one_tenant=20,
    one_tenant_turns=1,
    idle_conversations=10,
    idle_turns=2,
    memory_bare_conversations=10,
    heap_conversations=5,
    history_checkpoints=(4, 10),
    history_turns_per_run=4,
    caching_turns=3,
    tuning_settings=("SDK defaults", "workflow task slots 20"),
    tuning_concurrency=(1, 5),
    tuning_turns=(2, 1),
    step_seconds=30,
    throughput_seconds=30,
    one_tenant_seconds=30,
    memory_seconds=30,
    history_seconds=30,
    caching_seconds=30,
    tuning_seconds=40,
    suite_seconds=150,
)


# --- results ---------------------------------------------------------------------------


@dataclass
class Figure:
    """One number, the baseline it is compared with, and its target (if it has one).

    The target applies to ``ratio`` (value / baseline) when ``target_on`` is
    ``"ratio"``, to ``value`` itself when ``"value"``."""

    name: str
    unit: str
    value: float
    baseline: float | None = None
    baseline_name: str = ""
    target_op: Op | None = None
    target: float | None = None
    target_on: Literal["ratio", "value"] = "ratio"

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline

    @property
    def met(self) -> bool | None:
        """Whether the target holds; None without a target or a measurement."""
        if self.target_op is None or self.target is None:
            return None
        measured = self.ratio if self.target_on == "ratio" else self.value
        if measured is None or math.isnan(measured):
            return False
        if self.target_op == "<=":
            return measured <= self.target
        if self.target_op == ">=":
            return measured >= self.target
        return measured < self.target

    def target_text(self) -> str:
        if self.target_op is None or self.target is None:
            return ""
        op = {"<=": "≤", ">=": "≥", "<": "<"}[self.target_op]
        if self.target_on == "ratio":
            return f"{op} {self.target:g}x {self.baseline_name}"
        return f"{op} {self.target:g} {self.unit}"

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "met": self.met, "target": self.target_text()}


@dataclass
class Result:
    """One measurement: its figures, extra details, and anything that went wrong."""

    key: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    complete: bool = True
    """False when it did less than planned (a deadline passed, or turns failed): its
    figures cover what was measured."""
    seconds: float = 0.0

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        return figure

    def as_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "complete": self.complete,
            "seconds": round(self.seconds, 1),
            "figures": [f.as_json() for f in self.figures],
            "details": self.details,
            "problems": self.problems,
        }


def machine() -> dict[str, Any]:
    """What a result was measured on, for its JSON report."""
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "temporalio": version("temporalio"),
    }


def user_texts(transcript: Transcript) -> list[str]:
    """The text blocks users sent, in order (tool results left out)."""
    return [
        block.text
        for message in transcript.messages
        if message.role == "user"
        for block in message.content
        if isinstance(block, TextBlock)
    ]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0 to 100) by nearest rank; NaN when there are no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


class Deadline:
    """A wall-clock bound on a measurement."""

    def __init__(self, seconds: float, within: Deadline | None = None) -> None:
        self._end = time.monotonic() + seconds
        if within is not None:
            self._end = min(self._end, within._end)

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self._end

    def left(self) -> float:
        return max(0.0, self._end - time.monotonic())


# --- worker processes ------------------------------------------------------------------


def worker_env(workdir: Path, **overrides: str) -> dict[str, str]:
    """The environment of a benchmark worker: our environment without any ``AGENT_*``
    or ``ANTHROPIC_*`` setting of the caller, the offline model, files in ``workdir``,
    HTTP tools pointed at a closed loopback port, no metrics or health ports, and no
    tenant rate limit or daily budget (they would measure the policy, not the
    overhead; the governor is still asked before every model call)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_", "ANTHROPIC_"))}
    env.update(
        {
            "AGENT_MODEL_BACKEND": "offline",
            "AGENT_NOTES_DB": str(workdir / "notes.sqlite3"),
            "AGENT_BLOB_DB": str(workdir / "blobs.sqlite3"),
            "AGENT_WEATHER_URL": CLOSED_PORT_URL,
            "AGENT_GEOCODING_URL": CLOSED_PORT_URL,
            "AGENT_SEARCH_URL": CLOSED_PORT_URL,
            "AGENT_LOG_LEVEL": "ERROR",
            "AGENT_METRICS_PORT": "0",
            "AGENT_HEALTH_PORT": "0",
            "AGENT_TENANT_MODEL_CALLS_PER_MINUTE": "",
            "AGENT_TENANT_DAILY_USD": "",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class Host:
    """A running ``bench.host`` worker process."""

    kind: Kind
    task_queue: str
    process: asyncio.subprocess.Process
    heap_file: Path | None = None
    """Where it writes its traced heap on SIGUSR1 (``bench.host``), if it traces it."""

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def tenant(self) -> str:
        """The tenant of its conversations: one per host, so each host's tenant
        governor is its own, served on the host's governor queue (and nothing is
        shared with other runs on the same server)."""
        return self.task_queue

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process (all its threads) so far."""
        return process_cpu_seconds(self.pid)

    def rss_bytes(self) -> int:
        """Resident set size of the process now."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no VmRSS for process {self.pid}")

    async def traced_bytes(self, timeout: float = 30.0) -> int:
        """Bytes allocated and still held, by ``tracemalloc`` in the process, after a
        garbage collection."""
        if self.heap_file is None:
            raise RuntimeError(f"worker {self.pid} does not trace its heap")
        self.heap_file.unlink(missing_ok=True)
        os.kill(self.pid, signal.SIGUSR1)
        deadline = Deadline(timeout)
        while not self.heap_file.exists():
            if deadline.expired:
                raise TimeoutError(f"worker {self.pid} wrote no heap size in {timeout:.0f}s")
            await asyncio.sleep(0.05)
        return int(self.heap_file.read_text())

    async def settle(self, seconds: float = 0.3) -> float:
        """Wait for trailing work (a settle signal, a last workflow task) to finish,
        then return the CPU time."""
        await asyncio.sleep(seconds)
        return self.cpu_seconds()


@asynccontextmanager
async def worker_host(
    server: DevServer,
    client: Client,
    kind: Kind,
    workdir: Path,
    env: Mapping[str, str] | None = None,
    *,
    trace_heap: bool = False,
) -> AsyncIterator[Host]:
    """A ``bench.host`` process of ``kind`` polling a fresh task queue of its own;
    stopped with SIGTERM (killed after 15 s) on exit. Its output goes to
    ``workdir/<queue>.log``. With ``trace_heap`` it traces its heap (``Host.traced_bytes``)."""
    queue = f"bench-{kind}-{uuid.uuid4().hex[:8]}"
    heap_file = workdir / f"{queue}.heap" if trace_heap else None
    if heap_file is not None:
        env = {**(env or {}), "BENCH_HEAP_FILE": str(heap_file)}
    environment = worker_env(
        workdir,
        AGENT_TEMPORAL_ADDRESS=server.address,
        AGENT_TASK_QUEUE=queue,
        AGENT_GOVERNOR_TASK_QUEUE=f"{queue}-governor",
        **(env or {}),
    )
    with (workdir / f"{queue}.log").open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.host", kind,
            cwd=ROOT, env=environment, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
        )  # fmt: skip
        try:
            await wait_polling(client, queue, process, timeout=60.0)
            yield Host(kind, queue, process, heap_file)
        finally:
            await stop(process)


# --- conversations ---------------------------------------------------------------------


class Chat(Protocol):
    """A conversation the benchmark drives: one update per message."""

    @property
    def id(self) -> str: ...

    async def send(self, text: str) -> Reply: ...

    async def end(self) -> None: ...


@dataclass
class AgentChat:
    """An ``AgentWorkflow`` through the client API."""

    conversation: Conversation

    @property
    def id(self) -> str:
        return self.conversation.id

    async def send(self, text: str) -> Reply:
        return await asyncio.wait_for(self.conversation.send_message(text), TURN_TIMEOUT)

    async def end(self) -> None:
        await self.conversation.end()


@dataclass
class BareChat:
    """A ``BareWorkflow``, driven by the same kind of update."""

    handle: WorkflowHandle[Any, Any]

    @property
    def id(self) -> str:
        return self.handle.id

    async def send(self, text: str) -> Reply:
        reply: Reply = await asyncio.wait_for(
            self.handle.execute_update(UPDATE_TURN, UserMessage(text=text), result_type=Reply),
            TURN_TIMEOUT,
        )
        return reply

    async def end(self) -> None:
        await self.handle.signal(SIGNAL_END)


async def open_chat(
    client: Client, host: Host, input: ConversationInput | None = None, tenant: str = ""
) -> AgentChat | BareChat:
    """A new conversation served by ``host``. Agent conversations offer only the
    calculator unless ``input`` says otherwise (the requests then match the bare ones),
    and belong to ``tenant`` or else the host's own: either way their tenant governor
    runs on that host too."""
    if host.kind == "agent":
        input = (input or ConversationInput(tools=["calculator"])).model_copy(
            update={"tenant": tenant or host.tenant}
        )
        return AgentChat(await start_conversation(client, input, task_queue=host.task_queue))
    handle = await client.start_workflow(
        BARE_WORKFLOW, id=f"bare-{uuid.uuid4().hex[:12]}", task_queue=host.task_queue
    )
    return BareChat(handle)


def prompts(seed: int | str) -> Iterator[str]:
    """Endless seeded messages that each ask for one calculator call."""
    rng = random.Random(seed)
    while True:
        yield f"What is {rng.randint(11, 999)} * {rng.randint(11, 999)}?"


def greetings(seed: int | str) -> Iterator[str]:
    """Endless seeded messages that ask for no tool (one model call each)."""
    rng = random.Random(seed)
    while True:
        yield f"Hello, this is message {rng.randint(1, 10**6)}; nothing to calculate today."


def turn_problem(reply: Reply, kind: str, model_calls: int = 2) -> str | None:
    """Why ``reply`` is not the turn the benchmark sent (``model_calls`` model calls:
    two for a calculator turn, one for a greeting)."""
    if reply.status != "ok" or reply.model_calls != model_calls:
        return (
            f"{kind} turn {reply.turn}: status {reply.status}, {reply.model_calls} model "
            f"calls ({reply.detail or reply.text[:80]!r})"
        )
    return None


async def timed_turns(
    chat: Chat,
    texts: Iterator[str],
    turns: int,
    deadline: Deadline,
    problems: list[str],
    model_calls: int = 2,
    together: int = 1,
    finished: list[float] | None = None,
) -> list[float]:
    """Send up to ``turns`` messages (fewer if the deadline passes or a turn fails),
    ``together`` at a time: the conversation queues them and runs their turns back to
    back. The latency of each, in seconds; ``finished`` gets the ``perf_counter()``
    moment each reply came."""
    latencies: list[float] = []
    while len(latencies) < turns and not deadline.expired:
        batch = [next(texts) for _ in range(min(together, turns - len(latencies)))]
        outcomes = await asyncio.gather(*(_timed_send(chat, text) for text in batch))
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                if len(problems) < 20:
                    problems.append(f"{type(chat).__name__} {chat.id}: {outcome!r}"[:300])
                return latencies  # the conversation is stuck behind this turn
            reply, seconds, at = outcome
            latencies.append(seconds)
            if finished is not None:
                finished.append(at)
            problem = turn_problem(reply, type(chat).__name__, model_calls)
            if problem and len(problems) < 20:
                problems.append(problem)
    return latencies


async def _timed_send(chat: Chat, text: str) -> tuple[Reply, float, float] | BaseException:
    started = time.perf_counter()
    try:
        reply = await chat.send(text)
    except TURN_FAILURES as e:
        return e
    finished = time.perf_counter()
    return reply, finished - started, finished


def _set(event: asyncio.Event) -> asyncio.Event:
    event.set()
    return event


@dataclass
class Bench:
    """What a measurement runs against."""

    server: DevServer
    client: Client
    scale: Scale
    seed: int
    workdir: Path
    hosts: dict[str, Host] = field(default_factory=dict)
    """Worker processes by name (``agent``, ``bare``, ``agent-memory``, ...)."""
    others_done: asyncio.Event = field(default_factory=lambda: _set(asyncio.Event()))
    """Set once the other measurements running at the same time have finished: what
    times itself in a shared phase waits for it."""
    suite: Deadline | None = None
    """The whole suite's bound (``Scale.suite_seconds``), set when it starts."""
    metrics_url: str | None = None
    """The server's Prometheus endpoint, when the suite started the server (a server
    passed in has none: what needs it is left out)."""

    def deadline(self, seconds: float, reserve: float = 0.0) -> Deadline:
        """A measurement's bound: ``seconds`` from now, and ``reserve`` seconds before
        the suite's."""
        if self.suite is None:
            return Deadline(seconds)
        return Deadline(seconds, Deadline(self.suite.left() - reserve))
