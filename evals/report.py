"""The summary table printed after a run and the JSON report written beside it.

Pure formatting: no Temporal, no network.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from evals.scoring import CaseScore, Summary


class Report(BaseModel):
    """What ``evals/results/report.json`` holds."""

    model_config = ConfigDict(extra="forbid")

    started_at: str
    """UTC, ISO 8601."""
    backend: str
    """``offline`` or ``claude``: the worker's model backend."""
    model: str
    """The model conversations used (the worker's default)."""
    wall_seconds: float
    """The whole run, dev server start-up included."""
    summary: Summary
    cases: list[CaseScore]
    """Every case: checks, scores and each turn's reply as observed."""


def write_report(path: Path, report: Report) -> None:
    """Write the report as indented JSON, creating the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")


def progress_line(score: CaseScore) -> str:
    """One line per case as it finishes."""
    mark = "pass" if score.passed else "FAIL"
    line = f"  {mark}  {score.name} ({score.run.seconds:.1f}s)"
    failures = score.failures
    if failures:
        first = failures[0]
        line += f": {first.name}{' — ' + first.detail if first.detail else ''}"
        if len(failures) > 1:
            line += f" (+{len(failures) - 1} more)"
    return line


def _row(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()


def format_table(scores: Sequence[CaseScore], summary: Summary) -> str:
    """The per-case table and the run's totals."""
    header = ["case", "result", "tools P/R", "answer", "cost USD", "turn s", "turns", "calls"]
    rows = [
        [
            s.name,
            "pass" if s.passed else "FAIL",
            f"{s.tool_precision:.2f}/{s.tool_recall:.2f}"
            if s.expected_calls or s.actual_calls
            else "-",
            f"{s.answer_checks_passed}/{s.answer_checks}" if s.answer_checks else "-",
            f"{s.cost_usd:.4f}",
            f"{s.latency_mean_seconds:.2f}",
            str(s.turns),
            str(s.model_calls),
        ]
        for s in scores
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [_row(header, widths), _row(["-" * w for w in widths], widths)]
    lines += [_row(r, widths) for r in rows]
    verdict = "MET" if summary.met else "NOT MET"
    tags = ", ".join(f"{tag} {t.passed}/{t.cases}" for tag, t in summary.by_tag.items())
    lines += [
        "",
        f"cases          {summary.passed}/{summary.cases} passed ({summary.pass_rate:.1%}); "
        f"threshold {summary.threshold:.0%}: {verdict}",
        f"tool choice    precision {summary.tool_precision:.2f}, recall {summary.tool_recall:.2f}",
        f"answer checks  {summary.answer_checks_passed}/{summary.answer_checks}",
        f"forbidden      {summary.forbidden_violations} actions ran without approval "
        f"({summary.forbidden_checked} cases forbid some)",
        f"cost           ${summary.cost_usd:.4f} over {summary.turns} turns, "
        f"{summary.model_calls} model calls",
        f"turn latency   mean {summary.latency_mean_seconds:.2f}s, "
        f"p95 {summary.latency_p95_seconds:.2f}s, max {summary.latency_max_seconds:.2f}s",
        f"by tag         {tags}",
    ]
    failed = [s for s in scores if not s.passed]
    if failed:
        lines += ["", "failed checks:"]
        for score in failed:
            lines += [f"  {score.name}: {c.name} — {c.detail}" for c in score.failures]
    return "\n".join(lines)
