"""What a gateway process holds: configuration, keys, rate buckets, metrics and one
lazily connected Temporal client. No conversation state: that is all in Temporal."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.service import RPCError

from durable_agent.client import has_search_attributes
from durable_agent.config import Settings
from durable_agent.gateway import problems
from durable_agent.gateway.keys import KeyRing, RateLimits
from durable_agent.gateway.problems import ProblemError
from durable_agent.health import CachedCheck, TemporalCheck
from durable_agent.metrics import SECONDS_BUCKETS

log = logging.getLogger("durable_agent.gateway")

_CONNECT_TIMEOUT_SECONDS = 5.0
REACHABLE_TIMEOUT_SECONDS = 1.0
"""Deadline of the reachability check every request shares (kept for ``CACHE_SECONDS``):
when Temporal is down (refused at once) or hangs (two deadlines missed in a row: one
alone is forgiven, see ``TemporalCheck``) requests get 503 within a few seconds, not after
the RPC timeout."""
CACHE_SECONDS = 1.0


class GatewayMetrics:
    """The gateway's Prometheus metrics (``durable_agent_gateway_*``) on ``registry``
    (a private one by default), served with the process's metrics on
    ``AGENT_GATEWAY_METRICS_PORT``. Routes are templates, never raw paths or keys."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "durable_agent_gateway_requests",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "durable_agent_gateway_request_seconds",
            "HTTP request duration by route.",
            ["route", "method"],
            buckets=SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.streams = Gauge(
            "durable_agent_gateway_event_streams", "Event streams open now.", registry=self.registry
        )

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request of ``route`` (a template) and its duration."""
        self.requests.labels(route, method, str(status)).inc()
        self.seconds.labels(route, method).observe(seconds)

    def stream(self, delta: int) -> None:
        self.streams.inc(delta)


class Gateway:
    """What the application holds: configuration, keys, rate buckets and one lazily
    connected Temporal client (no conversation state)."""

    def __init__(
        self,
        settings: Settings,
        connect: Callable[[], Awaitable[Client]] | None = None,
        runtime: Runtime | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.metrics = GatewayMetrics(registry)
        self.keys = KeyRing(settings.gateway_keys)
        self.rates = RateLimits(settings.gateway_requests_per_second, settings.gateway_burst)
        self.rpc_timeout = timedelta(seconds=settings.gateway_rpc_timeout_seconds)
        self.stopping = asyncio.Event()
        self._connect = connect or self._connect_with_settings
        self._client: Client | None = None
        self._lock = asyncio.Lock()
        self._ready: CachedCheck | None = None
        self._search_attributes: bool | None = None
        self._search_attributes_next = 0.0

    async def _connect_with_settings(self) -> Client:
        from durable_agent.client import connect_with
        from durable_agent.telemetry import tracing_interceptor

        return await connect_with(
            self.settings, runtime=self.runtime, interceptors=[tracing_interceptor()]
        )

    async def client(self) -> Client:
        """The Temporal client, connecting on first use; 503 while Temporal is down."""
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                try:
                    async with asyncio.timeout(_CONNECT_TIMEOUT_SECONDS):
                        self._client = await self._connect()
                except (RuntimeError, TimeoutError, RPCError, OSError) as e:
                    log.warning("cannot connect to Temporal: %s", type(e).__name__)
                    raise ProblemError(
                        problems.TEMPORAL_UNAVAILABLE,
                        f"cannot connect to Temporal at {self.settings.temporal_address}",
                        retry_after_seconds=1.0,
                    ) from None
                client = self._client
                self._ready = CachedCheck(
                    TemporalCheck(client, REACHABLE_TIMEOUT_SECONDS), CACHE_SECONDS
                )
            return self._client

    async def reachable_client(self) -> Client:
        """``client()``, or 503 at once while the shared reachability check (the one
        readiness reports) says Temporal is down: a request then does not wait out the
        SDK's retries until its RPC deadline."""
        client = await self.client()
        assert self._ready is not None
        check = await self._ready()
        if not check.ok:
            raise ProblemError(problems.TEMPORAL_UNAVAILABLE, check.reason, retry_after_seconds=1.0)
        return client

    async def ready(self) -> tuple[bool, str | None]:
        if self.stopping.is_set():
            return False, "shutting down"
        try:
            await self.client()
        except ProblemError as e:
            return False, e.detail
        assert self._ready is not None
        check = await self._ready()
        return check.ok, check.reason or None

    async def search_attributes(self, client: Client) -> bool:
        """Whether the namespace has the ``Agent*`` search attributes: a yes is kept, a
        no is asked again after a minute (they may be registered after we started)."""
        now = time.monotonic()
        if self._search_attributes is not True and now >= self._search_attributes_next:
            self._search_attributes = await has_search_attributes(client)
            self._search_attributes_next = now + 60.0
        return bool(self._search_attributes)
