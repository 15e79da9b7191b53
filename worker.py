"""Run a durable-agent worker: ``python worker.py [--task-queue Q] [--server HOST:PORT]``.

A worker hosts ``AgentWorkflow`` and its activities. Run as many as you like, on as
many machines as you like, against one Temporal service: they share nothing but
Temporal and the notes and blob stores (PostgreSQL across machines). Configuration
comes from ``AGENT_*`` environment variables (see ``durable_agent.config.Settings``);
flags override the common ones.
"""

from __future__ import annotations

# isort: off
# First, before anything imports temporalio: its API packages then load without the
# gRPC stubs the SDK never uses (~9 MiB resident; durable_agent.imports).
from durable_agent.imports import load_temporal_api_without_grpc

load_temporal_api_without_grpc()
# isort: on

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, aclosing, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.worker import Worker

from activities.compaction import CompactionActivities
from activities.governor import GovernorActivities
from activities.llm import ModelActivities, ModelBackend, OfflineBackend
from activities.mcp import McpActivities, held_credentials
from activities.observability import LatencyInterceptor
from activities.tools import ToolActivities
from activities.tools._http_client import LazyHttpClient
from activities.tools._offload import Offloader
from activities.tools.functions import FunctionTools
from activities.transcripts import TranscriptCache
from durable_agent.client import connect_with
from durable_agent.config import Settings
from durable_agent.health import Health, model_probe, serve_health
from durable_agent.logs import Redactor, configure_logging
from durable_agent.process import exit_now, freeing_memory, settle_heap
from durable_agent.stores.blobs import open_blob_store
from durable_agent.stores.notes import open_note_store
from durable_agent.telemetry import configure_tracing, sdk_runtime, tracing_interceptors
from durable_agent.tools.loading import load_tools
from workflows import CONVERSATION_WORKFLOWS, GOVERNOR_WORKFLOWS, WORKFLOW_RUNNER

if TYPE_CHECKING:
    import anthropic

log = logging.getLogger("durable_agent.worker")


@dataclass
class WorkerResources:
    """What the worker builds once and injects into its activities."""

    backend: ModelBackend
    activities: list[Callable[..., Any]]


def build_backend(settings: Settings) -> tuple[ModelBackend, anthropic.AsyncAnthropic | None]:
    """Claude when configured (or a key is present under ``auto``), else the offline model."""
    if not settings.use_claude():
        return OfflineBackend(pace_seconds=settings.offline_stream_pace_seconds), None
    # Imported here, at start-up, only for Claude: the SDK is ~60 MiB of resident memory.
    import anthropic

    from activities.claude import ClaudeBackend

    key = settings.anthropic_api_key
    client = anthropic.AsyncAnthropic(
        api_key=key.get_secret_value() if key else None,
        base_url=settings.anthropic_base_url,
        timeout=settings.model_timeout_seconds,
        max_retries=0,  # Temporal owns retries: every attempt is visible in history.
    )
    backend = ClaudeBackend(
        client, settings.model, prompt_caching=settings.prompt_caching, redact=redactor(settings)
    )
    return backend, client


def redactor(settings: Settings) -> Redactor:
    """Removes the configured credentials and secret patterns from text (logs, errors)."""
    return Redactor(secret_values(settings), settings.secret_patterns)


def secret_values(settings: Settings) -> list[str]:
    """The credentials this process holds, as plain text (to redact, never to print):
    the settings' own and the MCP servers' (``McpActivities.held_secrets``)."""
    return settings.held_secrets() + held_credentials(settings.mcp_servers)


@asynccontextmanager
async def worker_resources(settings: Settings, client: Client) -> AsyncIterator[WorkerResources]:
    """Open the model client, the HTTP tools' client (made when one first runs), the
    notes and blob stores (SQLite or PostgreSQL, as configured), load the user tool
    modules (``ToolLoadError``: the worker must not start); close them after. ``client``
    is the worker's Temporal client (the governor activity uses it)."""
    backend, claude = build_backend(settings)
    notes = open_note_store(settings.notes_db)
    blobs = open_blob_store(settings.blob_db)
    try:
        async with aclosing(LazyHttpClient(timeout_seconds=settings.http_timeout_seconds)) as http:
            tools = ToolActivities(settings, notes, http, blobs)
            # Before any workflow runs: the conversations resolve user tools by name.
            user_tools = load_tools(
                settings.tool_modules, use_entry_points=settings.tool_entry_points
            )
            for loaded in user_tools:
                log.info("user tool %r loaded from %s", loaded.tool.name, loaded.origin)
            offload = Offloader(blobs, settings.tool_result_inline_bytes)
            functions = FunctionTools([loaded.tool for loaded in user_tools], offload)
            mcp = McpActivities(settings.mcp_servers, offload)
            governor = GovernorActivities(
                client, settings.limits_for, settings.governor_task_queue, settings.lease_sizing()
            )
            model = ModelActivities(
                backend,
                client,
                blobs,
                TranscriptCache(settings.transcript_cache_conversations),
                flush_policy=settings.flush_policy(),
                final_flush_seconds=settings.stream_final_flush_seconds,
            )
            yield WorkerResources(
                backend=backend,
                activities=[
                    model.invoke,
                    *CompactionActivities(model).activities(),
                    *governor.activities(),
                    *tools.activities(),
                    *functions.activities(),
                    *mcp.activities(),
                ],
            )
    finally:
        await notes.close()
        await blobs.close()
        if claude is not None:
            await claude.close()


@asynccontextmanager
async def serving(
    client: Client,
    resources: WorkerResources,
    task_queue: str,
    governor_task_queue: str,
    *,
    graceful_shutdown: timedelta = timedelta(seconds=30),
    max_cached_workflows: int = 1000,
    tuning: Mapping[str, int] | None = None,
) -> AsyncIterator[list[Worker]]:
    """Poll ``task_queue`` for conversations and their activities, and
    ``governor_task_queue`` for tenant governors, until the block exits. ``tuning``:
    more ``Worker`` options for the conversations' queue (``Settings.worker_tuning``)."""
    options = {"max_cached_workflows": max_cached_workflows, **(tuning or {})}
    workers = [
        Worker(
            client,
            task_queue=task_queue,
            workflows=CONVERSATION_WORKFLOWS,
            activities=resources.activities,
            workflow_runner=WORKFLOW_RUNNER,
            interceptors=[LatencyInterceptor()],
            graceful_shutdown_timeout=graceful_shutdown,
            # The SDK echoes an update's input in its rejection: its own size check
            # turned a refused >2 MB message into WorkflowTaskFailed retries; the
            # server drops such a speculative task at once, leaving history clean.
            disable_payload_error_limit=True,
            **options,  # type: ignore[arg-type]
        ),
        # Governors have a queue of their own: one per tenant, shared by every
        # deployment, they must not depend on which conversation queue first asked.
        Worker(
            client,
            task_queue=governor_task_queue,
            workflows=GOVERNOR_WORKFLOWS,
            workflow_runner=WORKFLOW_RUNNER,
        ),
    ]
    async with AsyncExitStack() as stack:
        for worker in workers:
            await stack.enter_async_context(worker)
        yield workers


def start_telemetry(settings: Settings) -> Runtime | None:
    """Logs, traces and (when a port is set) the Prometheus runtime of this process."""
    secrets = secret_values(settings)
    configure_logging(
        settings.log_level, settings.log_format, secrets=secrets, patterns=settings.secret_patterns
    )
    configure_tracing(settings.service_name, settings.otlp_endpoint)
    metrics = f"{settings.metrics_host}:{settings.metrics_port}" if settings.metrics_port else None
    return sdk_runtime(metrics)  # also forwards the SDK core's logs into ours


async def run_worker(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM, then shut down gracefully: readiness turns 503, the
    workers stop polling, in-flight activities get ``shutdown_grace_seconds`` to finish
    (then they are cancelled and retried elsewhere), and this returns."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runtime = start_telemetry(settings)
    # A bad tool module stops the worker here, before it connects to anything.
    load_tools(settings.tool_modules, use_entry_points=settings.tool_entry_points)
    health = Health(model_probe(settings))
    async with serve_health(health, settings.health_host, settings.health_port):
        client = await connect_with(settings, runtime=runtime, interceptors=tracing_interceptors())
        async with (
            worker_resources(settings, client) as resources,
            serving(
                client,
                resources,
                settings.task_queue,
                settings.governor_task_queue,
                graceful_shutdown=timedelta(seconds=settings.shutdown_grace_seconds),
                tuning=settings.worker_tuning(),
            ) as workers,
        ):
            health.serving(client, workers)
            log.info(
                "worker polling task queue %r on %s (model backend: %s)",
                settings.task_queue,
                settings.temporal_address,
                resources.backend.name,
            )
            settle_heap(settings.gc_threshold)
            async with freeing_memory(settings.malloc_trim_seconds):
                await stop.wait()
            health.stopping()
            log.info(
                "shutting down: no new work; in-flight activities have %gs to finish",
                settings.shutdown_grace_seconds,
            )
    log.info("worker stopped")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task-queue", help="task queue to poll (AGENT_TASK_QUEUE)")
    parser.add_argument("--server", help="Temporal address host:port (AGENT_TEMPORAL_ADDRESS)")
    parser.add_argument("--namespace", help="Temporal namespace (AGENT_TEMPORAL_NAMESPACE)")
    return parser.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> Settings:
    overrides = {
        "task_queue": args.task_queue,
        "temporal_address": args.server,
        "temporal_namespace": args.namespace,
    }
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def describe_invalid_settings(error: ValidationError) -> str:
    """Which settings are invalid and why, without their values (one may be a secret)."""
    lines = [
        f"  {'.'.join(map(str, e['loc']))}: {e['msg']}"
        for e in error.errors(include_url=False, include_input=False)
    ]
    return "\n".join(["invalid settings (AGENT_* environment variables or .env):", *lines])


def main(argv: Sequence[str] | None = None) -> None:
    code = 0
    try:
        asyncio.run(run_worker(settings_from_args(parse_args(argv))))
    except ValidationError as e:
        print(f"worker: {describe_invalid_settings(e)}", file=sys.stderr)
        code = 1
    except (RuntimeError, ValueError) as e:
        print(f"worker: {e}", file=sys.stderr)
        code = 1
    exit_now(code)


if __name__ == "__main__":
    main()
