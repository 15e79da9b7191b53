"""What streaming costs the full agent (issue 17): ``python -m bench.streaming_agent [--quick]``.

The shipped worker (``bench.host agent``) on the **Claude path** — the real SDK against
the loopback fake Messages API, which answers as the offline planner and streams one
word per event, ``pace`` seconds apart — and the HTTP gateway in its own process
(``python -m durable_agent.gateway``, as ``bench.load`` starts it). Same run, same
worker, same workload, three modes side by side (their order alternates round by round):

* ``off``: ``send_message(text)``, nothing streamed (today's turn);
* ``on``: ``send_message(text, stream=True)``, no reader;
* ``on + SSE``: the same, with an SSE client of the gateway on ``GET …/events``
  (it polls the ``stream`` query: no history, but worker CPU to answer).

Two turn kinds, each in conversations of their own: ``calculator`` (model → calculator →
model) and ``answer`` (one model call writing a few seconds of paced text). Per turn:
history events and bytes, workflow tasks, publish signals, worker CPU (the worker
process's own, ``/proc``) and turn latency p50. From these:

* extra history events per 250 ms of streaming: (events per turn ``on`` - ``off``) over
  the seconds the model wrote per turn / 0.25 (target ≤ 1);
* first delta at the SSE client after the model's first token: the fake records when
  each request came and what it streams, so the first token's moment is known (the
  first text delta, or a ``tool_use`` start, ``index x pace`` after the request); the
  client stamps each ``delta`` event as it reads it (target p50 ≤ 300 ms, over model
  calls whose first block is text; every call's figure is in the JSON);
* history bytes per turn at the last checkpoint (turn 200; 40 in ``--quick``) against
  turn 10 of one streamed conversation that continues as new every ``flat_turns_per_run``
  turns (50; 15 quick: the product's default is 500, so the stream's carry across
  continue-as-new is exercised), averaged over the second half of the turns as in
  ``bench.history`` (target ≤ 1.2x).

Beside it, unless ``--quick`` or ``--no-single-call``, the single streamed model call of
``bench.streaming`` (minimal host workflow, library readers). Writes
``bench/results/streaming.json`` and ``streaming.md``. Missed targets do not fail the
run; turns that did not go as planned do (exit 1).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import streaming as single_call
from bench.breakdown import history_profile, turn_bytes
from bench.caching import claude_env
from bench.harness import (
    AgentChat,
    Deadline,
    Figure,
    Host,
    Result,
    greetings,
    machine,
    percentile,
    prompts,
    timed_turns,
    turn_problem,
    worker_host,
)
from bench.history import all_runs, size_of, window
from bench.load_drivers import gateway_keys, gateway_process
from bench.markdown import _figure_rows, number, table
from durable_agent.client import connect, start_conversation
from durable_agent.contract import ConversationInput, ModelDelta
from durable_agent.devserver import DevServer
from durable_agent.process import exit_now
from durable_agent.testing.fake_anthropic import (
    FakeAnthropicServer,
    _stream_events,  # the fake's own event order: when it writes the first token
)
from durable_agent.testing.responders import offline_responder

RESULTS = Path(__file__).resolve().parent / "results"
MODES = ("off", "on", "on + SSE")
KINDS = {"calculator": 2, "answer": 1}
"""Turn kinds and the model calls each takes."""
EVENTS_PER_250_MS_TARGET = 1.0
FIRST_DELTA_TARGET_MS = 300.0
FLAT_TARGET = 1.2
SSE_TIMEOUT = httpx.Timeout(10.0, read=120.0)


@dataclass(frozen=True)
class StreamScale:
    """How much the measurement does."""

    rounds: int
    """Rounds; each a fresh conversation per mode and kind."""
    turns: int
    """Turns of each of those conversations."""
    pace: float
    """Seconds between the events the fake streams (one word each)."""
    flat_checkpoints: tuple[int, int]
    """Turns at which bytes per turn are compared (first: the baseline)."""
    flat_turns_per_run: int
    """The flat conversation continues as new after this many turns."""
    flat_pace: float
    """Stream pace of the flat conversation (fast: it has many turns to run)."""
    seconds: float
    """Wall-clock bound of the per-turn part and, apart, of the flat conversation."""


FULL_SCALE = StreamScale(2, 4, 0.12, (10, 200), 50, 0.01, 300.0)
QUICK_SCALE = StreamScale(1, 3, 0.1, (10, 40), 15, 0.01, 90.0)


@dataclass
class CallTiming:
    """One model request as the fake streamed it."""

    at: float
    """``time.monotonic()`` when the fake took the request."""
    first_token_at: float
    """When it wrote the first text delta, or a ``tool_use`` block's start."""
    first_block: str
    """``text`` or ``tool_use``."""
    stream_seconds: float
    """From its first event to its last."""


class TimedResponder:
    """The offline planner behind the fake, noting when each answer's first token goes."""

    def __init__(self, fake: FakeAnthropicServer) -> None:
        self.fake = fake
        self.calls: list[CallTiming] = []
        self._lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        at = time.monotonic()
        message = offline_responder(body)
        pace = self.fake.stream_pace
        events = list(_stream_events(message, self.fake.words_per_delta))
        first, kind = len(events) - 1, "none"
        for index, (name, data) in enumerate(events):
            if name == "content_block_delta" and data["delta"].get("type") == "text_delta":
                first, kind = index, "text"
                break
            if name == "content_block_start" and data["content_block"]["type"] == "tool_use":
                first, kind = index, "tool_use"
                break
        timing = CallTiming(at, at + first * pace, kind, (len(events) - 1) * pace)
        with self._lock:
            self.calls.append(timing)
        return message


@dataclass
class SseReader:
    """An SSE client of the gateway on one conversation: every ``delta`` event with the
    moment it was read."""

    http: httpx.AsyncClient
    key: str
    conversation_id: str
    deltas: list[tuple[float, ModelDelta]] = field(default_factory=list)
    ended: bool = False
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        url = f"/v1/conversations/{self.conversation_id}/events"
        headers = {"authorization": f"Bearer {self.key}", "accept": "text/event-stream"}
        async with self.http.stream("GET", url, headers=headers, timeout=SSE_TIMEOUT) as response:
            if response.status_code != 200:
                raise RuntimeError(f"GET {url}: {response.status_code}")
            event = data = ""
            async for line in response.aiter_lines():
                self.connected.set()  # the gateway writes "retry:" at once
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data = line[5:].strip()
                elif not line:
                    if event == "delta":
                        self.deltas.append((time.monotonic(), ModelDelta.model_validate_json(data)))
                    elif event == "end":
                        self.ended = True
                        return
                    event = data = ""


@dataclass
class Sample:
    """What one conversation of one mode and kind measured."""

    mode: str
    kind: str
    conversation_id: str
    latencies: list[float]
    cpu_seconds: float
    stream_seconds: float
    """Seconds the model wrote, over all its turns."""
    first_delta_ms: list[dict[str, Any]] = field(default_factory=list)


async def _conversation(
    bench: StreamBench, mode: str, kind: str, turns: int | None = None
) -> Sample:
    """One conversation of ``turns`` (the scale's) ``kind`` turns in ``mode``."""
    conversation = await start_conversation(
        bench.client,
        ConversationInput(tools=["calculator"], tenant=bench.host.tenant),
        conversation_id=f"{bench.host.tenant}.stream-{uuid.uuid4().hex[:12]}",
        task_queue=bench.host.task_queue,
    )
    reader = task = None
    if mode == "on + SSE":
        reader = SseReader(bench.http, bench.key, conversation.id)
        task = asyncio.create_task(reader.run())
        await asyncio.wait_for(reader.connected.wait(), 10)
    texts = bench.texts[kind]
    latencies: list[float] = []
    turn_calls: dict[int, list[CallTiming]] = {}
    before = await bench.host.settle()
    for _ in range(turns or bench.scale.turns):
        if bench.deadline.expired:
            break
        mark = len(bench.responder.calls)
        started = time.perf_counter()
        reply = await asyncio.wait_for(
            conversation.send_message(next(texts), stream=mode != "off" or None), 60
        )
        latencies.append(time.perf_counter() - started)
        turn_calls[reply.turn] = bench.responder.calls[mark:]
        problem = turn_problem(reply, f"{mode} {kind}", KINDS[kind])
        if problem:
            bench.problems.append(problem)
    cpu = await bench.host.settle() - before
    await conversation.end()
    sample = Sample(
        mode,
        kind,
        conversation.id,
        latencies,
        cpu,
        sum(c.stream_seconds for calls in turn_calls.values() for c in calls),
    )
    if reader is not None and task is not None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), 15)
        if not task.done():
            task.cancel()
            bench.problems.append(f"SSE of {conversation.id}: no end event within 15 s")
        await asyncio.wait([task])
        if task.done() and not task.cancelled() and task.exception() is not None:
            bench.problems.append(f"SSE of {conversation.id}: {task.exception()!r}")
        sample.first_delta_ms = _first_deltas(reader.deltas, turn_calls)
    return sample


def _first_deltas(
    deltas: list[tuple[float, ModelDelta]], turn_calls: dict[int, list[CallTiming]]
) -> list[dict[str, Any]]:
    """For each model call: its first delta at the client after its first token. A
    turn's model calls are matched to the fake's requests in order."""
    first: dict[tuple[int, int], float] = {}
    for at, delta in deltas:
        if delta.kind != "restarted":
            first.setdefault((delta.turn, delta.model_call), at)
    found = []
    for turn, calls in turn_calls.items():
        numbers = sorted(call for t, call in first if t == turn)
        for number_, timing in zip(numbers, calls, strict=False):
            found.append(
                {
                    "turn": turn,
                    "model_call": number_,
                    "first_block": timing.first_block,
                    "ms": round((first[(turn, number_)] - timing.first_token_at) * 1000, 1),
                }
            )
        if len(numbers) != len(calls):
            found.append(
                {"turn": turn, "unmatched": f"{len(numbers)} streamed, {len(calls)} calls"}
            )
    return found


@dataclass
class StreamBench:
    """What the measurement runs against."""

    client: Any
    host: Host
    http: httpx.AsyncClient
    key: str
    fake: FakeAnthropicServer
    responder: TimedResponder
    scale: StreamScale
    deadline: Deadline
    texts: dict[str, Iterator[str]]
    problems: list[str] = field(default_factory=list)


async def per_turn(bench: StreamBench) -> Result:
    """Off vs on vs on + SSE, per turn kind."""
    result = Result("streaming_agent", "streaming, full agent: off vs on (per turn)")
    samples: list[Sample] = []
    for round_ in range(bench.scale.rounds):
        modes = MODES if round_ % 2 == 0 else MODES[::-1]
        for kind in KINDS:
            for mode in modes:
                samples.append(await _conversation(bench, mode, kind))
    details: dict[str, Any] = {}
    for kind in KINDS:
        found: dict[str, dict[str, Any]] = {}
        for mode in MODES:
            mine = [s for s in samples if s.kind == kind and s.mode == mode]
            latencies = [x for s in mine for x in s.latencies]
            turns = max(1, len(latencies))
            profile = await history_profile(bench.client, [s.conversation_id for s in mine])
            found[mode] = {
                "turns": len(latencies),
                "latency_p50_ms": round(percentile(latencies, 50) * 1000, 1),
                "cpu_ms_per_turn": round(sum(s.cpu_seconds for s in mine) * 1000 / turns, 1),
                "stream_seconds_per_turn": round(sum(s.stream_seconds for s in mine) / turns, 3),
                "events": profile["events"],
                "bytes": profile["bytes"],
                "workflow_tasks": profile["workflow_tasks"],
                "signals_received": profile["signals_received"],
                "first_delta_ms": [x for s in mine for x in s.first_delta_ms],
                "profile": profile,
            }
        details[kind] = found
        _figures(result, kind, found)
    _first_delta_figure(result, details)
    result.details = details
    result.problems += bench.problems
    result.complete = not bench.problems and all(
        details[k][m]["turns"] == bench.scale.rounds * bench.scale.turns
        for k in KINDS
        for m in MODES
    )
    return result


def _figures(result: Result, kind: str, found: dict[str, dict[str, Any]]) -> None:
    off, on, sse = found["off"], found["on"], found["on + SSE"]
    name = f"{kind} turn"
    for mode, values in (("on", on), ("on + SSE", sse)):
        result.add(
            Figure(
                f"{name}: history events ({mode})", "events", values["events"], off["events"], "off"
            )
        )
        result.add(
            Figure(f"{name}: history bytes ({mode})", "B", values["bytes"], off["bytes"], "off")
        )
        result.add(
            Figure(
                f"{name}: workflow tasks ({mode})",
                "tasks",
                values["workflow_tasks"],
                off["workflow_tasks"],
                "off",
            )
        )
        result.add(
            Figure(
                f"{name}: worker CPU ({mode})",
                "ms",
                values["cpu_ms_per_turn"],
                off["cpu_ms_per_turn"],
                "off",
            )
        )
        result.add(
            Figure(
                f"{name}: latency p50 ({mode})",
                "ms",
                values["latency_p50_ms"],
                off["latency_p50_ms"],
                "off",
            )
        )
    seconds = on["stream_seconds_per_turn"]
    extra = (on["events"] - off["events"]) / max(seconds / 0.25, 1e-9)
    model_ms = on["profile"].get("ms:activity model.invoke", 0.0)
    on["extra_events_per_250_ms_of_model_activity"] = round(
        (on["events"] - off["events"]) / max(model_ms / 250, 1e-9), 3
    )
    result.add(
        Figure(
            f"{name}: extra history events per 250 ms streamed ({seconds:.1f} s a turn)",
            "events",
            round(extra, 3),
            None,
            "",
            "<=",
            EVENTS_PER_250_MS_TARGET,
            "value",
        )
    )


def _first_delta_figure(result: Result, details: dict[str, Any]) -> None:
    found = [
        x
        for kind in KINDS
        for x in details[kind]["on + SSE"]["first_delta_ms"]
        if x.get("first_block") == "text"
    ]
    values = [x["ms"] for x in found]
    result.add(
        Figure(
            f"first delta at the SSE client after the first token, p50 ({len(values)} calls)",
            "ms",
            percentile(values, 50),
            None,
            "",
            "<=",
            FIRST_DELTA_TARGET_MS,
            "value",
        )
    )
    result.add(Figure("  same, p90", "ms", percentile(values, 90)))
    tool = [
        x["ms"]
        for kind in KINDS
        for x in details[kind]["on + SSE"]["first_delta_ms"]
        if x.get("first_block") == "tool_use"
    ]
    if tool:
        result.add(
            Figure(
                f"  tool_use start at the client, p50 ({len(tool)} calls)",
                "ms",
                percentile(tool, 50),
            )
        )


async def flat(bench: StreamBench) -> Result:
    """History bytes per turn at the last checkpoint vs the first, streaming on."""
    first, last = bench.scale.flat_checkpoints
    result = Result(
        "streaming_history",
        f"streaming on: history per turn at turn {last} vs turn {first} "
        f"(continue-as-new every {bench.scale.flat_turns_per_run} turns)",
    )
    bench.fake.stream_pace = bench.scale.flat_pace
    deadline = Deadline(bench.scale.seconds)
    conversation = await start_conversation(
        bench.client,
        ConversationInput(
            tools=["calculator"],
            tenant=bench.host.tenant,
            stream=True,
            continue_as_new_after_turns=bench.scale.flat_turns_per_run,
        ),
        task_queue=bench.host.task_queue,
    )
    chat = AgentChat(conversation)
    wanted = sorted({n for c in (first, last) for n in (c - window(c), c)})
    texts = greetings("streaming/flat")
    sizes: dict[int, Any] = {}
    histories: list[Any] = []
    turn = 0
    for stop in wanted:
        done = await timed_turns(chat, texts, stop - turn, deadline, result.problems, 1, 5)
        turn += len(done)
        if turn < stop:
            break
        histories = await all_runs(bench.client, conversation.id)
        sizes[stop] = size_of(histories)
    await conversation.end()
    per_turn = {}
    for n in (first, last):
        w = window(n)
        if n in sizes and n - w in sizes:
            per_turn[n] = {
                "bytes": (sizes[n].bytes - sizes[n - w].bytes) / w,
                "events": (sizes[n].events - sizes[n - w].events) / w,
                "runs": sizes[n].runs,
            }
    result.complete = turn >= last and not result.problems
    if first in per_turn and last in per_turn:
        result.add(
            Figure(
                f"history bytes per turn at turn {last}",
                "B",
                per_turn[last]["bytes"],
                per_turn[first]["bytes"],
                f"turn {first}",
                "<=",
                FLAT_TARGET,
            )
        )
        result.add(
            Figure(
                f"history events per turn at turn {last}",
                "events",
                per_turn[last]["events"],
                per_turn[first]["events"],
                f"turn {first}",
            )
        )
    result.details = {
        "turns": turn,
        "per_turn": {str(k): v for k, v in per_turn.items()},
        "turn_bytes": turn_bytes(histories),
        "runs": len(histories),
    }
    return result


async def run(scale: StreamScale, workdir: Path) -> list[Result]:
    """Dev server, fake Messages API, shipped worker and gateway; both measurements."""
    server = DevServer()
    await server.start()
    try:
        client = await connect(server.address)
        fake = FakeAnthropicServer(stream_pace=scale.pace, words_per_delta=1)
        responder = TimedResponder(fake)
        fake.responder = responder
        with fake:
            async with (
                worker_host(server, client, "agent", workdir, claude_env(fake)) as host,
                _gateway(server, host, workdir) as (base_url, key),
                httpx.AsyncClient(base_url=base_url, timeout=SSE_TIMEOUT) as http,
            ):
                bench = StreamBench(
                    client,
                    host,
                    http,
                    key,
                    fake,
                    responder,
                    scale,
                    Deadline(scale.seconds),
                    {"calculator": prompts("streaming"), "answer": greetings("streaming")},
                )
                await _conversation(bench, "on + SSE", "calculator", 1)  # warm up
                bench.problems.clear()
                results = []
                for measure in (per_turn, flat):
                    began = time.monotonic()
                    results.append(await measure(bench))
                    results[-1].seconds = time.monotonic() - began
                    print(
                        f"[bench] {results[-1].title}: {results[-1].seconds:.0f} s", file=sys.stderr
                    )
                return results
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def _gateway(server: DevServer, host: Host, workdir: Path) -> AsyncIterator[tuple[str, str]]:
    keys, keys_json = gateway_keys([host.tenant])
    async with gateway_process(
        server, host.task_queue, f"{host.task_queue}-governor", keys_json, workdir / "gateway.log"
    ) as base_url:
        yield base_url, keys[0]


def render(document: dict[str, Any]) -> str:
    """``streaming.md``: the figures, the per-turn table by mode, the single call."""
    lines = [
        "# Streaming benchmark results",
        "",
        f"Generated by `make bench` ({document['scale']}) at {document['finished_at']} in "
        f"{document['wall_seconds']} s on {document['machine']['cpus']} CPUs. "
        f"{document['conditions']} Do not edit: run `python -m bench.streaming_agent` again.",
        "",
        "## Figures",
        "",
    ]
    rows = [r for key, m in document["measurements"].items() for r in _figure_rows(key, m)]
    lines += table(("measurement", "figure", "value", "baseline", "ratio", "target", "met"), rows)
    per_turn = document["measurements"].get("streaming_agent", {}).get("details", {})
    keys = (
        "turns",
        "latency_p50_ms",
        "cpu_ms_per_turn",
        "events",
        "bytes",
        "workflow_tasks",
        "signals_received",
        "stream_seconds_per_turn",
    )
    for kind, found in per_turn.items():
        lines += ["", f"## Per turn: {kind}", ""]
        lines += table(
            ("per turn", *found), [(k, *(number(found[m][k]) for m in found)) for k in keys]
        )
    for key, m in document["measurements"].items():
        if m["problems"]:
            lines += ["", f"Problems in {key}:", "", *(f"- {p}" for p in m["problems"])]
    if document.get("single_call"):
        lines += ["", "## One streamed model call (`bench.streaming`, minimal host)", ""]
        lines.append(document["single_call"]["table"])
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Run, print the Markdown, write the JSON and the Markdown; exit 1 on problems."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer turns (under ~2 min)")
    parser.add_argument("--no-single-call", action="store_true", help="skip bench.streaming")
    parser.add_argument("--json", type=Path, default=RESULTS / "streaming.json")
    args = parser.parse_args(argv)
    scale = QUICK_SCALE if args.quick else FULL_SCALE
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        results = asyncio.run(run(scale, Path(tmp)))
    single: dict[str, Any] | None = None
    if not (args.quick or args.no_single_call):
        cases, capacity = asyncio.run(single_call.run(False))
        single = {"table": single_call.table(cases), **single_call.as_json(cases, capacity)}
    document = {
        "suite": "streaming, full agent (issue 17)",
        "scale": f"{'quick' if args.quick else 'full'} {asdict(scale)}",
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_seconds": round(time.monotonic() - started, 1),
        "machine": machine(),
        "conditions": (
            "One in-memory dev server, the shipped worker (one process) on the Claude path "
            "against the loopback fake Messages API (offline planner, one word per streamed "
            "event), the gateway in its own process (events polled every 0.25 s, its default); "
            "tenant limits off."
        ),
        "measurements": {r.key: r.as_json() for r in results},
        "single_call": single,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(document, indent=2))
    page = render(document)
    args.json.with_suffix(".md").write_text(page)
    print(page)
    sys.stdout.flush()
    exit_now(1 if any(r.problems for r in results) else 0)


if __name__ == "__main__":
    main()
