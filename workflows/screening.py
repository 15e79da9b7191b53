"""Screening and provenance: what the detector flags, what untrusted content
entered the context, which tool calls must wait for a person, and replies that leak
the system prompt."""

from __future__ import annotations

from typing import Literal

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from durable_agent import provenance as prov
    from durable_agent.contract import (
        Reply,
        SafetyFlag,
        ToolUseBlock,
    )
    from durable_agent.injection import Screening
    from durable_agent.safety import approval_reason, quotes
    from durable_agent.tools.registry import ToolSpec

from workflows.base import ConversationBase
from workflows.turn import Turn


class Screens(ConversationBase):
    """Screens messages and results, tracks untrusted content, gates tool calls."""

    def _screen(
        self, turn: Turn, source: str, text: str, tool_use_id: str | None = None
    ) -> Screening:
        """Screen ``text`` for prompt injection; a flag is recorded (transcript, log,
        metric) and taints the turn."""
        screening = self._detector.screen(text)
        if screening.flagged:
            turn.tainted_by.append(source)
            self._flag(
                turn, source, screening.categories, screening.matches[0].excerpt, tool_use_id
            )
            if self._guarded and source == "user":  # a pasted document: untrusted from now on
                prov.record(self._provenance, source, turn.number, flagged=screening.categories)
        return screening

    def _flag(
        self,
        turn: Turn,
        source: str,
        categories: list[str],
        excerpt: str,
        tool_use_id: str | None = None,
        action: Literal["flagged", "withheld"] = "flagged",
    ) -> None:
        flag = SafetyFlag(
            turn=turn.number,
            source=source,
            tool_use_id=tool_use_id,
            categories=categories,
            excerpt=excerpt,
            action=action,
        )
        self._flags.append(flag)
        self._journal.safety_flag(flag)

    def _gate(self, turn: Turn, spec: ToolSpec, block: ToolUseBlock) -> prov.Gate | None:
        """Whether the call needs approval (or is refused): by provenance, or in runs
        from before it by the turn's flags."""
        policy = self._input.safety
        if not self._guarded:
            reason = approval_reason(
                spec.name,
                spec.permission,
                block.input,
                policy,
                tainted_by=turn.tainted_by,
                system_prompt=self._input.system_prompt,
            )
            return prov.Gate("approve", reason, "normal") if reason else None
        texts = None
        if spec.outbound and self._provenance.untrusted:
            texts = prov.context_texts(
                self._messages,
                self._input.system_prompt,
                [
                    s.name
                    for s in self._tools.values()
                    if prov.result_trust(s.name, s.trust, policy) == "untrusted"
                ],
                self._provenance,
                summarised=self._compactions > 0,
            )
        return prov.gate(
            spec.name,
            spec.permission,
            block.input,
            policy,
            self._provenance,
            outbound=spec.outbound,
            system_prompt=self._input.system_prompt,
            texts=texts,
        )

    def _note_provenance(
        self, turn: Turn, spec: ToolSpec, block: ToolUseBlock, flags: list[str]
    ) -> None:
        """A result of an untrusted tool (or a flagged one) makes the context untrusted."""
        trust = prov.result_trust(spec.name, spec.trust, self._input.safety)
        if trust == "untrusted" or flags:
            prov.record(self._provenance, f"tool:{spec.name}", turn.number, block.id, flags)

    def _final_reply(self, turn: Turn, text: str) -> Reply:
        """The model's answer, unless it quotes the system prompt (then withheld)."""
        protect = self._safety and self._input.safety.protect_system_prompt
        if protect and quotes(text, self._input.system_prompt):
            self._flag(turn, "reply", ["system_prompt_leak"], text[:80], action="withheld")
            return turn.reply(
                "I can't share that: my answer repeated my instructions, so it was withheld.",
                detail="reply withheld: it quoted the system prompt",
            )
        return turn.reply(text)
