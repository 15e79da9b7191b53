"""Serving the small ASGI apps of a process that owns its signals (the worker's health
probes, the codec server): uvicorn on a socket bound here, started and stopped with a
block, leaving the process's signal handlers alone."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator

import uvicorn
from starlette.types import ASGIApp

STOP_GRACE_SECONDS = 2
"""How long requests in flight may take to finish when the block ends."""


class _EmbeddedServer(uvicorn.Server):
    """uvicorn that tells when it listens and does not take over SIGINT/SIGTERM: the
    process that embeds it (the worker's graceful shutdown) handles those."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.listening.set()


def _bind(host: str, port: int, name: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise RuntimeError(f"{name} cannot listen on {host}:{port}: {e}") from e
    return sock


@contextlib.asynccontextmanager
async def serve_app(
    app: ASGIApp,
    host: str,
    port: int,
    name: str,
    *,
    http: type[asyncio.Protocol] | None = None,
) -> AsyncIterator[int]:
    """Serve ``app`` on ``host:port`` (0: any free port) for the duration of the block;
    yield the bound port. ``name`` says who could not listen (a ``RuntimeError``);
    ``http`` is uvicorn's HTTP protocol class (its own by default)."""
    sock = _bind(host, port, name)
    server = _EmbeddedServer(
        uvicorn.Config(
            app,
            log_config=None,  # the process's logging: JSON lines, redacted
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=STOP_GRACE_SECONDS,
            http=http or "auto",
        )
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        listening = asyncio.create_task(server.listening.wait())
        await asyncio.wait({serving, listening}, return_when=asyncio.FIRST_COMPLETED)
        listening.cancel()
        if serving.done():
            serving.result()  # raises what stopped it
            raise RuntimeError(f"{name} stopped while starting")
        yield int(sock.getsockname()[1])
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        sock.close()
