"""What every tool activity shares: argument parsing and one classified HTTP GET.

Failure classes, and who sees them:

- the arguments are wrong → ``ToolResult(outcome="invalid_arguments")``: the model
  sees it and can fix its call; retrying cannot help.
- the service says no (4xx other than 408/429), redirects, or answers nonsense →
  ``ToolResult(outcome="error")``: the model sees it.
- the service is down, slow, overloaded or the connection broke (5xx, 408, 429,
  timeouts, transport errors) → ``ApplicationError(type=TOOL_TRANSIENT_ERROR)``: the
  tool's retry policy applies, honouring ``retry-after`` (parsed, and capped, as for
  the model call).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import auto_heartbeat
from durable_agent.activity_models import ToolCall, ToolResult
from durable_agent.config import Settings
from durable_agent.retry_classification import parse_retry_after
from durable_agent.tools.registry import TOOL_TRANSIENT_ERROR, describe_validation_error

if TYPE_CHECKING:  # imported with the tools' client, on first use (_http_client)
    import httpx

_M = TypeVar("_M", bound=BaseModel)

_TRANSIENT_STATUSES = frozenset({408, 429})

TOOL_NOT_ALLOWED = "ToolRequestNotAllowed"
"""``ApplicationError.type`` of a request a tool may not make (never retried)."""


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.port


def parse_arguments(model: type[_M], call: ToolCall) -> _M | ToolResult:
    """The call's arguments as ``model``, or the ``invalid_arguments`` result to return."""
    try:
        return model.model_validate(call.arguments)
    except ValidationError as e:
        return ToolResult(outcome="invalid_arguments", content=describe_validation_error(e))


async def get_json(
    http: httpx.AsyncClient,
    url: str,
    *,
    params: dict[str, str | int | float],
    call: ToolCall,
    service: str,
    response_model: type[_M],
    timeout_seconds: float,
) -> _M | ToolResult:
    """GET ``url`` and parse the JSON body as ``response_model``, heartbeating while
    waiting. Returns an ``error`` result for what the model should see; raises a
    retryable ``ApplicationError`` for what a retry may fix.

    ``url`` is a configured base plus a fixed path: user input only ever travels in
    ``params``, and redirects are not followed, so a tool never talks to another host.
    Messages name the ``service``, never the URL (it may carry credentials).
    """
    import httpx  # loaded with ``http`` already: for its exception types

    try:
        async with auto_heartbeat():
            response = await http.get(
                url,
                params=params,
                headers={"Idempotency-Key": call.idempotency_key, "Accept": "application/json"},
                timeout=timeout_seconds,
                follow_redirects=False,
            )
    except httpx.TimeoutException as e:
        raise ApplicationError(f"{service} timed out", type=TOOL_TRANSIENT_ERROR) from e
    except httpx.TransportError as e:
        raise ApplicationError(
            f"{service} unreachable ({type(e).__name__})", type=TOOL_TRANSIENT_ERROR
        ) from e
    status = response.status_code
    if status >= 500 or status in _TRANSIENT_STATUSES:
        raise ApplicationError(
            f"{service} unavailable: HTTP {status}",
            type=TOOL_TRANSIENT_ERROR,
            next_retry_delay=_retry_after(response),
        )
    if status >= 400:
        activity.logger.info("%s answered HTTP %s", service, status)
        return ToolResult(outcome="error", content=f"{service} refused the request: HTTP {status}")
    if status >= 300:
        return ToolResult(
            outcome="error",
            content=f"{service} redirected the request (HTTP {status}); tools do not follow "
            "redirects",
        )
    try:
        return response_model.model_validate_json(response.content)
    except ValidationError:
        activity.logger.warning("%s answered with an unexpected body", service)
        return ToolResult(outcome="error", content=f"{service} gave an unexpected response")


def _retry_after(response: httpx.Response) -> timedelta | None:
    seconds = parse_retry_after(response.headers.get("retry-after"))
    return None if seconds is None else timedelta(seconds=seconds)


class HttpTool:
    """Base of the tools backed by an HTTP API: GETs JSON from a configured base URL
    with the configured timeout (see ``get_json`` for the error policy). ``http``
    returns the shared client (the worker's ``LazyHttpClient`` makes it on first use)."""

    def __init__(self, settings: Settings, http: Callable[[], httpx.AsyncClient]) -> None:
        self._settings = settings
        self._http = http

    async def _get(
        self,
        base_url: str,
        path: str,
        *,
        params: dict[str, str | int | float],
        call: ToolCall,
        service: str,
        response_model: type[_M],
    ) -> _M | ToolResult:
        url = base_url.rstrip("/") + path
        if _origin(url) != _origin(base_url) or not path.startswith("/"):
            # Defence in depth: paths are constants, but a tool must never be able to
            # reach a host other than the one configured for it.
            raise ApplicationError(
                f"{service}: refusing a request outside its configured base URL",
                type=TOOL_NOT_ALLOWED,
                non_retryable=True,
            )
        return await get_json(
            self._http(),
            url,
            params=params,
            call=call,
            service=service,
            response_model=response_model,
            timeout_seconds=self._settings.http_timeout_seconds,
        )
