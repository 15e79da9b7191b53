"""A loopback fake of the Anthropic Messages API, for tests, soak and load scripts.

The ``anthropic`` SDK is built on ``httpx2``, so transport mocks cannot intercept it: the
fake is a real HTTP server on 127.0.0.1 that the real SDK talks to. It serves
``POST /v1/messages`` (plain and streaming), ``GET /v1/models``, and ``GET /health`` (the
fake's own readiness, never faulted nor recorded). A *responder* decides what the model
says; a :class:`~durable_agent.testing.faults.FaultScript` decides what goes wrong. The
input side of each answer's usage comes from the server's prompt cache
(:mod:`durable_agent.testing.prompt_cache`), so ``cache_control`` breakpoints are billed as
the API would bill them::

    with FakeAnthropicServer(faults=FaultScript(Fault(status=429, retry_after=1))) as srv:
        client = anthropic.AsyncAnthropic(api_key="k", base_url=srv.base_url, max_retries=0)

Run it alone with ``python -m durable_agent.testing.fake_anthropic --port 8765``.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult

from durable_agent.testing._loopback import LoopbackHandler, LoopbackServer, serve_until_interrupted
from durable_agent.testing.faults import Fault, FaultScript
from durable_agent.testing.prompt_cache import (
    DEFAULT_MIN_TOKENS,
    MAX_BREAKPOINTS,
    PromptCache,
    breakpoint_count,
)

Responder = Callable[[dict[str, Any]], dict[str, Any]]
"""Turns a parsed Messages API request body into an Anthropic Message JSON dict. Usage
input counts it leaves out are reported from the server's prompt cache; a message that
sets any of them pins them all (a script that needs exact usage)."""
INPUT_USAGE = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
"""The usage counts of a request's prompt."""

DEFAULT_MODEL = "claude-sonnet-4-6"
"""Model named in built messages when none is given (not deprecated in anthropic 2.12)."""
MODELS = ("claude-sonnet-4-6", "claude-opus-4-6", "claude-haiku-4-5")
"""Ids listed by ``GET /v1/models``."""

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received (``/health`` excluded)."""

    method: str
    path: str
    """Path without the query string."""
    headers: dict[str, str]
    """Header names in lower case."""
    body: dict[str, Any]
    """Parsed JSON body; ``{}`` when absent or not a JSON object."""
    received_at: float = field(default_factory=time.monotonic)
    """``time.monotonic()`` when the request was read."""


def _tokens(text: str) -> int:
    return len(text) // 4 + 1


def _texts(content: Any) -> Iterator[str]:
    """The text inside message content: a string, or text / tool_result / tool_use blocks."""
    if isinstance(content, str):
        yield content
        return
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            yield str(block.get("text", ""))
        elif block.get("type") == "tool_result":
            yield from _texts(block.get("content", ""))
        elif block.get("type") == "tool_use":
            yield json.dumps(block.get("input", {}))


def tool_use_block(name: str, input: dict[str, Any], id: str | None = None) -> dict[str, Any]:
    """A ``tool_use`` content block; the id is random unless given."""
    return {
        "type": "tool_use",
        "id": id or f"toolu_{uuid.uuid4().hex[:24]}",
        "name": name,
        "input": input,
    }


def make_message(
    content: str | list[dict[str, Any]],
    stop_reason: str = "end_turn",
    usage: Mapping[str, int] | None = None,
    model: str = DEFAULT_MODEL,
) -> dict[str, Any]:
    """An Anthropic Message JSON dict. ``content`` is a text or a list of blocks.
    ``output_tokens`` not given is estimated from the content; input counts not given are
    left to the server (its prompt cache), unless some are given: then the rest are 0."""
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
    counts: dict[str, Any] = {"output_tokens": _tokens("".join(_texts(blocks))), **(usage or {})}
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "content": blocks,
        "model": model,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": counts,
    }


def echo_responder(request: dict[str, Any]) -> dict[str, Any]:
    """The default responder: one text block ``"echo: <last user text>"``, of
    ``len(text) // 4 + 1`` output tokens (input tokens come from the prompt cache)."""
    messages = request.get("messages") or []
    user = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    text = "echo: " + "".join(_texts(user[-1].get("content"))) if user else "echo: "
    return make_message(text, model=str(request.get("model", DEFAULT_MODEL)))


_WORDS = re.compile(r"\s*\S+|\s+")


def _chunks(text: str, parts: int = 3, words_per_delta: int | None = None) -> list[str]:
    """``text`` in ``parts`` pieces, or in pieces of ``words_per_delta`` words (each
    with the whitespace before it) as the API streams prose."""
    if words_per_delta is not None:
        words = _WORDS.findall(text)
        step = max(1, words_per_delta)
        return ["".join(words[i : i + step]) for i in range(0, len(words), step)]
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _event(name: str, **fields: Any) -> tuple[str, dict[str, Any]]:
    return name, {"type": name, **fields}


def _stream_events(
    message: dict[str, Any], words_per_delta: int | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The server-sent events the real API streams for ``message``, in order: each text
    in three deltas, or in deltas of ``words_per_delta`` words."""
    usage = dict(message.get("usage") or {})
    # The API reports output_tokens 1 at the start and the total in message_delta.
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    yield _event("message_start", message={**start, "usage": {**usage, "output_tokens": 1}})
    yield _event("ping")
    for index, block in enumerate(message.get("content") or []):
        first: dict[str, Any] = block  # block types without deltas arrive whole
        deltas: list[dict[str, Any]] = []
        if block.get("type") == "text":
            first = {"type": "text", "text": ""}
            chunks = _chunks(block["text"], words_per_delta=words_per_delta)
            deltas = [{"type": "text_delta", "text": t} for t in chunks]
        elif block.get("type") == "tool_use":
            first = {**block, "input": {}}
            json_text = json.dumps(block.get("input", {}))
            deltas = [{"type": "input_json_delta", "partial_json": j} for j in _chunks(json_text)]
        yield _event("content_block_start", index=index, content_block=first)
        for delta in deltas:
            yield _event("content_block_delta", index=index, delta=delta)
        yield _event("content_block_stop", index=index)
    stop = {
        "stop_reason": message.get("stop_reason"),
        "stop_sequence": message.get("stop_sequence"),
    }
    # Like the API, the final usage repeats the input counts (cumulative, not a delta).
    yield _event("message_delta", delta=stop, usage=usage)
    yield _event("message_stop")


def _validate(body: dict[str, Any]) -> str | None:
    """The API's 400 message for a malformed request, or None."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        return "max_tokens: Field required (an integer >= 1)"
    if not isinstance(body.get("messages"), list):
        return "messages: Input should be a valid list"
    marked = breakpoint_count(body)
    if marked > MAX_BREAKPOINTS:
        return (
            f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {marked}."
        )
    return None


def _with_input_usage(message: dict[str, Any], cached: dict[str, int]) -> dict[str, Any]:
    """``message`` with its usage input counts from the prompt cache, unless it pins some."""
    usage = dict(message.get("usage") or {})
    if any(field in usage for field in INPUT_USAGE):
        cached = dict.fromkeys(INPUT_USAGE, 0)
    return {**message, "usage": {"output_tokens": 0, **cached, **usage}}


def _models_page() -> dict[str, Any]:
    data = [
        {
            "id": m,
            "type": "model",
            "display_name": m.replace("-", " ").title(),
            "created_at": "2026-01-01T00:00:00Z",
            "lifecycle": "active",
        }
        for m in MODELS
    ]
    return {"data": data, "has_more": False, "first_id": MODELS[0], "last_id": MODELS[-1]}


class _Handler(LoopbackHandler["FakeAnthropicServer"]):
    request_id = ""
    body: dict[str, Any]
    """The request's JSON body, read by ``recorded``."""
    body_error: str | None
    """Why the body is unusable, or None."""

    def do_GET(self) -> None:
        self.request_id = f"req_{uuid.uuid4().hex[:24]}"
        self.handle_request()

    do_POST = do_GET

    def extra_headers(self) -> Mapping[str, str]:
        return {"request-id": self.request_id}

    def error_body(self, status: int, message: str, error_type: str | None) -> dict[str, Any]:
        error = {"type": error_type or _ERROR_TYPES.get(status, "api_error"), "message": message}
        return {"type": "error", "error": error, "request_id": self.request_id}

    def recorded(self, url: SplitResult) -> RecordedRequest:
        self.body, self.body_error = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        return RecordedRequest(self.command, url.path, headers, self.body)

    def serve(self, url: SplitResult, fault: Fault) -> None:
        auth = self.headers.get("authorization", "")
        if not self.headers.get("x-api-key") and not auth.startswith("Bearer "):
            return self.send_error_json(401, "x-api-key header is required")
        if (self.command, url.path) == ("GET", "/v1/models"):
            return self.send_json(200, _models_page())
        if (self.command, url.path) == ("POST", "/v1/messages"):
            return self._messages(fault)
        self.send_error_json(404, f"Not found: {self.command} {url.path}")

    def _read_body(self) -> tuple[dict[str, Any], str | None]:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        if not raw:
            return {}, "Request body is required" if self.command == "POST" else None
        try:
            body = json.loads(raw)
        except ValueError as e:
            return {}, f"Request body is not valid JSON: {e}"
        return (body, None) if isinstance(body, dict) else ({}, "Request body must be an object")

    def _messages(self, fault: Fault) -> None:
        error = self.body_error or _validate(self.body)
        if error:
            return self.send_error_json(400, error)
        try:
            message = self.fake.responder(self.body)
        except Exception as e:  # a broken responder must show up as a 500, not a hang
            return self.send_error_json(500, f"Responder failed: {e!r}")
        message = _with_input_usage(message, self.fake.prompt_cache.account(self.body))
        if self.body.get("stream"):
            return self._stream(message, fault)
        self.send_json(200, message)

    def _stream(self, message: dict[str, Any], fault: Fault) -> None:
        self.send_head(
            200,
            {
                "content-type": "text/event-stream; charset=utf-8",
                "cache-control": "no-cache",
                "transfer-encoding": "chunked",
            },
        )
        events = list(_stream_events(message, self.fake.words_per_delta))
        pace = fault.stream_event_delay or self.fake.stream_pace
        if fault.stream_error:
            error = {"type": fault.stream_error, "message": "Injected stream error"}
            events = [events[0], _event("error", error=error)]
        for sent, (name, data) in enumerate(events):
            if fault.cut_stream_after is not None and sent >= fault.cut_stream_after:
                return self.abort()
            if self.pause(pace if sent else 0.0):
                return self.abort()
            payload = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
        if fault.cut_stream_after is not None:  # a cut stream never ends its body
            return self.abort()
        self.wfile.write(b"0\r\n\r\n")


class FakeAnthropicServer(LoopbackServer[RecordedRequest]):
    """A fake Messages API on ``127.0.0.1``, served from a daemon thread.

    Each request takes at most one fault from ``faults``; ``requests`` records what came
    in. After ``stop()``, ``start()`` serves again on the same port (an outage and back).
    ``base_url`` is what ``AsyncAnthropic(base_url=...)`` takes.
    """

    handler = _Handler
    thread_name = "fake-anthropic"

    def __init__(
        self,
        responder: Responder = echo_responder,
        faults: FaultScript | None = None,
        *,
        port: int = 0,
        verbose: bool = False,
        min_cacheable_tokens: int = DEFAULT_MIN_TOKENS,
        stream_pace: float = 0.0,
        words_per_delta: int | None = None,
    ) -> None:
        super().__init__(faults, port=port, verbose=verbose)
        self.responder = responder
        """Builds the reply to each valid ``POST /v1/messages``; may be swapped any time."""
        self.stream_pace = stream_pace
        """Seconds between streamed events (a model writing at a human-visible pace),
        unless a fault sets its own ``stream_event_delay``; may be changed any time."""
        self.words_per_delta = words_per_delta
        """Stream text in deltas of this many words (``None``: three deltas per text
        block); may be changed any time."""
        self._stream_shape = (stream_pace, words_per_delta)
        self.prompt_cache = PromptCache(min_cacheable_tokens)
        """Prefixes written by earlier requests; every valid request reads and writes it."""

    def reset(self) -> None:
        """Forget recorded requests, every fault and the prompt cache; stream at the
        pace and in the deltas the server was made with."""
        super().reset()
        self.prompt_cache.clear()
        self.stream_pace, self.words_per_delta = self._stream_shape


def main(argv: list[str] | None = None) -> None:
    """Serve the fake until Ctrl-C, printing its base URL."""
    serve_until_interrupted(FakeAnthropicServer, "Fake Anthropic Messages API", 8765, argv)


if __name__ == "__main__":
    main()
