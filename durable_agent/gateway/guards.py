"""Guards below the routes, so that even what never reaches a route is answered as a
problem document:

- ``BodyLimit``: a request body over ``AGENT_GATEWAY_MAX_BODY_BYTES`` is answered 413
  before the application reads it (by its ``Content-Length``, or, for a chunked body,
  as it streams in); nothing of it travels to Temporal.
- ``ProblemHTTPProtocol``: uvicorn's HTTP protocol, answering a request it cannot
  parse (raw non-ASCII or invalid UTF-8 in the path, a broken request line) with a 400
  problem instead of plain text.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from durable_agent.gateway import problems
from durable_agent.gateway.problems import MEDIA_TYPE, ProblemError


def problem_bytes(error: ProblemError, instance: str | None = None) -> bytes:
    """The problem document of ``error`` as a JSON body."""
    document = error.document(instance).model_dump(mode="json", exclude_none=True)
    return json.dumps(document).encode()


class BodyLimit:
    """Refuses request bodies over ``max_bytes`` with a 413 problem."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None:
            if declared > self.max_bytes:
                await _drain(receive)
                await self._refuse(scope, send)
                return
            await self.app(scope, receive, send)  # the server holds it to its length
            return
        # No length given (chunked): read it here, up to the cap, then hand it on.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await _drain(receive)
                await self._refuse(scope, send)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        error = ProblemError(
            problems.REQUEST_TOO_LARGE,
            f"the request body is over the gateway's limit of {self.max_bytes} bytes",
        )
        body = problem_bytes(error, scope.get("path"))
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", MEDIA_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


DRAIN_BYTES = 64 * 1024 * 1024
"""How much of a refused body is read and dropped, so a client still sending it gets
the 413 instead of a reset connection; past this the connection is simply closed."""


async def _drain(receive: Receive) -> None:
    drained = 0
    while drained <= DRAIN_BYTES:
        message = await receive()
        if message["type"] != "http.request":
            return  # the client went away
        drained += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length itself
    return None


class ProblemHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
    """uvicorn's HTTP protocol, answering an unparseable request with a 400 problem."""

    def send_400_response(self, msg: str) -> None:
        error = ProblemError(
            problems.BAD_REQUEST,
            "the request is not valid HTTP/1.1 (a path must be ASCII: percent-encode "
            "other characters as UTF-8)",
        )
        body = problem_bytes(error)
        head = (
            "HTTP/1.1 400 Bad Request\r\n"
            f"content-type: {MEDIA_TYPE}\r\n"
            f"content-length: {len(body)}\r\n"
            "connection: close\r\n\r\n"
        )
        transport: Any = self.transport
        transport.write(head.encode() + body)
        transport.close()
