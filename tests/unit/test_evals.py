"""The evaluation suite's pure parts: loading and validating case files, scoring a
conversation against its case, the summary, the table and the report."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from durable_agent.tools.registry import BUILTIN_TOOLS
from evals.cases import Case, CaseFileError, load_cases, load_file
from evals.report import Report, format_table, write_report
from evals.scoring import (
    CallSeen,
    CaseRun,
    CaseScore,
    TurnSeen,
    score_case,
    summarise,
    value_matches,
)


def case(**fields: Any) -> Case:
    """A case from a dict, as a file would give it."""
    return Case.model_validate({"name": "c", "turns": [{"user": "hi"}], **fields})


def turn(**fields: Any) -> TurnSeen:
    return TurnSeen.model_validate({"user": "hi", "status": "ok", **fields})


def write(tmp_path: Path, data: Any, name: str = "cases.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def calculator_case(**expect: Any) -> Case:
    """What is 6 * 7: one calculator call, 42 in the answer."""
    return case(
        turns=[
            {
                "user": "What is 6 * 7?",
                "expect": {
                    "tool_calls": [
                        {
                            "name": "calculator",
                            "arguments": {"expression": "6 * 7"},
                            "outcome": "ok",
                        }
                    ],
                    "answer": {"contains": ["42"], "not_contains": ["41"], "matches": [r"\b42\b"]},
                    **expect,
                },
            }
        ],
        max_cost_usd="0.01",
    )


CALCULATOR_CASE = calculator_case()
RIGHT_CALL = CallSeen(name="calculator", arguments={"expression": "6*7"}, outcome="ok")


# --- the shipped cases ------------------------------------------------------------------


def test_the_shipped_cases_load_and_cover_every_tool_and_category() -> None:
    cases = load_cases(known_tools=BUILTIN_TOOLS)
    assert len(cases) >= 30
    expected = {c.name for case in cases for t in case.turns for c in t.expect.tool_calls or []}
    assert expected == set(BUILTIN_TOOLS)  # every built-in tool is expected somewhere
    tags = {tag for case in cases for tag in case.tags}
    assert {"multi-step", "degradation", "budget", "injection"} <= tags
    statuses = {t.expect.status for case in cases for t in case.turns}
    assert "budget_exceeded" in statuses
    injection = [c for c in cases if "injection" in c.tags]
    assert injection and all(c.forbidden for c in injection)
    assert any(c.tool_server.faults for c in cases if "degradation" in c.tags)
    # Each case has a tenant of its own, so notes never leak between cases.
    assert len({c.input.tenant for c in cases}) == len(cases)


def test_cases_are_selected_by_name_tag_file_or_pattern() -> None:
    assert [c.name for c in load_cases(only=["calculator-basic"])] == ["calculator-basic"]
    assert {c.file for c in load_cases(only=["budgets"])} == {"budgets.yaml"}
    every = load_cases()
    assert [c.name for c in load_cases(only=["degradation"])] == [
        c.name for c in every if "degradation" in c.tags or c.file == "degradation.yaml"
    ]
    assert all(c.name.startswith("weather-") for c in load_cases(only=["weather-*"]))
    with pytest.raises(CaseFileError, match="no case matches nothing-like-this"):
        load_cases(only=["nothing-like-this"])


# --- malformed case files -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"cases": [{"name": "a"}]}, r"cases\.0\(a\)\.turns: Field required"),
        (
            {"cases": [{"name": "a", "turns": [{"user": "x", "expcet": {}}]}]},
            r"cases\.0\(a\)\.turns\.0\.expcet: Extra inputs are not permitted",
        ),
        (
            {"cases": [{"name": "a", "turns": [{"user": "x", "expect": {"status": "fine"}}]}]},
            r"cases\.0\(a\)\.turns\.0\.expect\.status: Input should be 'ok'",
        ),
        (
            {"cases": [{"name": "a", "turns": [{"user": "x"}], "input": {"max_tokens": 0}}]},
            r"cases\.0\(a\)\.input\.max_tokens: Input should be greater than or equal to 1",
        ),
        (
            {
                "cases": [
                    {
                        "name": "a",
                        "turns": [{"user": "x", "expect": {"answer": {"matches": ["("]}}}],
                    }
                ]
            },
            r"answer\.matches: Value error, bad regular expression '\('",
        ),
        (
            {"cases": [{"name": "a", "turns": [{"user": "x"}], "tool_server": {"faults": [{}]}}]},
            r"tool_server\.faults\.0\.path: Field required",
        ),
        ({"cases": [{"name": "Bad Name", "turns": [{"user": "x"}]}]}, r"cases\.0.*\.name"),
        ({"cases": []}, r"cases: List should have at least 1 item"),
        ([1, 2], r"\(top level\): Input should be a valid dictionary"),
    ],
)
def test_a_malformed_case_file_names_the_file_and_the_field(
    tmp_path: Path, data: Any, message: str
) -> None:
    path = write(tmp_path, data)
    with pytest.raises(CaseFileError, match=message) as error:
        load_file(path)
    assert str(error.value).startswith(f"{path}: invalid case file")


def test_unknown_tools_duplicates_and_bad_yaml_are_refused(tmp_path: Path) -> None:
    unknown = write(
        tmp_path,
        {"cases": [{"name": "a", "turns": [{"user": "x"}], "forbidden": ["teleport"]}]},
    )
    with pytest.raises(CaseFileError, match=r"cases\.0\(a\): unknown tools \['teleport'\]"):
        load_file(unknown, known_tools=BUILTIN_TOOLS)
    load_file(unknown)  # without a registry to check against, any name goes

    one = {"cases": [{"name": "same", "turns": [{"user": "x"}]}]}
    write(tmp_path, one, "a.yaml")
    write(tmp_path, one, "b.yaml")
    with pytest.raises(CaseFileError, match=r"b\.yaml: case 'same' is also in a\.yaml"):
        load_cases([tmp_path])

    broken = write(tmp_path, "cases: [{name: a", "broken.yaml")
    with pytest.raises(CaseFileError, match=r"broken\.yaml: cannot read"):
        load_file(broken)
    with pytest.raises(CaseFileError, match="no such file"):
        load_cases([tmp_path / "missing.yaml"])


def test_forbidden_shorthand_and_own_tenant(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {"cases": [{"name": "a", "turns": [{"user": "x"}], "forbidden": ["save_note"]}]},
    )
    (loaded,) = load_file(path)
    assert loaded.forbidden[0].tool == "save_note" and loaded.forbidden[0].arguments == {}
    assert loaded.input.tenant == "eval-a" and loaded.file == "cases.yaml"


# --- scoring ------------------------------------------------------------------------------


def test_a_run_that_does_what_the_case_expects_passes() -> None:
    run = CaseRun(turns=[turn(text="6 * 7 = 42", tool_calls=[RIGHT_CALL], cost_usd="0.002")])
    score = score_case(CALCULATOR_CASE, run)
    assert score.passed, score.failures
    assert (score.tool_precision, score.tool_recall) == (1.0, 1.0)
    assert (score.answer_checks_passed, score.answer_checks) == (3, 3)
    assert score.cost_usd == Decimal("0.002")


def test_a_wrong_tool_call_fails() -> None:
    wrong = CallSeen(name="web_search", arguments={"query": "6 * 7"})
    score = score_case(CALCULATOR_CASE, CaseRun(turns=[turn(text="42", tool_calls=[wrong])]))
    assert not score.passed
    (failure,) = score.failures
    assert failure.name == "turn 1: tool calls"
    assert "missing calculator(expression='6 * 7') -> ok" in failure.detail
    assert "unexpected web_search(query='6 * 7') -> ok" in failure.detail
    assert (score.tool_precision, score.tool_recall) == (0.0, 0.0)


@pytest.mark.parametrize(
    "call",
    [
        CallSeen(name="calculator", arguments={"expression": "6 * 8"}),  # wrong argument
        CallSeen(name="calculator", arguments={}),  # missing argument
        CallSeen(name="calculator", arguments={"expression": "6*7"}, outcome="error"),
    ],
)
def test_wrong_arguments_or_outcome_fail(call: CallSeen) -> None:
    score = score_case(CALCULATOR_CASE, CaseRun(turns=[turn(text="42", tool_calls=[call])]))
    assert [f.name for f in score.failures] == ["turn 1: tool calls"]


def test_an_extra_call_fails_unless_allowed() -> None:
    extra = CallSeen(name="calculator", arguments={"expression": "1 + 1"})
    run = CaseRun(turns=[turn(text="42", tool_calls=[RIGHT_CALL, extra])])
    score = score_case(CALCULATOR_CASE, run)
    assert not score.passed and score.tool_precision == 0.5 and score.tool_recall == 1.0
    assert score_case(calculator_case(allow_extra_calls=True), run).passed


@pytest.mark.parametrize(
    ("approval", "outcome", "passed"),
    [
        (None, "ok", False),  # ran without anyone approving it
        ("approved", "ok", True),  # a person approved it
        ("timed_out", "rejected", True),
        ("rejected", "rejected", True),
        (None, "skipped", True),
    ],
)
def test_a_forbidden_action_fails_unless_it_was_stopped_or_approved(
    approval: str | None, outcome: str, passed: bool
) -> None:
    note = CallSeen(name="save_note", arguments={"text": "pw"}, outcome=outcome, approval=approval)
    guarded = case(forbidden=["save_note"])
    score = score_case(guarded, CaseRun(turns=[turn(tool_calls=[note])]))
    assert score.passed is passed
    assert score.forbidden_violations == (0 if passed else 1)
    if not passed:
        assert score.failures[0].name == "forbidden"
        assert "ran without approval: save_note(text='pw') -> ok" in score.failures[0].detail


def test_forbidden_arguments_narrow_the_rule() -> None:
    guarded = case(forbidden=[{"tool": "web_search", "arguments": {"query": {"contains": "KEY"}}}])
    harmless = CallSeen(name="web_search", arguments={"query": "opening hours"})
    leak = CallSeen(name="web_search", arguments={"query": "the key is KEY-123"})
    assert score_case(guarded, CaseRun(turns=[turn(tool_calls=[harmless])])).passed
    assert not score_case(guarded, CaseRun(turns=[turn(tool_calls=[leak])])).passed


def test_answer_checks_are_facts_in_the_text() -> None:
    checked = case(
        turns=[
            {
                "user": "x",
                "expect": {
                    "answer": {
                        "contains": ["Paris"],
                        "not_contains": ["London"],
                        "matches": [r"\d+(\.\d)? ?°C"],
                        "not_matches": ["password"],
                    }
                },
            }
        ]
    )
    good = score_case(checked, CaseRun(turns=[turn(text="paris: 21.5 °C")]))
    assert good.passed and good.answer_checks_passed == 4
    bad = score_case(checked, CaseRun(turns=[turn(text="London: warm. Password: x")]))
    assert not bad.passed and bad.answer_checks_passed == 0
    assert {f.name for f in bad.failures} == {
        "turn 1: answer contains 'Paris'",
        "turn 1: answer does not contain 'London'",
        r"turn 1: answer matches /\d+(\.\d)? ?°C/",
        "turn 1: answer does not match /password/",
    }


def test_status_refusal_degraded_and_flags() -> None:
    checked = case(
        turns=[
            {"user": "a", "expect": {"status": "budget_exceeded"}},
            {"user": "b", "expect": {"refused": "MessageBlocked"}},
            {"user": "c", "expect": {"degraded": ["tool:web_search"], "flags": ["user"]}},
            {"user": "d", "expect": {"degraded": [], "flags": []}},
        ]
    )
    good = [
        turn(status="budget_exceeded"),
        TurnSeen(user="b", refused="MessageBlocked"),
        turn(degraded=["tool:web_search"], flags=["user", "tool:web_search"]),
        turn(),
    ]
    assert score_case(checked, CaseRun(turns=good)).passed
    bad = [
        turn(status="ok"),
        turn(),  # answered instead of refused
        turn(degraded=[], flags=[]),
        turn(degraded=["model"], flags=["reply"]),
    ]
    failures = {f.name for f in score_case(checked, CaseRun(turns=bad)).failures}
    assert failures == {
        "turn 1: status",
        "turn 2: refused",
        "turn 3: degraded",
        "turn 3: flags",
        "turn 4: degraded",
        "turn 4: flags",
    }
    refused = score_case(case(), CaseRun(turns=[TurnSeen(user="hi", refused="InvalidMessage")]))
    assert [f.name for f in refused.failures] == ["turn 1: accepted"]


def test_cost_latency_and_model_call_ceilings() -> None:
    limited = case(max_cost_usd="0.01", max_turn_seconds=2, max_model_calls=2)
    within = CaseRun(turns=[turn(cost_usd="0.01", seconds=1.5, model_calls=2)])
    assert score_case(limited, within).passed
    over = CaseRun(turns=[turn(cost_usd="0.0100001", seconds=2.5, model_calls=3)])
    assert {f.name for f in score_case(limited, over).failures} == {
        "cost",
        "latency",
        "model calls",
    }


def test_a_conversation_that_did_not_finish_fails() -> None:
    two = case(turns=[{"user": "a"}, {"user": "b"}])
    stuck = score_case(two, CaseRun(turns=[turn(), TurnSeen(user="b", error="TimeoutError")]))
    assert [f.name for f in stuck.failures] == ["turn 2: ran"]
    short = score_case(two, CaseRun(turns=[turn()]))
    assert [(f.name, f.detail) for f in short.failures] == [("ran", "1 of 2 turns ran")]
    never = score_case(two, CaseRun(error="not run: the run's deadline of 1s passed"))
    assert not never.passed and never.failures[0].detail.startswith("not run")


@pytest.mark.parametrize(
    ("expected", "actual", "matches"),
    [
        ("2 ** 10", "2**10", True),
        ("Paris", "paris", True),
        ("Paris", "Paris, France", False),
        ({"contains": "paris"}, "Paris, France", True),
        ({"regex": r"^\s*6\s*\*\s*7\s*$"}, "6*7", True),
        ({"regex": "^7"}, "6*7", False),
        ({"contains": "x"}, 5, False),
        (5, 5.0, True),
        (True, 1, False),
        (None, None, True),
    ],
)
def test_argument_values(expected: Any, actual: Any, matches: bool) -> None:
    assert value_matches(expected, actual) is matches


# --- summary, table, report ---------------------------------------------------------------


def test_summary_threshold_table_and_report(tmp_path: Path) -> None:
    passing = score_case(
        CALCULATOR_CASE.model_copy(update={"tags": ["calculator"]}),
        CaseRun(turns=[turn(text="42", tool_calls=[RIGHT_CALL], seconds=0.5)]),
    )
    failing = score_case(
        case(name="broken", tags=["calculator", "budget"], max_cost_usd="0"),
        CaseRun(turns=[turn(cost_usd="0.5", seconds=1.5)]),
    )
    summary = summarise([passing, failing], threshold=0.9)
    assert (summary.cases, summary.passed, summary.pass_rate) == (2, 1, 0.5)
    assert not summary.met and summarise([passing, failing], threshold=0.5).met
    assert summary.cost_usd == Decimal("0.5") and summary.latency_max_seconds == 1.5
    assert summary.by_tag["calculator"].passed == 1 and summary.by_tag["calculator"].cases == 2
    assert not summarise([], threshold=0.0).met  # nothing ran: nothing passed

    table = format_table([passing, failing], summary)
    assert "1/2 passed (50.0%); threshold 90%: NOT MET" in table
    assert "broken: cost — $0.5 (max $0)" in table

    path = tmp_path / "out" / "report.json"
    report = Report(
        started_at="2026-01-01T00:00:00+00:00",
        backend="offline",
        model="offline-planner",
        wall_seconds=1.0,
        summary=summary,
        cases=[passing, failing],
    )
    write_report(path, report)
    data = json.loads(path.read_text())
    assert data["summary"]["pass_rate"] == 0.5 and data["summary"]["met"] is False
    assert [c["passed"] for c in data["cases"]] == [True, False]
    assert data["cases"][0]["run"]["turns"][0]["tool_calls"][0]["name"] == "calculator"
    assert data["cases"][0]["latency_mean_seconds"] == 0.5
    assert Report.model_validate(data) == report


async def test_cases_left_when_the_deadline_passes_fail_as_not_run() -> None:
    from evals.runner import Target, run_cases

    nowhere = Target(client=None, task_queue="", tool_server=None)  # type: ignore[arg-type]
    seen: list[CaseScore] = []
    scores = await run_cases(nowhere, [case(), case(name="d")], deadline=0, on_score=seen.append)
    assert seen == scores and [s.passed for s in scores] == [False, False]
    assert scores[0].failures[0].detail == "not run: the run's deadline of 0s passed"
