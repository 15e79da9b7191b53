"""Compaction: near the model's context window, the oldest turns are folded into a
summary by ``model.compact`` and the originals archived in the blob store."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from durable_agent.activity_models import (
        COMPACT_ACTIVITY,
        CompactRequest,
        CompactResult,
        TranscriptWindow,
    )
    from durable_agent.contract import (
        Message,
        TextBlock,
    )

from workflows.policies import (
    MODEL_HEARTBEAT,
    MODEL_RETRY_POLICY,
    MODEL_SCHEDULE_TO_CLOSE,
    MODEL_START_TO_CLOSE,
)
from workflows.screening import Screens
from workflows.turn import Turn, describe
from workflows.versions import COMPACTION_PATCH


class Compacts(Screens):
    """Folds the oldest turns into a summary near the context window."""

    async def _compact_if_needed(self, turn: Turn, request_chars: int) -> bool:
        """Fold the oldest turns into a summary when the transcript nears the model's
        context window; the originals stay in the blob store. A failed compaction is
        logged and the call goes ahead uncompacted. Returns whether it compacted."""
        # About 3 bytes of request JSON per token: errs towards compacting early.
        estimate = request_chars // 3
        if estimate < self._input.context_window_tokens * self._input.compact_at_fraction:
            return False
        starts = [
            i
            for i, m in enumerate(self._messages)
            if m.role == "user" and any(isinstance(b, TextBlock) for b in m.content)
        ]
        keep = self._input.keep_recent_turns
        archive = self._archive  # earlier runs' messages: always old enough to fold
        foldable = archive is not None or (len(starts) > keep and starts[-keep] >= 3)
        if not foldable or not self._patched(COMPACTION_PATCH):
            return False  # nothing old enough to fold (or a run from before compaction)
        cut, info = (starts[-keep] if len(starts) > keep else 0), workflow.info()
        folded = cut + (archive.messages if archive else 0)
        step = turn.clock.step(MODEL_SCHEDULE_TO_CLOSE)
        self._compactions += 1
        key = f"transcript/{info.workflow_id}/{self._compactions}"
        request = CompactRequest(
            window=TranscriptWindow(workflow_id=info.workflow_id, run_id=info.run_id, base=cut),
            archive_key=key,
            model=self._input.model,
            archive=archive,
        )
        try:
            result: CompactResult = await workflow.execute_activity(
                COMPACT_ACTIVITY,
                request,
                result_type=CompactResult,
                start_to_close_timeout=MODEL_START_TO_CLOSE,
                schedule_to_close_timeout=step.timeout,
                heartbeat_timeout=MODEL_HEARTBEAT,
                retry_policy=MODEL_RETRY_POLICY,
                summary=f"compact {folded} messages into {key}",
            )
        except ActivityError as e:
            step.check(e)
            self._last_error = f"compaction: {describe(e)}"
            workflow.logger.warning("compaction failed: %s", self._last_error)
            return False
        self._spend.compaction(turn.budget, result.usage, result.model)
        summary = f"[Summary of {folded} earlier messages; originals archived as {key}]\n"
        self._messages = [
            Message(role="user", content=[TextBlock(text=summary + result.summary)]),
            Message(role="assistant", content=[TextBlock(text="Noted; I'll go on from there.")]),
            *self._messages[cut:],
        ]
        self._archive = None  # folded in
        self._sent = 0  # every message moved
        self._request_size.reset()
        workflow.logger.info(
            "compacted %d messages into %s",
            folded,
            key,
            extra={"event": "compaction", "turn": turn.number, "archive": key},
        )
        return True
