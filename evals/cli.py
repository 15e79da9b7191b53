"""``python -m evals`` (``make eval``): run the evaluation cases and report.

Starts its own Temporal dev server (in memory, 127.0.0.1, free ports), the loopback
weather and search APIs, and a worker in this process on a fresh task queue, with the
model backend the worker would use (``AGENT_MODEL_BACKEND``; Claude when
``ANTHROPIC_API_KEY`` is set, else the offline planner). Prints a line per case, then a
summary table; writes the JSON report; exits 1 when the pass rate is below the
threshold, 2 on bad usage or an invalid case file.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from durable_agent.process import exit_now
from evals.cases import CASES_DIR, Case, CaseFileError, load_cases
from evals.report import Report, format_table, progress_line, write_report
from evals.scoring import summarise

if TYPE_CHECKING:
    from durable_agent.config import Settings

DEFAULT_REPORT = Path(__file__).parent / "results" / "report.json"
THRESHOLDS = {"offline": 1.0, "claude": 0.9}
"""Default pass-rate thresholds: the offline planner is deterministic, so every case
must pass; Claude may word things its own way now and then."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m evals", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases",
        action="append",
        default=[],
        metavar="NAMES",
        help="only these cases: names, tags or file stems, comma-separated, * wildcards",
    )
    parser.add_argument(
        "--files",
        nargs="+",
        type=Path,
        default=[CASES_DIR],
        metavar="PATH",
        help=f"case files or directories (default: {CASES_DIR})",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        help="minimum pass rate, 0..1 (default: 1.0 offline, 0.9 with Claude)",
    )
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT, help="JSON report path")
    parser.add_argument(
        "--backend",
        choices=["auto", "offline", "claude"],
        help="model backend (default: AGENT_MODEL_BACKEND, i.e. Claude when a key is set)",
    )
    parser.add_argument("--turn-timeout", type=float, default=120.0, help="seconds per turn")
    parser.add_argument(
        "--deadline", type=float, default=540.0, help="seconds for all cases; the rest fail"
    )
    parser.add_argument("--list", action="store_true", help="list the selected cases and exit")
    args = parser.parse_args(argv)
    if args.threshold is not None and not 0 <= args.threshold <= 1:
        parser.error("--threshold must be between 0 and 1")
    args.only = [name.strip() for group in args.cases for name in group.split(",") if name.strip()]
    return args


async def evaluate(args: argparse.Namespace, cases: list[Case], settings: Settings) -> bool:
    """Run the cases, print and write the results; whether the threshold was met."""
    from evals.environment import environment, log_to_file  # the worker: slow to import
    from evals.runner import run_cases

    started, clock = datetime.now(UTC), time.monotonic()
    log_to_file(args.report.with_name("eval.log"), settings)
    async with environment(settings) as (target, backend):
        model = settings.model if backend == "claude" else "offline-planner"
        threshold = args.threshold if args.threshold is not None else THRESHOLDS[backend]
        print(f"{len(cases)} cases, model {model} ({backend} backend)", flush=True)
        scores = await run_cases(
            target,
            cases,
            turn_timeout=args.turn_timeout,
            deadline=args.deadline,
            on_score=lambda s: print(progress_line(s), flush=True),
        )
    summary = summarise(scores, threshold)
    wall = time.monotonic() - clock
    print("\n" + format_table(scores, summary))
    print(f"wall time      {wall:.1f}s; report {args.report}")
    report = Report(
        started_at=started.isoformat(timespec="seconds"),
        backend=backend,
        model=model,
        wall_seconds=round(wall, 2),
        summary=summary,
        cases=scores,
    )
    write_report(args.report, report)
    return summary.met


def main(argv: Sequence[str] | None = None) -> None:
    """Exit 0 when the threshold is met, 1 when not, 2 on bad usage or case files."""
    from durable_agent.tools.registry import BUILTIN_TOOLS

    args = parse_args(argv)
    try:
        cases = load_cases(args.files, only=args.only, known_tools=BUILTIN_TOOLS)
    except CaseFileError as e:
        print(f"evals: {e}", file=sys.stderr)
        exit_now(2)
    if args.list:
        for case in cases:
            print(f"{case.name:40} {case.file:20} {', '.join(case.tags)}")
        exit_now(0)
    from durable_agent.config import Settings

    settings = Settings()
    if args.backend is not None:
        settings = settings.model_copy(update={"model_backend": args.backend})
    met = asyncio.run(evaluate(args, cases, settings))
    exit_now(0 if met else 1)
