"""The prompt cache of the fake Messages API: what each request reads from and writes to it.

It follows Anthropic's documented behaviour, deterministically, so cache usage in tests is
what the real API would report for the same breakpoints (up to the token estimate):

- A prompt is a list of blocks in the API's order: each tool definition, each system text
  block, each content block of each message. A block marked ``cache_control`` is a
  breakpoint (so is the last block when the request sets ``cache_control`` at the top level,
  the API's automatic caching); a request may have at most ``MAX_BREAKPOINTS``.
- Tokens are estimated as characters / 4 of the blocks' canonical JSON (keys sorted,
  ``cache_control`` stripped), the same for every request, marked or not.
- Read: at each breakpoint the cache is checked at the breakpoint and up to
  ``lookback_blocks`` block boundaries before it; the longest prefix found is read
  (``cache_read_input_tokens``). An entry matches only the same model and the same content.
- Write: every breakpoint whose prefix has at least ``min_tokens`` tokens is written; the
  tokens from the end of the read to the last such breakpoint are the write
  (``cache_creation_input_tokens``). Shorter prefixes are not cached, as in the API.
- The rest is ``input_tokens``: the three always add up to the prompt's tokens.

Entries never expire (the API's last five minutes from their last use); ``clear()`` forgets.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from typing import Any

MAX_BREAKPOINTS = 4
"""Blocks a request may mark with ``cache_control`` (the API answers 400 beyond)."""
LOOKBACK_BLOCKS = 20
"""Block boundaries before a breakpoint at which the API also looks for a cached prefix."""
DEFAULT_MIN_TOKENS = 1024
"""Shortest cacheable prefix of Claude Sonnet 4.5 / 4.6 (Opus 4.5+ and Haiku 4.5: 4096)."""
CHARS_PER_TOKEN = 4


def strip_cache_control(value: Any) -> Any:
    """``value`` without ``cache_control`` markers: they steer the cache, not the content."""
    if isinstance(value, dict):
        return {k: strip_cache_control(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [strip_cache_control(v) for v in value]
    return value


def _text_blocks(content: Any) -> list[Any]:
    """Content as a list of blocks: a plain string is one text block."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return list(content) if isinstance(content, list) else []


def _blocks(body: dict[str, Any]) -> list[tuple[str, bool]]:
    """The prompt's blocks in order, each as (canonical JSON, is a breakpoint)."""
    tagged: list[tuple[dict[str, Any], Any]] = [
        ({"tool": index}, tool) for index, tool in enumerate(body.get("tools") or [])
    ]
    tagged += [({"system": 0}, block) for block in _text_blocks(body.get("system"))]
    for index, message in enumerate(body.get("messages") or []):
        if isinstance(message, dict):
            where = {"message": index, "role": message.get("role")}
            tagged += [(where, block) for block in _text_blocks(message.get("content"))]
    blocks = [
        (
            json.dumps(
                {**where, "block": strip_cache_control(block)}, sort_keys=True, ensure_ascii=False
            ),
            isinstance(block, dict) and "cache_control" in block,
        )
        for where, block in tagged
    ]
    if blocks and body.get("cache_control"):
        blocks[-1] = (blocks[-1][0], True)
    return blocks


def breakpoint_count(body: dict[str, Any]) -> int:
    """How many blocks of the request are marked ``cache_control``."""
    return sum(marked for _, marked in _blocks(body))


def prompt_tokens(body: dict[str, Any]) -> int:
    """The estimated input tokens of a request, cached or not."""
    return sum(len(text) for text, _ in _blocks(body)) // CHARS_PER_TOKEN


@dataclass(frozen=True)
class _Prompt:
    """A request's prompt as prefix keys and token counts per block boundary: boundary
    ``k`` ends after the first ``k`` blocks (0 is the empty prefix)."""

    keys: list[bytes]
    tokens: list[int]
    breakpoints: list[int]
    """Boundaries that end at a marked block."""

    @classmethod
    def of(cls, body: dict[str, Any]) -> _Prompt:
        digest = hashlib.sha256(json.dumps(body.get("model")).encode())
        keys, tokens, breakpoints, chars = [digest.digest()], [0], [], 0
        for boundary, (text, marked) in enumerate(_blocks(body), start=1):
            data = text.encode()
            digest.update(len(data).to_bytes(8, "big") + data)  # length-prefixed: unambiguous
            chars += len(text)
            keys.append(digest.copy().digest())
            tokens.append(chars // CHARS_PER_TOKEN)
            if marked:
                breakpoints.append(boundary)
        return cls(keys, tokens, breakpoints)


class PromptCache:
    """Cached prompt prefixes of one fake server; safe to use from its handler threads."""

    def __init__(
        self, min_tokens: int = DEFAULT_MIN_TOKENS, lookback_blocks: int = LOOKBACK_BLOCKS
    ) -> None:
        self.min_tokens = min_tokens
        """Shortest prefix that is written (shorter breakpoints are ignored)."""
        self.lookback_blocks = lookback_blocks
        """Boundaries before each breakpoint also checked for a cached prefix."""
        self._lock = threading.Lock()
        self._entries: set[bytes] = set()

    def account(self, body: dict[str, Any]) -> dict[str, int]:
        """Serve ``body`` from the cache: its usage input counts (``input_tokens``,
        ``cache_creation_input_tokens``, ``cache_read_input_tokens``), its writes kept."""
        prompt = _Prompt.of(body)
        candidates = {
            boundary
            for b in prompt.breakpoints
            for boundary in range(max(b - self.lookback_blocks, 1), b + 1)
        }
        writes = [b for b in prompt.breakpoints if prompt.tokens[b] >= self.min_tokens]
        with self._lock:
            read = max((k for k in candidates if prompt.keys[k] in self._entries), default=0)
            self._entries.update(prompt.keys[b] for b in writes)
        read_tokens = prompt.tokens[read]
        written = max(prompt.tokens[max(writes, default=0)] - read_tokens, 0)
        return {
            "input_tokens": prompt.tokens[-1] - read_tokens - written,
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": read_tokens,
        }

    def clear(self) -> None:
        """Forget every cached prefix."""
        with self._lock:
            self._entries.clear()
