"""The JSON log formatter and the secret redactor."""

from __future__ import annotations

import json
import logging

from durable_agent.logs import REDACTED, JsonFormatter, Redactor


def _record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("agent", logging.INFO, __file__, 1, message, None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_context_and_extra_become_flat_fields() -> None:
    record = _record(
        "model call",
        temporal_activity={"activity_type": "model.invoke", "attempt": 2,
                           "workflow_id": "c1", "workflow_run_id": "r1"},
        turn=3,
    )  # fmt: skip
    line = json.loads(JsonFormatter(Redactor()).format(record))
    assert line["message"] == "model call" and line["level"] == "info"
    assert line["activity_type"] == "model.invoke" and line["attempt"] == 2
    assert line["workflow_id"] == "c1" and line["run_id"] == "r1" and line["turn"] == 3
    assert "temporal_activity" not in line


def test_secrets_are_redacted_by_value_and_by_shape() -> None:
    redact = Redactor(secrets=["hunter2-long"], patterns=[r"token=\w+"])
    text = "key sk-ant-api03-XYZxyz123 auth Bearer abc.def.ghi pw hunter2-long token=zzz ok"
    assert redact(text) == f"key {REDACTED} auth {REDACTED} pw {REDACTED} {REDACTED} ok"
    assert (
        Redactor(secrets=["ab"])("ab stays: too short to be a secret")
        == "ab stays: too short to be a secret"
    )
