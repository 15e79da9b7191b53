"""Run a test MCP server over streamable HTTP as a child process on 127.0.0.1, so a
test can kill it mid-call and start it again on the same port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def server_command(module: str = "tests.mcp_servers.support_desk") -> list[str]:
    """The stdio command line of a test server (``python -m <module> stdio``)."""
    return [sys.executable, "-m", module, "stdio"]


class McpHttpServer:
    """``python -m <module> http --port P`` as a child process."""

    def __init__(self, state_dir: Path, module: str = "tests.mcp_servers.support_desk") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self._module = module
        self._env = os.environ | {"SUPPORT_DESK_STATE": str(state_dir)}
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> None:
        """Start the server and wait until it accepts connections."""
        self._process = subprocess.Popen(
            [sys.executable, "-m", self._module, "http", "--port", str(self.port)],
            cwd=ROOT,
            env=self._env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"MCP server on port {self.port} did not start") from None
                time.sleep(0.05)

    def kill(self) -> None:
        """``kill -9`` the server and wait for it to be gone."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(timeout=10)
        self._process = None

    def __enter__(self) -> McpHttpServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()
