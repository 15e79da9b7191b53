"""Settings: environment parsing, TLS choices, secrets kept secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.service import TLSConfig

from activities.claude import ClaudeBackend
from durable_agent.client import tls_config
from durable_agent.config import Settings
from worker import build_backend, redactor


def test_defaults_need_no_environment() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.temporal_address == "127.0.0.1:7233" and settings.task_queue == "durable-agent"
    assert tls_config(settings) is False


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_TASK_QUEUE", "agents-eu")
    monkeypatch.setenv("AGENT_TENANT_LIMITS", '{"acme": {"daily_usd": "5"}}')
    monkeypatch.setenv("AGENT_SEARCH_URL", "")  # empty means unset
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.task_queue == "agents-eu" and settings.search_url is None
    assert str(settings.limits_for("acme").daily_usd) == "5"


@pytest.mark.parametrize(("env", "expected"), [(None, True), ("false", False), ("1", True)])
async def test_prompt_caching_reaches_the_claude_backend(
    monkeypatch: pytest.MonkeyPatch, env: str | None, expected: bool
) -> None:
    if env is not None:
        monkeypatch.setenv("AGENT_PROMPT_CACHING", env)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, model_backend="claude", ANTHROPIC_API_KEY="k"
    )
    backend, claude = build_backend(settings)
    assert claude is not None
    await claude.close()
    assert isinstance(backend, ClaudeBackend) and backend.prompt_caching is expected


@pytest.mark.parametrize(
    ("name", "value"),
    [("AGENT_TEMPORAL_ADDRESS", "no-port"), ("AGENT_MODEL_BACKEND", "gpt"),
     ("AGENT_LOG_FORMAT", "xml"), ("AGENT_METRICS_PORT", "99999")],
)  # fmt: skip
def test_invalid_settings_name_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as error:
        Settings(_env_file=None)  # type: ignore[call-arg]
    assert name.removeprefix("AGENT_").lower() in str(error.value)


def test_api_key_implies_tls_and_stays_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_TEMPORAL_API_KEY", "tmprl-canary-key")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert tls_config(settings) is True
    assert "tmprl-canary-key" not in repr(settings) and "tmprl-canary-key" not in str(settings)


def test_stores_take_a_path_or_a_postgres_url(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql://agent:pg%2Fcanary-pw@db.internal:5432/agent"
    monkeypatch.setenv("AGENT_NOTES_DB", url)
    monkeypatch.setenv("AGENT_BLOB_DB", "sqlite:////data/blobs.sqlite3")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.notes_db == url  # the URL as given, `//` and all
    assert settings.blob_db == Path("/data/blobs.sqlite3")
    assert Settings(_env_file=None, blob_db="data/b.db").blob_db == Path("data/b.db")  # type: ignore[call-arg]
    # The password, as written and decoded, is a secret: redacted from logs, not in repr.
    assert {"pg%2Fcanary-pw", "pg/canary-pw"} <= set(settings.held_secrets())
    assert "canary-pw" not in redactor(settings)(f"connecting to {url}")
    assert "canary-pw" not in repr(settings) and "canary-pw" not in str(settings)
    monkeypatch.setenv("AGENT_BLOB_DB", "mysql://agent:my-canary-pw@db/agent")
    with pytest.raises(ValidationError, match="unsupported store 'mysql'") as error:
        Settings(_env_file=None)  # type: ignore[call-arg]
    assert "canary-pw" not in str(error.value)


def test_client_certificate_gives_mtls(tmp_path: Path) -> None:
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    cert.write_bytes(b"CERT")
    key.write_bytes(b"KEY")
    settings = Settings(_env_file=None, temporal_tls_cert=cert, temporal_tls_key=key)  # type: ignore[call-arg]
    tls = tls_config(settings)
    assert isinstance(tls, TLSConfig)
    assert tls.client_cert == b"CERT" and tls.client_private_key == b"KEY"
    assert tls.server_root_ca_cert is None


def test_safety_policy_from_the_environment_and_cli_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    import starter

    monkeypatch.setenv(
        "AGENT_SAFETY",
        '{"approval_levels": ["write", "execute", "admin"], "blocked_patterns": ["x+"]}',
    )
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.safety.approval_levels == ["write", "execute", "admin"]
    args = starter.parse_args(
        ["start", "--approval-tools", "calculator", "--approval-timeout", "60"]
    )
    policy = starter._safety(args)
    assert policy.approval_levels == ["write", "execute", "admin"]  # from the environment
    assert policy.approval_tools == ["calculator"] and policy.approval_timeout_seconds == 60
    assert policy.blocked_patterns == ["x+"]

    monkeypatch.setenv("AGENT_SAFETY", '{"blocked_patterns": ["(unclosed"]}')
    with pytest.raises(ValidationError, match="bad regular expression"):
        Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("name", "value"),
    [("AGENT_TEMPORAL_ADDRESS", "sk-ant-secret-no-port"), ("AGENT_METRICS_PORT", "sk-ant-1234"),
     ("AGENT_GATEWAY_MAX_BODY_BYTES", "9" * 30), ("AGENT_LOG_LEVEL", "sk-ant-abcdef")],
)  # fmt: skip
def test_invalid_settings_never_echo_their_value(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as error:
        Settings(_env_file=None)  # type: ignore[call-arg]
    assert value not in str(error.value)  # what a process prints on a bad setting


def test_the_cli_approver_is_the_configured_identity_else_the_os_user(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from starter import default_approver

    settings: Settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert "@" in default_approver(settings)
    monkeypatch.setenv("AGENT_APPROVER", "ops-oncall")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert default_approver(settings) == "ops-oncall"


def test_the_dev_server_with_its_ui_never_fetches_the_news_feed() -> None:
    from durable_agent.devserver import DevServer

    assert "--ui-disable-news-fetch" in DevServer(headless=False).command()
