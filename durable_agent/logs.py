"""Structured logs: one JSON object per line, with the Temporal context of the line.

Workflow code logs through ``workflow.logger`` (replay-safe: silent while replaying)
and activities through ``activity.logger``; both put their context on the record
(``temporal_workflow`` / ``temporal_activity``), which the formatter lifts into flat
fields — ``workflow_id``, ``run_id``, ``activity_type``, ``attempt`` — beside anything
passed as ``extra`` (``turn``, ``model``, ``tokens`` …). Secrets are redacted from the
final line, whatever produced it. Lines of the Temporal SDK's core arrive through the
``temporalio.core`` logger (``telemetry.sdk_runtime``) with ``core_target`` and
``core_fields``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from temporalio import activity, workflow

# Attributes every LogRecord has; anything else on a record came from `extra`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_CONTEXT_KEYS = {"temporal_workflow", "temporal_activity"}
_CORE_LOG = "temporal_log"  # on records forwarded from the SDK core (see telemetry)
_RENAMES = {"workflow_run_id": "run_id"}

DEFAULT_SECRET_PATTERNS = (
    r"sk-ant-[A-Za-z0-9_\-]{8,}",  # Anthropic API keys
    r"[Bb]earer\s+[A-Za-z0-9._\-]{8,}",  # Authorization headers
)
REDACTED = "[REDACTED]"


class Redactor:
    """Replaces configured secret values and secret-shaped strings."""

    def __init__(self, secrets: Iterable[str] = (), patterns: Iterable[str] = ()) -> None:
        literal = [re.escape(s) for s in secrets if s and len(s) >= 4]
        self._pattern = re.compile("|".join([*literal, *DEFAULT_SECRET_PATTERNS, *patterns]))

    def __call__(self, text: str) -> str:
        return self._pattern.sub(REDACTED, text)


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", <context>, <extra>}``, one per line."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in _CONTEXT_KEYS:
            context = getattr(record, key, None)
            if isinstance(context, dict):
                for name, value in context.items():
                    entry[_RENAMES.get(str(name), str(name))] = value
        core = getattr(record, _CORE_LOG, None)
        if core is not None:
            entry["core_target"] = getattr(core, "target", None)
            entry["core_fields"] = getattr(core, "fields", None)
        for name, value in vars(record).items():
            if name not in _STANDARD and name not in _CONTEXT_KEYS and name != _CORE_LOG:
                entry[name] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return self._redact(json.dumps(entry, default=str))


class TextFormatter(logging.Formatter):
    """Human-readable lines for development, redacted too."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        return self._redact(super().format(record))


def configure_logging(
    level: str = "INFO",
    fmt: str = "json",
    *,
    secrets: Iterable[str] = (),
    patterns: Iterable[str] = (),
) -> None:
    """Send every log record to stderr, as JSON (``fmt="json"``) or text (``"text"``)."""
    redact = Redactor(secrets, patterns)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(redact) if fmt == "json" else TextFormatter(redact))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The context already travels as fields; don't also append it to every message.
    workflow.logger.workflow_info_on_message = fmt != "json"
    activity.logger.activity_info_on_message = fmt != "json"
