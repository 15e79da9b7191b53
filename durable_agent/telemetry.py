"""Process-wide telemetry: the Temporal SDK's runtime (its core's logs forwarded into
our logging, Prometheus metrics), and OpenTelemetry traces exported over OTLP.

The SDK core (Rust) writes its own log lines to stdout unless told otherwise: during a
Temporal outage that was ANSI-coloured text among the JSON lines. ``sdk_runtime``
forwards them to the ``temporalio.core`` Python logger instead, so they come out as
JSON on stderr, redacted, like every other line.

In the worker the SDK's runtime serves ``/metrics`` with its own worker and client
metrics plus the agent's (``durable_agent_*``), which workflows and activities emit
through their replay-safe metric meters; the gateway's process metrics are on
``prometheus-client`` (``durable_agent.metrics``). Traces use the SDK's
``TracingInterceptor`` on clients and workers, so a conversation is one trace across
start, updates, workflow and activities.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from opentelemetry import trace
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    MetricBuffer,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)

if TYPE_CHECKING:  # the OpenTelemetry SDK (~3 MiB resident, psutil included) and the
    # Temporal interceptor that needs it load only when tracing is on
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from temporalio.contrib.opentelemetry import TracingInterceptor

TRACER_NAME = "durable_agent"
CORE_LOGGER = "temporalio.core"
"""The Python logger the SDK core's log lines are forwarded to."""


def sdk_runtime(
    metrics_address: str | None = None,
    *,
    core_level: str = "WARN",
    buffer: MetricBuffer | None = None,
) -> Runtime:
    """The process's Temporal runtime, made its default: the core's logs at
    ``core_level`` and above forwarded to ``CORE_LOGGER`` (our JSON on stderr), and
    Prometheus metrics at ``metrics_address``/metrics when given, or into ``buffer``
    (the gateway's ``metrics.SdkMetrics``). Worker and gateway build theirs here, before
    their first client."""
    runtime = Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(
                filter=TelemetryFilter(core_level=core_level, other_level=core_level),
                forwarding=LogForwardingConfig(
                    logger=logging.getLogger(CORE_LOGGER),
                    # The formatter lifts target and fields into fields of their own.
                    append_target_to_name=False,
                    prepend_target_on_message=False,
                    append_log_fields_to_message=False,
                ),
            ),
            metrics=(
                PrometheusConfig(bind_address=metrics_address, durations_as_seconds=True)
                if metrics_address
                else buffer
            ),
        )
    )
    # Clients made without an explicit runtime (readiness probes, helpers) use it too.
    Runtime.set_default(runtime, error_if_already_set=False)
    return runtime


def metrics_runtime(bind_address: str) -> Runtime:
    """``sdk_runtime`` serving Prometheus metrics at ``host:port``/metrics."""
    return sdk_runtime(bind_address)


def configure_tracing(
    service_name: str, endpoint: str | None = None, exporter: SpanExporter | None = None
) -> TracerProvider | None:
    """Install a global tracer provider exporting to ``endpoint`` (OTLP/gRPC) or to
    ``exporter``; with neither, tracing stays off (spans are no-ops)."""
    if exporter is None:
        if endpoint is None:
            return None
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=endpoint, insecure=endpoint.startswith("http://"))
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider


def tracing_interceptor() -> TracingInterceptor:
    """The SDK's interceptor; put it on the client (workers built from it inherit it)."""
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return TracingInterceptor(trace.get_tracer(TRACER_NAME))


def tracing_interceptors() -> list[TracingInterceptor]:
    """``[tracing_interceptor()]`` once a tracer provider is installed (``configure_tracing``,
    or the application's own); none while tracing is off. Off, every span is a no-op, yet
    the interceptor wraps each workflow in span contexts that a cached conversation keeps
    (2-3 KiB of heap each: issue 13) and runs on every activation. It writes nothing to
    history either way (an empty header), so turning tracing on or off replays the same.
    Ask after ``configure_tracing``: a provider installed later is not seen."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return []
    return [tracing_interceptor()]


def tracer() -> trace.Tracer:
    """The tracer for the agent's own spans (e.g. model calls)."""
    return trace.get_tracer(TRACER_NAME)
