"""Remote codec server: lets the Temporal web UI and CLI show encrypted payloads.

    python -m durable_agent.codec_server          # AGENT_CODEC_HOST:AGENT_CODEC_PORT
    temporal workflow show -w ID --codec-endpoint http://127.0.0.1:8888
    # web UI: TEMPORAL_CODEC_ENDPOINT=http://127.0.0.1:8888, or Settings → Codec Server

- ``POST /decode`` and ``POST /encode`` take and return the remote codec JSON of
  Temporal, ``{"payloads": [{"metadata": {"encoding": "<base64>"}, "data": "<base64>"}]}``,
  applying the codec the workers use (``AGENT_ENCRYPTION_KEYS``; without keys payloads
  pass through). A payload that cannot be decrypted answers 400 naming its key id.
- ``OPTIONS`` answers the browser's CORS preflight. Browsers may call only from
  ``AGENT_CODEC_CORS_ORIGINS``: a request from any other origin is refused (403).
- ``GET /health``: 200 while the server runs.

Whoever reaches this server can decrypt every payload: it binds loopback by default;
expose it only behind the same authentication as the UI.

Served by FastAPI on uvicorn (``durable_agent._http``), like the health probes and the
gateway. A chunked body is refused (411), as is one over ``MAX_BODY_BYTES`` (413).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from google.protobuf import json_format
from pydantic import ValidationError
from temporalio.api.common.v1 import Payloads
from temporalio.converter import PayloadCodec

from durable_agent._http import serve_app
from durable_agent.codec import DecryptionError, codec_from_settings
from durable_agent.config import Settings
from durable_agent.logs import configure_logging
from durable_agent.process import exit_now

log = logging.getLogger("durable_agent.codec_server")

ENCODE, DECODE, HEALTH = "/encode", "/decode", "/health"
MAX_BODY_BYTES = 32 * 1024 * 1024
"""Largest request body accepted (the UI sends a page of history's payloads at once)."""
ALLOWED_HEADERS = "content-type,x-namespace"
"""Request headers browsers may send (the UI sends ``X-Namespace``)."""
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    headers: dict[str, str]
    """Lower-cased names."""
    body: bytes


async def _read_request(request: Request) -> _Request:
    headers = {name.lower(): value for name, value in request.headers.items()}
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise _BadRequest(411, "send a Content-Length, not a chunked body")
    try:
        length = int(headers.get("content-length") or 0)
    except ValueError:
        raise _BadRequest(400, "bad Content-Length") from None
    if not 0 <= length <= MAX_BODY_BYTES:
        raise _BadRequest(413, f"body over {MAX_BODY_BYTES} bytes")
    body = await request.body()
    return _Request(request.method.upper(), request.url.path, headers, body)


class CodecService:
    """Answers codec requests with ``codec`` (``None``: payloads pass through)."""

    def __init__(self, codec: PayloadCodec | None, cors_origins: Collection[str]) -> None:
        self.codec = codec
        self.cors_origins = set(cors_origins)

    def cors_headers(self, origin: str | None) -> dict[str, str]:
        """CORS response headers for a browser at ``origin`` (none for other callers)."""
        if origin is None or origin not in self.cors_origins:
            return {}
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": "POST",
            "Access-Control-Allow-Headers": ALLOWED_HEADERS,
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        }

    async def respond(self, request: _Request) -> tuple[int, dict[str, object]]:
        """Status and JSON body for ``request`` (CORS already checked)."""
        if request.path == HEALTH and request.method in ("GET", "HEAD"):
            return 200, {"status": "ok"}
        if request.path not in (ENCODE, DECODE):
            return 404, {"error": "not found"}
        if request.method == "OPTIONS":
            return 200, {}
        if request.method != "POST":
            return 405, {"error": "use POST"}
        if not request.headers.get("content-type", "").startswith("application/json"):
            return 415, {"error": "send application/json"}
        try:
            payloads = json_format.Parse(request.body, Payloads())
        except json_format.ParseError as e:
            return 400, {"error": f"not a payloads document: {e}"}
        if self.codec is not None:
            apply = self.codec.encode if request.path == ENCODE else self.codec.decode
            try:
                payloads = Payloads(payloads=await apply(payloads.payloads))
            except DecryptionError as e:
                return 400, {"error": str(e)}
        document = json_format.MessageToDict(payloads)
        document.setdefault("payloads", [])
        return 200, document


def codec_app(service: CodecService) -> FastAPI:
    """``service`` as an ASGI app: one route takes every path and method, so that the
    origin check comes before routing and the answers stay those of ``CodecService.respond``."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, redirect_slashes=False)

    @app.api_route("/{path:path}", methods=_METHODS, include_in_schema=False)
    async def answer(request: Request) -> Response:
        try:
            parsed = await _read_request(request)
        except _BadRequest as e:
            return JSONResponse({"error": str(e)}, e.status)
        origin = parsed.headers.get("origin")
        if origin is not None and origin not in service.cors_origins:
            # A page of another site must not make us decrypt for it.
            return JSONResponse({"error": "origin not allowed"}, 403)
        status, body = await service.respond(parsed)
        headers = {"Cache-Control": "no-store", **service.cors_headers(origin)}
        return JSONResponse(body, status, headers)

    return app


@asynccontextmanager
async def serve_codec(service: CodecService, host: str, port: int) -> AsyncIterator[int]:
    """Serve ``service`` on ``host:port`` (0: any free port) for the duration of the
    block; yield the bound port."""
    async with serve_app(codec_app(service), host, port, "codec server") as bound:
        yield bound


async def run(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    codec = codec_from_settings(settings)
    service = CodecService(codec, settings.codec_cors_origins)
    async with serve_codec(service, settings.codec_host, settings.codec_port) as port:
        if codec is None:
            log.warning("AGENT_ENCRYPTION_KEYS is not set: payloads pass through unchanged")
        else:
            log.info("encrypting with key %r; decrypting with %s", codec.current, codec.key_ids)
        log.info(
            "codec server on http://%s:%d (browser origins: %s)",
            settings.codec_host,
            port,
            ", ".join(sorted(service.cors_origins)) or "none",
        )
        await stop.wait()


def main() -> None:
    code = 0
    try:
        settings = Settings()
        keys = settings.encryption_keys.get_secret_value() if settings.encryption_keys else ""
        secrets = [entry.partition(":")[2].strip() for entry in keys.split(",") if entry]
        configure_logging(settings.log_level, settings.log_format, secrets=secrets)
        asyncio.run(run(settings))
    except ValidationError as e:  # inputs are hidden: no key reaches the message
        print(f"codec server: invalid settings: {e}", file=sys.stderr)
        code = 1
    except RuntimeError as e:
        print(f"codec server: {e}", file=sys.stderr)
        code = 1
    exit_now(code)


if __name__ == "__main__":
    main()
