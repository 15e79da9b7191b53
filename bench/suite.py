"""The benchmark suite (issues 7, 13): ``python -m bench.suite [--quick] [--tuning]``.

Starts its own Temporal dev server (in memory, 127.0.0.1, its metrics port open),
worker processes (``bench.host``: the shipped agent worker and the bare baseline,
offline model) and a loopback fake Messages API, then runs each measurement and prints
a table: every figure with its baseline measured in the same run, the ratio, the target
and whether it is met, then the per-turn breakdown. The same figures go to a JSON file
(``bench/results/bench.json`` by default) and a Markdown page beside it (``bench.md``).

    1. step_overhead  turn latency, worker CPU and workflow tasks per turn: agent vs
                      bare Temporal, with the per-turn breakdown (``bench.breakdown``)
    2. throughput     turns/s and p50/p99 latency at 1, 50, 200 conversations
    3. one_tenant     200 conversations of one tenant at once: failed or degraded
                      turns, server-side update rejections
    4. memory         worker RSS with 1,000 cached idle conversations; RSS and traced
                      heap per cached conversation, agent vs bare
    5. history        history bytes and events per turn at turns 10, 100, 1,000, the
                      largest turn vs the median; replay per turn, agent vs bare
    6. caching        prompt-cache reads and cost over 20 turns on the Claude path
    7. tuning         (``--tuning`` only) turns/s and p50 by worker setting

``--quick`` is the CI-sized run (about a minute); the full run stays around ten minutes
on two cores (the tuning sweep adds up to eight). Missed targets do not fail the run; a
turn that did not go as the benchmark expects (or a measurement that failed) does: exit
status 1. Beside the JSON it writes ``bench.md`` (``bench.markdown``) and PNG charts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.client import (
    WorkflowFailureError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.service import RPCError
from temporalio.workflow import NondeterminismError

from bench import (
    breakdown,
    caching,
    history,
    markdown,
    memory,
    one_tenant,
    plots,
    step_overhead,
    throughput,
    tuning,
)
from bench.harness import (
    FULL,
    QUICK,
    Bench,
    Deadline,
    Host,
    Kind,
    Result,
    Scale,
    machine,
    worker_host,
)
from durable_agent.client import ConversationError, connect
from durable_agent.devserver import DevServer, free_port
from durable_agent.process import exit_now
from durable_agent.testing.fake_anthropic import FakeAnthropicServer

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "bench.json"
MEASUREMENTS = ("step_overhead", "throughput", "one_tenant", "memory", "history", "caching")
OPTIONAL = ("tuning",)
"""Measurements that run only when asked for (``--tuning``, ``--only tuning``)."""
PHASES = (
    ("step_overhead",),
    ("throughput",),
    ("one_tenant",),
    ("history", "memory", "caching"),
    ("tuning",),
)
"""Measurements run one phase after the other. Within a phase they run at once: their
figures do not depend on timing (bytes, events, RSS, tokens; replay times are taken
after the phase's load), and the history's long conversation is bound by latency, not
CPU, so it overlaps the CPU-bound filling of the memory measurement's cache."""
HOSTS: dict[str, tuple[str, ...]] = {
    "step_overhead": ("agent", "bare"),
    "throughput": ("agent", "bare"),
    "one_tenant": ("agent-limited", "bare"),
    "memory": ("agent-memory", "bare-memory", "agent-heap", "bare-heap"),
    "history": ("agent", "bare"),
    "caching": ("claude",),
    "tuning": (),  # a worker per setting, started by the measurement
}
"""The worker processes each measurement needs (started together, up front)."""
SCALE_FIELDS = [f.name for f in dataclasses.fields(Scale)]
FAILURES = (
    TimeoutError,
    NondeterminismError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    RPCError,
    ConversationError,
    WorkflowUpdateFailedError,
    WorkflowFailureError,
    RuntimeError,
)
"""What a measurement may fail with; recorded, and the others still run."""


@dataclass
class Report:
    """Everything one run measured."""

    scale: str
    seed: int
    results: list[Result] = field(default_factory=list)
    wall_seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "suite": "durable-agent benchmark (issues 7, 13)",
            "scale": self.scale,
            "seed": self.seed,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "wall_seconds": round(self.wall_seconds, 1),
            "machine": machine(),
            "conditions": (
                "one in-memory dev server, one worker process per variant, offline model "
                "(caching: real SDK against the fake Messages API), tenant rate limit and "
                "daily budget off"
            ),
            "measurements": {r.key: r.as_json() for r in self.results},
        }

    def table(self) -> str:
        """The figures as a text table, one section per measurement."""
        header = ("figure", "value", "baseline", "ratio", "target", "met")
        rows: list[tuple[str, ...]] = []
        for result in self.results:
            note = "" if result.complete else " (INCOMPLETE: did less than planned)"
            rows.append((f"{result.title}{note} [{result.seconds:.0f}s]",))
            for f in result.figures:
                met = {True: "met", False: "NOT MET", None: ""}[f.met]
                base = f"{_num(f.baseline)} ({f.baseline_name})" if f.baseline is not None else ""
                ratio = f"{f.ratio:.2f}x" if f.ratio is not None else ""
                value = f"{_num(f.value)} {f.unit}"
                rows.append((f"  {f.name}", value, base, ratio, f.target_text(), met))
            rows += [(f"  ! {p}",) for p in result.problems]
        widths = [max(len(r[i]) for r in [header, *rows] if len(r) > 1) for i in range(6)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
        for row in rows:
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)))
        lines.append(f"wall time {self.wall_seconds:.0f} s ({self.scale}, seed {self.seed})")
        return "\n".join([*lines, *self._breakdown()])

    def _breakdown(self) -> list[str]:
        """The per-turn breakdown of the step overhead, agent and bare side by side."""
        step = {r.key: r.details for r in self.results}.get("step_overhead", {})
        profiles = step.get("history_per_turn", {})
        if not profiles:
            return []
        rows = [("per turn (step overhead)", *profiles), *breakdown.rows(profiles)]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        return [
            "",
            *(
                "  ".join(
                    c.rjust(w) if i else c.ljust(w)
                    for i, (c, w) in enumerate(zip(row, widths, strict=True))
                )
                for row in rows
            ),
        ]


def _num(value: float | None) -> str:
    if value is None:
        return ""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


async def run_suite(
    scale: Scale,
    *,
    seed: int = 0,
    only: Sequence[str] = MEASUREMENTS,
    workdir: Path,
    server: DevServer | None = None,
    scale_name: str = "",
    server_log: Path | None = None,
) -> Report:
    """Run the ``only`` measurements against ``server`` (or a dev server of its own,
    with a metrics port, its output to ``server_log``: ``DevServer.stop`` leaves that
    file to the garbage collector, so tests pass none)."""
    report = Report(scale_name or ("quick" if scale is QUICK else "full"), seed)
    started = time.monotonic()
    suite = Deadline(scale.suite_seconds + scale.tuning_seconds * ("tuning" in only))
    async with contextlib.AsyncExitStack() as stack:
        metrics_url = None
        if server is None:
            port = free_port()
            metrics_url = f"http://127.0.0.1:{port}/metrics"
            server = DevServer(log_file=server_log, extra_args=["--metrics-port", str(port)])
            await server.start()
            stack.callback(server.stop)
        fake = stack.enter_context(FakeAnthropicServer())
        client = await connect(server.address)
        bench = Bench(server, client, scale, seed, workdir, suite=suite, metrics_url=metrics_url)
        wanted = dict.fromkeys(name for key in only for name in HOSTS[key])
        bench.hosts = await _start_hosts(stack, bench, list(wanted), fake)
        runs: dict[str, Callable[[], Awaitable[Result]]] = {
            "step_overhead": lambda: step_overhead.measure(bench),
            "throughput": lambda: throughput.measure(bench),
            "one_tenant": lambda: one_tenant.measure(bench),
            "tuning": lambda: tuning.measure(bench),
            "memory": lambda: memory.measure(bench),
            "history": lambda: history.measure(bench),
            "caching": lambda: caching.measure(bench, fake),
        }
        for group in PHASES:
            keys = [key for key in group if key in only]
            tasks = {key: asyncio.create_task(_timed(key, runs[key])) for key in keys}
            bench.others_done.clear()
            others = [task for key, task in tasks.items() if key != "history"]
            if others:
                await asyncio.wait(others)
            bench.others_done.set()
            report.results += [await task for task in tasks.values()]
    report.results.sort(key=lambda r: (MEASUREMENTS + OPTIONAL).index(r.key))
    report.wall_seconds = time.monotonic() - started
    return report


async def _timed(key: str, run: Callable[[], Awaitable[Result]]) -> Result:
    began = time.monotonic()
    try:
        result = await run()
    except FAILURES as e:
        frames = [f for f in traceback.extract_tb(e.__traceback__) if "/bench/" in f.filename]
        where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
        result = Result(key, key, problems=[f"failed: {type(e).__name__}: {e}{where}"])
    result.seconds = time.monotonic() - began
    print(f"[bench] {result.title}: {result.seconds:.0f} s", file=sys.stderr)
    return result


async def _start_hosts(
    stack: contextlib.AsyncExitStack, bench: Bench, names: list[str], fake: FakeAnthropicServer
) -> dict[str, Host]:
    """Start the worker processes at once (their imports take seconds each)."""

    async def start(name: str) -> Host:
        kind: Kind = "bare" if name.startswith("bare") else "agent"
        env = {"claude": caching.claude_env(fake), "agent-limited": one_tenant.LIMITED}.get(name)
        workdir = bench.workdir / name
        workdir.mkdir(exist_ok=True)
        trace = name.endswith("-heap")
        cm = worker_host(bench.server, bench.client, kind, workdir, env, trace_heap=trace)
        return await stack.enter_async_context(cm)

    started = await asyncio.gather(*(start(n) for n in names), return_exceptions=True)
    for outcome in started:
        if isinstance(outcome, BaseException):
            raise outcome
    return {name: host for name, host in zip(names, started, strict=True)}  # type: ignore[misc]


def write_charts(report: Report, path: Path) -> list[Path]:
    """PNG charts beside the JSON at ``path``, from the samples the measurements kept:
    ``<stem>_latency.png`` (turn latency distributions of the step overhead and of each
    throughput level) and ``<stem>_throughput.png`` (replies per second during each
    throughput level). A measurement that did not run has no panel; a chart with no
    panel is not drawn."""
    results = {r.key: r.details for r in report.results}
    latency: dict[str, dict[str, list[float]]] = {}
    timeline: dict[str, dict[str, list[float]]] = {}
    if "samples_ms" in results.get("step_overhead", {}):
        latency["1. step overhead, one turn at a time"] = results["step_overhead"]["samples_ms"]
    for key, level in results.get("throughput", {}).items():
        if not key.startswith("level_"):
            continue
        count = level["agent"]["conversations"]
        name = f"2. throughput, {count} conversation{'s' * (count != 1)} at once"
        kinds = sorted(level)  # agent, bare: the order they ran in alternates
        latency[name] = {kind: level[kind]["samples"]["latency_ms"] for kind in kinds}
        timeline[name] = {kind: level[kind]["samples"]["finished_s"] for kind in kinds}
    title = f"Benchmark ({report.scale}, seed {report.seed})"
    charts = []
    if latency:  # none when neither ran (``--only memory``)
        charts.append(
            plots.latency_chart(
                latency, path.with_name(f"{path.stem}_latency.png"), f"{title}: turn latency"
            )
        )
    if timeline:
        charts.append(
            plots.throughput_chart(
                timeline,
                path.with_name(f"{path.stem}_throughput.png"),
                f"{title}: turns per second",
            )
        )
    return charts


def override(scale: Scale, assignments: Sequence[str]) -> Scale:
    """``scale`` with ``FIELD=VALUE`` assignments applied (tuples as ``1,50,200``)."""
    changes: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        current = getattr(scale, key, None)
        if not sep or current is None:
            raise ValueError(f"--set {assignment!r}: expected FIELD=VALUE, FIELD in {SCALE_FIELDS}")
        if isinstance(current, tuple):
            changes[key] = tuple(type(current[0])(v) for v in raw.split(","))
        else:
            changes[key] = type(current)(raw)
    return dataclasses.replace(scale, **changes)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized run (under a minute)")
    parser.add_argument("--seed", type=int, default=0, help="seeds every message")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="write the results here")
    parser.add_argument(
        "--only",
        default=",".join(MEASUREMENTS),
        help=f"comma-separated subset of {MEASUREMENTS + OPTIONAL}",
    )
    parser.add_argument(
        "--tuning",
        action="store_true",
        help="also sweep worker settings (turns/s and p50 at each level; see bench.tuning)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a scale field, e.g. --set idle_conversations=200 "
        "--set history_checkpoints=10,50 (see bench.harness.Scale)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the suite, print the table, write the JSON; exit 1 if a measurement failed."""
    args = parse_args(argv)
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    only += ["tuning"] * (args.tuning and "tuning" not in only)
    unknown = sorted(set(only) - set(MEASUREMENTS + OPTIONAL))
    if unknown:
        known = MEASUREMENTS + OPTIONAL
        print(f"bench: unknown measurement(s) {unknown}; known: {known}", file=sys.stderr)
        exit_now(2)
    try:
        scale = override(QUICK if args.quick else FULL, args.set)
    except ValueError as e:
        print(f"bench: {e}", file=sys.stderr)
        exit_now(2)
    name = " ".join(["quick" if args.quick else "full", *args.set])
    with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
        report = asyncio.run(
            run_suite(
                scale,
                seed=args.seed,
                only=only,
                workdir=Path(workdir),
                scale_name=name,
                server_log=Path(workdir) / "temporal.log",
            )
        )
    print(report.table())
    args.json.parent.mkdir(parents=True, exist_ok=True)
    document = json.loads(json.dumps(report.as_json(), default=str))
    args.json.write_text(json.dumps(document, indent=2) + "\n")
    page = args.json.with_suffix(".md")
    page.write_text(markdown.render(document))
    charts = write_charts(report, args.json)
    names = ", ".join(p.name for p in charts)
    print(f"results written to {args.json} and {page.name}; charts: {names}")
    exit_now(1 if any(r.problems for r in report.results) else 0)


if __name__ == "__main__":
    main()
