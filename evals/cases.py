"""Evaluation cases as data: the models of ``evals/cases/*.yaml`` and their loader.

A case file holds ``cases:``, a list of cases. Each case is a real conversation: the
user messages of its ``turns``, what each turn should do (``expect``), and checks over
the whole conversation (``forbidden`` actions, ``max_cost_usd``, …). Unknown fields are
errors, so a typo in a case cannot silently turn a check off.

Imports pydantic, PyYAML and the side-effect-free contract only (no Temporal, no I/O
beyond reading the files).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Collection, Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from durable_agent.contract import ConversationInput, ToolOutcome, TurnStatus

CASES_DIR = Path(__file__).parent / "cases"
"""Where ``python -m evals`` looks for case files by default."""


class CaseFileError(ValueError):
    """A case file cannot be read or does not describe valid cases; the message names
    the file and the field."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


ArgumentMatcher = Any
"""An expected argument value: a scalar compared to the actual value (strings ignoring
case and whitespace), or ``{"regex": "…"}`` / ``{"contains": "…"}`` for strings."""


class ExpectedCall(_Model):
    """A tool call a turn should make."""

    name: str
    """The tool's name."""
    arguments: dict[str, ArgumentMatcher] = {}
    """A subset of the call's arguments: each key must be present and match."""
    outcome: ToolOutcome | None = None
    """The call's outcome (``ok``, ``error``, ``rejected``, …); ``None``: any."""

    @field_validator("arguments")
    @classmethod
    def _matchers(cls, arguments: dict[str, Any]) -> dict[str, Any]:
        for key, value in arguments.items():
            if isinstance(value, dict):
                if len(value) != 1 or next(iter(value)) not in ("regex", "contains"):
                    raise ValueError(f"{key}: a matcher is {{regex: …}} or {{contains: …}}")
                if "regex" in value:
                    _compile(value["regex"])
        return arguments


class AnswerChecks(_Model):
    """Facts the reply text must (or must not) contain. Case-insensitive."""

    contains: list[str] = []
    """Substrings that must all appear."""
    not_contains: list[str] = []
    """Substrings that must not appear."""
    matches: list[str] = []
    """Regular expressions that must all match somewhere."""
    not_matches: list[str] = []
    """Regular expressions that must not match anywhere."""

    @field_validator("matches", "not_matches")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            _compile(pattern)
        return patterns


class TurnExpectation(_Model):
    """What one turn should do. Fields left out are not checked."""

    status: TurnStatus = "ok"
    """The reply's status (ignored when ``refused`` is set)."""
    refused: str | None = None
    """The message must be refused with this error type (``MessageBlocked``,
    ``InvalidMessage``): nothing enters history and there is no reply."""
    tool_calls: list[ExpectedCall] | None = None
    """The calls the turn should make, in any order; ``[]``: none; ``None``: unchecked."""
    allow_extra_calls: bool = False
    """Whether calls beyond ``tool_calls`` are allowed (they still lower precision)."""
    answer: AnswerChecks = AnswerChecks()
    degraded: list[str] | None = None
    """Dependencies (``tool:get_weather``, ``model``) that must have been down in this
    turn — named in the reply's ``degraded`` or in ``status.degraded`` right after it;
    ``[]``: none may be."""
    flags: list[str] | None = None
    """Sources (``user``, ``tool:web_search``, ``reply``) that safety screening must have
    flagged in this turn; ``[]``: nothing may be flagged."""


class Approval(_Model):
    """What the reviewer does when a call of ``tool`` waits for approval in this turn.
    A waiting call with no matching entry is left alone (it times out as rejected after
    the conversation's ``safety.approval_timeout_seconds``)."""

    tool: str
    decision: Literal["approve", "reject"]
    by: str = "eval-reviewer"
    reason: str = "evaluation case"
    arguments: dict[str, Any] | None = None
    """Approve with these arguments instead of the model's."""


class Turn(_Model):
    """One user message and what should come of it."""

    user: str = Field(min_length=1)
    """The message sent with ``send_message``."""
    expect: TurnExpectation = TurnExpectation()
    approvals: list[Approval] = []


class Forbidden(_Model):
    """An action that must not happen: a call of ``tool`` (with arguments matching
    ``arguments``, when given) that ran (outcome ``ok``) without a person approving it."""

    tool: str
    arguments: dict[str, ArgumentMatcher] = {}


class PageSpec(_Model):
    """An extra search result the fake search API serves before its corpus."""

    title: str
    url: str
    content: str


class FaultSpec(_Model):
    """A fault of the fake tool server (see ``durable_agent.testing.faults.Fault``)."""

    path: str = Field(pattern=r"^/")
    """Requests whose path starts with this: ``/search``, ``/v1/forecast``, ``/v1/search``
    (geocoding)."""
    status: int | None = Field(default=None, ge=400, le=599)
    retry_after: float | None = Field(default=None, ge=0, le=10)
    delay: float = Field(default=0.0, ge=0, le=30)
    drop: bool = False
    """Close the connection without answering (an endpoint that is down)."""
    times: int | Literal["always"] = "always"
    """How many requests take the fault; ``always``: every one for the whole case."""

    @model_validator(mode="after")
    def _does_something(self) -> FaultSpec:
        if self.status is None and not self.drop and not self.delay:
            raise ValueError("a fault needs status, drop or delay")
        if isinstance(self.times, int) and self.times < 1:
            raise ValueError("times must be at least 1 (or 'always')")
        return self


class ToolServerSpec(_Model):
    """How the loopback tool APIs behave during the case."""

    pages: list[PageSpec] = []
    faults: list[FaultSpec] = []

    @field_validator("faults")
    @classmethod
    def _one_always(cls, faults: list[FaultSpec]) -> list[FaultSpec]:
        if sum(f.times == "always" for f in faults) > 1:
            raise ValueError("at most one fault may apply 'always'")
        return faults


class Case(_Model):
    """One evaluation case: a conversation and what must hold of it."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=80)
    description: str = ""
    tags: list[str] = []
    """Categories (the tool, ``multi-step``, ``degradation``, ``budget``, ``injection``)."""
    input: ConversationInput = ConversationInput()
    """The conversation's start input. ``tenant`` defaults to ``eval-<name>`` so cases
    never see each other's notes."""
    tool_server: ToolServerSpec = ToolServerSpec()
    turns: list[Turn] = Field(min_length=1, max_length=20)
    forbidden: list[Forbidden] = []
    """Actions that must not run without approval, in any turn."""
    max_cost_usd: Decimal | None = Field(default=None, ge=0)
    """Ceiling on the conversation's cost."""
    max_turn_seconds: float | None = Field(default=None, gt=0)
    """Ceiling on each turn's wall time (send to reply)."""
    max_model_calls: int | None = Field(default=None, ge=0)
    """Ceiling on model calls over the whole conversation."""
    file: str = ""
    """The file the case came from (set by the loader)."""

    @field_validator("forbidden", mode="before")
    @classmethod
    def _tool_names(cls, value: Any) -> Any:
        """``forbidden: [save_note]`` is short for ``[{tool: save_note}]``."""
        if isinstance(value, list):
            return [{"tool": v} if isinstance(v, str) else v for v in value]
        return value

    def tool_names(self) -> set[str]:
        """Every tool name the case mentions (to check against the registry)."""
        names = {f.tool for f in self.forbidden} | set(self.input.tools or ())
        for turn in self.turns:
            names |= {c.name for c in turn.expect.tool_calls or []}
            names |= {a.tool for a in turn.approvals}
        return names


class CaseFile(_Model):
    """The top level of a case file."""

    cases: list[Case] = Field(min_length=1)


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as e:
        raise ValueError(f"bad regular expression {pattern!r}: {e}") from None


def _describe(error: ValidationError, data: Any) -> str:
    """Each error with its path, the case's name instead of its index where known."""
    lines = []
    for item in error.errors(include_url=False, include_input=False):
        loc = list(item["loc"])
        if len(loc) >= 2 and loc[0] == "cases" and isinstance(loc[1], int):
            with contextlib.suppress(KeyError, IndexError, TypeError):
                loc[1] = f"{loc[1]}({data['cases'][loc[1]]['name']})"
        lines.append(f"  {'.'.join(map(str, loc)) or '(top level)'}: {item['msg']}")
    return "\n".join(lines)


def load_file(path: Path, known_tools: Collection[str] | None = None) -> list[Case]:
    """The cases of one YAML file; raises ``CaseFileError`` naming the file and field.
    ``known_tools``: when given, every tool a case names must be one of them."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise CaseFileError(f"{path}: cannot read: {e}") from None
    try:
        parsed = CaseFile.model_validate(data)
    except ValidationError as e:
        raise CaseFileError(f"{path}: invalid case file:\n{_describe(e, data)}") from None
    cases = []
    for index, case in enumerate(parsed.cases):
        unknown = sorted(case.tool_names() - set(known_tools)) if known_tools is not None else []
        if unknown:
            raise CaseFileError(
                f"{path}: cases.{index}({case.name}): unknown tools {unknown}; "
                f"known: {sorted(known_tools or ())}"
            )
        if case.input.tenant == "default":
            case = case.model_copy(update={"input": _own_tenant(case)})
        cases.append(case.model_copy(update={"file": path.name}))
    return cases


def _own_tenant(case: Case) -> ConversationInput:
    return case.input.model_copy(update={"tenant": f"eval-{case.name}"})


def load_cases(
    paths: Iterable[Path] = (CASES_DIR,),
    *,
    only: Sequence[str] = (),
    known_tools: Collection[str] | None = None,
) -> list[Case]:
    """The cases of every ``*.yaml`` file under ``paths`` (directories or files), in file
    and then case order. ``only``: names, tags or file stems to keep (a case is kept when
    any matches; ``fnmatch`` patterns allowed). Raises ``CaseFileError`` on a bad file,
    a duplicate name, or a filter that keeps nothing."""
    from fnmatch import fnmatch

    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(path.glob("*.yaml"))
        elif path.exists():
            files.append(path)
        else:
            raise CaseFileError(f"{path}: no such file or directory")
    cases: list[Case] = []
    seen: dict[str, str] = {}
    for file in files:
        for case in load_file(file, known_tools):
            if case.name in seen:
                raise CaseFileError(f"{file}: case {case.name!r} is also in {seen[case.name]}")
            seen[case.name] = file.name
            cases.append(case)
    if only:
        cases = [
            c
            for c in cases
            if any(fnmatch(c.name, p) or p in c.tags or fnmatch(Path(c.file).stem, p) for p in only)
        ]
        if not cases:
            raise CaseFileError(f"no case matches {', '.join(only)}")
    if not cases:
        raise CaseFileError(f"no cases found in {', '.join(map(str, paths))}")
    return cases
