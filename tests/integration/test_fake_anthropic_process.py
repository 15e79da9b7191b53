"""The fake Messages API as its own process: ``python -m durable_agent.testing.fake_anthropic``
prints its URL, serves, and exits cleanly on Ctrl-C."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys

import httpx


def test_main_serves_until_interrupted() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "durable_agent.testing.fake_anthropic", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30.0)
        line = proc.stdout.readline() if ready else ""
        found = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert found, line
        url = found.group()
        assert httpx.get(f"{url}/health", timeout=10).json() == {"ok": True}
        proc.send_signal(signal.SIGINT)
        # It exits within milliseconds; the bound only has to outlast a loaded machine.
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
