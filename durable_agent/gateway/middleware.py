"""Error handlers (every error an RFC 9457 problem, no stack trace) and the access log
with request metrics."""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError

from durable_agent.gateway import problems
from durable_agent.gateway.calls import rpc_problem
from durable_agent.gateway.problems import MEDIA_TYPE, ProblemError
from durable_agent.gateway.service import GatewayMetrics

log = logging.getLogger("durable_agent.gateway")


def _problem_response(request: Request, error: ProblemError) -> JSONResponse:
    document = error.document(request.url.path)
    return JSONResponse(
        document.model_dump(mode="json", exclude_none=True),
        status_code=error.kind.status,
        media_type=MEDIA_TYPE,
        headers=error.response_headers(),
    )


def install_error_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ProblemError)
        return _problem_response(request, error)

    async def on_validation(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        errors = problems.field_errors(error.errors())
        detail = "; ".join(f"{e.location}: {e.message}" for e in errors[:5])
        return _problem_response(request, ProblemError(problems.VALIDATION, detail, errors=errors))

    async def on_http(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        status = error.status_code
        if status == 404:
            problem = ProblemError(
                problems.NOT_FOUND, f"no route {request.method} {request.url.path}"
            )
        elif status == 405:
            problem = ProblemError(problems.METHOD_NOT_ALLOWED, str(error.detail))
        elif status >= 500:
            problem = ProblemError(problems.INTERNAL, "internal error")
        else:  # a status with no problem type of its own
            return JSONResponse(
                {"type": "about:blank", "title": str(error.detail), "status": status},
                status_code=status,
                media_type=MEDIA_TYPE,
            )
        return _problem_response(request, problem)

    async def on_rpc(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RPCError)
        return _problem_response(request, rpc_problem(error, None))

    async def on_other(request: Request, error: Exception) -> JSONResponse:
        log.error(
            "unhandled %s on %s %s",
            type(error).__name__,
            request.method,
            request.url.path,
            exc_info=error,
        )
        return _problem_response(request, ProblemError(problems.INTERNAL, "internal error"))

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RPCError, on_rpc)
    app.add_exception_handler(Exception, on_other)


def install_access_log(app: FastAPI) -> None:
    access = logging.getLogger("durable_agent.gateway.access")

    @app.middleware("http")
    async def log_request(request: Request, call_next: Any) -> Response:
        started = time.monotonic()
        response: Response = await call_next(request)
        seconds = time.monotonic() - started
        template: str | None = getattr(request.scope.get("route"), "path", None)
        metrics: GatewayMetrics = request.app.state.gateway.metrics
        # Route templates only (or "unmatched"): bounded label values.
        metrics.request(template or "unmatched", request.method, response.status_code, seconds)
        access.info(
            "%s %s %d",
            request.method,
            template or request.url.path,
            response.status_code,
            extra={
                "event": "request",
                "method": request.method,
                "route": template,
                "status": response.status_code,
                "tenant": getattr(request.state, "tenant", None),
                "seconds": round(seconds, 4),
            },
        )
        return response
