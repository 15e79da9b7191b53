"""Worker and client configuration: one settings model, read from ``AGENT_*``
environment variables and an optional ``.env`` file.

Workflow code never reads settings (that would make it depend on the machine it
replays on); what a conversation needs travels in its start input.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from durable_agent.api_keys import GatewayKey
from durable_agent.codec import parse_keys
from durable_agent.contract import (
    DEFAULT_GOVERNOR_TASK_QUEUE,
    DEFAULT_MAX_TOKENS,
    DEFAULT_TASK_QUEUE,
    SafetyPolicy,
)
from durable_agent.governor import LeaseSizing, TenantLimits
from durable_agent.stores._location import store_location, url_passwords
from durable_agent.stream_batching import FlushPolicy
from durable_agent.tools.loading import parse_module_list
from durable_agent.toolsets import McpServerConfig, check_server_names

DEFAULT_CLAUDE_MODEL = "claude-sonnet-4-6"


class Settings(BaseSettings):
    """Every setting has a default that works for ``make demo`` on one machine."""

    model_config = SettingsConfigDict(
        env_prefix="AGENT_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # A validation error must not echo its input: it may be a key or other secret.
        hide_input_in_errors=True,
    )

    temporal_address: str = "127.0.0.1:7233"
    """Temporal frontend ``host:port``."""
    temporal_namespace: str = "default"
    temporal_tls: bool = False
    """Connect to Temporal over TLS (implied by a client certificate or an API key)."""
    temporal_tls_cert: Path | None = None
    """Client certificate (PEM) for mTLS."""
    temporal_tls_key: Path | None = None
    """Private key (PEM) of the client certificate."""
    temporal_tls_ca: Path | None = None
    """CA certificate (PEM) to trust instead of the system roots."""
    temporal_api_key: SecretStr | None = None
    """API key for Temporal Cloud; never logged."""
    task_queue: str = DEFAULT_TASK_QUEUE
    """Task queue the worker polls and clients start conversations on."""
    governor_task_queue: str = DEFAULT_GOVERNOR_TASK_QUEUE
    """Task queue of the per-tenant governor workflows; every worker polls it too."""

    model_backend: str = Field(default="auto", pattern="^(auto|claude|offline)$")
    """``claude``, ``offline``, or ``auto``: Claude when ``ANTHROPIC_API_KEY`` is set."""
    model: str = DEFAULT_CLAUDE_MODEL
    """Claude model used when a conversation does not name one."""
    max_tokens: int = Field(default=DEFAULT_MAX_TOKENS, ge=1)
    anthropic_base_url: str | None = None
    """Messages API base URL; ``None`` uses ``ANTHROPIC_BASE_URL`` or the SDK default."""
    anthropic_api_key: SecretStr | None = Field(default=None, validation_alias="ANTHROPIC_API_KEY")
    """Only from the environment (``ANTHROPIC_API_KEY``); never enters a workflow."""

    model_timeout_seconds: float = Field(default=120.0, gt=0)
    """HTTP timeout of one Messages API request (a timeout is retried by policy)."""
    prompt_caching: bool = True
    """Mark prompt-cache breakpoints on Claude requests (tools, system prompt, transcript)
    so each call reads the conversation so far from the cache at a tenth of the input
    price; ``false`` sends none (to measure the difference, or for a gateway that rejects
    ``cache_control``)."""

    stream_interval_seconds: float = Field(default=0.25, gt=0, le=60)
    """History budget of a streamed model call: its deltas may add one history event
    per this interval (docs/streaming.md). The first delta goes out at once, then
    batches are published when the budget affords one (every
    ``interval * events_per_flush`` seconds: 1 s with the defaults)."""
    stream_events_per_flush: float = Field(default=4.0, gt=0, le=100)
    """History events one publish of deltas costs: the signal and the workflow task it
    wakes (4, measured by ``bench/streaming.py``)."""
    stream_final_flush_seconds: float = Field(default=5.0, gt=0, le=600)
    """How long a model call waits, when its answer is complete, for its last deltas to
    reach the stream before it returns anyway (deltas are not the record: the reply is)."""
    offline_stream_pace_seconds: float = Field(default=0.02, ge=0, le=10)
    """Seconds between the words the offline planner streams (only when a turn is
    streamed), so the demo shows text as it comes; 0: all at once."""

    log_level: str = Field(default="INFO", pattern="^(?i:debug|info|warning|error|critical)$")
    """Log level of the worker."""
    log_format: str = Field(default="json", pattern="^(json|text)$")
    """``json`` (one object per line, for production) or ``text`` (for development)."""
    secret_patterns: list[str] = []
    """Extra regular expressions whose matches are redacted from logs (JSON list)."""
    metrics_host: str = "127.0.0.1"
    """Address the Prometheus ``/metrics`` endpoint binds (``0.0.0.0`` in containers)."""
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    """Port of the Prometheus ``/metrics`` endpoint; 0 turns metrics off."""
    otlp_endpoint: str | None = None
    """OTLP/gRPC endpoint for traces (e.g. ``http://otel-collector:4317``); unset: off."""
    service_name: str = "durable-agent-worker"
    """``service.name`` of exported traces."""
    health_host: str = "127.0.0.1"
    """Address the health probes bind (``0.0.0.0`` in containers, for the orchestrator)."""
    health_port: int = Field(default=8081, ge=0, le=65535)
    """Port of ``/health/live``, ``/health/ready`` and ``/health/deep``; 0 turns them off."""
    shutdown_grace_seconds: float = Field(default=30.0, ge=0)
    """On SIGTERM/SIGINT, how long in-flight activities may still run before they are
    cancelled (and retried elsewhere by their policy)."""

    encryption_keys: SecretStr | None = None
    """Payload encryption keys, ``id:base64key`` separated by commas (AES, 16, 24 or 32
    bytes; ``python -m durable_agent.codec new-key`` makes one). The first encrypts; all
    decrypt, so a new key goes first and old ones stay until their histories are gone.
    Unset: payloads are stored unencrypted. Never logged."""
    codec_host: str = "127.0.0.1"
    """Address the codec server (``python -m durable_agent.codec_server``) binds."""
    codec_port: int = Field(default=8888, ge=0, le=65535)
    """Port of the codec server's ``/encode`` and ``/decode``."""
    codec_cors_origins: list[str] = ["http://localhost:8233", "http://127.0.0.1:8233"]
    """Web UI origins allowed to call the codec server from a browser (JSON list)."""

    transcript_cache_conversations: int = Field(default=256, ge=0)
    """Transcripts the model activity keeps per worker, so a model call is sent only the
    newest messages; a miss asks the workflow (a query). 0: always ask."""

    # Worker tuning (the conversations' task queue). ``None``: the SDK's default.
    max_cached_workflows: int = Field(default=1000, ge=0)
    """Conversations kept in the worker's memory between turns (sticky cache); an evicted
    one replays its run's history when it next works."""
    workflow_task_slots: int | None = Field(default=None, ge=1)
    """Workflow tasks run at once (SDK default 100)."""
    activity_slots: int | None = Field(default=None, ge=1)
    """Activities (model and tool calls) run at once (SDK default 100)."""
    local_activity_slots: int | None = Field(default=None, ge=1)
    """Local activities (leases, fast tools) run at once (SDK default 100)."""
    workflow_task_pollers: int | None = Field(default=None, ge=1)
    """Concurrent long polls for workflow tasks (SDK default 5)."""
    activity_task_pollers: int | None = Field(default=None, ge=1)
    """Concurrent long polls for activity tasks (SDK default 5)."""
    malloc_trim_seconds: float = Field(default=1.0, ge=0)
    """Every how many seconds the worker gives freed heap memory back to the OS (glibc's
    ``malloc_trim``; ``durable_agent.process.return_free_memory``). 0: never."""
    gc_threshold: int = Field(default=10_000, ge=0)
    """Allocations between the garbage collector's young-generation passes in the worker
    (Python's default is 700; 0 keeps it). The worker also freezes its start-up objects
    out of the collector (``durable_agent.process.settle_heap``)."""

    notes_db: Path | str = Field(default=Path(".data/notes.sqlite3"), repr=False)
    """Where the notes store lives: a SQLite file (a path or ``sqlite:///path``), shared
    by the workers of one machine, or a ``postgresql://user:password@host:5432/db`` URL,
    shared by workers on many (its password is redacted from logs, and the setting is
    left out of ``repr``). Read as a ``Path`` for SQLite, the URL text for PostgreSQL."""
    blob_db: Path | str = Field(default=Path(".data/blobs.sqlite3"), repr=False)
    """Where the blob store (large tool results, compacted turns) lives: a SQLite file or
    a PostgreSQL URL, as ``notes_db`` (which it may equal)."""
    tool_result_inline_bytes: int = Field(default=16 * 1024, ge=256)
    """Tool results larger than this go to the blob store; history keeps a preview."""
    weather_url: str = "https://api.open-meteo.com"
    """Open-Meteo-compatible forecast API base URL."""
    geocoding_url: str = "https://geocoding-api.open-meteo.com"
    """Open-Meteo-compatible geocoding API base URL."""
    search_url: str | None = None
    """SearXNG-compatible search API base URL; ``web_search`` fails (it is optional) when unset."""
    http_timeout_seconds: float = Field(default=10.0, gt=0)
    """Per-request timeout of the HTTP tools."""
    tool_modules: Annotated[list[str], NoDecode] = []
    """Python modules of user tools (``@tool``) the worker loads at start: comma-separated
    or a JSON list, e.g. ``acme_tools.orders,acme_tools.crm``. Clients load them too, to
    check the tool names a conversation asks for (docs/tools.md)."""
    tool_entry_points: bool = True
    """Also load the tools of installed packages' ``durable_agent.tools`` entry points."""
    mcp_servers: dict[str, McpServerConfig] = {}
    """MCP servers by name, as JSON: ``{"orders": {"command": "orders-mcp", "args": []},
    "crm": {"url": "https://crm.example/mcp", "headers_from_env": {"Authorization":
    "CRM_MCP_AUTH"}}}``. Credentials are named, never written here (docs/tools.md)."""
    profiles_file: Path | None = None
    """Agent profiles (YAML or TOML) that ``start --agent NAME``, the client API and the
    gateway's ``{"agent": NAME}`` start conversations from (docs/tools.md)."""

    tenant_daily_usd: Decimal | None = Field(default=Decimal("100"), ge=0)
    """Default daily US-dollar budget of a tenant (all its conversations); empty: none."""
    tenant_model_calls_per_minute: float | None = Field(default=600.0, gt=0)
    """Default sustained model-call rate of a tenant; empty: unlimited."""
    tenant_burst: int = Field(default=60, ge=1)
    """Default model calls a tenant may make at once before the rate applies."""
    tenant_limits: dict[str, TenantLimits] = {}
    """Per-tenant overrides as JSON, e.g. ``{"acme": {"daily_usd": "5"}}``."""
    governor_lease_calls: int = Field(default=16, ge=1)
    """Model calls a conversation may take from its tenant's governor at once (a lease)."""
    governor_lease_usd: Decimal = Field(default=Decimal("0.50"), gt=0)
    """Dollars per lease (more when one call's worst case needs it). Smaller leases
    share a tight daily budget more finely; larger ones ask the governor less often."""
    governor_lease_seconds: float = Field(default=60.0, gt=0, le=3600)
    """How long a lease may be spent from before the conversation asks again."""

    safety: SafetyPolicy = SafetyPolicy()
    """Safety policy of the conversations the CLI starts, as JSON, e.g.
    ``{"approval_levels": ["write", "execute", "admin"], "blocked_patterns": ["(?i)secret"]}``
    (a conversation carries its policy in its start input; see ``SafetyPolicy``)."""

    gateway_host: str = "127.0.0.1"
    """Address the HTTP gateway binds (``0.0.0.0`` in containers)."""
    gateway_port: int = Field(default=8000, ge=0, le=65535)
    gateway_keys: list[GatewayKey] = []
    """API keys of the gateway as JSON: ``[{"name": "billing-svc", "tenant": "acme",
    "sha256": "<hex>"}]`` (``python -m durable_agent.gateway new-key --tenant acme``
    makes a key and prints its entry). Only hashes are configured."""
    gateway_cors_origins: list[str] = []
    """Browser origins allowed to call the gateway (JSON list); empty: none."""
    gateway_requests_per_second: float = Field(default=20.0, gt=0)
    """Default sustained request rate of one API key, on each gateway replica."""
    gateway_burst: int = Field(default=40, ge=1)
    gateway_wait_seconds: float = Field(default=60.0, gt=0, le=600)
    """How long ``POST …/messages`` waits for the reply before answering 202 with a
    location to poll (a turn waiting for approval may take far longer)."""
    gateway_rpc_timeout_seconds: float = Field(default=10.0, gt=0)
    """Deadline of each Temporal call the gateway makes (503 past it)."""
    gateway_events_poll_seconds: float = Field(default=0.1, gt=0, le=10)
    """How often an event stream asks its conversation for new items at the fastest
    (once a model call starts); it slows to 0.25 s while the model's output flows and
    to once a second when nothing is written (docs/streaming.md)."""
    gateway_stream_seconds: float = Field(default=3600.0, gt=0)
    """Longest life of one event stream (clients reconnect with ``Last-Event-ID``)."""
    gateway_metrics_port: int = Field(default=9465, ge=0, le=65535)
    """Port of the gateway's Prometheus ``/metrics`` (bound on ``gateway_host``); 0: off."""
    gateway_max_body_bytes: int = Field(default=512 * 1024, ge=1024, le=4 * 1024 * 1024)
    """Largest request body the gateway reads (413 above it). The default holds the
    longest message the safety policy allows (32,000 characters), even with every
    character escaped as a JSON surrogate pair (12 bytes each)."""

    approver: str | None = Field(default=None, min_length=1, max_length=100)
    """Who the CLI records as deciding ``approve``/``reject`` (the audit list's ``by``);
    unset: the operating-system user, ``user@host``. The gateway records the API key
    instead. Anyone with access to the Temporal namespace can claim any name: see
    docs/security.md."""

    @field_validator(
        "search_url",
        "profiles_file",
        "anthropic_base_url",
        "otlp_endpoint",
        "anthropic_api_key",
        "temporal_api_key",
        "encryption_keys",
        "temporal_tls_cert",
        "temporal_tls_key",
        "temporal_tls_ca",
        "tenant_daily_usd",
        "tenant_model_calls_per_minute",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("tool_modules", mode="before")
    @classmethod
    def _module_list(cls, value: object) -> object:
        return parse_module_list(value) if isinstance(value, str) else value

    @field_validator("mcp_servers")
    @classmethod
    def _server_names(cls, value: dict[str, McpServerConfig]) -> dict[str, McpServerConfig]:
        check_server_names(value)
        return value

    @field_validator("notes_db", "blob_db", mode="before")
    @classmethod
    def _store_location(cls, value: object) -> object:
        return store_location(value) if isinstance(value, str) else value

    @field_validator("encryption_keys")
    @classmethod
    def _valid_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_keys(value.get_secret_value())  # raises naming the entry, not the key
        return value

    @field_validator("temporal_address")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit():
            # Never the value itself: a mistyped setting may hold a secret.
            raise ValueError("expected host:port, e.g. 127.0.0.1:7233")
        return value

    def limits_for(self, tenant: str) -> TenantLimits:
        """The limits of ``tenant``: its override, or the defaults above."""
        return self.tenant_limits.get(tenant) or TenantLimits(
            daily_usd=self.tenant_daily_usd,
            model_calls_per_minute=self.tenant_model_calls_per_minute,
            burst=self.tenant_burst,
        )

    def worker_tuning(self) -> dict[str, int]:
        """``temporalio.worker.Worker`` options for the conversations' queue."""
        options = {
            "max_cached_workflows": self.max_cached_workflows,
            "max_concurrent_workflow_tasks": self.workflow_task_slots,
            "max_concurrent_activities": self.activity_slots,
            "max_concurrent_local_activities": self.local_activity_slots,
            "max_concurrent_workflow_task_polls": self.workflow_task_pollers,
            "max_concurrent_activity_task_polls": self.activity_task_pollers,
        }
        return {name: value for name, value in options.items() if value is not None}

    def flush_policy(self) -> FlushPolicy:
        """How fast a streamed model call publishes its deltas."""
        return FlushPolicy(
            interval_seconds=self.stream_interval_seconds,
            events_per_flush=self.stream_events_per_flush,
        )

    def lease_sizing(self) -> LeaseSizing:
        """How big the leases the tenant governors grant are."""
        return LeaseSizing(
            calls=self.governor_lease_calls,
            usd=self.governor_lease_usd,
            seconds=self.governor_lease_seconds,
        )

    def held_secrets(self) -> list[str]:
        """The credentials configured here, as plain text (to redact, never to print)."""
        held = [s.get_secret_value() for s in (self.anthropic_api_key, self.temporal_api_key) if s]
        if self.encryption_keys:  # each key, not the id:key list
            entries = self.encryption_keys.get_secret_value().split(",")
            held += [entry.partition(":")[2].strip() for entry in entries]
        for location in (self.notes_db, self.blob_db):
            if isinstance(location, str):  # a database URL
                held += url_passwords(location)
        return held

    def use_claude(self) -> bool:
        """Whether the model activity talks to the Messages API."""
        if self.model_backend == "auto":
            return self.anthropic_api_key is not None
        return self.model_backend == "claude"
