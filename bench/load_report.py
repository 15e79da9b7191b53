"""What a load test measured, computed from what its drivers recorded (no I/O).

Each message a driver sends is a ``Turn``: when it was sent, how long it took, and its
outcome — ``ok``, ``reply:<status>`` for a reply whose status is not ``ok`` (the turn
was answered, worse), or the driver's name for a failure (``http 429``,
``MessageRejected:InvalidMessage``, ``unanswered``). ``summarize`` turns them into
throughput, latency percentiles, error rates by type and a per-second timeline;
``check_conversation`` holds a conversation's transcript and turn count against them:
every message taken gets exactly one reply. ``Phase`` and ``LoadReport`` hold a run's
turns and findings and print them as a table or JSON.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from bench.harness import machine, percentile

if TYPE_CHECKING:
    from bench.load_config import LoadConfig

OK = "ok"
UNANSWERED = "unanswered"
"""Outcome of a message still waiting for its reply when the drain bound ran out."""
PERCENTILES = (50, 95, 99)


@dataclass
class Turn:
    """One message a driver sent, and what came of it."""

    conversation: int
    """Index of the conversation in its phase."""
    text: str
    """Unique within the run, so the transcript says which messages were taken."""
    sent_at: float
    """Seconds from the phase's start."""
    seconds: float = math.nan
    """Until the reply (or the failure); NaN while in flight."""
    outcome: str = UNANSWERED
    """``ok``, ``reply:<status>``, or why no reply came (see the module docstring)."""
    reply_turn: int | None = None
    """``Reply.turn`` when a reply came."""

    @property
    def replied(self) -> bool:
        return self.reply_turn is not None

    @property
    def done_at(self) -> float:
        """Seconds from the phase's start to the reply or failure (NaN in flight)."""
        return self.sent_at + self.seconds


ViolationKind = Literal["lost", "duplicated", "unreplied", "mismatch"]


@dataclass(frozen=True)
class Violation:
    """A way a conversation broke "every message taken gets exactly one reply".

    ``lost``: a reply came for a message the conversation does not have, or fewer turns
    completed than replies came; ``duplicated``: a message done twice, or two replies
    with one turn number; ``unreplied``: a message the conversation took (it is in the
    transcript) whose sender got no reply; ``mismatch``: anything else that does not add
    up (order, messages nobody sent)."""

    kind: ViolationKind
    detail: str


def check_conversation(
    name: str, sent: Sequence[Turn], said: Sequence[str], completed: int
) -> list[Violation]:
    """Hold one conversation against what its driver saw. ``said`` is the text of the
    user messages in its transcript, in order; ``completed`` its ``status.turns``."""
    found: list[Violation] = []
    replied = sorted((t for t in sent if t.reply_turn is not None), key=lambda t: t.reply_turn or 0)
    numbers = Counter(t.reply_turn for t in replied)
    for number, count in sorted((n, c) for n, c in numbers.items() if c > 1 and n is not None):
        found.append(Violation("duplicated", f"{name}: {count} replies say turn {number}"))
    times = Counter(said)
    for text, count in times.items():
        if count > 1:
            found.append(Violation("duplicated", f"{name}: {text!r} taken {count} times"))
    for turn in replied:
        if not times[turn.text]:
            detail = f"{name}: turn {turn.reply_turn} replied to {turn.text!r}, not in transcript"
            found.append(Violation("lost", detail))
    for turn in sent:
        if not turn.replied and times[turn.text]:
            detail = f"{name}: {turn.text!r} was taken but its sender got {turn.outcome}"
            found.append(Violation("unreplied", detail))
    texts = {t.text for t in sent}
    strangers = [text for text in times if text not in texts]
    if strangers:
        found.append(Violation("mismatch", f"{name}: transcript has unsent {strangers[:3]!r}"))
    in_order = [text for text in said if text in {t.text for t in replied}]
    if not found and in_order != [t.text for t in replied]:
        found.append(Violation("mismatch", f"{name}: replies' turn order differs from transcript"))
    # The counts catch what the texts cannot (a turn done without its message kept);
    # a turn already found by its text is not counted twice.
    kinds = {v.kind for v in found}
    if completed < len(replied) and "lost" not in kinds:
        detail = f"{name}: {completed} turns completed, {len(replied)} replies received"
        found.append(Violation("lost", detail))
    elif completed > len(replied) and not kinds & {"unreplied", "duplicated"}:
        detail = f"{name}: {completed} turns completed, only {len(replied)} replies received"
        found.append(Violation("unreplied", detail))
    return found


@dataclass
class Summary:
    """A phase's figures."""

    sent: int
    replied: int
    ok: int
    window_seconds: float
    """From the first message sent to the last reply or failure."""
    throughput: float
    """Replies per second over ``window_seconds``."""
    latency_ms: dict[str, float]
    """``p50``, ``p95``, ``p99``, ``mean``, ``max`` of the replied turns."""
    outcomes: dict[str, int]
    """Count of every outcome, ``ok`` included."""
    error_rate: float
    """Share of messages sent whose outcome is not ``ok``."""
    error_rates: dict[str, float]
    """The same, by outcome."""
    timeline: list[int] = field(default_factory=list)
    """Replies per whole second from the phase's start."""

    def as_json(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "replied": self.replied,
            "ok": self.ok,
            "window_s": round(self.window_seconds, 3),
            "throughput_turns_per_s": round(self.throughput, 3),
            "latency_ms": {k: round(v, 1) for k, v in self.latency_ms.items()},
            "outcomes": self.outcomes,
            "error_rate": round(self.error_rate, 5),
            "error_rates": {k: round(v, 5) for k, v in self.error_rates.items()},
            "replies_per_second": self.timeline,
        }


def summarize(turns: Sequence[Turn]) -> Summary:
    """Throughput, latency percentiles, error rates and timeline of ``turns``."""
    replied = [t for t in turns if t.replied]
    latencies = [t.seconds * 1000 for t in replied]
    ends = [t.done_at for t in turns if not math.isnan(t.seconds)]
    start = min((t.sent_at for t in turns), default=0.0)
    window = max(ends, default=start) - start
    outcomes = Counter(t.outcome for t in turns)
    errors = {k: n for k, n in sorted(outcomes.items()) if k != OK}
    latency = {f"p{q}": percentile(latencies, q) for q in PERCENTILES}
    latency["mean"] = sum(latencies) / len(latencies) if latencies else math.nan
    latency["max"] = max(latencies, default=math.nan)
    return Summary(
        sent=len(turns),
        replied=len(replied),
        ok=outcomes[OK],
        window_seconds=window,
        throughput=len(replied) / window if window > 0 else 0.0,
        latency_ms=latency,
        outcomes=dict(sorted(outcomes.items())),
        error_rate=sum(errors.values()) / len(turns) if turns else 0.0,
        error_rates={k: n / len(turns) for k, n in errors.items()},
        timeline=per_second([t.done_at for t in replied]),
    )


def per_second(moments: Sequence[float]) -> list[int]:
    """How many of ``moments`` (seconds, ≥ 0) fall in each whole second from 0."""
    counts = Counter(int(m) for m in moments if m >= 0 and not math.isnan(m))
    return [counts[second] for second in range(max(counts, default=-1) + 1)]


# --- the report ----------------------------------------------------------------------


@dataclass
class Phase:
    """One driver's run."""

    driver: str
    conversations: int
    tenants: int
    turns: list[Turn] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """What kept the phase from running as planned (a driver that failed to start)."""
    model_requests: int = 0
    faults_injected: dict[str, int] = field(default_factory=dict)
    wall_seconds: float = 0.0

    def summary(self) -> Summary:
        return summarize(self.turns)

    def count(self, kind: str) -> int:
        return sum(v.kind == kind for v in self.violations)

    def as_json(self) -> dict[str, Any]:
        injected = sum(self.faults_injected.values())
        return {
            "driver": self.driver,
            "conversations": self.conversations,
            "tenants": self.tenants,
            **self.summary().as_json(),
            "model_requests": self.model_requests,
            "faults_injected": self.faults_injected,
            "fault_share": round(injected / self.model_requests, 4) if self.model_requests else 0,
            "lost_turns": self.count("lost"),
            "duplicated_turns": self.count("duplicated"),
            "unreplied_turns": self.count("unreplied"),
            "violations": [asdict(v) for v in self.violations[:50]],
            "problems": self.problems,
            "wall_s": round(self.wall_seconds, 1),
            "samples": [
                [t.conversation, round(t.sent_at, 3), _ms(t.seconds), t.outcome] for t in self.turns
            ],
        }


def _ms(seconds: float) -> float | None:
    return None if math.isnan(seconds) else round(seconds * 1000, 1)


@dataclass
class LoadReport:
    """Everything one load test measured."""

    config: LoadConfig
    phases: list[Phase] = field(default_factory=list)
    wall_seconds: float = 0.0

    @property
    def passed(self) -> bool:
        """No lost, duplicated or unreplied turn, and every phase ran."""
        return all(not p.violations and not p.problems for p in self.phases)

    def as_json(self) -> dict[str, Any]:
        return {
            "test": "durable-agent load test",
            "config": asdict(self.config),
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "wall_seconds": round(self.wall_seconds, 1),
            "machine": machine(),
            "conditions": (
                "one in-memory dev server, one worker process on the Claude path (real SDK) "
                "against the loopback fake Messages API answering as the offline planner "
                "(two model calls a turn), tenant rate limits and daily budgets off; the "
                "driver, the fake and the gateway share the machine"
            ),
            "passed": self.passed,
            "phases": {p.driver: p.as_json() for p in self.phases},
        }

    def table(self) -> str:
        """The figures, one column per driver."""
        c = self.config
        lines = [
            f"load test: {c.conversations} conversations x {c.duration:g} s per driver, "
            f"fault rate {c.fault_rate:g} ({', '.join(c.faults)}) on model requests, seed {c.seed}"
        ]
        rows: list[tuple[str, ...]] = [("", *(p.driver for p in self.phases))]
        summaries = [p.summary() for p in self.phases]
        rows += [
            ("conversations (tenants)", *(f"{p.conversations} ({p.tenants})" for p in self.phases)),
            ("messages sent", *(f"{s.sent:,}" for s in summaries)),
            ("replies (status ok)", *(f"{s.replied:,} ({s.ok:,})" for s in summaries)),
            ("throughput", *(f"{s.throughput:.1f} turns/s" for s in summaries)),
            *(
                (f"latency {q}", *(_latency(s, q) for s in summaries))
                for q in ("p50", "p95", "p99", "max")
            ),
            ("errors", *(f"{s.sent - s.ok:,} ({s.error_rate:.2%})" for s in summaries)),
        ]
        kinds = sorted({k for s in summaries for k in s.error_rates})
        rows += [
            (f"  {kind}", *(f"{s.outcomes.get(kind, 0):,}" for s in summaries)) for kind in kinds
        ]
        rows += [
            ("model requests", *(f"{p.model_requests:,}" for p in self.phases)),
            ("faults injected", *(_faults(p) for p in self.phases)),
            (
                "lost / duplicated / unreplied",
                *(
                    f"{p.count('lost')} / {p.count('duplicated')} / {p.count('unreplied')}"
                    for p in self.phases
                ),
            ),
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines += [
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows
        ]
        for phase in self.phases:
            lines += [f"! {phase.driver}: {problem}" for problem in phase.problems]
            lines += [f"! {phase.driver}: {v.kind}: {v.detail}" for v in phase.violations[:20]]
        verdict = "PASSED: no turn lost" if self.passed else "FAILED"
        lines.append(f"{verdict}; wall time {self.wall_seconds:.0f} s")
        return "\n".join(lines)


def _latency(summary: Summary, key: str) -> str:
    value = summary.latency_ms[key]
    return "" if math.isnan(value) else f"{value:,.0f} ms"


def _faults(phase: Phase) -> str:
    injected = sum(phase.faults_injected.values())
    kinds = ", ".join(f"{k} x{n}" for k, n in sorted(phase.faults_injected.items()))
    share = f" ({injected / phase.model_requests:.1%})" if phase.model_requests else ""
    return f"{injected:,}{share}" + (f": {kinds}" if kinds else "")
