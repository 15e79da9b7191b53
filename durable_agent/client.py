"""Client API for services that talk to conversations from Python.

    client = await connect("127.0.0.1:7233")
    conversation = await start_conversation(client)
    reply = await conversation.send_message("what is 6 * 7?")
    print(reply.text, reply.usage)
    await conversation.end()

Every call goes through Temporal (update, query, signal, cancel) with pydantic payloads,
so it works from any machine that reaches the Temporal frontend, with no worker code.

Streaming (docs/streaming.md): ``conversation.stream()`` iterates the conversation's
step events and model output as they happen; ``send_streaming`` sends a message with
streaming on and iterates its reply's text as it is written:

    turn = await conversation.send_streaming("what is 6 * 7?")
    async for text in turn:  # the reply so far
        ...
    reply = await turn.reply()  # the record
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from temporalio.api.common.v1 import Payload
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import (
    Client,
    Interceptor,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateHandle,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.common import RawValue, TypedSearchAttributes
from temporalio.converter import DataConverter
from temporalio.exceptions import ApplicationError
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from durable_agent import codec, converter, search_attributes
from durable_agent.compact import compact_json
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
    WORKFLOW_REVISION,
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
    StreamItem,
    Transcript,
    UserMessage,
)
from durable_agent.safety import unsendable
from durable_agent.streaming import (
    DEFAULT_IDLE_POLL_SECONDS,
    DEFAULT_POLL_SECONDS,
    Pace,
    StreamCursor,
    TurnText,
)
from durable_agent.tools.registry import select_tools

if TYPE_CHECKING:  # profiles load YAML: a worker, which imports this module, never does
    from durable_agent.profiles import Profiles

_T = TypeVar("_T")
# The server's failure type for an accepted update whose workflow closed first.
_CLOSED_MID_UPDATE = "AcceptedUpdateCompletedWorkflow"
NOT_READY_SECONDS = 60.0
"""How long a call rides through a conversation that is not ready (see
``conversation_not_ready``) before ``ConversationUnavailable``."""
_NOT_READY_FIRST, _NOT_READY_MOST = 0.2, 2.0


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


class ConversationUnavailable(ConversationError):
    """No worker completed one of the conversation's workflow tasks for
    ``not_ready_seconds``: Temporal refuses its updates and queries meanwhile (see
    ``conversation_not_ready``). Nothing was sent or changed; try again later. If it
    lasts, the workers are down or overloaded, or its workflow task keeps failing (the
    workers' logs say why)."""


class StreamInterrupted(ConversationError):
    """A conversation's stream could not be read for ``retry_seconds`` (Temporal
    unreachable, or no worker answered its queries). Nothing is lost: resume with
    ``conversation.stream(after=error.offset)``."""

    def __init__(self, offset: int, cause: Exception) -> None:
        super().__init__(f"the stream could not be read after offset {offset}: {cause}")
        self.offset = offset
        """The offset of the last item delivered (-1: none)."""
        self.cause = cause


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
    data_converter: DataConverter = converter.data_converter,
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
    not_ready_seconds: float = NOT_READY_SECONDS
    """How long messages, decisions and queries are retried, with backoff, while
    Temporal refuses them because the conversation's workflow task keeps failing or
    timing out (a worker died holding it, or the workers are overloaded), before
    ``ConversationUnavailable``. The retry is safe: the refusal comes before anything is
    recorded, and a message or decision is retried under the same update id."""

    @property
    def id(self) -> str:
        return self.handle.id

    async def send_message(self, text: str, *, stream: bool | None = None) -> Reply:
        """Send a message and wait for the reply (messages queue while a turn runs).
        ``stream``: publish this turn's model output on the conversation's stream as
        it is written (``None``: the conversation's setting; read it with ``stream()``,
        or use ``send_streaming``). A message over ``max_message_chars`` or not valid
        Unicode is refused with ``MessageRejected`` before anything is sent."""
        message = self._message(text, stream)
        update_id = str(uuid.uuid4())
        try:
            reply: Reply = await self._while_not_ready(
                lambda: self.handle.execute_update(
                    UPDATE_SEND_MESSAGE, message, id=update_id, result_type=Reply
                )
            )
            return reply
        except (WorkflowUpdateFailedError, RPCError) as e:
            failure = self._send_failure(e)
            if failure is e:
                raise
            raise failure from None

    async def send_streaming(
        self,
        text: str,
        *,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
        idle_poll_seconds: float = DEFAULT_IDLE_POLL_SECONDS,
        retry_seconds: float = 60.0,
    ) -> TurnStream:
        """Send a message with streaming on; once the conversation has accepted it,
        return a ``TurnStream``: iterate it for the reply's text as it is written, then
        ``await turn.reply()``. Refusals raise here, as in ``send_message``."""
        message = self._message(text, True)
        status = await self.status()
        # The turn this message will be (messages are served in order); another
        # client sending at the same moment can make it the next one: the reply says.
        turn = status.turns + status.queued_messages + (status.state != "idle") + 1
        stream = self.stream(
            deltas=True,
            poll_seconds=poll_seconds,
            idle_poll_seconds=idle_poll_seconds,
            retry_seconds=retry_seconds,
        )
        update_id = str(uuid.uuid4())
        try:
            update: WorkflowUpdateHandle[Reply] = await self._while_not_ready(
                lambda: self.handle.start_update(
                    UPDATE_SEND_MESSAGE,
                    message,
                    id=update_id,
                    wait_for_stage=WorkflowUpdateStage.ACCEPTED,
                    result_type=Reply,
                )
            )
        except (WorkflowUpdateFailedError, RPCError) as e:
            failure = self._send_failure(e)
            if failure is e:
                raise
            raise failure from None
        stream.wake()
        return TurnStream(turn, stream, asyncio.ensure_future(self._reply_of(update)))

    def stream(
        self,
        after: int = -1,
        *,
        deltas: bool = True,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
        idle_poll_seconds: float = DEFAULT_IDLE_POLL_SECONDS,
        retry_seconds: float = 60.0,
    ) -> ConversationStream:
        """The conversation's stream after offset ``after`` (-1: from the oldest item
        kept): step events and, with ``deltas``, model output of streamed turns, as
        they happen. Polls the ``stream`` query every ``poll_seconds`` while the model
        writes, backing off to ``idle_poll_seconds`` otherwise; follows the
        conversation across continue-as-new and worker restarts; ends once the
        conversation has ended and every item has been read. See ``ConversationStream``."""
        if not retry_seconds > 0:
            raise ValueError(f"retry_seconds must be > 0, not {retry_seconds!r}")
        return ConversationStream(
            self.handle,
            after,
            deltas=deltas,
            pace=Pace(poll_seconds, idle_poll_seconds),
            retry_seconds=retry_seconds,
        )

    def _message(self, text: str, stream: bool | None) -> UserMessage:
        problem = unsendable(text, self.max_message_chars)
        if problem:
            raise MessageRejected(INVALID_MESSAGE, problem)
        return UserMessage(text=text, stream=stream)

    async def _reply_of(self, update: WorkflowUpdateHandle[Reply]) -> Reply:
        try:
            return await update.result()
        except (WorkflowUpdateFailedError, RPCError) as e:
            failure = self._send_failure(e)
            if failure is e:
                raise
            raise failure from None

    def _send_failure(self, error: WorkflowUpdateFailedError | RPCError) -> Exception:
        """What a refused or failed ``send_message`` raises instead of ``error``."""
        if isinstance(error, WorkflowUpdateFailedError):
            cause = error.cause
            if isinstance(cause, ApplicationError) and cause.type == _CLOSED_MID_UPDATE:
                return ConversationClosed(cause.message)
            if isinstance(cause, ApplicationError):
                return MessageRejected(cause.type or "Rejected", cause.message)
            return error
        if error.status == RPCStatusCode.NOT_FOUND and "already completed" in error.message:
            return MessageRejected(
                CONVERSATION_ENDED, "the conversation has ended; start a new one"
            )
        return _translate(error, self.id)

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
        update_id = str(uuid.uuid4())
        try:
            result: _T = await self._while_not_ready(
                lambda: self.handle.execute_update(
                    update, decision, id=update_id, result_type=result_type
                )
            )
            return result
        except WorkflowUpdateFailedError as e:
            if isinstance(e.cause, ApplicationError):
                raise ApprovalRefused(e.cause.type or "Rejected", e.cause.message) from None
            raise
        except RPCError as e:
            raise _translate(e, self.id) from None

    async def _query(self, name: str, result_type: type[_T]) -> _T:
        try:
            result: _T = await self._while_not_ready(
                lambda: self.handle.query(name, result_type=result_type)
            )
            return result
        except RPCError as e:
            raise _translate(e, self.id) from None

    async def _while_not_ready(self, call: Callable[[], Awaitable[_T]]) -> _T:
        return await while_not_ready(call, self.not_ready_seconds)


def conversation_not_ready(error: RPCError) -> bool:
    """Whether Temporal refused a call because the conversation's workflow task keeps
    failing or timing out: from its third attempt the server refuses updates and
    queries at once (``FAILED_PRECONDITION``, "... due to Workflow Task in failed
    state") instead of queueing them behind a task that may never complete. A worker
    killed while holding the task, then a slow restart, is enough. Nothing was recorded;
    the server accepts calls again once a worker completes a task."""
    return (
        error.status == RPCStatusCode.FAILED_PRECONDITION
        and "workflow task" in error.message.lower()
    )


async def while_not_ready(call: Callable[[], Awaitable[_T]], seconds: float) -> _T:
    """``call()``, repeated with backoff (0.2 s doubling to 2 s) while the conversation
    is not ready (``conversation_not_ready``), for up to ``seconds``; then the last
    refusal is raised. Other errors are raised at once. ``call`` must be safe to
    repeat (a query, or an update under a fixed id)."""
    deadline = time.monotonic() + seconds
    delay = _NOT_READY_FIRST
    while True:
        try:
            return await call()
        except RPCError as e:
            if not conversation_not_ready(e) or time.monotonic() + delay > deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, _NOT_READY_MOST)


class ConversationStream:
    """A conversation's stream as an async iterator of ``StreamItem``s, oldest first,
    each once (``Conversation.stream`` makes one).

    It polls the workflow's ``stream`` query by workflow id, so it follows the
    conversation into each new run. A failed query (Temporal unreachable, no worker
    answering while one restarts) is retried with backoff for up to ``retry_seconds``
    without a successful poll, then ``StreamInterrupted`` names the offset to resume
    from. Iteration ends once the conversation has ended (or its workflow closed) and
    every item has been read. ``missed`` counts items that were no longer kept when
    asked for (the reader fell too far behind, or resumed from too old an offset)."""

    _QUERY_TIMEOUT = timedelta(seconds=10)
    _DESCRIBE_SECONDS = 5.0
    """While nothing comes, how often to check whether the workflow has closed without
    ending (cancelled, terminated)."""
    _RETRY_FIRST, _RETRY_MOST = 0.2, 2.0
    _PERMANENT = {
        RPCStatusCode.INVALID_ARGUMENT,
        RPCStatusCode.PERMISSION_DENIED,
        RPCStatusCode.UNAUTHENTICATED,
    }

    def __init__(
        self,
        handle: WorkflowHandle[Any, Any],
        after: int,
        *,
        deltas: bool,
        pace: Pace,
        retry_seconds: float,
    ) -> None:
        if handle.run_id is not None:
            raise ValueError("a stream follows a workflow id across runs: pass no run id")
        self._handle = handle
        self._cursor = StreamCursor(
            handle, after, deltas=deltas, pace=pace, rpc_timeout=self._QUERY_TIMEOUT
        )
        self._retry_seconds = retry_seconds
        self._buffer: deque[StreamItem] = deque()
        self._offset = after
        self._wake = asyncio.Event()
        self._polled = False
        self._closed = False
        self._finished = False
        self._described = time.monotonic()

    @property
    def offset(self) -> int:
        """The offset of the last item this iterator has delivered (-1: none yet):
        resume from it with ``conversation.stream(after=offset)``."""
        return self._offset

    @property
    def missed(self) -> int:
        return self._cursor.missed

    @property
    def queries(self) -> int:
        """``stream`` queries made so far (each one is a round trip to a worker)."""
        return self._cursor.queries

    def wake(self) -> None:
        """Poll now and at the fast pace (something is about to happen)."""
        self._cursor.wake()
        self._wake.set()

    def __aiter__(self) -> ConversationStream:
        return self

    async def __anext__(self) -> StreamItem:
        while not self._buffer:
            if self._cursor.drained or self._finished:
                raise StopAsyncIteration
            await self._fill()
        item = self._buffer.popleft()
        self._offset = item.offset
        return item

    async def _fill(self) -> None:
        if self._polled and not self._closed:
            await self._sleep(self._cursor.wait_seconds())
        self._polled = True
        closing = self._closed
        items, _ = await self._poll()
        self._buffer.extend(items)
        if closing and not self._cursor.more:
            self._finished = True  # read everything after the workflow closed
        elif not items and not self._cursor.more and not self._cursor.drained:
            await self._check_closed()

    async def _poll(self) -> tuple[list[StreamItem], int]:
        """One poll of the query, retried with backoff while it fails transiently."""
        started = time.monotonic()
        delay = self._RETRY_FIRST
        while True:
            try:
                return await self._cursor.poll()
            except RPCError as e:
                if e.status == RPCStatusCode.NOT_FOUND:
                    raise _translate(e, self._handle.id) from None
                if e.status in self._PERMANENT:
                    raise
                error: Exception = e
            except WorkflowQueryFailedError as e:  # e.g. a worker replaying the workflow failed
                error = e
            if time.monotonic() - started + delay > self._retry_seconds:
                raise StreamInterrupted(self._offset, error) from error
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._RETRY_MOST)

    async def _check_closed(self) -> None:
        """Whether the workflow closed without ending (cancelled, terminated): then
        one more poll drains it and iteration ends."""
        now = time.monotonic()
        if now - self._described < self._DESCRIBE_SECONDS:
            return
        self._described = now
        try:
            description = await self._handle.describe(rpc_timeout=self._QUERY_TIMEOUT)
        except RPCError as e:
            if e.status == RPCStatusCode.NOT_FOUND:
                raise _translate(e, self._handle.id) from None
            return  # transient: the next polls say more
        self._closed = description.status not in (
            WorkflowExecutionStatus.RUNNING,
            WorkflowExecutionStatus.CONTINUED_AS_NEW,
        )

    async def _sleep(self, seconds: float) -> None:
        if seconds > 0 and not self._wake.is_set():
            try:
                async with asyncio.timeout(seconds):
                    await self._wake.wait()
            except TimeoutError:
                pass
        self._wake.clear()


class TurnStream:
    """A message sent with streaming on (``Conversation.send_streaming``).

    Iterate it for the reply's text as it is written: each item is the text so far
    (``TurnText``: a restarted attempt or a model call after tool calls starts it
    again, so show each item in place of the previous one). Iteration ends when the
    turn's reply is in the stream. ``await reply()`` gives the ``Reply``, the record:
    deltas are not authoritative, and with another client sending to the conversation
    at the same moment, the text followed may be the neighbouring turn's."""

    _TAIL_SECONDS = 5.0
    """After the reply has come, how long to keep reading for the rest of its text."""

    def __init__(self, turn: int, stream: ConversationStream, reply: asyncio.Future[Reply]):
        self.turn = turn
        """The turn this message was expected to be (``reply().turn`` is the one it was)."""
        self.text = TurnText(turn)
        self.stream = stream
        self._reply = reply
        self.asked: set[str] = set()
        """Tool calls whose ``approval_requested`` event iteration has passed: the text
        written before the call asked has been yielded."""
        self._asking = asyncio.Event()

    async def shown_before(self, call_id: str, seconds: float = 2.0) -> bool:
        """Wait (at most ``seconds``) until iteration has yielded the text written before
        ``call_id`` asked for approval, so a question can come after it."""
        self.stream.wake()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while call_id not in self.asked:
                    self._asking.clear()
                    await self._asking.wait()
        return call_id in self.asked

    async def reply(self) -> Reply:
        """The reply (raises what ``send_message`` raises when there is none)."""
        return await self._reply

    async def __aiter__(self) -> AsyncIterator[str]:
        pending: asyncio.Future[StreamItem] | None = None
        tail_until: float | None = None
        try:
            while tail_until is None or time.monotonic() < tail_until:
                if pending is None:
                    pending = asyncio.ensure_future(anext(self.stream))
                waiting: set[asyncio.Future[Any]] = {pending}
                if tail_until is None:
                    waiting.add(self._reply)
                timeout = None if tail_until is None else tail_until - time.monotonic()
                await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if tail_until is None and self._reply.done():
                    reply = self._reply.result()  # raises when there is none
                    if reply.turn != self.turn:
                        return  # another turn was followed: the reply is the record
                    tail_until = time.monotonic() + self._TAIL_SECONDS
                    self.stream.wake()  # its reply event is in the stream already
                if not pending.done():
                    continue
                try:
                    item = pending.result()
                except StopAsyncIteration:
                    return
                pending = None
                if item.delta is not None and self.text.apply(item.delta):
                    yield self.text.text
                event = item.event
                if event is not None and event.kind == "approval_requested" and event.call_id:
                    self.asked.add(event.call_id)
                    self._asking.set()
                if event is not None and event.kind == "reply" and event.turn == self.turn:
                    return
        finally:
            if pending is not None:
                pending.cancel()


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
        start_input(input),
        id=conversation_id or new_conversation_id(),
        task_queue=task_queue,
        result_type=ConversationResult,
        static_summary=f"conversation of tenant {input.tenant}",
        search_attributes=start_search_attributes(input),
    )
    return Conversation(handle, input.safety.max_message_chars)


def start_search_attributes(input: ConversationInput) -> TypedSearchAttributes | None:
    """The ``Agent*`` search attributes a conversation starts with, when the server has
    them (``input.search_attributes``): set by the start request, so its first workflow
    task records no upsert of them (a run of revision 4 or newer reads them back)."""
    if not input.search_attributes:
        return None
    return search_attributes.at_start(input.tenant)


def start_input(input: ConversationInput) -> RawValue:
    """A conversation's start input as written to history: its JSON without the fields
    at their defaults (``compact_json``; it decodes to exactly ``input``). A worker
    keeps a cached conversation's first activation, start input included, for as long
    as it caches it: the defaults (~1.5 KB of a default input's 1.7 KB) cost ~8 KiB of
    worker memory per cached conversation. Like the compact continue-as-new
    input, a field left out takes its default when the run is replayed: treat changing
    a contract default like changing workflow code (``docs/durability.md``). It names
    this package's workflow revision (``WORKFLOW_REVISION``), so the runs record no
    patch marker to tell which code they take as given."""
    input = input.model_copy(update={"revision": WORKFLOW_REVISION})
    return RawValue(Payload(metadata={"encoding": b"json/plain"}, data=compact_json(input)))


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
    if conversation_not_ready(error):
        return ConversationUnavailable(
            f"conversation {conversation_id!r}: no worker completed its workflow task "
            f"in time ({error.message}); nothing was sent, try again later"
        )
    return error
