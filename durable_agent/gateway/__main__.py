"""Run the HTTP gateway, or make an API key for it.

    python -m durable_agent.gateway                      # serve on AGENT_GATEWAY_HOST:PORT
    python -m durable_agent.gateway --port 8000
    python -m durable_agent.gateway new-key --tenant acme --name billing-svc

``new-key`` prints the key once (give it to the service) and the entry to add to
``AGENT_GATEWAY_KEYS`` (which holds only its hash).
"""

from __future__ import annotations

# isort: off
# First, before anything imports temporalio: its API packages then load without the
# gRPC stubs the SDK never uses (~9 MiB resident; durable_agent.imports).
from durable_agent.imports import load_temporal_api_without_grpc

load_temporal_api_without_grpc()
# isort: on

import argparse
import contextlib
import json
import logging
import sys
from types import FrameType

import uvicorn
from pydantic import ValidationError

from durable_agent.config import Settings
from durable_agent.gateway.guards import ProblemHTTPProtocol
from durable_agent.gateway.keys import GatewayKey, hash_key, new_key
from durable_agent.logs import configure_logging
from durable_agent.process import exit_now

log = logging.getLogger("durable_agent.gateway")

SHUTDOWN_GRACE_SECONDS = 10
"""On SIGTERM: event streams end at once; other requests get this long to finish."""


class _Server(uvicorn.Server):
    """uvicorn, telling the app the moment a shutdown begins (so event streams end and
    readiness fails before connections are drained)."""

    def __init__(self, config: uvicorn.Config, on_exit: list[object]) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        for app in self._on_exit:
            app.state.gateway.stopping.set()  # type: ignore[attr-defined]
        super().handle_exit(sig, frame)
        # uvicorn re-raises the signal after a graceful shutdown (exit status -15); a
        # shutdown that went as planned exits 0, like the worker.
        self._captured_signals.clear()


def serve(settings: Settings, host: str, port: int) -> None:
    from durable_agent.gateway.app import create_app

    configure_logging(
        settings.log_level,
        settings.log_format,
        secrets=settings.held_secrets(),
        patterns=settings.secret_patterns,
    )
    if settings.otlp_endpoint:
        from durable_agent.telemetry import configure_tracing

        configure_tracing("durable-agent-gateway", settings.otlp_endpoint)
    from durable_agent.metrics import SdkMetrics, process_registry, serve_metrics
    from durable_agent.telemetry import sdk_runtime

    # Always a runtime of ours: it forwards the SDK core's log lines into our JSON logs.
    # With metrics on, the Temporal client's metrics join the process's registry.
    sdk = SdkMetrics() if settings.gateway_metrics_port else None
    runtime = sdk_runtime(buffer=sdk.buffer if sdk else None)
    registry = process_registry(sdk) if sdk else None
    app = create_app(settings, runtime=runtime, registry=registry)
    if not settings.gateway_keys:
        log.warning("no API keys configured (AGENT_GATEWAY_KEYS): every request gets 401")
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # our logging: JSON lines, redacted
        access_log=False,  # the app logs each request with its tenant and route
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
        proxy_headers=False,
        http=ProblemHTTPProtocol,  # a request it cannot parse gets a problem, not text
    )
    server = _Server(config, [app])
    with contextlib.ExitStack() as serving:
        if registry is not None and sdk is not None:
            serving.enter_context(serve_metrics(registry, host, settings.gateway_metrics_port, sdk))
        log.info("gateway listening on http://%s:%d", host, port)
        server.run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m durable_agent.gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    parser.add_argument("--host", help="bind address (default AGENT_GATEWAY_HOST)")
    parser.add_argument("--port", type=int, help="port (default AGENT_GATEWAY_PORT)")
    key = sub.add_parser("new-key", help="make an API key and print its configuration entry")
    key.add_argument("--tenant", required=True)
    key.add_argument("--name", required=True, help="who holds the key (kept in audit records)")
    args = parser.parse_args(argv)
    if args.command == "new-key":
        secret = new_key()
        try:
            entry = GatewayKey(name=args.name, tenant=args.tenant, sha256=hash_key(secret))
        except ValidationError as e:
            print(f"error: {e.errors()[0]['loc'][0]}: {e.errors()[0]['msg']}", file=sys.stderr)
            return 2
        print(f"API key (shown once, give it to {args.name}): {secret}")
        print("AGENT_GATEWAY_KEYS entry:")
        print(json.dumps(entry.model_dump()))
        return 0
    try:
        settings = Settings()
    except ValidationError as e:
        print(f"configuration error: {e}", file=sys.stderr)
        return 2
    serve(settings, args.host or settings.gateway_host, args.port or settings.gateway_port)
    return 0


if __name__ == "__main__":
    exit_now(main())
