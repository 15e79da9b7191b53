"""The gateway's FastAPI application: REST over the conversations' Temporal contract.

Each route is one or two Temporal calls through the same client API the CLI uses
(start, the ``send_message``/``approve``/``reject`` updates, the ``status``,
``transcript``, ``approvals`` and ``events`` queries, cancel); nothing is kept here
between requests, so replicas are interchangeable.

- **Tenants**: an API key belongs to one tenant; conversations it starts get the
  workflow id ``<tenant>.conversation-…`` and the tenant in their input, and a key may
  touch no other id (403, decided from the id alone, so existence is not revealed).
- **Idempotency**: with an ``Idempotency-Key``, a start becomes the workflow id (the
  request's fingerprint kept in the memo), and a message becomes the update id; Temporal
  deduplicates both, so a retried request returns the first one's result. A key reused
  with another body is refused (a start's memo, a message's accepted input in history).
- **Identity**: an approval is recorded as made by the API key (``<tenant>/<name>``),
  never by what the body says.
- **Size**: bodies over ``AGENT_GATEWAY_MAX_BODY_BYTES`` get 413 and messages over the
  policy's limit 422, before anything is sent to Temporal.
- **Errors** are RFC 9457 problems (``problems``).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import pathlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Annotated, Any, TypeVar

from fastapi import Body, Depends, FastAPI, Header, Path, Query, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateHandle,
    WorkflowUpdateStage,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.runtime import Runtime

from durable_agent import contract
from durable_agent.budget import BudgetLimits
from durable_agent.client import new_conversation_id, start_input, start_search_attributes
from durable_agent.config import Settings
from durable_agent.contract import (
    ApprovalRecord,
    Approvals,
    ApproveCall,
    Clearance,
    ClearUntrusted,
    ConversationInput,
    ConversationLimits,
    ConversationResult,
    ConversationStatus,
    RejectCall,
    Reply,
    Transcript,
    UserMessage,
)
from durable_agent.gateway import calls, problems
from durable_agent.gateway.guards import BodyLimit
from durable_agent.gateway.keys import GatewayKey, conversation_id, owns
from durable_agent.gateway.middleware import install_access_log, install_error_handlers
from durable_agent.gateway.problems import MEDIA_TYPE, Problem, ProblemError
from durable_agent.gateway.schemas import (
    Accepted,
    ApprovalRequest,
    ClearanceRequest,
    ConversationCreated,
    ConversationList,
    ConversationSummary,
    ConversationView,
    Health,
    Links,
    MessageAccepted,
    ProblemTypeInfo,
    SendMessage,
    StartConversation,
)
from durable_agent.gateway.service import Gateway
from durable_agent.gateway.stream import event_stream
from durable_agent.profiles import Profiles, UnknownProfile, load_profiles
from durable_agent.safety import unsendable
from durable_agent.tools.loading import load_tools
from durable_agent.tools.registry import select_tools

log = logging.getLogger("durable_agent.gateway")

_T = TypeVar("_T")

_MEMO_FINGERPRINT = "gateway_request_sha256"
_IDEMPOTENCY_KEY = Header(
    alias="Idempotency-Key",
    min_length=1,
    max_length=255,
    pattern=r"^[\x21-\x7e]+$",
    description="Makes a retried request return the first one's result, without a second effect.",
)
_ID_PATTERN = r"^[A-Za-z0-9._-]{1,200}$"
ConversationId = Annotated[str, Path(pattern=_ID_PATTERN, description="`<tenant>.<id>`")]

_SSE_EXAMPLE = """retry: 1000

id: 41
event: turn_started
data: {"seq":42,"at":"2026-12-07T09:00:00Z","kind":"turn_started","turn":3,...}

id: 43
event: delta
data: {"turn":3,"model_call":1,"attempt":1,"kind":"text","text":"The result",...}

id: 47
event: reply
data: {"seq":48,"kind":"reply","turn":3,"reply":{"text":"The result of 6 * 7 is 42.",...},...}

"""

_TITLES = {
    401: "Missing or unknown API key",
    402: "Budget exceeded",
    403: "Another tenant's conversation",
    404: "No such conversation",
    409: "Conflict: the conversation ended, or the call is not waiting",
    413: "Request body over the gateway's limit (not retryable)",
    422: "Invalid request, or input the conversation refused",
    429: "Rate limited (see Retry-After)",
    503: "Temporal unavailable (see Retry-After)",
}


def _errors(*extra: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the problems a route can answer with."""
    return {
        status: {"model": Problem, "content": {MEDIA_TYPE: {}}, "description": _TITLES[status]}
        for status in sorted({401, 403, 413, 422, 429, 503, *extra})
    }


_bearer = HTTPBearer(auto_error=False, description="An API key of the gateway.")


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> GatewayKey:
    """The configured key the request presents (401 otherwise), within its rate (429)."""
    gateway: Gateway = request.app.state.gateway
    if credentials is None:
        raise ProblemError(problems.UNAUTHORIZED, "no API key: send Authorization: Bearer <key>")
    key = gateway.keys.find(credentials.credentials)
    if key is None:
        raise ProblemError(problems.UNAUTHORIZED, "unknown API key")
    request.state.tenant = key.tenant
    wait = gateway.rates.take(key, time.monotonic())
    if wait > 0:
        raise ProblemError(
            problems.RATE_LIMITED,
            f"API key {key.name!r} is over its request rate",
            retry_after_seconds=wait,
        )
    return key


Key = Annotated[GatewayKey, Depends(authenticate)]


def create_app(
    settings: Settings | None = None,
    *,
    connect: Callable[[], Awaitable[Client]] | None = None,
    runtime: Runtime | None = None,
    registry: CollectorRegistry | None = None,
) -> FastAPI:
    """The gateway application for ``settings`` (from the environment by default);
    ``connect`` makes its Temporal client (``connect_with(settings)`` on ``runtime`` by
    default); its request metrics go on ``registry`` (a private one by default)."""
    settings = settings or Settings()
    gateway = Gateway(settings, connect, runtime, registry)
    # Read once at start: a bad file or tool module stops the gateway, not a request.
    load_tools(settings.tool_modules, use_entry_points=settings.tool_entry_points)
    profiles = load_profiles(settings.profiles_file) if settings.profiles_file else Profiles()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        gateway.stopping.set()

    app = FastAPI(
        title="durable-agent gateway",
        version="1",
        summary="Durable Claude conversations over HTTP, each one a Temporal workflow.",
        description=(
            "Authenticate with `Authorization: Bearer <API key>`. Errors are RFC 9457 "
            "problem documents (`application/problem+json`); `GET /problems` lists their "
            "types. POSTs accept an `Idempotency-Key`."
        ),
        lifespan=lifespan,
        responses={500: {"model": Problem, "content": {MEDIA_TYPE: {}}}},
        docs_url=None,  # served below from the package's assets, not a CDN
        redoc_url=None,
    )
    app.state.gateway = gateway
    if settings.gateway_cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.gateway_cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID"],
            expose_headers=["Location", "Retry-After", "Idempotent-Replayed"],
            max_age=600,
        )
    install_error_handlers(app)
    install_access_log(app)
    # Outermost: an oversized body is refused before anything reads it.
    app.add_middleware(BodyLimit, max_bytes=settings.gateway_max_body_bytes)
    _install_docs(app)

    async def handle_of(key: GatewayKey, conversation: str) -> WorkflowHandle[Any, Any]:
        if not owns(key.tenant, conversation):
            raise ProblemError(
                problems.FORBIDDEN,
                f"conversation {conversation!r} is not one of tenant {key.tenant!r}'s",
                conversation_id=conversation,
            )
        client = await gateway.reachable_client()
        return client.get_workflow_handle(conversation, result_type=ConversationResult)

    async def ask(key: GatewayKey, conversation: str, query: str, result_type: type[_T]) -> _T:
        """The answer of ``conversation``'s workflow (one of ``key``'s) to ``query``."""
        handle = await handle_of(key, conversation)
        return await calls.query(handle, query, result_type, gateway, conversation)

    # --- conversations -----------------------------------------------------------------

    @app.post(
        "/v1/conversations",
        status_code=201,
        response_model=ConversationCreated,
        responses=_errors(),
        tags=["conversations"],
    )
    async def start(
        key: Key,
        response: Response,
        body: Annotated[StartConversation | None, Body()] = None,
        idempotency_key: Annotated[str | None, _IDEMPOTENCY_KEY] = None,
    ) -> ConversationCreated:
        """Start a conversation of the key's tenant."""
        body = body or StartConversation()
        config = _conversation_input(settings, key.tenant, body, profiles)
        client = await gateway.reachable_client()
        fingerprint = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
        if idempotency_key:
            local = _request_id("conversation", key.tenant, idempotency_key, 24)
        else:
            local = new_conversation_id()
        workflow_id = conversation_id(key.tenant, local)
        config = config.model_copy(
            update={"search_attributes": await calls.call(gateway.search_attributes(client))}
        )
        try:
            await calls.call(
                client.start_workflow(
                    contract.WORKFLOW_TYPE,
                    start_input(config),
                    id=workflow_id,
                    task_queue=settings.task_queue,
                    memo={_MEMO_FINGERPRINT: fingerprint},
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    static_summary=f"conversation of tenant {key.tenant} (gateway)",
                    search_attributes=start_search_attributes(config),
                    rpc_timeout=gateway.rpc_timeout,
                )
            )
        except WorkflowAlreadyStartedError:
            if not idempotency_key:
                raise  # a fresh random id collided: not a client's problem
            handle = client.get_workflow_handle(workflow_id)
            description = await calls.call(handle.describe(rpc_timeout=gateway.rpc_timeout))
            earlier = (await calls.call(description.memo())).get(_MEMO_FINGERPRINT)
            if earlier != fingerprint:
                raise ProblemError(
                    problems.IDEMPOTENCY_REUSED,
                    "this Idempotency-Key started a conversation with a different body",
                    conversation_id=workflow_id,
                ) from None
            response.headers["Idempotent-Replayed"] = "true"
        response.headers["Location"] = f"/v1/conversations/{workflow_id}"
        log.info("conversation started", extra={"conversation": workflow_id, "key": key.name})
        return ConversationCreated(id=workflow_id, tenant=key.tenant, links=_links(workflow_id))

    @app.get(
        "/v1/conversations",
        response_model=ConversationList,
        responses=_errors(),
        tags=["conversations"],
    )
    async def list_conversations(
        key: Key,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        page: Annotated[str | None, Query(max_length=4096)] = None,
    ) -> ConversationList:
        """The tenant's conversations, newest first."""
        client = await gateway.reachable_client()
        token = _page_token(page, key.tenant)
        listing = client.list_workflows(
            f'WorkflowType = "{contract.WORKFLOW_TYPE}" AND WorkflowId STARTS_WITH "{key.tenant}."',
            page_size=limit,
            next_page_token=token,
            rpc_timeout=gateway.rpc_timeout,
        )
        found: list[ConversationSummary] = []

        async def first_page() -> None:
            async for execution in listing:
                if not owns(key.tenant, execution.id):
                    continue
                found.append(
                    ConversationSummary(
                        id=execution.id,
                        execution=calls.execution_status(execution.status),
                        started_at=execution.start_time,
                        closed_at=execution.close_time,
                    )
                )
                if len(found) >= limit:
                    break

        await calls.call(first_page())
        return ConversationList(
            conversations=found, next_page=_page(listing.next_page_token, key.tenant)
        )

    @app.get(
        "/v1/conversations/{conversation_id}",
        response_model=ConversationView,
        responses=_errors(404),
        tags=["conversations"],
    )
    async def get_conversation(key: Key, conversation_id: ConversationId) -> ConversationView:
        """Where the conversation is: state, usage, cost, budget, breakers, pending
        approvals, and its workflow's status."""
        handle = await handle_of(key, conversation_id)
        description = await calls.call(
            handle.describe(rpc_timeout=gateway.rpc_timeout), conversation_id
        )
        status = await calls.query(
            handle, contract.QUERY_STATUS, ConversationStatus, gateway, conversation_id
        )
        return ConversationView(
            id=conversation_id,
            tenant=key.tenant,
            execution=calls.execution_status(description.status),
            started_at=description.start_time,
            closed_at=description.close_time,
            status=status,
        )

    @app.get(
        "/v1/conversations/{conversation_id}/transcript",
        response_model=Transcript,
        responses=_errors(404),
        tags=["conversations"],
    )
    async def transcript(key: Key, conversation_id: ConversationId) -> Transcript:
        """The system prompt, every message, and what screening flagged."""
        return await ask(key, conversation_id, contract.QUERY_TRANSCRIPT, Transcript)

    @app.delete(
        "/v1/conversations/{conversation_id}",
        status_code=202,
        response_model=Accepted,
        responses=_errors(404, 409),
        tags=["conversations"],
    )
    async def cancel(key: Key, conversation_id: ConversationId) -> Accepted:
        """Cancel: in-flight model and tool calls are cancelled, waiting messages get
        409, and the workflow ends as cancelled."""
        handle = await handle_of(key, conversation_id)
        await calls.ensure_running(handle, gateway, conversation_id)
        await calls.call(handle.cancel(rpc_timeout=gateway.rpc_timeout), conversation_id)
        log.info("conversation cancelled", extra={"conversation": conversation_id})
        return Accepted(id=conversation_id, action="cancel")

    @app.post(
        "/v1/conversations/{conversation_id}/end",
        status_code=202,
        response_model=Accepted,
        responses=_errors(404, 409),
        tags=["conversations"],
    )
    async def end(key: Key, conversation_id: ConversationId) -> Accepted:
        """End gracefully: queued messages are answered, then the conversation completes."""
        handle = await handle_of(key, conversation_id)
        await calls.ensure_running(handle, gateway, conversation_id)
        await calls.call(
            handle.signal(contract.SIGNAL_END, rpc_timeout=gateway.rpc_timeout), conversation_id
        )
        return Accepted(id=conversation_id, action="end")

    # --- messages ------------------------------------------------------------------------

    @app.post(
        "/v1/conversations/{conversation_id}/messages",
        response_model=Reply,
        responses={
            202: {"model": MessageAccepted, "description": "Queued or still running"},
            **_errors(402, 404, 409),
        },
        tags=["messages"],
    )
    async def send(
        key: Key,
        conversation_id: ConversationId,
        body: SendMessage,
        wait: Annotated[
            bool, Query(description="Wait for the reply (up to the gateway's wait time).")
        ] = True,
        idempotency_key: Annotated[str | None, _IDEMPOTENCY_KEY] = None,
    ) -> Any:
        """Send a message; with ``wait`` (default) answer with the reply, else (or when
        the turn outlasts the gateway's wait) 202 and a location to poll. With
        ``stream``, the turn's model output is written to the conversation's event
        stream as it comes (``GET …/events``, ``event: delta``)."""
        handle = await handle_of(key, conversation_id)
        problem = unsendable(body.text, settings.safety.max_message_chars)
        if problem:  # refused here: an oversized payload never travels to Temporal
            raise ProblemError(problems.INVALID_MESSAGE, problem, conversation_id=conversation_id)
        message = UserMessage(text=body.text, stream=body.stream)
        message_id = _request_id("msg", conversation_id, idempotency_key)
        if idempotency_key:
            earlier = await calls.call(
                calls.earlier_message(await gateway.client(), handle, message_id, gateway),
                conversation_id,
            )
            if earlier is not None and earlier.text != message.text:
                raise ProblemError(
                    problems.IDEMPOTENCY_REUSED,
                    "this Idempotency-Key sent a different message to this conversation",
                    conversation_id=conversation_id,
                )
        try:
            update: WorkflowUpdateHandle[Reply] = await calls.repeatable(
                lambda: handle.start_update(
                    contract.UPDATE_SEND_MESSAGE,
                    message,
                    id=message_id,
                    wait_for_stage=WorkflowUpdateStage.ACCEPTED,
                    result_type=Reply,
                    rpc_timeout=gateway.rpc_timeout,
                ),
                gateway,
                conversation_id,
            )
        except WorkflowUpdateFailedError as e:
            raise calls.refusal(e, conversation_id) from None
        if wait:
            reply = await calls.outcome(update, settings.gateway_wait_seconds, conversation_id)
            if reply is not None:
                return _reply_response(reply, conversation_id)
        return _accepted(conversation_id, message_id)

    @app.get(
        "/v1/conversations/{conversation_id}/messages/{message_id}",
        response_model=Reply,
        responses={
            202: {"model": MessageAccepted, "description": "Still queued or running"},
            **_errors(402, 404, 409),
        },
        tags=["messages"],
    )
    async def message_reply(
        key: Key,
        conversation_id: ConversationId,
        message_id: Annotated[str, Path(pattern=r"^msg-[0-9a-f]{32}$")],
        wait: Annotated[float, Query(ge=0, le=60, description="Seconds to wait for it.")] = 0,
    ) -> Any:
        """The reply to a message sent earlier, once its turn has run."""
        handle = await handle_of(key, conversation_id)
        update = handle.get_update_handle(message_id, result_type=Reply)
        try:
            reply = await calls.outcome(update, max(wait, 0.5), conversation_id)
        except ProblemError as e:
            if e.kind is problems.NOT_FOUND:  # the conversation, or this message in it
                e.detail = f"no message {message_id!r} in conversation {conversation_id!r}"
            raise
        if reply is None:
            return _accepted(conversation_id, message_id)
        return _reply_response(reply, conversation_id)

    # --- approvals -------------------------------------------------------------------------

    @app.get(
        "/v1/conversations/{conversation_id}/approvals",
        response_model=Approvals,
        responses=_errors(404),
        tags=["approvals"],
    )
    async def approvals(key: Key, conversation_id: ConversationId) -> Approvals:
        """Tool calls waiting for a person, and every decision so far."""
        return await ask(key, conversation_id, contract.QUERY_APPROVALS, Approvals)

    @app.post(
        "/v1/conversations/{conversation_id}/approvals/{call_id}",
        response_model=ApprovalRecord,
        responses=_errors(404, 409),
        tags=["approvals"],
    )
    async def decide(
        key: Key,
        conversation_id: ConversationId,
        call_id: Annotated[str, Path(min_length=1, max_length=200)],
        decision: ApprovalRequest,
        idempotency_key: Annotated[str | None, _IDEMPOTENCY_KEY] = None,
    ) -> ApprovalRecord:
        """Approve (optionally with edited arguments) or reject a waiting tool call;
        answers with the audit record once the call has resumed."""
        handle = await handle_of(key, conversation_id)
        by = approver(key) + (f" for {decision.on_behalf_of}" if decision.on_behalf_of else "")
        answer: ApproveCall | RejectCall
        if decision.decision == "approve":
            answer = ApproveCall(
                call_id=call_id, by=by, arguments=decision.arguments, reason=decision.reason
            )
            name = contract.UPDATE_APPROVE
        else:
            answer = RejectCall(call_id=call_id, by=by, reason=decision.reason or "")
            name = contract.UPDATE_REJECT
        update_id = _request_id("approval", conversation_id, idempotency_key)
        try:
            record: ApprovalRecord = await calls.repeatable(
                lambda: handle.execute_update(
                    name,
                    answer,
                    id=update_id,
                    result_type=ApprovalRecord,
                    rpc_timeout=gateway.rpc_timeout,
                ),
                gateway,
                conversation_id,
            )
        except WorkflowUpdateFailedError as e:
            raise calls.refusal(e, conversation_id) from None
        log.info(
            "tool call %s",
            record.decision,
            extra={"conversation": conversation_id, "call_id": call_id, "by": by},
        )
        return record

    @app.post(
        "/v1/conversations/{conversation_id}/clearance",
        response_model=Clearance,
        responses=_errors(403, 404, 409),
        tags=["approvals"],
    )
    async def clear(
        key: Key,
        conversation_id: ConversationId,
        request: ClearanceRequest,
        idempotency_key: Annotated[str | None, _IDEMPOTENCY_KEY] = None,
    ) -> Clearance:
        """Vouch for the untrusted content in the context (see docs/security.md,
        "Provenance"): write/execute/admin calls stop waiting for approval because of it,
        until more comes in. 409 when there is nothing to clear, 403 for a key the
        conversation's policy does not list as an approver."""
        handle = await handle_of(key, conversation_id)
        by = approver(key) + (f" for {request.on_behalf_of}" if request.on_behalf_of else "")
        update_id = _request_id("clearance", conversation_id, idempotency_key)
        try:
            clearance: Clearance = await calls.repeatable(
                lambda: handle.execute_update(
                    contract.UPDATE_CLEAR_UNTRUSTED,
                    ClearUntrusted(by=by, reason=request.reason),
                    id=update_id,
                    result_type=Clearance,
                    rpc_timeout=gateway.rpc_timeout,
                ),
                gateway,
                conversation_id,
            )
        except WorkflowUpdateFailedError as e:
            raise calls.refusal(e, conversation_id) from None
        log.info("context cleared", extra={"conversation": conversation_id, "by": by})
        return clearance

    # --- events ------------------------------------------------------------------------------

    @app.get(
        "/v1/conversations/{conversation_id}/events",
        response_class=StreamingResponse,
        responses={
            200: {
                "content": {"text/event-stream": {"example": _SSE_EXAMPLE}},
                "description": "Server-Sent Events, one per item of the conversation's "
                "stream, `id` = the item's offset: a step as `event: <kind>` (`turn_started`, "
                "`model_call_started`, `model_call_finished`, `tool_call_started`, "
                "`tool_call_finished`, `approval_requested`, `approval_decided`, `reply`, "
                "`ended`) with a `ConversationEvent`, or model output of a streamed turn as "
                "`event: delta` with a `ModelDelta` (`kind` `text`, `thinking`, "
                "`tool_use_started`, `tool_use_finished`, or `restarted`: discard the text "
                "of the call's earlier attempts). `event: missed` (items no longer kept), "
                "`event: error` (a problem document), `event: end` (the conversation "
                "closed; nothing follows). Comment lines keep idle connections open.",
            },
            **_errors(404),
        },
        tags=["events"],
    )
    async def events(
        request: Request,
        key: Key,
        conversation_id: ConversationId,
        after: Annotated[
            int | None,
            Query(
                ge=0,
                description="Resume after the step event with this `seq` (= its offset + 1).",
            ),
        ] = None,
        deltas: Annotated[
            bool, Query(description="Include model output (`delta` events) of streamed turns.")
        ] = True,
        last_event_id: Annotated[
            str | None,
            Header(
                alias="Last-Event-ID",
                max_length=20,
                pattern=r"^\d+$",
                description="Resume after the item with this offset (the last `id` received).",
            ),
        ] = None,
    ) -> StreamingResponse:
        """Turn progress as Server-Sent Events: model and tool calls started and
        finished, approvals, replies, and the model's output as it is written when the
        turn is streamed (a message sent with ``stream``). Reconnect with
        ``Last-Event-ID`` (or ``after``) to resume without a gap; without either, the
        stream starts at the oldest item kept (a client that connects mid-turn gets
        the turn so far)."""
        handle = await handle_of(key, conversation_id)
        await calls.call(handle.describe(rpc_timeout=gateway.rpc_timeout), conversation_id)
        # Last-Event-ID is an offset; ``after`` a step's seq, which is its offset + 1.
        offset = int(last_event_id) if last_event_id is not None else (after or 0) - 1
        stream = event_stream(request, handle, gateway, offset, deltas=deltas)
        return StreamingResponse(
            stream,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    # --- operations ---------------------------------------------------------------------------

    @app.get("/health/live", response_model=Health, tags=["health"])
    async def live() -> Health:
        """The process serves requests."""
        return Health(status="ok")

    @app.get(
        "/health/ready",
        response_model=Health,
        responses={503: {"model": Health}},
        tags=["health"],
    )
    async def ready() -> Any:
        """Temporal answers and the gateway is not shutting down."""
        ok, reason = await gateway.ready()
        if ok:
            return Health(status="ok")
        return JSONResponse(Health(status="unavailable", reason=reason).model_dump(), 503)

    @app.get("/problems", response_model=list[ProblemTypeInfo], tags=["errors"])
    async def problem_types() -> list[ProblemTypeInfo]:
        """Every problem ``type`` the gateway answers with."""
        return [_type_info(p) for p in problems.CATALOG]

    @app.get(
        "/problems/{slug}",
        response_model=ProblemTypeInfo,
        responses=_errors(404),
        tags=["errors"],
    )
    async def problem_type(
        slug: Annotated[str, Path(max_length=64, pattern=r"^[a-z-]+$")],
    ) -> ProblemTypeInfo:
        """What a problem ``type`` means: each ``type`` URI resolves here."""
        kind = problems.BY_SLUG.get(slug)
        if kind is None:
            raise ProblemError(problems.NOT_FOUND, f"no problem type {slug!r}; see /problems")
        return _type_info(kind)

    return app


# --- helpers ---------------------------------------------------------------------------------

DOCS_ASSETS = "/docs/assets"
"""Where Swagger UI's and ReDoc's scripts are served from (the ``fastapi-offline``
package's copies), so the API docs work with no internet."""


def approver(key: GatewayKey) -> str:
    """Who a decision made with ``key`` is recorded as: ``<tenant>/<key name>``."""
    return f"{key.tenant}/{key.name}"


def _type_info(kind: problems.ProblemType) -> ProblemTypeInfo:
    return ProblemTypeInfo(
        type=kind.uri, status=kind.status, title=kind.title, description=kind.description
    )


def _install_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` with every asset served by the gateway."""
    import fastapi_offline

    assets = pathlib.Path(fastapi_offline.__file__).parent / "static"
    app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="docs-assets")
    favicon = f"{DOCS_ASSETS}/favicon.png"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=favicon,
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=favicon,
            with_google_fonts=False,
        )


def _conversation_input(
    settings: Settings, tenant: str, body: StartConversation, profiles: Profiles
) -> ConversationInput:
    """The start input: the agent profile named (if any) or the gateway's safety
    policy, the key's tenant, the body's choices."""
    base = ConversationInput(tenant=tenant, safety=settings.safety)
    if body.agent is not None:
        try:
            profile = profiles.get(body.agent)
        except UnknownProfile as e:
            raise ProblemError(
                problems.VALIDATION,
                str(e),
                errors=[problems.FieldError(location="body.agent", message=str(e))],
            ) from None
        safety = {} if profile.safety else {"safety": settings.safety}
        base = profile.conversation_input(body.agent, tenant=tenant, **safety)
    try:
        select_tools(body.tools)
    except KeyError as e:
        raise ProblemError(
            problems.VALIDATION,
            str(e).strip("\"'"),
            errors=[problems.FieldError(location="body.tools", message=str(e).strip("\"'"))],
        ) from None
    limits = _limits(body.limits, base.limits) if body.limits else base.limits
    chosen = body.model_dump(exclude_none=True, exclude={"limits", "agent"})
    try:
        return ConversationInput.model_validate(
            base.model_dump() | chosen | {"limits": limits, "tenant": tenant}
        )
    except ValidationError as e:
        raise ProblemError(
            problems.VALIDATION,
            "invalid conversation settings",
            errors=problems.field_errors(e.errors()),
        ) from None


def _limits(asked: ConversationLimits, defaults: ConversationLimits) -> ConversationLimits:
    """The gateway's limits with the ones ``asked`` for in their place; each may only
    be lowered (``null``, unlimited, is refused where the gateway has a limit)."""
    merged: dict[str, BudgetLimits] = {}
    errors = []
    for scope in ("turn", "conversation"):
        cap: BudgetLimits = getattr(defaults, scope)
        wanted: BudgetLimits = getattr(asked, scope)
        given = wanted.model_fields_set if scope in asked.model_fields_set else set()
        merged[scope] = cap.model_copy(update={name: getattr(wanted, name) for name in given})
        for name in given:
            most: Decimal | int | None = getattr(cap, name)
            value: Decimal | int | None = getattr(wanted, name)
            if most is not None and (value is None or value > most):
                errors.append(
                    problems.FieldError(
                        location=f"body.limits.{scope}.{name}",
                        message=f"may be at most {most} (the gateway's limit)",
                    )
                )
    if errors:
        raise ProblemError(problems.VALIDATION, "limits above the gateway's", errors=errors)
    return ConversationLimits(**merged)


def _request_id(kind: str, scope: str, idempotency_key: str | None, length: int = 32) -> str:
    """The id of a request's effect (a workflow or update id): derived from the
    ``Idempotency-Key`` within ``scope`` (the tenant, or the conversation), so a retry
    names the same effect; random without a key."""
    if idempotency_key is None:
        return f"{kind}-{uuid.uuid4().hex[:length]}"
    digest = hashlib.sha256(f"{scope}\n{idempotency_key}".encode()).hexdigest()
    return f"{kind}-{digest[:length]}"


def _links(workflow_id: str) -> Links:
    base = f"/v1/conversations/{workflow_id}"
    return Links(
        self=base,
        messages=f"{base}/messages",
        events=f"{base}/events",
        transcript=f"{base}/transcript",
    )


def _accepted(conversation_id: str, message_id: str) -> JSONResponse:
    location = f"/v1/conversations/{conversation_id}/messages/{message_id}"
    body = MessageAccepted(
        message_id=message_id, conversation_id=conversation_id, location=location
    )
    return JSONResponse(
        body.model_dump(mode="json"),
        status_code=202,
        headers={"Location": location, "Retry-After": "1"},
    )


def _reply_response(reply: Reply, conversation_id: str) -> Reply:
    problem = problems.reply_problem(reply, conversation_id)
    if problem is not None:
        raise problem
    return reply


def _page_token(page: str | None, tenant: str) -> bytes | None:
    """The Temporal page token inside ``page`` (see ``_page``); 422 for anything that is
    not one this gateway handed to ``tenant``."""
    if not page:
        return None
    try:
        raw = base64.urlsafe_b64decode(page.encode())
    except (ValueError, TypeError):
        raw = b""
    check, token = raw[:8], raw[8:]
    if not token or check != hashlib.sha256(tenant.encode() + b"\n" + token).digest()[:8]:
        raise ProblemError(
            problems.VALIDATION,
            "page is not a page token from a previous response",
            errors=[problems.FieldError(location="query.page", message="not a page token")],
        )
    return token


def _page(token: bytes | None, tenant: str) -> str | None:
    """A Temporal page token as ``next_page``: checksummed, so a mangled one is refused
    here instead of failing in Temporal."""
    if not token:
        return None
    check = hashlib.sha256(tenant.encode() + b"\n" + token).digest()[:8]
    return base64.urlsafe_b64encode(check + token).decode()
