"""A run's state from start to continue-as-new: set up fresh or restored from the
previous run, and, when a run has grown long, carried exactly into a fresh one between
turns (``ContinuedState``)."""

from __future__ import annotations

import json
from datetime import timedelta

from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ActivityError

from workflows.answered import carried_replies, restored_replies
from workflows.approvals import ApprovalDesk
from workflows.base import RunFacts
from workflows.permits import TenantPermits
from workflows.policies import ANSWERED_CARRIED
from workflows.sharing import share_alike
from workflows.tool_step import ToolStep
from workflows.transcript import RequestSize

with workflow.unsafe.imports_passed_through():
    from durable_agent.activity_models import ARCHIVE_ACTIVITY, ArchiveRequest, TranscriptWindow
    from durable_agent.budget import Budget
    from durable_agent.compact import compact_json
    from durable_agent.contract import (
        WORKFLOW_REVISION,
        ContinuedState,
        ConversationInput,
        Message,
        Provenance,
        TranscriptArchive,
        pack_continued,
    )
    from durable_agent.dependencies import DependencyHealth
    from durable_agent.injection import InjectionDetector
    from durable_agent.spend import Spend
    from durable_agent.tools.registry import select_tools
    from durable_agent.toolsets import McpToolset
from workflows.turn import describe
from workflows.versions import CONTINUE_AS_NEW_PATCH, FLAT_CONTINUE_PATCH, revision_to_write

ARCHIVE_START_TO_CLOSE = timedelta(seconds=60)
ARCHIVE_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10),
    maximum_attempts=5,
)  # fmt: skip


class Continues(ToolStep):
    """A run's state: set up, restored from the previous run, carried to the next."""

    def _set_up(self, input: ConversationInput) -> None:
        """The state of a new conversation, or of the next run of one (``input.continued``)."""
        share_alike(input)  # its common parts: one copy per worker, not per conversation
        self._facts = RunFacts()
        self._input = input
        self._messages = []
        self._pending = []
        self._replies = {}
        # Replies of recent messages by update id, carried across continue-as-new: a
        # retried update (the gateway's Idempotency-Key) that reaches the next run gets
        # the reply it had (Temporal deduplicates update ids only within a run).
        self._answered = restored_replies(input.continued)
        self._state = "idle"
        self._turns = 0
        self._model_calls = 0
        self._last_error = None
        self._end_requested = False
        # Resolved here, not in run: signals and queries of the first activation see it.
        self._tools = {}
        try:
            self._tools = {spec.name: spec for spec in select_tools(input.tools)}
        except KeyError as e:
            self._input_error = str(e)
        if input.revision > WORKFLOW_REVISION:
            self._input_error = (
                f"revision {input.revision} is newer than this worker's workflow code "
                f"(revision {WORKFLOW_REVISION}): upgrade the workers before the clients"
            )
        self._detector = InjectionDetector.create(input.safety.injection_patterns)
        carried = input.continued
        self._desk = ApprovalDesk(
            input.safety.approval_timeout_seconds,
            carried.decisions if carried else (),
            input.safety.approvers,
        )
        self._flags = list(carried.flags) if carried else []
        # Untrusted content in the context (``PROVENANCE_PATCH``; decided at the first turn).
        self._provenance = (carried.provenance if carried else None) or Provenance()
        # Whether this run gates by provenance (``_guarded``), screens, asks for approvals
        # and pauses the deadline for them (``_safety``): ``RunFacts``' defaults until
        # the first turn decides.
        self._spend = Spend(Budget(limits=input.limits.conversation), input.model)
        self._health = DependencyHealth(config=input.breakers, overrides=input.breaker_overrides)
        # Messages before this index are unchanged since the last model call was sent, so
        # the next call sends only the rest (see ``TranscriptWindow``).
        self._sent = 0
        self._request_size = RequestSize()
        # The system prompt and tools last sent to the model activity (see ``_windowed``).
        self._context = None
        self._permits = TenantPermits(input.tenant, carried.lease if carried else None)
        # Whether this run is lean (``LEAN_TURN_PATCH``); decided when the run starts.
        self._lean = False
        # The search attributes last upserted; a new run starts with the previous run's
        # (continue-as-new carries them), so it upserts only what changes.
        self._published = None
        self._toolsets = {}
        if carried:
            self._restore(carried)
            spent = self._spend.conversation.spent
            self._published = (input.tenant, "idle", self._turns, spent.usage.total_tokens,
                               spent.usd)  # fmt: skip
        self._turns_at_start = self._turns

    def _should_continue_as_new(self) -> bool:
        if not self._patched(CONTINUE_AS_NEW_PATCH):
            return False
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or self._turns - self._turns_at_start >= self._input.continue_as_new_after_turns
            or info.get_current_history_size() >= self._input.continue_as_new_history_bytes
        )

    async def _transcript_for_next_run(
        self,
    ) -> tuple[list[Message], TranscriptArchive | None]:
        """What the next run gets of the transcript: runs since ``FLAT_CONTINUE_PATCH``
        archive it and pass the reference; older ones (or when the archive cannot be
        written) pass the messages themselves."""
        if self._lean2 or (self._lean and workflow.patched(FLAT_CONTINUE_PATCH)):
            try:
                return [], await self._archive_transcript()
            except ActivityError as e:  # carried inline, as before: nothing is lost
                self._last_error = f"transcript archive: {describe(e)}"
                workflow.logger.warning("%s", self._last_error)
        return self._messages, self._archive

    def _next_run_input(
        self, messages: list[Message], archive: TranscriptArchive | None
    ) -> RawValue:
        """The next run's input: this run's with the state carried (``_carry``), as JSON
        without the fields at their defaults (``compact_json``), the carried state packed
        (``pack_continued``). History records it twice, in the continued-as-new event and
        the next run's start; it decodes to exactly the same input."""
        revision = revision_to_write(self._input.revision)  # no marker needed
        input = self._input.model_copy(
            update={"continued": self._carry(messages, archive), "revision": revision}
        )
        document = json.loads(compact_json(input))
        carried = json.dumps(document["continued"], separators=(",", ":"), ensure_ascii=False)
        document["continued"] = pack_continued(carried.encode())
        data = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
        return RawValue(Payload(metadata={"encoding": b"json/plain"}, data=data))

    def _carry(self, messages: list[Message], archive: TranscriptArchive | None) -> ContinuedState:
        """The state the next run starts from (see ``_restore``)."""
        workflow.logger.info(
            "continuing as new after %d turns in this run",
            self._turns - self._turns_at_start,
            extra={"event": "continue_as_new", "run": self._runs},
        )
        stream, event_seq = self._journal.feed.carry()
        return ContinuedState(
            runs=self._runs,
            messages=messages,
            archive=archive,
            turns=self._turns,
            model_calls=self._model_calls,
            last_error=self._last_error,
            budget=self._spend.conversation,
            health=self._health,
            priced_model=self._spend.priced_model,
            flags=self._flags,
            decisions=self._desk.decisions(),
            compactions=self._compactions,
            event_seq=event_seq,
            stream=stream,
            delegations=self._delegation_records(),
            answered=carried_replies(self._answered, ANSWERED_CARRIED, stream),
            lease=self._permits.carry(),
            provenance=self._provenance if self._guarded else None,
            toolsets=[toolset.model_dump(mode="json") for toolset in self._toolsets.values()],
        )

    async def _archive_transcript(self) -> TranscriptArchive:
        """Write the transcript so far to the blob store (the activity reads the run's
        messages from its cache or by query: they do not travel through history)."""
        info = workflow.info()
        key = f"transcript/{info.workflow_id}/run-{self._runs}"
        total = len(self._messages) + (self._archive.messages if self._archive else 0)
        archive: TranscriptArchive = await workflow.execute_activity(
            ARCHIVE_ACTIVITY,
            ArchiveRequest(
                window=TranscriptWindow(
                    workflow_id=info.workflow_id, run_id=info.run_id, base=len(self._messages)
                ),
                previous=self._archive,
                key=key,
            ),
            result_type=TranscriptArchive,
            start_to_close_timeout=ARCHIVE_START_TO_CLOSE,
            retry_policy=ARCHIVE_RETRY_POLICY,
            summary=f"archive {total} messages as {key}",
        )
        return archive

    def _restore(self, carried: ContinuedState) -> None:
        self._runs = carried.runs + 1
        self._messages = list(carried.messages)
        self._archive = carried.archive
        self._turns = carried.turns
        self._model_calls = carried.model_calls
        self._last_error = carried.last_error
        self._spend = Spend(carried.budget, carried.priced_model)
        self._health = carried.health
        self._compactions = carried.compactions
        self._delegations.records = {r.child_workflow_id: r for r in carried.delegations}
        for toolset in carried.toolsets:
            self._add_toolset(McpToolset.model_validate(toolset))
