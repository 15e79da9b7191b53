"""MCP credentials (``env_from``, ``headers_from_env``) are redacted from the worker's
logs like its own keys: the redactor is built from ``worker.secret_values``."""

from __future__ import annotations

import logging
import uuid

import pytest

from activities.mcp import held_credentials
from durable_agent.config import Settings
from durable_agent.logs import REDACTED, JsonFormatter
from worker import redactor, secret_values

SERVERS = {
    "crm": {"url": "http://127.0.0.1:9/mcp", "headers_from_env": {"Authorization": "CRM_AUTH"}},
    "desk": {"command": "desk-mcp", "env_from": ["DESK_TOKEN"]},
}


@pytest.fixture
def canaries(monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    header, token = f"hdr-canary-{uuid.uuid4().hex}", f"env-canary-{uuid.uuid4().hex}"
    monkeypatch.setenv("CRM_AUTH", f"Bearer {header}")
    monkeypatch.setenv("DESK_TOKEN", token)
    return header, token


def test_the_worker_redacts_mcp_credentials(canaries: tuple[str, str]) -> None:
    header, token = canaries
    settings = Settings(_env_file=None, mcp_servers=SERVERS)  # type: ignore[call-arg]
    assert {f"Bearer {header}", header, token} <= set(secret_values(settings))
    # Whatever quotes them (an error echoing the request, a debug line) is redacted.
    record = logging.LogRecord(
        "activities.mcp", logging.WARNING, __file__, 1,
        "MCP server %s refused %r; token %s; env %s",
        ("crm", {"Authorization": f"Bearer {header}"}, header, token), None,
    )  # fmt: skip
    line = JsonFormatter(redactor(settings)).format(record)
    assert header not in line and token not in line
    assert line.count(REDACTED) == 3


def test_unset_credentials_are_left_to_the_activities(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRM_AUTH", raising=False)
    monkeypatch.setenv("DESK_TOKEN", "only-this-one")
    settings = Settings(_env_file=None, mcp_servers=SERVERS)  # type: ignore[call-arg]
    assert held_credentials(settings.mcp_servers) == ["only-this-one"]
