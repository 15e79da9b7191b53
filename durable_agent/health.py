"""Health probes of a worker process, served on ``AGENT_HEALTH_HOST:AGENT_HEALTH_PORT``.

- ``GET /health/live``: 200 ``{"status": "ok"}`` while the process runs.
- ``GET /health/ready``: 200 ``{"status": "ok"}`` while the worker reaches Temporal and
  its workers poll their task queues; else 503 ``{"status": "unavailable", "reason": …}``
  — ``starting``, ``shutting down`` (from the first moment of a graceful shutdown), a
  worker that stopped polling, or Temporal unreachable.
- ``GET /health/deep``: readiness, then the model endpoint: for Claude the Messages API's
  ``GET /v1/models?limit=1`` (a listing, never a billable call); the offline model is
  always up. The body names the backend: ``{"status": "ok", "model": "claude"}``.

Each dependency check has a short timeout and its result is kept for a second or two,
so probes stay cheap however often they come, and concurrent probes share one check.
Reasons are built from status codes and exception types, never from error messages
that could echo a request, so no key reaches a response or a log line.

Served as a plain ASGI app on uvicorn (``durable_agent._http``, as the gateway); the
routes answer GET and HEAD, any other method 405, an unknown path 404, a request uvicorn
cannot parse or a path over 8 KiB 400.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from durable_agent.config import Settings

if TYPE_CHECKING:
    import anthropic
    from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("durable_agent.health")

LIVE, READY, DEEP = "/health/live", "/health/ready", "/health/deep"
CACHE_SECONDS = 1.5
"""How long a dependency check's result is reused."""
TEMPORAL_TIMEOUT_SECONDS = 2.0
"""Deadline of the Temporal RPC (below ``deploy/healthcheck.py``'s 3 s)."""
MODEL_TIMEOUT_SECONDS = 3.0
"""Timeout of the model endpoint request."""
_MAX_PATH = 8192
_METHODS = ("GET", "HEAD")


@dataclass(frozen=True)
class Check:
    """The outcome of one health check."""

    ok: bool
    reason: str = ""
    """Why not ok; safe to show (no secrets)."""


OK = Check(True)


class CachedCheck:
    """Runs ``check`` at most once per ``ttl`` seconds; concurrent callers share a run."""

    def __init__(self, check: Callable[[], Awaitable[Check]], ttl: float) -> None:
        self._check = check
        self._ttl = ttl
        self._lock = asyncio.Lock()
        self._last: Check | None = None
        self._at = 0.0

    async def __call__(self) -> Check:
        async with self._lock:
            if self._last is None or time.monotonic() - self._at >= self._ttl:
                self._last = await self._check()
                self._at = time.monotonic()
            return self._last


class ModelProbe(Protocol):
    """Checks the model endpoint without a billable call."""

    name: str
    """The backend, as reported by ``/health/deep``."""

    async def check(self) -> Check: ...

    async def close(self) -> None: ...


class OfflineModelProbe:
    """The offline model runs in the worker: up whenever the worker is."""

    name = "offline"

    async def check(self) -> Check:
        return OK

    async def close(self) -> None:
        pass


class ClaudeModelProbe:
    """Lists one model (``GET /v1/models?limit=1``) with the worker's key and base URL."""

    name = "claude"

    def __init__(self, client: anthropic.AsyncAnthropic) -> None:
        self._client = client

    async def check(self) -> Check:
        import anthropic  # loaded with the client (``model_probe``): a no-op

        try:
            async with asyncio.timeout(MODEL_TIMEOUT_SECONDS + 1):  # the SDK's is per phase
                await self._client.models.list(limit=1)
        except anthropic.APIStatusError as e:
            return Check(False, f"model endpoint answered HTTP {e.status_code}")
        except (anthropic.APITimeoutError, TimeoutError):
            return Check(False, f"model endpoint timed out after {MODEL_TIMEOUT_SECONDS:g}s")
        except anthropic.APIConnectionError:
            return Check(False, "model endpoint unreachable")
        return OK

    async def close(self) -> None:
        await self._client.close()


def model_probe(settings: Settings) -> ModelProbe:
    """The probe for the backend ``settings`` select (the same one the worker uses)."""
    if not settings.use_claude():
        return OfflineModelProbe()
    # Imported only for Claude: the SDK is ~60 MiB of resident memory.
    import anthropic

    key = settings.anthropic_api_key
    return ClaudeModelProbe(
        anthropic.AsyncAnthropic(
            api_key=key.get_secret_value() if key else None,
            base_url=settings.anthropic_base_url,
            timeout=MODEL_TIMEOUT_SECONDS,
            max_retries=0,  # a probe reports what it sees now
        )
    )


_SLOW = frozenset({RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED})
"""How an RPC whose deadline passed fails (the SDK's core reports it as either)."""


class TemporalCheck:
    """Whether ``client`` reaches Temporal: one cheap RPC (``GetSystemInfo``) with a
    short deadline (``timeout`` seconds). A refusal (Temporal down, a bad address) is
    reported at once; a missed deadline only when the check before it missed too: a
    loaded machine can miss one short deadline now and then (readiness would flap and
    requests get 503 while Temporal is fine), a hung Temporal misses every one."""

    def __init__(self, client: Client, timeout: float = TEMPORAL_TIMEOUT_SECONDS) -> None:
        self._client = client
        self._timeout = timeout
        self._missed = False

    async def __call__(self) -> Check:
        timeout = self._timeout
        try:
            async with asyncio.timeout(timeout + 1):  # in case the deadline is not honoured
                await self._client.workflow_service.get_system_info(
                    GetSystemInfoRequest(), timeout=timedelta(seconds=timeout)
                )
        except RPCError as e:
            if e.status not in _SLOW:
                self._missed = False
                return Check(False, f"Temporal unreachable ({e.status.name})")
            reason = f"Temporal did not answer within {timeout:g}s ({e.status.name})"
        except TimeoutError:
            reason = f"Temporal did not answer within {timeout:g}s"
        else:
            self._missed = False
            return OK
        missed_before, self._missed = self._missed, True
        if not missed_before:
            log.info("Temporal was slow to answer a health check once: %s", reason)
            return OK
        return Check(False, reason)


class Health:
    """What the probes report. The worker tells it when it serves and when it stops."""

    def __init__(self, model: ModelProbe, *, cache_seconds: float = CACHE_SECONDS) -> None:
        self.model = model
        self._cache_seconds = cache_seconds
        self._model_check = CachedCheck(model.check, cache_seconds)
        self._temporal_check: CachedCheck | None = None
        self._workers: Sequence[Worker] = ()
        self._stopping = False
        self._last_ready = Check(False, "starting")

    def serving(self, client: Client, workers: Sequence[Worker]) -> None:
        """The workers have started: from now on ready means they run and ``client``
        reaches Temporal."""
        self._temporal_check = CachedCheck(TemporalCheck(client), self._cache_seconds)
        self._workers = workers

    def stopping(self) -> None:
        """A graceful shutdown has begun: never ready again."""
        self._stopping = True

    async def ready(self) -> Check:
        """Connected to Temporal and polling, and not shutting down."""
        check = await self._readiness()
        if check.ok != self._last_ready.ok:  # log changes, not every probe
            if check.ok:
                log.info("ready")
            else:
                log.warning("not ready: %s", check.reason)
        self._last_ready = check
        return check

    async def deep(self) -> Check:
        """Ready, and the model endpoint answers."""
        check = await self.ready()
        return await self._model_check() if check.ok else check

    async def _readiness(self) -> Check:
        if self._stopping:
            return Check(False, "shutting down")
        if self._temporal_check is None:
            return Check(False, "starting")
        idle = [w.task_queue for w in self._workers if not w.is_running]
        if idle:
            return Check(False, f"not polling task queue {idle[0]!r}")
        return await self._temporal_check()

    async def respond(self, path: str) -> tuple[int, dict[str, str]]:
        """Status and JSON body for a GET of ``path``."""
        if path == LIVE:
            return 200, {"status": "ok"}
        if path == READY:
            check, extra = await self.ready(), {}
        elif path == DEEP:
            check, extra = await self.deep(), {"model": self.model.name}
        else:
            return 404, {"status": "not found"}
        if check.ok:
            return 200, {"status": "ok", **extra}
        return 503, {"status": "unavailable", "reason": check.reason, **extra}


def health_app(health: Health) -> ASGIApp:
    """The probes of ``health`` as an ASGI app: three fixed paths, GET and HEAD, JSON
    bodies. Plain ASGI rather than FastAPI: a worker serving probes would otherwise load
    FastAPI for them alone, ~5 MiB of every worker's resident memory (issue 13)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if len(scope.get("raw_path") or b"") > _MAX_PATH:
            status, body = 400, {"status": "bad request"}
        elif scope["method"] not in _METHODS:  # refused before the path is looked at
            status, body = 405, {"status": "method not allowed"}
        elif scope["path"] not in (LIVE, READY, DEEP):
            status, body = 404, {"status": "not found"}
        else:
            status, body = await health.respond(scope["path"])
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(content)).encode()),
            (b"cache-control", b"no-store"),
        ]
        if status == 405:
            headers.append((b"allow", ", ".join(_METHODS).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        head = scope["method"] == "HEAD"
        await send({"type": "http.response.body", "body": b"" if head else content})

    return app


@asynccontextmanager
async def serve_health(health: Health, host: str, port: int) -> AsyncIterator[int | None]:
    """Serve the probes of ``health`` on ``host:port`` for the duration of the block and
    yield the bound port (``None`` when ``port`` is 0: probes off); close ``health``'s
    model probe afterwards."""
    try:
        if not port:
            yield None
            return
        # Here, not at the top: a worker with its probes off never loads uvicorn (~2 MiB).
        from durable_agent._http import serve_app

        async with serve_app(health_app(health), host, port, "health probes") as bound:
            log.info("health probes on http://%s:%d/health/{live,ready,deep}", host, bound)
            yield bound
    finally:
        await health.model.close()
