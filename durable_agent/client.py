"""Client API for services that talk to conversations from Python.

    client = await connect("127.0.0.1:7233")
    conversation = await start_conversation(client)
    reply = await conversation.send_message("what is 6 * 7?")
    print(reply.text, reply.usage)
    await conversation.end()

Every call goes through Temporal (update, query, signal, cancel) with pydantic payloads,
so it works from any machine that reaches the Temporal frontend, with no worker code.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import (
    Client,
    Interceptor,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.exceptions import ApplicationError
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from durable_agent import codec, search_attributes
from durable_agent.config import Settings
from durable_agent.contract import (
    CONVERSATION_ENDED,
    DEFAULT_TASK_QUEUE,
    INVALID_MESSAGE,
    MAX_MESSAGE_CHARS,
    QUERY_APPROVALS,
    QUERY_STATUS,
    QUERY_TRANSCRIPT,
    SIGNAL_END,
    UPDATE_APPROVE,
    UPDATE_CLEAR_UNTRUSTED,
    UPDATE_REJECT,
    UPDATE_SEND_MESSAGE,
    WORKFLOW_TYPE,
    ApprovalRecord,
    Approvals,
    ApproveCall,
    Clearance,
    ClearUntrusted,
    ConversationInput,
    ConversationResult,
    ConversationStatus,
    RejectCall,
    Reply,
    Transcript,
    UserMessage,
)
from durable_agent.profiles import Profiles
from durable_agent.safety import unsendable
from durable_agent.tools.registry import select_tools

_T = TypeVar("_T")
# The server's failure type for an accepted update whose workflow closed first.
_CLOSED_MID_UPDATE = "AcceptedUpdateCompletedWorkflow"


class ConversationError(Exception):
    """Base of the errors this API raises."""


class MessageRejected(ConversationError):
    """The conversation refused a message (``type`` says why: ``InvalidMessage``,
    ``ConversationEnded``, ``ValidationError`` for a malformed payload), or this API
    refused to send it (``InvalidMessage``: over ``max_message_chars``, or not valid
    Unicode). Nothing of the message entered history; the conversation is still usable."""

    def __init__(self, type: str, message: str) -> None:
        super().__init__(f"{type}: {message}")
        self.type = type
        self.reason = message


class ApprovalRefused(ConversationError):
    """The conversation refused an ``approve``/``reject`` (``type`` is
    ``InvalidApproval``: no such waiting call, already decided, malformed, or edited
    arguments the tool refuses). Nothing changed; the call still waits if it did."""

    def __init__(self, type: str, message: str) -> None:
        super().__init__(f"{type}: {message}")
        self.type = type
        self.reason = message


class ConversationClosed(ConversationError):
    """The conversation closed (cancelled, terminated, timed out) after accepting the
    message and before replying."""


class ConversationNotFound(ConversationError):
    """No running conversation has this id."""


SEND_FAILURES: tuple[type[Exception], ...] = (
    ConversationError,
    RPCError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
"""What ``Conversation.send_message`` raises when a message gets no reply: this API's
errors, Temporal unreachable, or an update the server failed or aborted in flight (an
overloaded server may). A caller with a deadline of its own adds ``TimeoutError``."""


async def connect(
    address: str = "127.0.0.1:7233",
    namespace: str = "default",
    *,
    tls: TLSConfig | bool = False,
    api_key: str | None = None,
    runtime: Runtime | None = None,
    interceptors: Sequence[Interceptor] = (),
    data_converter: DataConverter = pydantic_data_converter,
) -> Client:
    """A Temporal client with the pydantic data converter the workers use. Pass the
    tracing interceptor (``durable_agent.telemetry.tracing_interceptor()``) to join a
    conversation's trace from your service. When the workers encrypt payloads, pass
    theirs: ``durable_agent.codec.data_converter(settings)`` (``connect_with`` does)."""
    return await Client.connect(
        address,
        namespace=namespace,
        data_converter=data_converter,
        tls=tls,
        api_key=api_key,
        runtime=runtime,
        interceptors=interceptors,
    )


async def connect_with(
    settings: Settings,
    *,
    runtime: Runtime | None = None,
    interceptors: Sequence[Interceptor] = (),
) -> Client:
    """``connect`` with the address, namespace, TLS, API key and payload encryption
    of ``settings``."""
    return await connect(
        settings.temporal_address,
        settings.temporal_namespace,
        tls=tls_config(settings),
        api_key=(
            settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
        ),
        runtime=runtime,
        interceptors=interceptors,
        data_converter=codec.data_converter(settings),
    )


def tls_config(settings: Settings) -> TLSConfig | bool:
    """TLS as configured: mTLS with a client certificate, plain TLS (also for an API
    key, which needs it), or none."""
    if settings.temporal_tls_cert or settings.temporal_tls_key or settings.temporal_tls_ca:
        return TLSConfig(
            client_cert=_read(settings.temporal_tls_cert),
            client_private_key=_read(settings.temporal_tls_key),
            server_root_ca_cert=_read(settings.temporal_tls_ca),
        )
    return settings.temporal_tls or settings.temporal_api_key is not None


def _read(path: Path | None) -> bytes | None:
    return path.read_bytes() if path else None


def new_conversation_id() -> str:
    """A fresh, readable workflow id."""
    return f"conversation-{uuid.uuid4().hex[:12]}"


@dataclass
class Conversation:
    """A handle on one conversation (one ``AgentWorkflow`` execution)."""

    handle: WorkflowHandle[object, ConversationResult]
    max_message_chars: int = MAX_MESSAGE_CHARS
    """Longer messages are refused here, before sending (the default is the most any
    safety policy allows; the conversation's own policy may allow fewer)."""

    @property
    def id(self) -> str:
        return self.handle.id

    async def send_message(self, text: str) -> Reply:
        """Send a message and wait for the reply (messages queue while a turn runs).
        A message over ``max_message_chars`` or not valid Unicode is refused with
        ``MessageRejected`` before anything is sent."""
        problem = unsendable(text, self.max_message_chars)
        if problem:
            raise MessageRejected(INVALID_MESSAGE, problem)
        try:
            reply: Reply = await self.handle.execute_update(
                UPDATE_SEND_MESSAGE, UserMessage(text=text), result_type=Reply
            )
            return reply
        except WorkflowUpdateFailedError as e:
            cause = e.cause
            if isinstance(cause, ApplicationError) and cause.type == _CLOSED_MID_UPDATE:
                raise ConversationClosed(cause.message) from None
            if isinstance(cause, ApplicationError):
                raise MessageRejected(cause.type or "Rejected", cause.message) from None
            raise
        except RPCError as e:
            if e.status == RPCStatusCode.NOT_FOUND and "already completed" in e.message:
                raise MessageRejected(
                    CONVERSATION_ENDED, "the conversation has ended; start a new one"
                ) from None
            raise _translate(e, self.id) from None

    async def approve(
        self,
        call_id: str,
        *,
        by: str,
        arguments: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> ApprovalRecord:
        """Approve the waiting tool call ``call_id`` (optionally with edited
        ``arguments``); returns the audit record once the call has resumed."""
        decision = ApproveCall(call_id=call_id, by=by, arguments=arguments, reason=reason)
        return await self._decide(UPDATE_APPROVE, decision, ApprovalRecord)

    async def reject(self, call_id: str, *, by: str, reason: str) -> ApprovalRecord:
        """Reject the waiting tool call ``call_id``; the model is told ``reason``."""
        rejection = RejectCall(call_id=call_id, by=by, reason=reason)
        return await self._decide(UPDATE_REJECT, rejection, ApprovalRecord)

    async def clear_untrusted(self, *, by: str, reason: str | None = None) -> Clearance:
        """Vouch for the context: calls stop waiting for approval because of the
        untrusted content in it, until more comes in (see docs/security.md)."""
        clearance = ClearUntrusted(by=by, reason=reason)
        return await self._decide(UPDATE_CLEAR_UNTRUSTED, clearance, Clearance)

    async def approvals(self) -> Approvals:
        """The ``approvals`` query: waiting tool calls and every decision so far."""
        return await self._query(QUERY_APPROVALS, Approvals)

    async def status(self) -> ConversationStatus:
        """The ``status`` query."""
        return await self._query(QUERY_STATUS, ConversationStatus)

    async def transcript(self) -> Transcript:
        """The ``transcript`` query."""
        return await self._query(QUERY_TRANSCRIPT, Transcript)

    async def end(self) -> None:
        """Signal ``end``: queued turns finish, then the conversation completes."""
        try:
            await self.handle.signal(SIGNAL_END)
        except RPCError as e:
            raise _translate(e, self.id) from None

    async def cancel(self) -> None:
        """Cancel: in-flight activities are cancelled and the workflow ends as cancelled."""
        try:
            await self.handle.cancel()
        except RPCError as e:
            raise _translate(e, self.id) from None

    async def result(self) -> ConversationResult:
        """Wait for the conversation to end and return its summary."""
        return await self.handle.result()

    async def is_running(self) -> bool:
        description = await self.handle.describe()
        return description.status == WorkflowExecutionStatus.RUNNING

    async def _decide(
        self,
        update: str,
        decision: ApproveCall | RejectCall | ClearUntrusted,
        result_type: type[_T],
    ) -> _T:
        """A person's decision as ``update``; one the workflow refuses is ``ApprovalRefused``."""
        try:
            result: _T = await self.handle.execute_update(update, decision, result_type=result_type)
            return result
        except WorkflowUpdateFailedError as e:
            if isinstance(e.cause, ApplicationError):
                raise ApprovalRefused(e.cause.type or "Rejected", e.cause.message) from None
            raise
        except RPCError as e:
            raise _translate(e, self.id) from None

    async def _query(self, name: str, result_type: type[_T]) -> _T:
        try:
            result: _T = await self.handle.query(name, result_type=result_type)
            return result
        except RPCError as e:
            raise _translate(e, self.id) from None


async def start_conversation(
    client: Client,
    input: ConversationInput | None = None,
    *,
    conversation_id: str | None = None,
    task_queue: str = DEFAULT_TASK_QUEUE,
) -> Conversation:
    """Start a conversation. Unknown tool names are refused here, before anything starts."""
    input = input or ConversationInput()
    select_tools(input.tools)  # raises KeyError naming the unknown tool
    if input.search_attributes is None:
        input = input.model_copy(update={"search_attributes": await has_search_attributes(client)})
    handle = await client.start_workflow(
        WORKFLOW_TYPE,
        input,
        id=conversation_id or new_conversation_id(),
        task_queue=task_queue,
        result_type=ConversationResult,
        static_summary=f"conversation of tenant {input.tenant}",
    )
    return Conversation(handle, input.safety.max_message_chars)


async def start_agent(
    client: Client,
    profiles: Profiles,
    agent: str,
    *,
    conversation_id: str | None = None,
    task_queue: str = DEFAULT_TASK_QUEUE,
    **overrides: Any,
) -> Conversation:
    """Start a conversation with the agent profile ``agent`` (``overrides``, e.g.
    ``tenant``, replace the profile's fields). The resolved profile is the
    conversation's start input, so later edits of the file change new conversations
    only. ``UnknownProfile`` names the profiles there are."""
    input = profiles.resolve(agent, **overrides)
    return await start_conversation(
        client, input, conversation_id=conversation_id, task_queue=task_queue
    )


async def has_search_attributes(client: Client) -> bool:
    """Whether the namespace has every ``Agent*`` search attribute registered. A server
    that cannot say (the time-skipping test server; a key without operator rights)
    counts as not having them: conversations then simply don't index themselves."""
    try:
        response = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
    except RPCError as e:
        if e.status in (RPCStatusCode.UNIMPLEMENTED, RPCStatusCode.PERMISSION_DENIED):
            return False
        raise
    return set(search_attributes.ALL) <= set(response.custom_attributes)


def get_conversation(
    client: Client, conversation_id: str, *, max_message_chars: int = MAX_MESSAGE_CHARS
) -> Conversation:
    """A handle on an existing conversation (no RPC until it is used)."""
    handle = client.get_workflow_handle(conversation_id, result_type=ConversationResult)
    return Conversation(handle, max_message_chars)


async def send_message(client: Client, conversation_id: str, text: str) -> Reply:
    """Send one message to an existing conversation and return the reply."""
    return await get_conversation(client, conversation_id).send_message(text)


def _translate(error: RPCError, conversation_id: str) -> Exception:
    if error.status == RPCStatusCode.NOT_FOUND:
        return ConversationNotFound(f"no conversation {conversation_id!r}: {error.message}")
    return error
