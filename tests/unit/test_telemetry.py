"""The worker's tracing interceptor is there only while tracing is on. Checked in a
fresh interpreter: the global tracer provider can be set once per process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_PROBE = """
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from durable_agent.telemetry import configure_tracing, tracing_interceptors

off = tracing_interceptors()
configure_tracing("test", None)  # no endpoint: stays off
still_off = tracing_interceptors()
configure_tracing("test", exporter=InMemorySpanExporter())
on = tracing_interceptors()
print(len(off), len(still_off), len(on))
"""


def test_the_tracing_interceptor_is_left_out_while_tracing_is_off() -> None:
    run = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["0", "0", "1"]
