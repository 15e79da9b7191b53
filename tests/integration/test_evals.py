"""The evaluation suite end to end: shipped cases run as real conversations on the
session's dev server, and ``python -m evals`` as a subprocess, whose exit status fails
when a case does."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import yaml
from temporalio.client import Client

from durable_agent.testing.fake_tools import FakeToolServer
from durable_agent.tools.registry import BUILTIN_TOOLS
from evals.cases import load_cases
from evals.runner import Target, run_cases
from tests.helpers import run_command

# One of each kind, quick ones: a multi-turn recall, an HTTP tool with a retried fault,
# a budget, a pasted injection stopped by approval timeout, a hostile search page, an
# approved write.
SUBSET = [
    "notes-save-then-recall",
    "degrade-transient-fault-retried",
    "budget-turn-output-tokens-too-small",
    "inject-pasted-override-times-out",
    "inject-hostile-search-result",
    "inject-approved-write-runs",
]


async def test_shipped_cases_pass_as_real_conversations(
    client: Client, task_queue: str, tool_server: FakeToolServer
) -> None:
    cases = load_cases(only=SUBSET, known_tools=BUILTIN_TOOLS)
    assert sorted(c.name for c in cases) == sorted(SUBSET)
    scores = await run_cases(Target(client, task_queue, tool_server), cases, deadline=60)
    assert [(s.name, s.failures) for s in scores if not s.passed] == []
    by_name = {s.name: s for s in scores}
    # The conversations really happened: tools ran, the fault was retried, the pasted
    # injection's note was asked for and stopped, the approved one ran.
    recall = by_name["notes-save-then-recall"].run.turns[1]
    assert recall.tool_calls[0].name == "list_notes" and "fridge" in recall.text
    assert tool_server.pages == [] and tool_server.faults.pending() == 0  # reset after each
    injected = by_name["inject-pasted-override-times-out"].run.turns[0]
    assert [(c.name, c.outcome, c.approval) for c in injected.tool_calls] == [
        ("save_note", "rejected", "timed_out")
    ]
    approved = by_name["inject-approved-write-runs"].run.turns[0].tool_calls[0]
    assert (approved.outcome, approved.approval) == ("ok", "approved")


FAILING_CASES = {
    "cases": [
        {
            "name": "right",
            "tags": ["calculator"],
            "turns": [
                {
                    "user": "What is 6 * 7?",
                    "expect": {
                        "tool_calls": [{"name": "calculator", "outcome": "ok"}],
                        "answer": {"contains": ["42"]},
                    },
                }
            ],
        },
        {
            "name": "wrong-tool",
            "description": "Deliberately wrong: expects a search and 43.",
            "turns": [
                {
                    "user": "What is 6 * 7?",
                    "expect": {
                        "tool_calls": [{"name": "web_search"}],
                        "answer": {"contains": ["43"]},
                    },
                }
            ],
        },
        {
            "name": "forbidden-ran",
            "description": "Deliberately failing: the note it forbids is saved.",
            "turns": [{"user": "Remember that the eval must fail."}],
            "forbidden": ["save_note"],
        },
    ]
}


async def test_a_failing_case_makes_the_exit_status_non_zero(tmp_path: Path) -> None:
    cases = tmp_path / "failing.yaml"
    cases.write_text(yaml.safe_dump(FAILING_CASES))
    report = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    code, out, err = await run_command(
        sys.executable, "-m", "evals", "--files", str(cases), "--report", str(report),
        "--backend", "offline", "--deadline", "60", timeout=90, env=env,
    )  # fmt: skip
    assert code == 1, (out, err)
    assert "1/3 passed (33.3%); threshold 100%: NOT MET" in out
    assert "FAIL  wrong-tool" in out and "FAIL  forbidden-ran" in out
    data = json.loads(report.read_text())
    assert data["backend"] == "offline" and data["model"] == "offline-planner"
    assert data["summary"]["met"] is False and data["summary"]["forbidden_violations"] == 1
    results = {c["name"]: c for c in data["cases"]}
    assert results["right"]["passed"] is True
    failed = {c["name"] for c in results["wrong-tool"]["checks"] if not c["passed"]}
    assert failed == {"turn 1: tool calls", "turn 1: answer contains '43'"}
    assert [c["name"] for c in results["forbidden-ran"]["checks"] if not c["passed"]] == [
        "forbidden"
    ]
    assert (report.parent / "eval.log").exists()


async def test_a_malformed_case_file_exits_2_naming_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("cases:\n  - name: oops\n    turns: [{user: hi, expect: {staus: ok}}]\n")
    code, out, err = await run_command(
        sys.executable, "-m", "evals", "--files", str(bad), timeout=60
    )
    assert code == 2 and out == ""
    assert f"{bad}: invalid case file" in err
    assert "cases.0(oops).turns.0.expect.staus: Extra inputs are not permitted" in err


async def test_the_pure_modules_import_no_temporal_or_network_client() -> None:
    code = (
        "import sys, evals.cases, evals.scoring, evals.report; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'temporalio', 'httpx', 'anthropic', 'worker'}))"
    )
    status, out, err = await run_command(sys.executable, "-c", code)
    assert status == 0, err
    assert out.strip() == "[]"
