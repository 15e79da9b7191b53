"""The Kubernetes example and the compose worker agree with the settings model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from durable_agent.config import Settings

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "deploy" / "kubernetes" / "worker.yaml"


def _setting_names() -> set[str]:
    names = {f"AGENT_{name.upper()}" for name in Settings.model_fields}
    names.add("ANTHROPIC_API_KEY")  # read under its own name
    return names


def _container() -> dict[str, Any]:
    deployment = yaml.safe_load(MANIFEST.read_text())
    assert deployment["kind"] == "Deployment"
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def test_probes_hit_the_health_endpoints_on_the_configured_port() -> None:
    container = _container()
    env = {e["name"]: e.get("value") for e in container["env"]}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["health"] == int(env["AGENT_HEALTH_PORT"])
    assert ports["metrics"] == int(env["AGENT_METRICS_PORT"])
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "health"}
    assert env["AGENT_HEALTH_HOST"] == env["AGENT_METRICS_HOST"] == "0.0.0.0"


def test_manifest_env_names_are_settings_and_the_key_comes_from_a_secret() -> None:
    container = _container()
    names = {e["name"] for e in container["env"]}
    assert names <= _setting_names(), names - _setting_names()
    key = next(e for e in container["env"] if e["name"] == "ANTHROPIC_API_KEY")
    assert "value" not in key and "secretKeyRef" in key["valueFrom"]
    for entry in container["env"]:  # every literal value is valid for its setting
        if "value" in entry and entry["name"].startswith("AGENT_"):
            field = entry["name"].removeprefix("AGENT_").lower()
            Settings(_env_file=None, **{field: entry["value"]})  # type: ignore[arg-type]


def test_pod_runs_non_root_and_outlives_the_shutdown_grace() -> None:
    spec = yaml.safe_load(MANIFEST.read_text())["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    env = {e["name"]: e.get("value") for e in _container()["env"]}
    assert spec["terminationGracePeriodSeconds"] > float(env["AGENT_SHUTDOWN_GRACE_SECONDS"])


def test_compose_worker_env_names_are_settings() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    environment = compose["services"]["worker"]["environment"]
    names = (
        set(environment)
        if isinstance(environment, dict)
        else {item.split("=", 1)[0] for item in environment}
    )
    assert names <= _setting_names(), names - _setting_names()
