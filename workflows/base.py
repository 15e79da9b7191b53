"""The state every part of ``AgentWorkflow`` shares, and the helpers they all use:
the clock, versions, the UI, the transcript's shape, budgets and price, replies."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Generic, TypeVar, overload

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate

with workflow.unsafe.imports_passed_through():
    from durable_agent import search_attributes as attributes
    from durable_agent.activity_models import ModelContext
    from durable_agent.budget import BudgetLimits
    from durable_agent.contract import (
        BudgetStatus,
        ContentBlock,
        ConversationInput,
        ConversationState,
        ConversationStatus,
        Message,
        Provenance,
        Reply,
        SafetyFlag,
        TextBlock,
        ToolResultBlock,
        ToolUseBlock,
        TranscriptArchive,
    )
    from durable_agent.dependencies import DependencyHealth
    from durable_agent.injection import InjectionDetector
    from durable_agent.spend import Spend
    from durable_agent.tools.registry import ToolSpec
    from durable_agent.toolsets import McpToolset


from workflows.answered import Answered
from workflows.approvals import ApprovalDesk
from workflows.journal import Journal
from workflows.permits import TenantPermits
from workflows.transcript import RequestSize
from workflows.turn import STOPPED, Pending, Turn
from workflows.versions import SEARCH_ATTRIBUTES_PATCH

_T = TypeVar("_T")


FLUSH_SUMMARY = "search attributes held back"
"""The summary of the timer that upserts the counters held back (``_flush_after``)."""


@dataclass(slots=True)
class RunFacts:
    """The part of a run's state that changes rarely (when the run starts or continues,
    at a compaction, when an MCP server cannot be listed) and is read a few times a turn
    at most, held in one object rather than as attributes of the workflow instance
    (``InFacts``; a read costs a descriptor call). CPython shares the keys of
    instance dicts between instances of a class only up to 30 attributes: past that,
    each cached conversation's dict took ~1.3 KiB more (issue 13;
    ``tests/unit/test_workflow_state.py`` keeps the count below the limit)."""

    input_error: str | None = None
    turns_at_start: int = 0
    runs: int = 1
    compactions: int = 0
    archive: TranscriptArchive | None = None
    toolsets_down: set[str] = field(default_factory=set)
    lean2: bool = False
    timerless: bool = False
    guarded: bool | None = None
    safety: bool = False
    paced: bool = False
    published_at: float = -math.inf
    flusher: asyncio.Task[None] | None = None
    """The timer's task that upserts counters held back, while it waits."""


class InFacts(Generic[_T]):
    """An attribute of the workflow that lives in its ``RunFacts`` (``_facts``), under
    the same name without the leading underscore."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._field = name.removeprefix("_")

    @overload
    def __get__(self, instance: None, owner: type) -> InFacts[_T]: ...
    @overload
    def __get__(self, instance: object, owner: type) -> _T: ...
    def __get__(self, instance: object, owner: type) -> _T | InFacts[_T]:
        if instance is None:
            return self
        return getattr(instance._facts, self._field)  # type: ignore[attr-defined, no-any-return]

    def __set__(self, instance: object, value: _T) -> None:
        setattr(instance._facts, self._field, value)  # type: ignore[attr-defined]


class ConversationBase:
    """The state of one conversation (set up by ``AgentWorkflow.__init__``), and the
    helpers every part of the workflow uses. Each concern adds its methods in a module
    of its own, as a class in this chain:

        ConversationBase → Screens → Compacts → ModelStep → ToolStep → Continues
                         → AgentWorkflow (handlers, queries, the turn loop)

    These modules pass through the sandbox (imported once per worker, not once per
    cached conversation); they call only the ``workflow`` API and pure modules."""

    _facts: RunFacts
    _input: ConversationInput
    _messages: list[Message]
    """The transcript the model sees."""
    _pending: list[Pending]
    _replies: dict[str, Reply]
    _answered: Answered
    _state: ConversationState
    _turns: int
    _turns_at_start = InFacts[int]()
    _model_calls: int
    _last_error: str | None
    _end_requested: bool
    _tools: dict[str, ToolSpec]
    _input_error = InFacts[str | None]()
    _detector: InjectionDetector
    _desk: ApprovalDesk
    _flags: list[SafetyFlag]
    _provenance: Provenance
    _guarded = InFacts[bool | None]()
    """Whether this run gates by provenance (``PROVENANCE_PATCH``); decided at the first
    turn."""
    _safety = InFacts[bool]()
    """Whether this run screens and asks for approvals (``SAFETY_PATCH``)."""
    _spend: Spend
    """The conversation's budget and price (the running turn's budget is ``Turn.budget``)."""
    _health: DependencyHealth
    _sent: int
    """Messages before this index were sent to the model activity unchanged."""
    _request_size: RequestSize
    _context: ModelContext | None
    _runs = InFacts[int]()
    _compactions = InFacts[int]()
    _permits: TenantPermits
    _lean: bool
    """Whether this run is lean (``LEAN_TURN_PATCH``); decided when the run starts."""
    _lean2 = InFacts[bool]()
    """Whether this run takes the patches up to ``LEAN_TURN_V2_PATCH`` as given;
    decided when the run starts."""
    _timerless = InFacts[bool]()
    """Whether this run keeps turn deadlines without a timer (``TIMERLESS_REVISION``);
    decided when the run starts."""
    _published: tuple[str, str, int, int, Decimal] | None
    _journal: Journal
    _archive = InFacts[TranscriptArchive | None]()
    """Earlier runs' messages, in the blob store (``flat-continue-v1``); they go in front
    of ``_messages`` in every model request."""
    _toolsets: dict[str, McpToolset]
    """MCP toolsets listed, by server name (their tools are in ``_tools``)."""
    _toolsets_down = InFacts[set[str]]()
    """Toolsets that could not be listed yet: the model is told they are unavailable."""

    _paced = InFacts[bool]()
    """Whether this run paces its counter upserts (``PACED_REVISION``); decided when the
    run starts."""
    _published_at = InFacts[float]()
    """When this run last upserted search attributes (workflow time; ``-inf``: not yet)."""
    _flusher = InFacts["asyncio.Task[None] | None"]()

    def _publish(self, status: str, *, flush: bool = False) -> None:
        """Show where the conversation is in the Temporal UI: current details, and the
        ``Agent*`` search attributes when the server has them. A paced run holds a
        change of the counters alone back until ``search_attributes_interval_seconds``
        after its last upsert (``attributes.hold_back``), unless ``flush``."""
        spent = self._spend.conversation.spent
        workflow.set_current_details(
            f"{self._turns} turns · {status} · {spent.usage.total_tokens:,} tokens · "
            f"${spent.usd:.4f} · tenant {self._input.tenant}"
        )
        if not self._input.search_attributes or not self._patched(SEARCH_ATTRIBUTES_PATCH):
            return
        values = (self._input.tenant, status, self._turns, spent.usage.total_tokens, spent.usd)
        before = self._published if self._lean else None
        if values == before:
            return  # unchanged: no command, no event
        if self._paced:
            now = self._now()
            wait = 0.0 if flush else attributes.hold_back(
                before, values, now - self._published_at,
                self._input.search_attributes_interval_seconds,
            )  # fmt: skip
            if wait > 0:
                if self._flusher is None:
                    self._flusher = asyncio.create_task(self._flush_after(wait))
                return
            self._published_at = now
        self._published = values
        tenant, status, turns, tokens, usd = values
        updates: tuple[SearchAttributeUpdate[Any], ...] = (
            attributes.TENANT.value_set(tenant),
            attributes.STATUS.value_set(status),
            attributes.TURNS.value_set(turns),
            attributes.TOKENS.value_set(tokens),
            attributes.COST_USD.value_set(float(usd)),
        )
        # Lean runs upsert only what changed (the server merges an upsert into what the
        # run has): each value costs an encoding, on every replay too.
        workflow.upsert_search_attributes(
            [u for i, u in enumerate(updates) if before is None or values[i] != before[i]]
        )

    async def _flush_after(self, seconds: float) -> None:
        """Upsert the counters held back, ``seconds`` from now: a timer, never cancelled
        (when the run ends, is cancelled or continues as new first, that upsert took them)."""
        await workflow.sleep(seconds, summary=FLUSH_SUMMARY)
        self._flusher = None
        self._publish_held()

    def _publish_held(self) -> None:
        """Upsert the counters held back now, with the status last upserted."""
        if self._published is not None:
            self._publish(self._published[1], flush=True)

    def _now(self) -> float:
        return workflow.now().timestamp()

    def _patched(self, patch_id: str) -> bool:
        """Whether this run has an older patch: lean runs have them all (see
        ``LEAN_TURN_PATCH``), without recording a marker for each."""
        return self._lean or workflow.patched(patch_id)

    def _append_user(self, blocks: list[ContentBlock]) -> None:
        """Add user content, merging into a trailing user message so roles alternate
        (a turn cut short leaves tool results last)."""
        if self._messages and self._messages[-1].role == "user":
            self._messages[-1].content.extend(blocks)
            self._sent = min(self._sent, len(self._messages) - 1)  # that one changed
        else:
            self._messages.append(Message(role="user", content=blocks))

    def _close_turn(self, reply: Reply) -> None:
        """Leave the transcript valid for the next model call however the turn ended:
        tool_use blocks cut off by the deadline get results, and a turn that ended
        without the model's answer gets the reply the user saw as the assistant's word."""
        last = self._messages[-1]
        dangling = [b for b in last.content if isinstance(b, ToolUseBlock)]
        if last.role == "assistant" and dangling:
            self._append_user(
                [
                    ToolResultBlock(tool_use_id=b.id, content=STOPPED, is_error=True)
                    for b in dangling
                ]
            )
        if self._messages[-1].role == "user":
            self._messages.append(Message(role="assistant", content=[TextBlock(text=reply.text)]))

    def _turn_limits(self) -> BudgetLimits:
        limits = self._input.limits.turn
        if limits.model_calls is None:
            limits = limits.model_copy(update={"model_calls": self._input.max_model_calls_per_turn})
        return limits

    def _timeout_reply(self, turn: Turn) -> Reply:
        """The turn's deadline passed: while it waited out the tenant's rate limit, or
        while it worked."""
        if turn.rate_limited:
            until, why = turn.rate_limited
            return turn.reply(
                "The tenant's rate limit outlasted this turn; try again shortly.",
                "rate_limited",
                detail=why,
                retry_after_seconds=max(0.0, until - self._now()),
            )
        seconds = self._input.turn_timeout_seconds
        return turn.reply(
            f"This turn ran out of time ({seconds:g}s) and was stopped.",
            "timeout",
            detail=f"turn deadline of {seconds:g}s passed",
        )

    def _degraded_reply(self, turn: Turn, *dependencies: str) -> Reply:
        turn.degraded.extend(dependencies)
        now = self._now()
        waits = [
            s.seconds_until_half_open
            for name, s in self._health.snapshot(now).items()
            if name in dependencies and s.seconds_until_half_open is not None
        ]
        when = f" Try again in about {max(waits):.0f}s." if waits else ""
        names = ", ".join(d.removeprefix("tool:") for d in dependencies)
        return turn.reply(
            f"Sorry, {names} {'is' if len(dependencies) == 1 else 'are'} unavailable right "
            f"now, so I can't answer this fully.{when}",
            "degraded",
            detail=f"unavailable: {', '.join(dependencies)}",
        )

    def _status(self) -> ConversationStatus:
        """The ``status`` query's answer."""
        now = self._now()
        return ConversationStatus(
            state="awaiting_approval" if self._desk.waiting else self._state,
            turns=self._turns,
            queued_messages=len(self._pending),
            usage=self._spend.conversation.spent.usage,
            model_calls=self._model_calls,
            tool_calls=self._spend.conversation.spent.tool_calls,
            tenant=self._input.tenant,
            last_error=self._last_error,
            cost_usd=self._spend.conversation.spent.usd,
            budget=BudgetStatus(
                limits=self._spend.conversation.limits,
                spent=self._spend.conversation.spent,
                remaining=self._spend.remaining(),
            ),
            breakers=self._health.snapshot(now),
            degraded=self._health.degraded(now),
            pending_approvals=self._desk.pending(),
            runs=self._runs,
            untrusted=self._provenance.untrusted,
        )
