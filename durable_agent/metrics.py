"""Process metrics on ``prometheus-client``: one registry per process with the process's
own collectors (CPU, memory, open files, GC), the metrics of its HTTP server, and the
Temporal client's ``temporal_*`` metrics, served on one ``/metrics`` port.

The HTTP gateway uses it. The worker does not: workflows and activities record the
agent's ``durable_agent_*`` metrics through the SDK's replay-safe meters (a replayed
workflow task records nothing twice), which the SDK runtime's own exporter serves
(``telemetry.sdk_runtime``). The gateway runs no workflow code, so its SDK runtime
records into a ``MetricBuffer`` that ``SdkMetrics`` drains into the registry, keeping
the client metrics' names and labels as the SDK's exporter writes them.
"""

from __future__ import annotations

import contextlib
import threading
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    start_http_server,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from temporalio.runtime import (
    BUFFERED_METRIC_KIND_COUNTER,
    BUFFERED_METRIC_KIND_GAUGE,
    MetricBuffer,
    MetricBufferDurationFormat,
)

SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
"""Histogram buckets of durations in seconds: a gateway request may wait a minute for a
reply (``AGENT_GATEWAY_WAIT_SECONDS``), a Temporal RPC takes milliseconds."""
SDK_BUFFER_SIZE = 100_000
"""Metric updates the SDK core holds between two drains (a drain each second)."""
DRAIN_SECONDS = 1.0


def process_registry(*collectors: Collector) -> CollectorRegistry:
    """A registry with the process's collectors (``process_*``, ``python_gc_*``,
    ``python_info``) and ``collectors``; each process serves one."""
    registry = CollectorRegistry()
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR, *collectors):
        registry.register(collector)
    return registry


@dataclass
class _Series:
    """One labelled series of a bridged SDK metric."""

    value: float = 0.0
    buckets: list[int] = field(default_factory=list)  # histograms: counts per bucket
    count: int = 0


class SdkMetrics(Collector):
    """The Temporal SDK core's metrics as a ``prometheus-client`` collector: give
    ``buffer`` to ``telemetry.sdk_runtime``; updates are drained each second and at
    each scrape (the SDK drops updates once its buffer is full)."""

    def __init__(self, buffer_size: int = SDK_BUFFER_SIZE) -> None:
        self.buffer = MetricBuffer(buffer_size, MetricBufferDurationFormat.SECONDS)
        self._lock = threading.Lock()
        # name → (kind, description, labels → series)
        self._metrics: dict[str, tuple[int, str, dict[tuple[tuple[str, str], ...], _Series]]] = {}

    def drain(self) -> None:
        """Fold the updates buffered since the last drain into the series."""
        with self._lock:
            for update in self.buffer.retrieve_updates():
                metric = update.metric
                kind, _, series = self._metrics.setdefault(
                    metric.name, (metric.kind, metric.description or metric.name, {})
                )
                labels = tuple(sorted((k, str(v)) for k, v in update.attributes.items()))
                one = series.setdefault(labels, _Series())
                if kind == BUFFERED_METRIC_KIND_COUNTER:
                    one.value += update.value
                elif kind == BUFFERED_METRIC_KIND_GAUGE:
                    one.value = update.value
                else:  # a histogram: cumulative buckets are made at collection
                    one.buckets = one.buckets or [0] * (len(SECONDS_BUCKETS) + 1)
                    one.buckets[bisect_left(SECONDS_BUCKETS, update.value)] += 1
                    one.value += update.value
                    one.count += 1

    def collect(self) -> Iterable[Metric]:
        self.drain()
        with self._lock:
            for name, (kind, description, series) in sorted(self._metrics.items()):
                yield _family(name, kind, description, series)

    def describe(self) -> Iterable[Metric]:
        return ()  # names are known only once the SDK records them


def _family(
    name: str, kind: int, description: str, series: dict[tuple[tuple[str, str], ...], _Series]
) -> Metric:
    if kind == BUFFERED_METRIC_KIND_COUNTER:
        family = Metric(name, description, "counter")
        for labels, one in series.items():
            family.add_sample(name, dict(labels), one.value)
        return family
    if kind == BUFFERED_METRIC_KIND_GAUGE:
        family = Metric(name, description, "gauge")
        for labels, one in series.items():
            family.add_sample(name, dict(labels), one.value)
        return family
    family = Metric(name, description, "histogram")
    bounds = [*(str(float(b)) for b in SECONDS_BUCKETS), "+Inf"]
    for labels, one in series.items():
        cumulative = 0
        for bound, count in zip(bounds, one.buckets, strict=True):
            cumulative += count
            family.add_sample(f"{name}_bucket", {**dict(labels), "le": bound}, cumulative)
        family.add_sample(f"{name}_count", dict(labels), one.count)
        family.add_sample(f"{name}_sum", dict(labels), one.value)
    return family


@contextlib.contextmanager
def serve_metrics(
    registry: CollectorRegistry, host: str, port: int, sdk: SdkMetrics | None = None
) -> Iterator[int]:
    """Serve ``registry`` at ``http://host:port/metrics`` (0: any free port) on a thread
    of its own for the duration of the block, draining ``sdk`` each second; yield the
    bound port."""
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as e:
        raise RuntimeError(f"metrics cannot listen on {host}:{port}: {e}") from e
    stop = threading.Event()
    drainer = None
    if sdk is not None:

        def drain() -> None:
            while not stop.wait(DRAIN_SECONDS):
                sdk.drain()

        drainer = threading.Thread(target=drain, name="sdk-metrics", daemon=True)
        drainer.start()
    try:
        yield int(server.server_port)
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join()
        if drainer is not None:
            drainer.join()
