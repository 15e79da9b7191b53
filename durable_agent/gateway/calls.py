"""The gateway's Temporal calls, and what their failures mean over HTTP: transport
errors, refused updates and closed conversations become ``ProblemError``s."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, UpdateWorkflowExecutionLifecycleStage
from temporalio.api.update.v1 import UpdateRef, WaitPolicy
from temporalio.api.workflowservice.v1 import (
    GetWorkflowExecutionHistoryReverseRequest,
    PollWorkflowExecutionUpdateRequest,
)
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateHandle,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from durable_agent import contract
from durable_agent.client import conversation_not_ready, while_not_ready
from durable_agent.contract import Reply, UserMessage
from durable_agent.gateway import problems
from durable_agent.gateway.problems import ProblemError
from durable_agent.gateway.schemas import ExecutionStatus
from durable_agent.gateway.service import Gateway

log = logging.getLogger("durable_agent.gateway")

_T = TypeVar("_T")
_CLOSED_MID_UPDATE = "AcceptedUpdateCompletedWorkflow"
"""The server's failure type for an accepted update whose workflow closed first."""
_UNAVAILABLE = {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED}
_TOO_LARGE = ("larger than max", "size exceeds", "exceeds size limit", "too large")
"""What Temporal's (and gRPC's) payload-size refusals say: ``RESOURCE_EXHAUSTED``
"grpc: received message larger than max", ``INVALID_ARGUMENT`` "Blob data size
exceeds limit" — the same request can never succeed, so no Retry-After."""
_ACCEPTED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED


async def outcome(
    update: WorkflowUpdateHandle[Reply], seconds: float, conversation_id: str
) -> Reply | None:
    """The update's reply within ``seconds``; ``None`` if it is not ready by then."""
    try:
        async with asyncio.timeout(seconds):
            return await update.result(rpc_timeout=timedelta(seconds=seconds + 5))
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        return None
    except WorkflowUpdateFailedError as e:
        raise refusal(e, conversation_id) from None
    except RPCError as e:
        raise rpc_problem(e, conversation_id) from None


async def query(
    handle: WorkflowHandle[Any, Any],
    name: str,
    result_type: type[_T],
    gateway: Gateway,
    conversation_id: str,
    *args: Any,
) -> _T:
    result: _T = await repeatable(
        lambda: handle.query(name, *args, result_type=result_type, rpc_timeout=gateway.rpc_timeout),
        gateway,
        conversation_id,
    )
    return result


async def repeatable(
    make: Callable[[], Awaitable[_T]], gateway: Gateway, conversation_id: str
) -> _T:
    """``call`` of ``make()``, repeated with backoff while the conversation is not ready
    (its workflow task keeps failing or timing out: ``client.conversation_not_ready``)
    for up to the gateway's RPC timeout, then 503 ``conversation-unavailable``.
    ``make`` must be safe to repeat: a query, or an update under a fixed id."""
    return await call(while_not_ready(make, gateway.rpc_timeout.total_seconds()), conversation_id)


async def earlier_message(
    client: Client, handle: WorkflowHandle[Any, Any], update_id: str, gateway: Gateway
) -> UserMessage | None:
    """The message an earlier request sent as update ``update_id`` in the conversation's
    current run (from its accepted event, newest history first), or ``None`` when no
    such update exists yet. Lets a reused ``Idempotency-Key`` with another body be
    refused instead of answered with the first message's reply."""
    execution = WorkflowExecution(workflow_id=handle.id)
    try:
        await client.workflow_service.poll_workflow_execution_update(
            PollWorkflowExecutionUpdateRequest(
                namespace=client.namespace,
                update_ref=UpdateRef(workflow_execution=execution, update_id=update_id),
                identity=client.identity,
                wait_policy=WaitPolicy(
                    lifecycle_stage=UpdateWorkflowExecutionLifecycleStage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED
                ),
            ),
            timeout=gateway.rpc_timeout,
        )
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:  # no such update (or conversation)
            return None
        raise
    token = b""
    while True:
        page = await client.workflow_service.get_workflow_execution_history_reverse(
            GetWorkflowExecutionHistoryReverseRequest(
                namespace=client.namespace,
                execution=execution,
                maximum_page_size=200,
                next_page_token=token,
            ),
            timeout=gateway.rpc_timeout,
        )
        for event in page.history.events:
            if event.event_type != _ACCEPTED:
                continue
            request = event.workflow_execution_update_accepted_event_attributes.accepted_request
            if request.meta.update_id == update_id:
                decoded = await client.data_converter.decode(
                    request.input.args.payloads, [UserMessage]
                )
                return decoded[0] if decoded and isinstance(decoded[0], UserMessage) else None
        token = page.next_page_token
        if not token:
            return None  # admitted, not yet accepted: the same request still in flight


async def ensure_running(
    handle: WorkflowHandle[Any, Any], gateway: Gateway, conversation_id: str
) -> None:
    description = await call(handle.describe(rpc_timeout=gateway.rpc_timeout), conversation_id)
    if description.status != WorkflowExecutionStatus.RUNNING:
        raise ProblemError(
            problems.CONVERSATION_ENDED,
            f"the conversation is {execution_status(description.status)}",
            conversation_id=conversation_id,
        )


async def call(awaitable: Awaitable[_T], conversation_id: str | None = None) -> _T:
    """Await a Temporal call; its transport errors become problems."""
    try:
        return await awaitable
    except RPCError as e:
        raise rpc_problem(e, conversation_id) from None


def rpc_problem(error: RPCError, conversation_id: str | None) -> ProblemError:
    if error.status == RPCStatusCode.NOT_FOUND:
        if "already completed" in error.message:
            return ProblemError(
                problems.CONVERSATION_ENDED,
                "the conversation has ended; start a new one",
                conversation_id=conversation_id,
            )
        return ProblemError(
            problems.NOT_FOUND,
            f"no conversation {conversation_id!r}" if conversation_id else "not found",
            conversation_id=conversation_id,
        )
    if conversation_not_ready(error):
        return ProblemError(
            problems.CONVERSATION_UNAVAILABLE,
            "no worker has completed the conversation's workflow task lately (one was "
            "stopped holding it, or the workers are overloaded); nothing was done",
            conversation_id=conversation_id,
            retry_after_seconds=2.0,
        )
    if error.status in _UNAVAILABLE:
        return ProblemError(
            problems.TEMPORAL_UNAVAILABLE,
            f"Temporal did not answer ({error.status.name})",
            conversation_id=conversation_id,
            retry_after_seconds=1.0,
        )
    if error.status in (
        RPCStatusCode.RESOURCE_EXHAUSTED,
        RPCStatusCode.INVALID_ARGUMENT,
    ) and any(words in error.message.lower() for words in _TOO_LARGE):
        return ProblemError(
            problems.REQUEST_TOO_LARGE,
            f"Temporal refused the request as too large ({error.status.name})",
            conversation_id=conversation_id,
        )
    if error.status == RPCStatusCode.RESOURCE_EXHAUSTED:
        return ProblemError(
            problems.RATE_LIMITED,
            "Temporal is rate limiting this conversation or namespace",
            conversation_id=conversation_id,
            retry_after_seconds=1.0,
        )
    log.error("Temporal call failed: %s", error.status.name if error.status else "unknown")
    return ProblemError(
        problems.INTERNAL, "a Temporal call failed", conversation_id=conversation_id
    )


def refusal(error: WorkflowUpdateFailedError, conversation_id: str) -> ProblemError:
    """An update the conversation refused (its validator) or could not finish."""
    cause = error.cause
    if not isinstance(cause, ApplicationError):
        return ProblemError(problems.INTERNAL, "the update failed", conversation_id=conversation_id)
    kind = {
        contract.INVALID_MESSAGE: problems.INVALID_MESSAGE,
        contract.MESSAGE_BLOCKED: problems.MESSAGE_BLOCKED,
        contract.CONVERSATION_ENDED: problems.CONVERSATION_ENDED,
        _CLOSED_MID_UPDATE: problems.CONVERSATION_ENDED,
        contract.INVALID_APPROVAL: problems.APPROVAL_CONFLICT,
    }.get(cause.type or "", problems.INTERNAL)
    if kind is problems.APPROVAL_CONFLICT and "arguments" in cause.details:
        kind = problems.INVALID_APPROVAL
    if kind is problems.APPROVAL_CONFLICT and "approver" in cause.details:
        kind = problems.NOT_AN_APPROVER
    detail = cause.message if kind is not problems.INTERNAL else "the update failed"
    return ProblemError(kind, detail, conversation_id=conversation_id)


def execution_status(status: WorkflowExecutionStatus | None) -> ExecutionStatus:
    names: dict[WorkflowExecutionStatus | None, ExecutionStatus] = {
        WorkflowExecutionStatus.RUNNING: "running",
        WorkflowExecutionStatus.COMPLETED: "completed",
        WorkflowExecutionStatus.FAILED: "failed",
        WorkflowExecutionStatus.CANCELED: "cancelled",
        WorkflowExecutionStatus.TERMINATED: "terminated",
        WorkflowExecutionStatus.CONTINUED_AS_NEW: "continued_as_new",
        WorkflowExecutionStatus.TIMED_OUT: "timed_out",
    }
    return names.get(status, "running")
