"""The load test (``make load``): many conversations at once, faults on, no turn lost.

    python -m bench.load [--conversations 20] [--duration 60] [--fault-rate 0.05]
                         [--faults 429,529,500] [--via client,gateway] [--seed 0]

It starts its own Temporal dev server (in memory, 127.0.0.1), one shipped worker
(``bench.host agent``) on the Claude path — the real ``anthropic`` SDK talking to the
loopback ``FakeAnthropicServer``, which answers as the offline planner (a calculator
call, then the answer: two model calls a turn) and gives a seeded ``--fault-rate``
share of the model requests a fault drawn from ``--faults`` (HTTP 429 and 529 with
``retry-after: 1``, 500; also ``cut`` streams and ``drop``ped connections). The worker
retries them by its policy, as it would against the real API.

Then, for each driver in ``--via`` (``client``: the Temporal client API; ``gateway``:
the HTTP gateway, ``python -m durable_agent.gateway``, in a process of its own),
``--conversations`` conversations (8 per tenant) each send a message, wait for the
reply, and send the next, for ``--duration`` seconds; messages in flight then get up
to ``--drain`` seconds to finish. A progress line runs on stderr meanwhile.

Every message is unique, so afterwards each conversation's transcript and
``status.turns`` are held against what its driver saw: every message the conversation
took got exactly one reply, and every reply is for a message it took. A lost,
duplicated or unreplied turn fails the run (exit 1). The report — throughput,
p50/p95/p99 turn latency, errors by type, faults injected — is printed as a table and
written to ``bench/results/load.json``, with ``load_latency.png`` (latency
distribution) and ``load_throughput.png`` (replies and errors per second) beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from temporalio.client import Client
from temporalio.service import RPCError

from bench import plots
from bench.caching import claude_env
from bench.harness import Host, user_texts, worker_host
from bench.load_config import FAULTS, LoadConfig
from bench.load_drivers import (
    ClientDriver,
    Driver,
    GatewayDriver,
    SendFailed,
    Session,
    gateway_available,
    gateway_keys,
    gateway_process,
)
from bench.load_report import OK, LoadReport, Phase, Turn, Violation, check_conversation
from bench.progress import Counts, progress
from bench.throughput import CONVERSATIONS_PER_TENANT
from durable_agent.client import ConversationError, connect, get_conversation
from durable_agent.contract import ConversationStatus
from durable_agent.devserver import DevServer
from durable_agent.process import exit_now
from durable_agent.testing.fake_anthropic import FakeAnthropicServer
from durable_agent.testing.faults import FaultMix, FaultScript
from durable_agent.testing.responders import offline_responder

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "load.json"
ERROR_PAUSE = 0.5
"""Seconds a conversation waits after a failed message when nobody said how long."""
OPEN_CONCURRENCY = 50
"""Conversations opened (and checked) at once."""
IDLE_TIMEOUT = 30.0
"""Seconds the check waits for a conversation to finish its queued turns."""
WARM_UP_TURNS = 2
"""Turns of the uncounted conversation each phase starts with."""
HTTP_TIMEOUT = 180.0
"""Seconds the gateway driver waits for one reply (a turn may take 120 s)."""


# --- running ---------------------------------------------------------------------------


def fake_server(config: LoadConfig) -> FakeAnthropicServer:
    """The fake Messages API of a run: the offline planner, faults at the run's rate."""
    mix = FaultMix(
        rate=config.fault_rate,
        faults=tuple(FAULTS[name] for name in config.faults),
        seed=f"{config.seed}/faults",
        path="/v1/messages",
    )
    return FakeAnthropicServer(offline_responder, FaultScript(mix=mix))


async def run_load(
    config: LoadConfig, workdir: Path, server: DevServer | None = None
) -> LoadReport:
    """Run the load test in ``workdir`` (logs) against ``server``, or a dev server of
    its own when None."""
    report = LoadReport(config)
    started = time.monotonic()
    async with contextlib.AsyncExitStack() as stack:
        if server is None:
            server = DevServer(log_file=workdir / "temporal.log")
            await server.start()
            stack.callback(server.stop)
        fake = stack.enter_context(fake_server(config))
        client = await connect(server.address)
        (workdir / "worker").mkdir(exist_ok=True)
        host = await stack.enter_async_context(
            worker_host(server, client, "agent", workdir / "worker", claude_env(fake))
        )
        tenant_count = math.ceil(config.conversations / CONVERSATIONS_PER_TENANT)
        for via in config.via:
            tenants = [f"{host.tenant}-{via}-{i}" for i in range(tenant_count)]
            phase = Phase(via, config.conversations, tenant_count)
            try:
                async with _driver(via, client, server, host, tenants, workdir) as driver:
                    await run_phase(driver, phase, config, client, fake)
            except (RuntimeError, TimeoutError, OSError, RPCError, ConversationError) as e:
                phase.problems.append(f"{via} driver failed: {type(e).__name__}: {e}")
            report.phases.append(phase)
    report.wall_seconds = time.monotonic() - started
    return report


@asynccontextmanager
async def _driver(
    via: str, client: Client, server: DevServer, host: Host, tenants: list[str], workdir: Path
) -> AsyncIterator[Driver]:
    if via == "client":
        yield ClientDriver(client, host.task_queue, tenants)
        return
    if not gateway_available():
        raise RuntimeError("durable_agent.gateway is not installed")
    keys, keys_json = gateway_keys(tenants)
    log = workdir / "gateway.log"
    async with gateway_process(
        server, host.task_queue, f"{host.task_queue}-governor", keys_json, log
    ) as base_url:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        async with httpx.AsyncClient(
            base_url=base_url, timeout=HTTP_TIMEOUT, limits=limits
        ) as http:
            yield GatewayDriver(http, keys)


async def run_phase(
    driver: Driver, phase: Phase, config: LoadConfig, client: Client, fake: FakeAnthropicServer
) -> None:
    """Open the conversations, drive them for ``config.duration``, drain, then check
    every conversation; fills ``phase``."""
    began = time.monotonic()
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)

    async def opened(index: int) -> Session:
        async with gate:
            return await driver.open(index // CONVERSATIONS_PER_TENANT)

    await asyncio.wait_for(_warm_up(driver, client, config), 120)
    sessions = await asyncio.wait_for(
        asyncio.gather(*(opened(i) for i in range(phase.conversations))), 120
    )
    requests_before = _model_requests(fake)
    injected_before = fake.faults.injected()
    started = time.monotonic()
    stop_at = started + config.duration
    talks = [
        asyncio.create_task(_converse(driver.name, i, s, phase.turns, started, stop_at, config))
        for i, s in enumerate(sessions)
    ]

    def counts() -> Counts:
        done = [t for t in phase.turns if not math.isnan(t.seconds)]
        errors = sum(t.outcome != OK for t in done)
        return Counts(sum(t.replied for t in done), errors, len(phase.turns) - len(done))

    async with progress(driver.name, config.duration, counts):
        _, pending = await asyncio.wait(talks, timeout=config.duration + config.drain)
        for task in pending:
            task.cancel()
        outcomes = await asyncio.gather(*talks, return_exceptions=True)
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, Exception):
            phase.problems.append(f"conversation {index} stopped: {outcome!r}"[:300])
    phase.model_requests = _model_requests(fake) - requests_before
    after = fake.faults.injected()
    phase.faults_injected = {k: n - injected_before.get(k, 0) for k, n in sorted(after.items())}
    phase.faults_injected = {k: n for k, n in phase.faults_injected.items() if n}
    checks = await asyncio.gather(
        *(_check(client, gate, i, s, phase.turns) for i, s in enumerate(sessions))
    )
    phase.violations = [v for found in checks for v in found]
    phase.wall_seconds = time.monotonic() - began


async def _warm_up(driver: Driver, client: Client, config: LoadConfig) -> None:
    """A conversation of ``WARM_UP_TURNS`` turns before the clock runs, not counted:
    the first turns pay for sandbox imports, first connections and the tenant's
    governor starting."""
    session = await driver.open(0)
    rng = random.Random(f"{config.seed}/{driver.name}/warm-up")
    for index in range(WARM_UP_TURNS):
        with contextlib.suppress(SendFailed):
            await session.send(message(rng, f"{driver.name[0]}-warm-up.{index}"))
    await get_conversation(client, session.id).end()


def message(rng: random.Random, label: str) -> str:
    """A message that asks for one calculator call, unique by its ``label``."""
    a, b = rng.randint(11, 999), rng.randint(11, 999)
    return f"Load message {label}: what is {a} * {b}?"


async def _converse(
    driver: str,
    index: int,
    session: Session,
    turns: list[Turn],
    started: float,
    stop_at: float,
    config: LoadConfig,
) -> None:
    """Send, wait for the reply, send the next, until ``stop_at``."""
    rng = random.Random(f"{config.seed}/{driver}/{index}")
    for sequence in range(config.max_messages):
        now = time.monotonic()
        if now >= stop_at:
            return
        text = message(rng, f"{driver[0]}{index}.{sequence}")
        turn = Turn(index, text, sent_at=now - started)
        turns.append(turn)
        try:
            reply = await session.send(turn.text)
        except SendFailed as e:
            turn.seconds = time.monotonic() - now
            turn.outcome = e.kind
            pause = ERROR_PAUSE if e.retry_after is None else e.retry_after
            await asyncio.sleep(min(pause, max(0.0, stop_at - time.monotonic())))
            continue
        turn.seconds = time.monotonic() - now
        turn.reply_turn = reply.turn
        turn.outcome = OK if reply.status == "ok" else f"reply:{reply.status}"


async def _check(
    client: Client, gate: asyncio.Semaphore, index: int, session: Session, turns: list[Turn]
) -> list[Violation]:
    """Wait for the conversation to go idle, hold it against its turns, end it."""
    name = f"conversation {index} ({session.id})"
    sent = [t for t in turns if t.conversation == index]
    conversation = get_conversation(client, session.id)
    async with gate:
        try:
            status = await _idle(conversation.status, IDLE_TIMEOUT)
            transcript = await conversation.transcript()
            await conversation.end()
        except (ConversationError, RPCError) as e:
            return [Violation("mismatch", f"{name}: cannot be checked: {e!r}"[:300])]
    said = user_texts(transcript)
    found = check_conversation(name, sent, said, status.turns)
    if status.state != "idle" or status.queued_messages:
        detail = f"{name}: still {status.state} with {status.queued_messages} queued"
        found.append(Violation("mismatch", detail))
    return found


async def _idle(
    status: Callable[[], Awaitable[ConversationStatus]], timeout: float
) -> ConversationStatus:
    """Poll ``status()`` until the conversation is idle with nothing queued (or the
    timeout passes: the last status, for the check to report)."""
    deadline = time.monotonic() + timeout
    while True:
        current = await status()
        idle = current.state == "idle" and not current.queued_messages
        if idle or time.monotonic() >= deadline:
            return current
        await asyncio.sleep(0.2)


def _model_requests(fake: FakeAnthropicServer) -> int:
    return sum(r.path == "/v1/messages" for r in fake.requests)


# --- output ----------------------------------------------------------------------------


def write_report(report: LoadReport, path: Path) -> list[Path]:
    """The JSON at ``path`` and the charts beside it (``<stem>_latency.png``,
    ``<stem>_throughput.png``); returns the chart paths."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.as_json(), indent=1) + "\n")
    latency = {
        "turn latency (replies)": {
            p.driver: [t.seconds * 1000 for t in p.turns if t.replied] for p in report.phases
        }
    }
    timeline = {
        p.driver: {
            "replies": [t.done_at for t in p.turns if t.replied],
            "errors": [t.done_at for t in p.turns if t.outcome != OK],
        }
        for p in report.phases
    }
    c = report.config
    setting = f"{c.conversations} conversations, fault rate {c.fault_rate:g}"
    latency_png = path.with_name(f"{path.stem}_latency.png")
    throughput_png = path.with_name(f"{path.stem}_throughput.png")
    return [
        plots.latency_chart(latency, latency_png, f"Load test: turn latency ({setting})"),
        plots.throughput_chart(
            timeline,
            throughput_png,
            f"Load test: replies and errors per second ({setting})",
            unit="per second",
            stop_at=c.duration,
        ),
    ]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    defaults = LoadConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=defaults.conversations)
    parser.add_argument(
        "--duration", type=float, default=defaults.duration, help="seconds per driver"
    )
    parser.add_argument("--fault-rate", type=float, default=defaults.fault_rate)
    parser.add_argument(
        "--faults",
        default=",".join(defaults.faults),
        help=f"comma-separated, drawn uniformly: {', '.join(FAULTS)}",
    )
    parser.add_argument(
        "--via",
        default=",".join(defaults.via),
        help="comma-separated drivers, one phase each: client (the Temporal client API), "
        "gateway (the HTTP gateway)",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--drain", type=float, default=defaults.drain)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="write the report here")
    return parser.parse_args(argv)


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def main(argv: Sequence[str] | None = None) -> None:
    """Run the load test, print the table, write the JSON and charts; exit 1 when a
    turn was lost, duplicated or left without a reply, or a driver did not run."""
    args = parse_args(argv)
    try:
        config = LoadConfig(
            conversations=args.conversations,
            duration=args.duration,
            fault_rate=args.fault_rate,
            faults=_names(args.faults),
            via=_names(args.via),
            seed=args.seed,
            drain=args.drain,
        )
    except ValueError as e:
        print(f"load: {e}", file=sys.stderr)
        exit_now(2)
    with tempfile.TemporaryDirectory(prefix="load-") as workdir:
        report = asyncio.run(run_load(config, Path(workdir)))
    print(report.table())
    charts = write_report(report, args.json)
    print(f"results written to {args.json}; charts: {', '.join(p.name for p in charts)}")
    exit_now(0 if report.passed else 1)


if __name__ == "__main__":
    main()
