"""The tool step: the tool calls of one model response, run concurrently as far as
budgets, breakers and approvals allow; every call ends as a tool_result the model can
read."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from durable_agent import provenance as prov
    from durable_agent.activity_models import (
        ToolCall,
        ToolResult,
    )
    from durable_agent.contract import (
        ToolCallRecord,
        ToolResultBlock,
        ToolUseBlock,
    )
    from durable_agent.safety import untrusted
    from durable_agent.tools.delegates import DelegateSpec
    from durable_agent.tools.registry import ToolSpec, describe_validation_error
    from durable_agent.toolsets import (
        MCP_LIST_TOOLS,
        MCP_PROTOCOL_ERROR,
        MCP_UNKNOWN_SERVER,
        McpListRequest,
        McpToolset,
        server_dependency,
        toolset_specs,
    )

from workflows.deadline import Step, cancelling_siblings
from workflows.delegation import Delegates
from workflows.turn import STOPPED, Turn, TurnOver, describe, record, rejection, tool_summary

MCP_LIST_TIMEOUT = timedelta(seconds=30)
MCP_LIST_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_attempts=3,
    non_retryable_error_types=[MCP_UNKNOWN_SERVER, MCP_PROTOCOL_ERROR],
)


@dataclass(frozen=True)
class Admitted:
    """A tool call that may run: its tool, and whether it needs approval (or is refused)."""

    spec: ToolSpec
    gate: prov.Gate | None

    @property
    def waits(self) -> bool:
        """Whether it waits for something no activity timeout bounds: a person's
        approval, or a sub-agent's child workflow."""
        return isinstance(self.spec, DelegateSpec) or (
            self.gate is not None and self.gate.action != "block"
        )


class ToolStep(Delegates):
    """The tool calls of one model response, each ending as a tool_result."""

    async def _tool_step(self, turn: Turn, tool_uses: list[ToolUseBlock]) -> None:
        """Run the tool calls of one response concurrently, as far as budgets and
        breakers allow; every call gets a tool_result."""
        self._state = "running_tools"
        allowed, turn_stops = self._spend.tool_calls(turn.budget, len(tool_uses))
        self._plan_delegations(tool_uses[:allowed])
        # Decided before any call of this step starts, let alone returns: a result the
        # model has not seen cannot have steered the calls it asked for alongside.
        admitted = [self._admit(turn, block) for block in tool_uses[:allowed]]
        if any(isinstance(a, Admitted) and a.waits for a in admitted):
            turn.clock.arm()  # before any call starts with a capped timeout
        first = len(turn.tool_calls)
        calls = zip(tool_uses[:allowed], admitted, strict=True)
        results = await cancelling_siblings(
            *(
                asyncio.ensure_future(self._timed_tool(turn, first + i, block, admission))
                for i, (block, admission) in enumerate(calls)
            )
        )
        results += [
            record(block, "skipped", "not run: the tool-call budget is exhausted")
            for block in tool_uses[allowed:]
        ]
        turn.tool_calls.extend(results)
        self._append_user(
            [
                ToolResultBlock(
                    tool_use_id=r.id,
                    content=r.result,
                    is_error=r.outcome != "ok",
                    ref=r.result_ref,
                )
                for r in results
            ]
        )
        down = [
            self._tools[r.name].dependency
            for r in results
            if r.outcome == "unavailable" and self._tools[r.name].criticality == "critical"
        ]
        if down:
            raise TurnOver(self._degraded_reply(turn, *down))
        if allowed < len(tool_uses):
            raise TurnOver(
                turn.reply(
                    "I can't continue: the tool-call budget is exhausted.",
                    "budget_exceeded",
                    detail=f"tool-call budget: {len(tool_uses) - allowed} call(s) not run",
                    budget_scope="turn" if turn_stops else "conversation",
                )
            )

    async def _timed_tool(
        self, turn: Turn, index: int, block: ToolUseBlock, admission: Admitted | ToolCallRecord
    ) -> ToolCallRecord:
        started = self._now()
        self._journal.tool_call_started(turn.number, block)
        if isinstance(admission, ToolCallRecord):
            done = admission
        else:
            try:
                done = await self._run_tool(turn, index, block, admission)
            except TimeoutError:  # cut off by the turn's deadline (timerless)
                stopped = record(block, "error", STOPPED)
                self._journal.tool_call_finished(turn.number, stopped, self._now() - started)
                raise
        self._journal.tool_call_finished(turn.number, done, self._now() - started)
        return done

    def _admit(self, turn: Turn, block: ToolUseBlock) -> Admitted | ToolCallRecord:
        """The call's tool and gate, or why it cannot run (as its tool_result)."""
        spec = self._tools.get(block.name)
        if spec is None:
            return record(
                block,
                "unknown_tool",
                f"unknown tool {block.name!r}; available tools: {sorted(self._tools)}",
            )
        try:
            spec.validate(block.input)
        except ValidationError as e:
            return record(block, "invalid_arguments", describe_validation_error(e))
        return Admitted(spec, self._gate(turn, spec, block) if self._safety else None)

    async def _run_tool(
        self, turn: Turn, index: int, block: ToolUseBlock, admitted: Admitted
    ) -> ToolCallRecord:
        """Run one admitted tool call; every failure becomes a tool_result the model can
        read."""
        spec, gate = admitted.spec, admitted.gate
        arguments, approval = block.input, None
        if gate and gate.action == "block":
            workflow.logger.warning(
                "tool call %s (%s) refused: %s",
                block.id,
                spec.name,
                gate.reason,
                extra={"event": "tool_call_blocked", "call_id": block.id, "tool": spec.name},
            )
            return record(
                block, "rejected", f"not run: the safety policy refuses it: {gate.reason}"
            )
        if gate:
            reason = gate.reason
            self._publish("awaiting_approval")
            self._journal.approval_requested(turn.number, block.id, spec.name, reason)
            approval = await self._desk.request(
                call_id=block.id,
                tool=spec.name,
                permission=spec.permission,
                arguments=block.input,
                reason=reason,
                turn=turn.number,
                severity=gate.severity,
                untrusted_sources=gate.untrusted,
                announce=self._announce if self._input.delegated else None,
            )
            self._journal.approval_decided(turn.number, block.id, approval)
            if not self._desk.waiting:
                self._publish("running_tools")
            if approval.decision != "approved":
                return record(block, "rejected", rejection(approval), approval=approval)
            arguments = approval.arguments or block.input
        dependency = spec.dependency
        if not self._health.allows(dependency, self._now()):
            turn.degraded.append(dependency)
            return record(
                block,
                "unavailable",
                f"{spec.name} is temporarily unavailable after repeated failures; "
                "answer without it and tell the user.",
            )
        screens = self._safety and self._input.safety.screen_tool_results != "off"
        call = ToolCall(
            tool=spec.name,
            arguments=arguments,
            idempotency_key=f"{workflow.info().workflow_id}/{turn.number}/{index}",
            conversation_id=workflow.info().workflow_id,
            tenant=self._input.tenant,
            injection_patterns=self._input.safety.injection_patterns if screens else None,
        )
        step = None
        try:
            if isinstance(spec, DelegateSpec):  # a child workflow, not an activity
                result = await self._delegate(turn, block, spec, str(arguments["task"]))
            else:
                step = turn.clock.step(spec.schedule_to_close_timeout)
                result = await self._execute_tool(spec, call, step)
        except ActivityError as e:
            if step is not None:
                step.check(e)  # cut off by the turn's deadline: not the tool's failure
            self._health.record(dependency, False, self._now())
            self._last_error = f"{spec.name}: {describe(e)}"
            return record(block, "error", f"{spec.name} failed: {describe(e)}", approval=approval)
        self._health.record(dependency, True, self._now())
        content, flags = result.content, list(result.flags)
        if flags:  # an offloaded result, screened whole (and fenced) by the activity
            turn.tainted_by.append(f"tool:{spec.name}")
            self._flag(turn, f"tool:{spec.name}", flags, content[:80], block.id)
        elif screens and result.outcome == "ok" and result.ref is None:
            screening = self._screen(turn, f"tool:{spec.name}", content, tool_use_id=block.id)
            if screening.flagged:
                content, flags = untrusted(spec.name, content, screening), screening.categories
        if self._guarded and result.outcome == "ok":
            self._note_provenance(turn, spec, block, flags)
        if approval and approval.arguments is not None:
            content = (
                f"(run with arguments edited by {approval.by}: {json.dumps(arguments)})\n{content}"
            )
        done = record(
            block, result.outcome, content, flags=flags, approval=approval, ref=result.ref
        )
        return done.model_copy(update={"error_type": result.error_type})

    async def _execute_tool(self, spec: ToolSpec, call: ToolCall, step: Step) -> ToolResult:
        """One tool call as an activity with the spec's policy (its schedule-to-close
        within the turn's time left: ``step``); a fast, pure tool (``spec.local``) as a
        local activity in lean runs (same timeouts and retries, no heartbeat)."""
        policy: dict[str, Any] = {
            "result_type": ToolResult,
            "start_to_close_timeout": spec.start_to_close_timeout,
            "schedule_to_close_timeout": step.timeout,
            "retry_policy": spec.retry_policy,
            "summary": tool_summary(spec.name, call.arguments) if self._input.summaries else None,
        }
        result: ToolResult
        if spec.local and self._lean:
            result = await workflow.execute_local_activity(
                spec.activity_name,
                spec.activity_input(call),
                local_retry_threshold=step.local_retry_threshold,
                **policy,
            )
        else:
            result = await workflow.execute_activity(
                spec.activity_name,
                spec.activity_input(call),
                heartbeat_timeout=spec.heartbeat_timeout,
                **policy,
            )
        return result

    async def _load_toolsets(self, turn: Turn) -> None:
        """List the MCP toolsets the conversation names that it has not listed yet. A
        conversation keeps a catalog for its whole life (carried across continue-as-new);
        a server that could not be listed is asked again at the next turn, and meanwhile
        the model is told the toolset is unavailable."""
        for name in self._input.toolsets:
            if name in self._toolsets:
                continue
            dependency = server_dependency(name)
            if not self._health.allows(dependency, self._now()):
                self._toolsets_down.add(name)
                continue
            step = turn.clock.step(None)
            try:
                toolset: McpToolset = await workflow.execute_activity(
                    MCP_LIST_TOOLS,
                    McpListRequest(server=name),
                    result_type=McpToolset,
                    start_to_close_timeout=MCP_LIST_TIMEOUT,
                    schedule_to_close_timeout=step.timeout,
                    retry_policy=MCP_LIST_RETRY_POLICY,
                    summary=f"list the tools of MCP server {name}",
                )
            except ActivityError as e:
                step.check(e)
                self._health.record(dependency, False, self._now())
                self._last_error = f"MCP server {name}: {describe(e)}"
                self._toolsets_down.add(name)
                continue
            self._health.record(dependency, True, self._now())
            self._add_toolset(toolset)

    def _add_toolset(self, toolset: McpToolset) -> None:
        self._toolsets[toolset.server] = toolset
        self._tools.update({spec.name: spec for spec in toolset_specs(toolset)})
        self._toolsets_down.discard(toolset.server)
