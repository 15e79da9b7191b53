"""Process-wide telemetry: Prometheus metrics through the Temporal SDK's runtime, and
OpenTelemetry traces exported over OTLP.

The SDK's runtime serves ``/metrics`` with its own worker and client metrics plus the
agent's (``durable_agent_*``), which workflows and activities emit through their
replay-safe metric meters. Traces use the SDK's ``TracingInterceptor`` on clients and
workers, so a conversation is one trace across start, updates, workflow and activities.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

TRACER_NAME = "durable_agent"


def metrics_runtime(bind_address: str) -> Runtime:
    """A Temporal runtime serving Prometheus metrics at ``host:port``/metrics."""
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(bind_address=bind_address, durations_as_seconds=True)
        )
    )


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
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider


def tracing_interceptor() -> TracingInterceptor:
    """The SDK's interceptor; put it on the client (workers built from it inherit it)."""
    return TracingInterceptor(trace.get_tracer(TRACER_NAME))


def tracer() -> trace.Tracer:
    """The tracer for the agent's own spans (e.g. model calls)."""
    return trace.get_tracer(TRACER_NAME)
