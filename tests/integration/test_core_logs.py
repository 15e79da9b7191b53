"""The Temporal SDK core's own log lines (Rust) reach our logging, as JSON on stderr,
instead of ANSI text on stdout (issue 14: 36 of 93 worker lines during an outage)."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime

from durable_agent.devserver import DevServer
from durable_agent.logs import JsonFormatter, Redactor
from durable_agent.telemetry import CORE_LOGGER, sdk_runtime
from tests.helpers import eventually


@pytest.fixture
def core_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(Redactor()))
    logger = logging.getLogger(CORE_LOGGER)
    logger.addHandler(handler)
    yield stream
    logger.removeHandler(handler)


async def test_core_warnings_arrive_as_json_records(
    temporal_server: DevServer, core_lines: io.StringIO, capfd: pytest.CaptureFixture[str]
) -> None:
    previous = Runtime.default()
    runtime = sdk_runtime()
    try:
        client = await Client.connect(
            temporal_server.address, runtime=runtime, data_converter=pydantic_data_converter
        )
        # Over the SDK's 512 KiB payload warning: the core logs a WARN line.
        await client.start_workflow(
            "NobodyRunsThis", "x" * 600_000, id=f"core-log-{uuid.uuid4().hex}", task_queue="none"
        )
        await eventually(lambda: _text_of(core_lines), timeout=10)
    finally:
        Runtime.set_default(previous, error_if_already_set=False)
    (line, *_) = core_lines.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["logger"] == CORE_LOGGER and entry["level"] == "warning"
    assert "payload" in entry["core_target"] and "size" in entry["core_fields"]
    assert "\x1b[" not in line
    assert "TMPRL" not in capfd.readouterr().out  # nothing of the core's on stdout


async def _text_of(stream: io.StringIO) -> str:
    return stream.getvalue()
