"""The one HTTP response writer of the small asyncio servers here (health probes, codec
server): JSON bodies, ``Connection: close``, nothing cached."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from http import HTTPStatus


async def write_json(
    writer: asyncio.StreamWriter,
    status: int,
    body: Mapping[str, object],
    headers: Mapping[str, str] | None = None,
    *,
    head_only: bool = False,
) -> None:
    """Write one response and drain; ``head_only`` (a HEAD request) omits the body."""
    payload = json.dumps(body).encode()
    all_headers = {
        "Content-Type": "application/json",
        "Content-Length": str(len(payload)),
        "Cache-Control": "no-store",
        "Connection": "close",
        **(headers or {}),
    }
    head = f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in all_headers.items()
    )
    writer.write(f"{head}\r\n".encode() + (b"" if head_only else payload))
    await writer.drain()
