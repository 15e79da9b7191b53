"""The Kubernetes examples (worker, gateway) and the compose services agree with the
settings model and with the endpoints the processes serve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from durable_agent.config import Settings
from durable_agent.gateway.__main__ import SHUTDOWN_GRACE_SECONDS
from durable_agent.gateway.app import create_app

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "deploy" / "kubernetes" / "worker.yaml"
GATEWAY_MANIFEST = ROOT / "deploy" / "kubernetes" / "gateway.yaml"


def _setting_names() -> set[str]:
    names = {f"AGENT_{name.upper()}" for name in Settings.model_fields}
    names.add("ANTHROPIC_API_KEY")  # read under its own name
    return names


def _resource(path: Path, kind: str) -> dict[str, Any]:
    """The one resource of ``kind`` in the manifest at ``path``."""
    (found,) = [d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] == kind]
    return dict(found)


def _container(path: Path = MANIFEST) -> dict[str, Any]:
    deployment = _resource(path, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value") for e in container["env"]}


def test_probes_hit_the_health_endpoints_on_the_configured_port() -> None:
    container = _container()
    env = {e["name"]: e.get("value") for e in container["env"]}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["health"] == int(env["AGENT_HEALTH_PORT"])
    assert ports["metrics"] == int(env["AGENT_METRICS_PORT"])
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "health"}
    assert env["AGENT_HEALTH_HOST"] == env["AGENT_METRICS_HOST"] == "0.0.0.0"


@pytest.mark.parametrize(
    ("manifest", "secret"),
    [(MANIFEST, "ANTHROPIC_API_KEY"), (GATEWAY_MANIFEST, "AGENT_GATEWAY_KEYS")],
    ids=["worker", "gateway"],
)
def test_manifest_env_names_are_settings_and_the_key_comes_from_a_secret(
    manifest: Path, secret: str
) -> None:
    container = _container(manifest)
    names = {e["name"] for e in container["env"]}
    assert names <= _setting_names(), names - _setting_names()
    key = next(e for e in container["env"] if e["name"] == secret)
    assert "value" not in key and "secretKeyRef" in key["valueFrom"]
    for entry in container["env"]:  # every literal value is valid for its setting
        if "value" in entry and entry["name"].startswith("AGENT_"):
            field = entry["name"].removeprefix("AGENT_").lower()
            Settings(_env_file=None, **{field: entry["value"]})  # type: ignore[arg-type]


def test_worker_stores_are_one_database_url_from_the_secret() -> None:
    env = {e["name"]: e for e in _container()["env"]}
    for name in ("AGENT_NOTES_DB", "AGENT_BLOB_DB"):  # a URL holds its password
        assert "value" not in env[name], name
        assert env[name]["valueFrom"]["secretKeyRef"] == {
            "name": "durable-agent",
            "key": "database-url",
        }
    # Nothing kept on the pod: replicas on any node share the database.
    volumes = yaml.safe_load(MANIFEST.read_text())["spec"]["template"]["spec"]["volumes"]
    assert [v["name"] for v in volumes] == ["tmp"]


def test_pod_runs_non_root_and_outlives_the_shutdown_grace() -> None:
    spec = yaml.safe_load(MANIFEST.read_text())["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    env = {e["name"]: e.get("value") for e in _container()["env"]}
    assert spec["terminationGracePeriodSeconds"] > float(env["AGENT_SHUTDOWN_GRACE_SECONDS"])


@pytest.mark.parametrize("service", ["worker", "gateway"])
def test_compose_env_names_are_settings(service: str) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    environment = compose["services"][service]["environment"]
    names = (
        set(environment)
        if isinstance(environment, dict)
        else {item.split("=", 1)[0] for item in environment}
    )
    assert names <= _setting_names(), names - _setting_names()


# --- the gateway ---------------------------------------------------------------------


def test_gateway_probes_hit_its_health_routes_on_its_port() -> None:
    container = _container(GATEWAY_MANIFEST)
    env = _env(container)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == int(env["AGENT_GATEWAY_PORT"])
    assert ports["metrics"] == int(env["AGENT_GATEWAY_METRICS_PORT"])
    assert env["AGENT_GATEWAY_HOST"] == "0.0.0.0"  # its default is loopback only
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    app = create_app(Settings(_env_file=None))
    served = {getattr(route, "path", None) for route in app.routes}
    assert {"/health/live", "/health/ready"} <= served


def test_gateway_runs_the_workers_image_with_the_gateway_command() -> None:
    container = _container(GATEWAY_MANIFEST)
    assert container["image"] == _container(MANIFEST)["image"]
    assert container["command"] == ["python", "-m", "durable_agent.gateway"]
    worker_env = _env(_container(MANIFEST))
    for name in ("AGENT_TEMPORAL_ADDRESS", "AGENT_TEMPORAL_NAMESPACE", "AGENT_TASK_QUEUE"):
        assert _env(container)[name] == worker_env[name], name  # the workers' Temporal
    encryption = next(e for e in container["env"] if e["name"] == "AGENT_ENCRYPTION_KEYS")
    assert encryption["valueFrom"]["secretKeyRef"]["key"] == "encryption-keys"


def test_gateway_is_replicated_behind_a_service() -> None:
    deployment = _resource(GATEWAY_MANIFEST, "Deployment")
    assert deployment["spec"]["replicas"] >= 2  # stateless: one can go without an outage
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = _resource(GATEWAY_MANIFEST, "Service")
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == "http"  # the API port, not metrics


def test_gateway_pod_runs_non_root_and_outlives_the_shutdown_grace() -> None:
    spec = _resource(GATEWAY_MANIFEST, "Deployment")["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    (container,) = spec["containers"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command")
    delay = float(pre_stop[-1]) if pre_stop and pre_stop[0] == "sleep" else 0.0
    assert spec["terminationGracePeriodSeconds"] > delay + SHUTDOWN_GRACE_SECONDS
