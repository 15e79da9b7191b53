"""Start-up imports, kept to what a process uses.

temporalio's generated service packages (``TEMPORAL_SERVICE_PACKAGES``) end with
``try: import grpc; from .service_pb2_grpc import ...Stub``: gRPC stubs for code that
calls the Temporal API through grpcio. The SDK never does (its client is the Rust
core), yet the first import of ``temporalio.client`` loads grpcio and its Cython core,
~9 MiB resident in every worker and gateway. grpcio is installed for the OTLP trace
exporter alone (``durable_agent.telemetry``, with tracing on).

Nothing here imports temporalio at the top: an entry point calls
``load_temporal_api_without_grpc`` before its first import of the SDK.
"""

from __future__ import annotations

import contextlib
import importlib
import sys

__all__ = ["TEMPORAL_SERVICE_PACKAGES", "load_temporal_api_without_grpc"]

TEMPORAL_SERVICE_PACKAGES = (
    "temporalio.api.workflowservice.v1",
    "temporalio.api.operatorservice.v1",
    "temporalio.api.testservice.v1",
    "temporalio.api.cloud.cloudservice.v1",
)
"""The temporalio packages whose ``__init__`` imports grpc when it can (all four are
loaded by ``temporalio.client`` anyway)."""


def load_temporal_api_without_grpc() -> None:
    """Import ``TEMPORAL_SERVICE_PACKAGES`` with grpc hidden, so they load without their
    gRPC stubs; grpc stays importable afterwards (the OTLP exporter imports it when
    tracing is on).

    Does nothing once grpc or ``temporalio.api`` is loaded: the packages may hold their
    stubs already, and a grpc someone imported must not be hidden.
    """
    if "grpc" in sys.modules or "temporalio.api" in sys.modules:
        return
    # A None entry makes `import grpc` raise ImportError, which the packages catch.
    sys.modules["grpc"] = None  # type: ignore[assignment]
    try:
        for name in TEMPORAL_SERVICE_PACKAGES:
            # A later SDK may drop one; the worker must still start (just heavier).
            with contextlib.suppress(ModuleNotFoundError):
                importlib.import_module(name)
    finally:
        del sys.modules["grpc"]
