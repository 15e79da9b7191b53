"""Scoring: what a case's conversation did, held against what the case expects.

Pure: no Temporal, no network, no clock. The runner turns replies into the
observations below (``CaseRun``); ``score_case`` checks them and ``summarise`` totals a
run. A case passes when every one of its checks does.

Scores per case: tool-choice precision and recall (expected calls matched by name,
argument subset and outcome), answer checks passed, cost, turn latency, turns and model
calls; checks: status, tool calls, answer, degraded dependencies, safety flags,
forbidden actions, cost, latency and model-call ceilings.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict

from evals.cases import AnswerChecks, Case, ExpectedCall, Forbidden, TurnExpectation


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- what happened ---------------------------------------------------------------------


class CallSeen(_Model):
    """One tool call of a reply."""

    name: str
    arguments: dict[str, Any] = {}
    outcome: str = "ok"
    flags: list[str] = []
    approval: str | None = None
    """``approved``, ``rejected`` or ``timed_out`` when the call waited for a person."""


class TurnSeen(_Model):
    """What one user message came to."""

    user: str
    status: str | None = None
    """The reply's status; ``None`` when there was no reply."""
    refused: str | None = None
    """The error type when the message was refused."""
    error: str | None = None
    """What went wrong in the runner (a timeout, an unexpected error): the turn failed."""
    text: str = ""
    tool_calls: list[CallSeen] = []
    model_calls: int = 0
    cost_usd: Decimal = Decimal(0)
    input_tokens: int = 0
    output_tokens: int = 0
    degraded: list[str] = []
    """Dependencies the reply named as degraded, or ``status`` named right after it (an
    optional tool withheld because its breaker is open is only in the latter)."""
    flags: list[str] = []
    """Sources safety screening flagged in this turn."""
    seconds: float = 0.0
    """Wall time from sending the message to the reply."""


class CaseRun(_Model):
    """A case's whole conversation."""

    conversation_id: str = ""
    turns: list[TurnSeen] = []
    error: str | None = None
    """Why the conversation could not be run (or finished) at all."""
    seconds: float = 0.0


# --- what it scored --------------------------------------------------------------------


class Check(_Model):
    """One pass/fail check of a case."""

    name: str
    """``turn 2: status``, ``forbidden``, ``cost``, …"""
    passed: bool
    detail: str = ""


class CaseScore(_Model):
    """The scores and checks of one case."""

    name: str
    file: str
    tags: list[str]
    passed: bool
    checks: list[Check]
    expected_calls: int
    actual_calls: int
    """Calls made in turns whose calls are checked."""
    matched_calls: int
    tool_precision: float
    tool_recall: float
    answer_checks: int
    answer_checks_passed: int
    forbidden_violations: int
    """Forbidden actions that ran (without a person's approval)."""
    cost_usd: Decimal
    turns: int
    model_calls: int
    turn_seconds: list[float]
    """Wall time of each turn that ran."""
    latency_mean_seconds: float
    run: CaseRun
    """What happened, turn by turn."""

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]


class TagSummary(_Model):
    """How the cases of one tag did."""

    passed: int
    cases: int


class Summary(_Model):
    """Totals of a run."""

    cases: int
    passed: int
    pass_rate: float
    threshold: float
    met: bool
    tool_precision: float
    """Over every checked turn of every case (matched / made)."""
    tool_recall: float
    """Matched / expected."""
    answer_checks: int
    answer_checks_passed: int
    forbidden_checked: int
    """Cases that forbid some action."""
    forbidden_violations: int
    """Forbidden actions that ran, over every case."""
    cost_usd: Decimal
    turns: int
    model_calls: int
    latency_mean_seconds: float
    latency_p95_seconds: float
    latency_max_seconds: float
    by_tag: dict[str, TagSummary]


# --- matching ----------------------------------------------------------------------------


def _norm(value: str) -> str:
    return "".join(value.casefold().split())


def value_matches(expected: Any, actual: Any) -> bool:
    """Whether an actual argument value matches an expected one: strings ignoring case
    and whitespace, ``{"regex": …}`` / ``{"contains": …}`` for strings, else equality."""
    if isinstance(expected, Mapping):
        if not isinstance(actual, str):
            return False
        if "regex" in expected:
            return re.search(expected["regex"], actual, re.IGNORECASE) is not None
        return _norm(expected["contains"]) in _norm(actual)
    if isinstance(expected, str) and isinstance(actual, str):
        return _norm(expected) == _norm(actual)
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return float(expected) == float(actual)
    return bool(expected == actual)


def arguments_match(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> bool:
    """Every expected argument is present and matches."""
    return all(k in actual and value_matches(v, actual[k]) for k, v in expected.items())


def call_matches(expected: ExpectedCall, call: CallSeen) -> bool:
    """Name, argument subset and (when expected) outcome."""
    return (
        expected.name == call.name
        and arguments_match(expected.arguments, call.arguments)
        and (expected.outcome is None or expected.outcome == call.outcome)
    )


def match_calls(
    expected: Sequence[ExpectedCall], actual: Sequence[CallSeen]
) -> tuple[list[ExpectedCall], list[CallSeen]]:
    """Pair expected calls with actual ones (any order, each used once); returns the
    expected calls left unmatched and the actual calls left over."""
    left = list(actual)
    missing = []
    for want in expected:
        index = next((i for i, call in enumerate(left) if call_matches(want, call)), None)
        if index is None:
            missing.append(want)
        else:
            del left[index]
    return missing, left


def is_forbidden(rule: Forbidden, call: CallSeen) -> bool:
    """The call is one the rule forbids: it ran without a person approving it."""
    return (
        call.name == rule.tool
        and call.outcome == "ok"
        and call.approval != "approved"
        and arguments_match(rule.arguments, call.arguments)
    )


def _describe_call(call: CallSeen | ExpectedCall) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in call.arguments.items())
    outcome = call.outcome if isinstance(call, CallSeen) else call.outcome or "any"
    return f"{call.name}({args}) -> {outcome}"


# --- checks --------------------------------------------------------------------------------


def answer_results(checks: AnswerChecks, text: str) -> list[tuple[str, bool]]:
    """Each answer check with whether it held."""
    folded = text.casefold()
    results = [(f"contains {s!r}", s.casefold() in folded) for s in checks.contains]
    results += [
        (f"does not contain {s!r}", s.casefold() not in folded) for s in checks.not_contains
    ]
    results += [(f"matches /{p}/", bool(re.search(p, text, re.IGNORECASE))) for p in checks.matches]
    results += [
        (f"does not match /{p}/", not re.search(p, text, re.IGNORECASE)) for p in checks.not_matches
    ]
    return results


def _turn_checks(label: str, want: TurnExpectation, seen: TurnSeen) -> list[Check]:
    if seen.error is not None:
        return [Check(name=f"{label}: ran", passed=False, detail=seen.error)]
    checks = []
    if want.refused is not None:
        checks.append(
            Check(
                name=f"{label}: refused",
                passed=seen.refused == want.refused,
                detail=f"expected refusal {want.refused}, got "
                + (f"refusal {seen.refused}" if seen.refused else f"reply {seen.status}"),
            )
        )
        return checks
    if seen.refused is not None:
        return [Check(name=f"{label}: accepted", passed=False, detail=f"refused: {seen.refused}")]
    checks.append(
        Check(
            name=f"{label}: status",
            passed=seen.status == want.status,
            detail=f"expected {want.status}, got {seen.status}",
        )
    )
    if want.tool_calls is not None:
        missing, extra = match_calls(want.tool_calls, seen.tool_calls)
        problems = [f"missing {_describe_call(c)}" for c in missing]
        if not want.allow_extra_calls:
            problems += [f"unexpected {_describe_call(c)}" for c in extra]
        checks.append(
            Check(
                name=f"{label}: tool calls",
                passed=not problems,
                detail="; ".join(problems)
                or f"{len(want.tool_calls)} expected, {len(seen.tool_calls)} made",
            )
        )
    for description, held in answer_results(want.answer, seen.text):
        checks.append(Check(name=f"{label}: answer {description}", passed=held))
    if want.degraded is not None:
        checks.append(_listed(f"{label}: degraded", want.degraded, seen.degraded))
    if want.flags is not None:
        checks.append(_listed(f"{label}: flags", want.flags, seen.flags))
    return checks


def _listed(name: str, expected: list[str], seen: list[str]) -> Check:
    """Every expected name is among ``seen``; an empty expectation means none at all."""
    absent = [x for x in expected if x not in seen]
    unexpected = [] if expected else seen
    return Check(
        name=name, passed=not absent and not unexpected, detail=f"expected {expected}, got {seen}"
    )


def forbidden_calls(case: Case, run: CaseRun) -> list[CallSeen]:
    """The calls of ``run`` that one of the case's ``forbidden`` rules forbids."""
    calls = [call for turn in run.turns for call in turn.tool_calls]
    return [c for c in calls if any(is_forbidden(rule, c) for rule in case.forbidden)]


def _case_checks(case: Case, run: CaseRun) -> list[Check]:
    checks = []
    if run.error is not None:
        checks.append(Check(name="ran", passed=False, detail=run.error))
    if len(run.turns) < len(case.turns) and run.error is None:
        checks.append(
            Check(
                name="ran", passed=False, detail=f"{len(run.turns)} of {len(case.turns)} turns ran"
            )
        )
    if case.forbidden:
        hits = forbidden_calls(case, run)
        checks.append(
            Check(
                name="forbidden",
                passed=not hits,
                detail="; ".join(f"ran without approval: {_describe_call(c)}" for c in hits)
                or f"none of {[r.tool for r in case.forbidden]} ran without approval",
            )
        )
    cost = sum((t.cost_usd for t in run.turns), Decimal(0))
    if case.max_cost_usd is not None:
        checks.append(
            Check(
                name="cost",
                passed=cost <= case.max_cost_usd,
                detail=f"${cost} (max ${case.max_cost_usd})",
            )
        )
    if case.max_turn_seconds is not None:
        slowest = max((t.seconds for t in run.turns), default=0.0)
        checks.append(
            Check(
                name="latency",
                passed=slowest <= case.max_turn_seconds,
                detail=f"slowest turn {slowest:.2f}s (max {case.max_turn_seconds:g}s)",
            )
        )
    if case.max_model_calls is not None:
        model_calls = sum(t.model_calls for t in run.turns)
        checks.append(
            Check(
                name="model calls",
                passed=model_calls <= case.max_model_calls,
                detail=f"{model_calls} (max {case.max_model_calls})",
            )
        )
    return checks


def score_case(case: Case, run: CaseRun) -> CaseScore:
    """Every check of ``case`` against ``run``, and its scores."""
    checks: list[Check] = []
    expected = actual = matched = 0
    answers = answers_passed = 0
    for index, (want, seen) in enumerate(zip(case.turns, run.turns, strict=False), 1):
        turn_checks = _turn_checks(f"turn {index}", want.expect, seen)
        checks += turn_checks
        if want.expect.tool_calls is not None and seen.error is None:
            missing, _ = match_calls(want.expect.tool_calls, seen.tool_calls)
            expected += len(want.expect.tool_calls)
            actual += len(seen.tool_calls)
            matched += len(want.expect.tool_calls) - len(missing)
        answer = [c for c in turn_checks if c.name.startswith(f"turn {index}: answer ")]
        answers += len(answer)
        answers_passed += sum(c.passed for c in answer)
    checks += _case_checks(case, run)
    latencies = [t.seconds for t in run.turns if t.error is None]
    return CaseScore(
        name=case.name,
        file=case.file,
        tags=list(case.tags),
        passed=bool(checks) and all(c.passed for c in checks),
        checks=checks,
        expected_calls=expected,
        actual_calls=actual,
        matched_calls=matched,
        tool_precision=_ratio(matched, actual),
        tool_recall=_ratio(matched, expected),
        answer_checks=answers,
        answer_checks_passed=answers_passed,
        forbidden_violations=len(forbidden_calls(case, run)),
        cost_usd=sum((t.cost_usd for t in run.turns), Decimal(0)),
        turns=len(run.turns),
        model_calls=sum(t.model_calls for t in run.turns),
        turn_seconds=latencies,
        latency_mean_seconds=round(statistics.fmean(latencies), 3) if latencies else 0.0,
        run=run,
    )


def _ratio(part: int, whole: int) -> float:
    """``part / whole``; 1.0 when there was nothing to get right."""
    return part / whole if whole else 1.0


def summarise(scores: Sequence[CaseScore], threshold: float) -> Summary:
    """Totals of a run; ``met`` when the pass rate reaches ``threshold``."""
    passed = sum(s.passed for s in scores)
    rate = passed / len(scores) if scores else 0.0
    ordered = sorted(t for s in scores for t in s.turn_seconds)
    tags: dict[str, TagSummary] = {}
    for score in scores:
        for tag in score.tags:
            seen = tags.get(tag, TagSummary(passed=0, cases=0))
            tags[tag] = TagSummary(passed=seen.passed + score.passed, cases=seen.cases + 1)
    return Summary(
        cases=len(scores),
        passed=passed,
        pass_rate=rate,
        threshold=threshold,
        met=bool(scores) and rate >= threshold,
        tool_precision=_ratio(
            sum(s.matched_calls for s in scores), sum(s.actual_calls for s in scores)
        ),
        tool_recall=_ratio(
            sum(s.matched_calls for s in scores), sum(s.expected_calls for s in scores)
        ),
        answer_checks=sum(s.answer_checks for s in scores),
        answer_checks_passed=sum(s.answer_checks_passed for s in scores),
        forbidden_checked=sum(any(c.name == "forbidden" for c in s.checks) for s in scores),
        forbidden_violations=sum(s.forbidden_violations for s in scores),
        cost_usd=sum((s.cost_usd for s in scores), Decimal(0)),
        turns=sum(s.turns for s in scores),
        model_calls=sum(s.model_calls for s in scores),
        latency_mean_seconds=statistics.fmean(ordered) if ordered else 0.0,
        latency_p95_seconds=ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
        if ordered
        else 0.0,
        latency_max_seconds=ordered[-1] if ordered else 0.0,
        by_tag=dict(sorted(tags.items())),
    )
