"""The container deployment: Dockerfile, .dockerignore, docker-compose.yml and deploy/.

There is no Docker engine where this suite runs, so the stack is checked statically
(YAML and Dockerfile parsed, cross-references followed) and the two scripts the
containers run are executed for real: the health probe against a loopback HTTP server,
the search-attribute registration against a Temporal dev server.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from fnmatch import fnmatch
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client

from durable_agent import search_attributes
from durable_agent.client import connect
from durable_agent.config import Settings
from durable_agent.devserver import DevServer, free_port, temporal_binary
from durable_agent.gateway.__main__ import SHUTDOWN_GRACE_SECONDS
from durable_agent.testing.postgres import USER as POSTGRES_USER
from durable_agent.testing.postgres import PostgresServer, postgres_bin

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

REQUIRED_SERVICES = {
    "postgresql",
    "agent-database",
    "temporal",
    "temporal-admin-tools",
    "temporal-ui",
    "worker",
    "prometheus",
    "grafana",
    "otel-collector",
    "jaeger",
    "codec-server",
    "gateway",
}
# Long-running services whose image has no shell or HTTP client to run a probe with.
NO_HEALTHCHECK_POSSIBLE = {"otel-collector"}
HEALTH_PORT = 8081
METRICS_PORT = 9464
AGENT_SEARCH_ATTRIBUTES = {
    "AgentTenant": "Keyword",
    "AgentStatus": "Keyword",
    "AgentTurns": "Int",
    "AgentTokens": "Int",
    "AgentCostUsd": "Double",
}
AGENT_METRICS = [
    "durable_agent_model_requests",
    "durable_agent_tokens",
    "durable_agent_model_cost_usd",
    "durable_agent_tool_calls",
    "durable_agent_breaker_state",
    "durable_agent_model_latency_seconds",
    "durable_agent_tool_latency_seconds",
]
GATEWAY_METRICS_PORT = 9465
SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|PWD", re.IGNORECASE)
INTERPOLATION = re.compile(r"^\$\{[A-Z_][A-Z0-9_]*(:?[-?][^}]*)?\}$")


# --- helpers -------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(ROOT / "docker-compose.yml")
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def environment(service: dict[str, Any]) -> dict[str, str | None]:
    """A service's environment as a mapping, whichever of the two forms it uses."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {key: None if value is None else str(value) for key, value in env.items()}


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """Dependency → condition (the short list form means ``service_started``)."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path, container path) of every ``./…`` volume entry."""
    mounts = []
    for volume in service.get("volumes") or []:
        source, target = (
            (volume["source"], volume["target"])
            if isinstance(volume, dict)
            else volume.split(":")[:2]
        )
        if source.startswith("./"):
            mounts.append((source, target))
    return mounts


def named_volumes(service: dict[str, Any]) -> list[str]:
    names = []
    for volume in service.get("volumes") or []:
        source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
        if not source.startswith(("./", "/", "~")):
            names.append(source)
    return names


def seconds(duration: str) -> float:
    """A compose duration (``45s``, ``1m30s``, ``500ms``) in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def host_port(address: str) -> tuple[str, int]:
    """``temporal:7233`` or ``http://otel-collector:4317`` → (host, port)."""
    host, _, port = address.split("://")[-1].rstrip("/").rpartition(":")
    return host, int(port)


def container_settings(service: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings a service's container reads when the host sets none of the variables:
    ``${NAME:-default}`` is its default, and pass-through entries stay unset."""
    for name, value in environment(service).items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, re.sub(r"\$\{\w+:?-([^}]*)\}", r"\1", value))
    return Settings(_env_file=None)


def builds_from_the_dockerfile(service: dict[str, Any]) -> bool:
    build = service["build"]
    context, dockerfile = (
        (build, "Dockerfile")
        if isinstance(build, str)
        else (build.get("context", "."), build.get("dockerfile", "Dockerfile"))
    )
    return bool((ROOT / context / dockerfile).resolve() == ROOT / "Dockerfile")


def healthcheck_command(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return " ".join(test) if isinstance(test, list) else test


# --- Dockerfile ----------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    instructions = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    return instructions


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (k, _) in enumerate(instructions) if k == "FROM")
    return instructions[last_from:]


def base_images() -> list[str]:
    """The image of every stage, with ``ARG`` defaults substituted."""
    instructions = dockerfile_instructions()
    args = {}
    for keyword, rest in instructions:
        if keyword == "ARG" and "=" in rest:
            name, value = rest.split("=", 1)
            args[name] = value
    images = []
    for keyword, rest in instructions:
        if keyword == "FROM":
            image = rest.split()[0]
            images.append(re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image))
    return images


def test_dockerfile_is_multi_stage_on_python_311_slim() -> None:
    images = base_images()
    assert len(images) >= 2
    for image in images:
        assert re.fullmatch(r"python:3\.11-slim(-[a-z]+)?", image), image


def test_dockerfile_runs_as_a_fixed_non_root_user() -> None:
    users = [rest for keyword, rest in final_stage() if keyword == "USER"]
    assert users, "the final stage sets no USER"
    user = users[-1].split(":")[0]
    assert user.isdigit() and int(user) >= 1000, f"USER {users[-1]}: use a fixed non-root uid"


def test_dockerfile_has_no_build_tools_in_the_final_stage() -> None:
    final = " ".join(rest for keyword, rest in final_stage() if keyword == "RUN")
    for tool in ("build-essential", "gcc", "g++", "make ", "apt-get install", "curl"):
        assert tool not in final, f"{tool!r} in the final stage"


def test_dockerfile_installs_the_project_not_editable() -> None:
    runs = " ".join(rest for keyword, rest in dockerfile_instructions() if keyword == "RUN")
    assert re.search(r"pip install (--no-deps )?\.(\s|$|&)", runs), runs
    assert " -e " not in runs and "--editable" not in runs


def test_dockerfile_sets_unbuffered_output_and_a_worker_command() -> None:
    env = " ".join(rest for keyword, rest in final_stage() if keyword == "ENV")
    assert "PYTHONUNBUFFERED=1" in env
    cmd = [rest for keyword, rest in final_stage() if keyword == "CMD"]
    assert cmd and json.loads(cmd[-1]) in (["durable-agent-worker"], ["python", "worker.py"])


def test_dockerfile_console_scripts_exist_in_pyproject() -> None:
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["durable-agent-worker"] == "worker:main"
    assert scripts["durable-agent"] == "starter:main"


def test_dockerfile_exposes_health_and_metrics_ports() -> None:
    exposed = {
        int(port.split("/")[0])
        for keyword, rest in final_stage()
        if keyword == "EXPOSE"
        for port in rest.split()
    }
    assert {HEALTH_PORT, METRICS_PORT} <= exposed


def test_dockerfile_healthcheck_probes_liveness_with_python() -> None:
    checks = [rest for keyword, rest in final_stage() if keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    command = json.loads(checks[0][checks[0].index("CMD") + 3 :].strip())
    assert command[0] == "python" and command[-1] == "/health/live"
    assert command[1] in dockerfile_copy_targets()


def dockerfile_copy_targets() -> dict[str, str]:
    """Container path → build-context source of every single-file COPY."""
    targets = {}
    for keyword, rest in dockerfile_instructions():
        if keyword == "COPY" and not rest.startswith("--"):
            *sources, target = rest.split()
            if len(sources) == 1:
                targets[target] = sources[0]
    return targets


def test_dockerfile_copies_only_files_that_exist() -> None:
    for keyword, rest in dockerfile_instructions():
        if keyword == "COPY" and not rest.startswith("--from"):
            *sources, _ = rest.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: no such file"


# --- .dockerignore -------------------------------------------------------------


def dockerignore_patterns() -> list[tuple[bool, str]]:
    """(is exception, pattern) in order."""
    patterns = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            patterns.append((line.startswith("!"), line.lstrip("!").rstrip("/")))
    return patterns


def is_ignored(path: str) -> bool:
    """Docker's rule, simplified: the last pattern matching the path or a parent wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for exception, pattern in dockerignore_patterns():
        if any(fnmatch(c, pattern) for c in (candidates if not exception else [path])):
            ignored = not exception
    return ignored


def test_dockerignore_keeps_local_state_and_secrets_out() -> None:
    for path in (".venv/bin/python", ".data/notes.sqlite3", ".git/HEAD", ".env", ".pytest_cache/x"):
        assert is_ignored(path), path


def test_dockerignore_keeps_what_the_dockerfile_copies() -> None:
    for keyword, rest in dockerfile_instructions():
        if keyword == "COPY" and not rest.startswith("--from"):
            *sources, _ = rest.split()
            for source in sources:
                assert not is_ignored(source.rstrip("/")), f"{source} is .dockerignored"


# --- docker-compose.yml: structure ---------------------------------------------


def test_compose_has_every_service_and_no_version_key(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    assert "version" not in compose  # obsolete in the Compose specification
    assert set(services) >= REQUIRED_SERVICES


def test_images_are_pinned_to_versions(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if "build" in service:
            continue
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and re.match(r"v?\d+\.\d+", tag), f"{name}: pin {image}"


def test_depends_on_names_existing_services(services: dict[str, dict[str, Any]]) -> None:
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, service in services.items():
        for dependency, condition in depends_on(service).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert condition in conditions, f"{name}: {condition}"
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"


def test_long_running_services_have_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if service.get("restart") == "no":  # one-shot, e.g. temporal-admin-tools
            continue
        if name in NO_HEALTHCHECK_POSSIBLE:
            assert service.get("restart") == "unless-stopped", name
            continue
        assert "healthcheck" in service, f"{name} has no healthcheck"
        assert not service["healthcheck"].get("disable"), name
        assert service["healthcheck"]["test"], name
        assert service.get("restart") == "unless-stopped", name


def test_bind_mounted_files_exist(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for source, _ in bind_mounts(service):
            assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            assert source.startswith("./deploy/"), f"{name}: keep mounted config in deploy/"


def test_named_volumes_are_declared(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = set(compose.get("volumes") or {})
    used = {volume for service in services.values() for volume in named_volumes(service)}
    assert used <= declared
    assert "postgresql-data" in used


def test_no_literal_secrets(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key):
                assert value is None or INTERPOLATION.match(value), f"{name}: {key}={value!r}"
    text = (ROOT / "docker-compose.yml").read_text()
    assert "sk-ant-" not in text


# --- the worker ----------------------------------------------------------------


def test_worker_builds_from_the_dockerfile(services: dict[str, dict[str, Any]]) -> None:
    assert builds_from_the_dockerfile(services["worker"])


def test_worker_healthcheck_probes_readiness(services: dict[str, dict[str, Any]]) -> None:
    command = healthcheck_command(services["worker"])
    assert "/health/ready" in command
    probe = services["worker"]["healthcheck"]["test"][2]
    assert dockerfile_copy_targets()[probe] == "deploy/healthcheck.py"


def test_worker_environment_points_at_the_stack(services: dict[str, dict[str, Any]]) -> None:
    env = environment(services["worker"])
    host, port = host_port(env["AGENT_TEMPORAL_ADDRESS"] or "")
    assert host == "temporal" and port == 7233
    assert "7233" in str(services["temporal"].get("ports"))
    host, port = host_port(env["AGENT_OTLP_ENDPOINT"] or "")
    assert host in services and port == 4317
    assert env["AGENT_HEALTH_HOST"] == "0.0.0.0" and env["AGENT_METRICS_HOST"] == "0.0.0.0"
    assert int(env.get("AGENT_HEALTH_PORT") or HEALTH_PORT) == HEALTH_PORT
    assert int(env.get("AGENT_METRICS_PORT") or METRICS_PORT) == METRICS_PORT


def test_worker_api_key_only_passes_through(services: dict[str, dict[str, Any]]) -> None:
    env = environment(services["worker"])
    assert "ANTHROPIC_API_KEY" in env
    value = env["ANTHROPIC_API_KEY"]
    # No value: taken from the host only when set there. `${ANTHROPIC_API_KEY:-}`
    # would also do, but sets an empty key when the host has none.
    assert value is None or re.fullmatch(r"\$\{ANTHROPIC_API_KEY(:?-)?\}", value), value


def test_worker_gets_time_to_shut_down_gracefully(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert worker.get("stop_signal", "SIGTERM") == "SIGTERM"
    assert seconds(worker["stop_grace_period"]) > 30  # the worker's graceful shutdown


def test_worker_can_be_scaled(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert worker["deploy"]["replicas"] >= 2
    assert "container_name" not in worker and "ports" not in worker  # would clash


def test_worker_waits_for_temporal_and_search_attributes(
    services: dict[str, dict[str, Any]],
) -> None:
    deps = depends_on(services["worker"])
    assert deps["temporal"] == "service_healthy"
    assert deps["temporal-admin-tools"] == "service_completed_successfully"


def test_worker_stores_are_the_agent_database_on_the_stacks_postgres(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    worker, postgres = environment(services["worker"]), environment(services["postgresql"])
    database = services["agent-database"]["entrypoint"][-1]
    for name in ("AGENT_NOTES_DB", "AGENT_BLOB_DB"):
        url = urlsplit(worker[name] or "")
        assert url.scheme == "postgresql" and (url.hostname, url.port) == ("postgresql", 5432)
        assert url.path == f"/{database}" and url.username == postgres["POSTGRES_USER"]
        # The server's own password variable, never a literal.
        assert url.password == postgres["POSTGRES_PASSWORD"]
        assert INTERPOLATION.match(url.password or ""), url.password
    assert depends_on(services["worker"])["agent-database"] == "service_completed_successfully"
    settings = container_settings(services["worker"], monkeypatch)
    default_url = f"postgresql://temporal:temporal@postgresql:5432/{database}"
    assert settings.notes_db == settings.blob_db == default_url
    assert "temporal" in settings.held_secrets()  # the default password, redacted from logs


def test_worker_ports_are_exposed_by_the_image(services: dict[str, dict[str, Any]]) -> None:
    exposed = " ".join(rest for keyword, rest in final_stage() if keyword == "EXPOSE").split()
    for port in services["worker"].get("expose", []):
        assert str(port) in exposed


# --- the gateway -----------------------------------------------------------------------


def test_gateway_runs_the_workers_image(services: dict[str, dict[str, Any]]) -> None:
    gateway = services["gateway"]
    assert builds_from_the_dockerfile(gateway)
    assert gateway["image"] == services["worker"]["image"]
    assert gateway["command"] == ["python", "-m", "durable_agent.gateway"]
    assert gateway.get("restart") == "unless-stopped" and gateway.get("init") is True


def test_gateway_environment_points_at_the_stack(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = container_settings(services["gateway"], monkeypatch)
    worker = container_settings(services["worker"], monkeypatch)
    assert host_port(settings.temporal_address) == ("temporal", 7233)
    assert settings.temporal_namespace == worker.temporal_namespace
    assert settings.task_queue == worker.task_queue  # it starts the workers' workflows
    assert settings.gateway_host == "0.0.0.0"  # its default, loopback, is unreachable
    assert settings.gateway_metrics_port == GATEWAY_METRICS_PORT
    host, port = host_port(settings.otlp_endpoint or "")
    assert host in services and port == 4317


def test_gateway_publishes_its_port_on_loopback_only(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = services["gateway"]
    settings = container_settings(gateway, monkeypatch)
    assert f"127.0.0.1:8000:{settings.gateway_port}" in gateway["ports"]
    assert all(str(port).startswith("127.0.0.1:") for port in gateway["ports"])
    assert str(settings.gateway_metrics_port) in [str(p) for p in gateway.get("expose", [])]


def test_gateway_keys_come_from_the_environment_and_default_to_an_empty_list(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    value = environment(services["gateway"])["AGENT_GATEWAY_KEYS"]
    # `${AGENT_GATEWAY_KEYS:-[]}`: an empty list when unset or empty on the host (an
    # empty string is not JSON, and the gateway would refuse to start).
    assert value == "${AGENT_GATEWAY_KEYS:-[]}"
    assert container_settings(services["gateway"], monkeypatch).gateway_keys == []


def test_gateway_healthcheck_probes_readiness_on_its_port(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = services["gateway"]
    settings = container_settings(gateway, monkeypatch)
    test = gateway["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"]
    assert dockerfile_copy_targets()[test[2]] == "deploy/healthcheck.py"
    url = urlsplit(test[3])
    assert (url.hostname, url.port, url.path) == (
        "127.0.0.1",
        settings.gateway_port,
        "/health/ready",
    )


def test_gateway_waits_for_temporal_and_search_attributes(
    services: dict[str, dict[str, Any]],
) -> None:
    deps = depends_on(services["gateway"])
    assert deps["temporal"] == "service_healthy"
    # It checks once whether the search attributes exist, so after they are registered.
    assert deps["temporal-admin-tools"] == "service_completed_successfully"


def test_gateway_gets_time_to_shut_down_gracefully(services: dict[str, dict[str, Any]]) -> None:
    gateway = services["gateway"]
    assert gateway.get("stop_signal", "SIGTERM") == "SIGTERM"
    assert seconds(gateway["stop_grace_period"]) > SHUTDOWN_GRACE_SECONDS


# --- Temporal --------------------------------------------------------------------


def test_temporal_runs_on_postgres_with_the_dynamic_config(
    services: dict[str, dict[str, Any]],
) -> None:
    temporal = services["temporal"]
    env = environment(temporal)
    assert env["DB"] == "postgres12" and env["POSTGRES_SEEDS"] == "postgresql"
    assert depends_on(temporal)["postgresql"] == "service_healthy"
    assert "pg_isready" in healthcheck_command(services["postgresql"])
    container_file = "/etc/temporal/" + (env["DYNAMIC_CONFIG_FILE_PATH"] or "")
    for source, target in bind_mounts(temporal):
        if container_file.startswith(target.rstrip("/") + "/"):
            host_file = ROOT / source / container_file[len(target.rstrip("/")) + 1 :]
            break
    else:
        pytest.fail(f"{container_file} is not mounted")
    assert host_file == DEPLOY / "temporal/dynamicconfig/development.yaml"
    config = load_yaml(host_file)
    # send_message is an update; governor.acquire an update-with-start.
    for key in ("frontend.enableUpdateWorkflowExecution", "frontend.enableExecuteMultiOperation"):
        assert config[key][0]["value"] is True, key


def registration_script() -> Path:
    return DEPLOY / "temporal/register-search-attributes.sh"


def registered_search_attributes() -> dict[str, str]:
    match = re.search(r'^SEARCH_ATTRIBUTES="([^"]*)"', registration_script().read_text(), re.M)
    assert match, "no SEARCH_ATTRIBUTES= line"
    return dict(entry.split(":") for entry in match.group(1).split())


def test_registered_search_attributes_are_the_agents() -> None:
    assert registered_search_attributes() == AGENT_SEARCH_ATTRIBUTES == search_attributes.ALL


def test_admin_tools_run_the_registration_once(services: dict[str, dict[str, Any]]) -> None:
    tools = services["temporal-admin-tools"]
    assert tools["restart"] == "no"
    assert depends_on(tools)["temporal"] == "service_healthy"
    mounts = dict(bind_mounts(tools))
    script = mounts["./deploy/temporal/register-search-attributes.sh"]
    assert script in tools["entrypoint"]
    assert host_port(environment(tools)["TEMPORAL_ADDRESS"] or "") == ("temporal", 7233)


def test_agent_database_is_created_once_with_the_servers_credentials(
    services: dict[str, dict[str, Any]],
) -> None:
    setup, postgres = services["agent-database"], services["postgresql"]
    assert setup["restart"] == "no" and setup["image"] == postgres["image"]
    assert depends_on(setup)["postgresql"] == "service_healthy"
    env, server = environment(setup), environment(postgres)
    assert env["PGHOST"] == "postgresql" and env["PGUSER"] == server["POSTGRES_USER"]
    assert env["PGPASSWORD"] == server["POSTGRES_PASSWORD"]
    script = dict(bind_mounts(setup))["./deploy/postgres/create-agent-database.sh"]
    assert setup["entrypoint"][:2] == ["/bin/sh", script]


def test_database_script_creates_the_database_idempotently(
    postgres_server: PostgresServer,
) -> None:
    """The script agent-database runs, with the `psql` of the pgserver wheel, against the
    session's PostgreSQL server."""
    env = {
        **os.environ,
        "PATH": f"{postgres_bin()}{os.pathsep}{os.environ['PATH']}",
        "PGHOST": "127.0.0.1",
        "PGPORT": str(postgres_server.port),
        "PGUSER": POSTGRES_USER,
        "PGPASSWORD": postgres_server.password,
    }
    name = f"agent-{free_port()}"
    for _ in range(2):  # a second run (the stack restarted) finds it and changes nothing
        result = subprocess.run(
            ["sh", str(DEPLOY / "postgres/create-agent-database.sh"), name],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert f"database {name} is ready" in result.stdout
    postgres_server.psql("SELECT 1", database=name)  # raises if it does not exist


def test_temporal_ui_is_on_8080_and_talks_to_temporal(services: dict[str, dict[str, Any]]) -> None:
    ui = services["temporal-ui"]
    assert environment(ui)["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert any(str(port).endswith("8080:8080") for port in ui["ports"])


def test_ui_decrypts_through_the_codec_server(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The browser calls the codec server: at a host port it publishes, from the UI's
    origin, which the server allows; it runs the project's image with the workers' keys."""
    codec = services["codec-server"]
    settings = container_settings(codec, monkeypatch)
    assert "durable_agent.codec_server" in " ".join(codec["command"])
    assert codec["image"] == services["worker"]["image"]
    assert settings.codec_host == "0.0.0.0"
    endpoint = environment(services["temporal-ui"])["TEMPORAL_CODEC_ENDPOINT"] or ""
    host, port = host_port(endpoint)
    assert host in ("localhost", "127.0.0.1")  # the browser's view, not a container's
    assert f"127.0.0.1:{port}:{settings.codec_port}" in codec["ports"]
    assert {"http://localhost:8080", "http://127.0.0.1:8080"} <= set(settings.codec_cors_origins)
    assert f":{settings.codec_port}/health" in healthcheck_command(codec)
    for service in (codec, services["worker"], services["gateway"]):  # passed through
        assert environment(service)["AGENT_ENCRYPTION_KEYS"] is None


# --- metrics and traces ------------------------------------------------------------


def test_prometheus_scrapes_every_worker_metrics_port(
    services: dict[str, dict[str, Any]],
) -> None:
    prometheus = services["prometheus"]
    mounts = dict(bind_mounts(prometheus))
    assert mounts["./deploy/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    config = load_yaml(DEPLOY / "prometheus.yml")
    targets = set()
    for job in config["scrape_configs"]:
        if job.get("metrics_path", "/metrics") != "/metrics":
            continue
        for static in job.get("static_configs", []):
            targets.update(static["targets"])
        for dns in job.get("dns_sd_configs", []):
            targets.update(f"{name}:{dns['port']}" for name in dns["names"])
    assert f"worker:{METRICS_PORT}" in targets
    assert f"gateway:{GATEWAY_METRICS_PORT}" in targets
    assert all(host_port(t)[0] in services | {"localhost": {}} for t in targets), targets


def test_otel_collector_receives_otlp_and_exports_to_jaeger(
    services: dict[str, dict[str, Any]],
) -> None:
    collector = services["otel-collector"]
    mounts = dict(bind_mounts(collector))
    config_path = mounts["./deploy/otel-collector.yaml"]
    assert any(config_path in arg for arg in collector["command"])
    config = load_yaml(DEPLOY / "otel-collector.yaml")
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"
    traces = config["service"]["pipelines"]["traces"]
    assert traces["receivers"] == ["otlp"]
    endpoints = [config["exporters"][name]["endpoint"] for name in traces["exporters"]]
    assert any(host_port(e)[0] == "jaeger" for e in endpoints)
    assert "16686:16686" in str(services["jaeger"]["ports"])


def test_grafana_provisions_prometheus_and_the_dashboard(
    services: dict[str, dict[str, Any]],
) -> None:
    mounts = dict(bind_mounts(services["grafana"]))
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    datasources = load_yaml(DEPLOY / "grafana/provisioning/datasources/datasources.yaml")
    uids = {d["uid"]: d for d in datasources["datasources"]}
    assert uids["prometheus"]["url"] == "http://prometheus:9090"
    providers = load_yaml(DEPLOY / "grafana/provisioning/dashboards/dashboards.yaml")
    dashboard_dir = providers["providers"][0]["options"]["path"]
    host_dir = next(source for source, target in mounts.items() if target == dashboard_dir)
    dashboards = list((ROOT / host_dir).glob("*.json"))
    assert dashboards
    exprs = []
    for path in dashboards:
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] in uids, panel["title"]
            exprs += [target["expr"] for target in panel["targets"]]
    text = "\n".join(exprs)
    for metric in AGENT_METRICS:
        assert metric in text, f"no panel shows {metric}"


# --- the scripts the containers run -------------------------------------------------


def load_probe() -> ModuleType:
    spec = importlib.util.spec_from_file_location("healthcheck", DEPLOY / "healthcheck.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Health(BaseHTTPRequestHandler):
    """Live, but not ready."""

    def do_GET(self) -> None:
        status = {"/health/live": 200, "/health/ready": 503}.get(self.path, 404)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_probe_exit_status_follows_the_endpoint(health_server: int) -> None:
    probe = load_probe()
    env = {"AGENT_HEALTH_HOST": "0.0.0.0", "AGENT_HEALTH_PORT": str(health_server)}
    assert probe.main(["/health/live"], env) == 0
    assert probe.main([], env) == 0  # liveness by default
    assert probe.main(["/health/ready"], env) == 1
    assert probe.main(["/health/live"], {"AGENT_HEALTH_PORT": str(free_port())}) == 1


def test_probe_takes_a_full_url_as_given(health_server: int) -> None:
    """The gateway's health endpoints are on its API port, not AGENT_HEALTH_PORT."""
    probe = load_probe()
    env = {"AGENT_HEALTH_HOST": "10.0.0.5", "AGENT_HEALTH_PORT": str(free_port())}
    url = f"http://127.0.0.1:{health_server}/health/ready"
    assert probe.probe_url(url, env) == url
    assert probe.main([url], env) == 1  # not ready
    assert probe.main([url.replace("ready", "live")], env) == 0


def test_probe_url_from_the_workers_settings() -> None:
    probe = load_probe()
    assert probe.probe_url("/health/ready", {}) == "http://127.0.0.1:8081/health/ready"
    assert probe.probe_url("health/live", {"AGENT_HEALTH_HOST": "10.0.0.5"}).startswith(
        "http://10.0.0.5:8081/"
    )
    assert probe.probe_url("/x", {"AGENT_HEALTH_HOST": "::1", "AGENT_HEALTH_PORT": "9"}) == (
        "http://[::1]:9/x"
    )


class _BareDevServer(DevServer):
    """A dev server without the agent's search attributes, as auto-setup leaves one."""

    def command(self) -> list[str]:
        command, skip = [], False
        for arg in super().command():
            if arg == "--search-attribute" or skip:
                skip = not skip
                continue
            command.append(arg)
        return command


@pytest.mark.slow
async def test_registration_script_registers_the_attributes_idempotently(
    tmp_path: Path,
) -> None:
    """The script temporal-admin-tools runs, with the same `temporal` CLI, against a
    private dev server (the session's already has the attributes)."""
    server = _BareDevServer(db_file=tmp_path / "temporal.sqlite3")
    await server.start()
    try:
        env = {
            **os.environ,
            "PATH": f"{temporal_binary().parent}{os.pathsep}{os.environ['PATH']}",
            "TEMPORAL_ADDRESS": server.address,
        }
        client = await connect(server.address)
        assert not set(AGENT_SEARCH_ATTRIBUTES) & set(await custom_attributes(client))
        for _ in range(2):  # a second run finds them all and changes nothing
            process = await asyncio.create_subprocess_exec(
                "sh",
                str(registration_script()),
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
            assert process.returncode == 0, output.decode()
        assert output.decode().count(" exists") == len(AGENT_SEARCH_ATTRIBUTES)
        assert await custom_attributes(client) == AGENT_SEARCH_ATTRIBUTES
    finally:
        server.stop()


async def custom_attributes(client: Client) -> dict[str, str]:
    """Name → type (``Keyword``, ``Int``, ...) of the namespace's custom attributes."""
    response = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace="default")
    )
    return {
        name: IndexedValueType.Name(kind).removeprefix("INDEXED_VALUE_TYPE_").title()
        for name, kind in response.custom_attributes.items()
    }
