"""The fake Messages API's prompt cache: reads, writes and what is left uncached."""

from __future__ import annotations

import threading
from typing import Any

from durable_agent.testing.prompt_cache import PromptCache, breakpoint_count, prompt_tokens

MODEL = "claude-sonnet-4-6"
MARK = {"type": "ephemeral"}
TOOLS = [
    {"name": f"tool_{i}", "description": "d" * 400, "input_schema": {"type": "object"}}
    for i in range(3)
]
SYSTEM = "You are a careful assistant. " * 40


def text(value: str, marked: bool = False) -> dict[str, Any]:
    return {"type": "text", "text": value, **({"cache_control": MARK} if marked else {})}


def turns(n: int, marked_at: tuple[int, ...] = (-1,)) -> list[dict[str, Any]]:
    """``n`` alternating messages of one text block; the listed ones marked."""
    marked = {i % n for i in marked_at} if n else set()
    return [
        {
            "role": "user" if i % 2 == 0 else "assistant",
            "content": [text(f"m{i} " * 30, i in marked)],
        }
        for i in range(n)
    ]


def body(messages: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    tools = [*TOOLS[:-1], {**TOOLS[-1], "cache_control": MARK}]
    return {
        "model": MODEL,
        "max_tokens": 64,
        "tools": tools,
        "system": [text(SYSTEM, marked=True)],
        "messages": messages,
        **fields,
    }


def total(usage: dict[str, int]) -> int:
    return sum(usage.values())


def test_the_first_request_writes_up_to_its_last_breakpoint() -> None:
    cache = PromptCache(min_tokens=100)
    request = body(turns(3))
    usage = cache.account(request)
    assert usage["cache_read_input_tokens"] == 0
    assert usage["cache_creation_input_tokens"] == prompt_tokens(request)  # marked at the end
    assert usage["input_tokens"] == 0

    assert cache.account(request) == {
        "input_tokens": 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": prompt_tokens(request),
    }


def test_what_follows_the_last_breakpoint_is_plain_input() -> None:
    cache = PromptCache(min_tokens=100)
    request = body(turns(3, marked_at=()))  # tools and system marked, not the messages
    prefix = prompt_tokens(body([]))
    usage = cache.account(request)
    assert usage["cache_creation_input_tokens"] == prefix
    assert usage["input_tokens"] == prompt_tokens(request) - prefix
    assert total(usage) == prompt_tokens(request)


def test_a_growing_conversation_reads_what_the_previous_call_wrote() -> None:
    cache = PromptCache(min_tokens=100)
    first = body(turns(3))
    cache.account(first)
    second = body(turns(5))  # two more messages, the mark moved to the new end
    usage = cache.account(second)
    assert usage["cache_read_input_tokens"] == prompt_tokens(first)
    assert usage["cache_creation_input_tokens"] == prompt_tokens(second) - prompt_tokens(first)
    assert usage["input_tokens"] == 0


def test_tools_and_system_are_shared_by_other_conversations() -> None:
    cache = PromptCache(min_tokens=100)
    cache.account(body(turns(3)))
    other = body([{"role": "user", "content": [text("something else entirely", True)]}])
    assert cache.account(other)["cache_read_input_tokens"] == prompt_tokens(body([]))


def test_the_lookback_ends_20_blocks_before_a_breakpoint() -> None:
    cache = PromptCache(min_tokens=100)
    cache.account(body(turns(3)))
    far = body(turns(3 + 21))  # 21 more blocks: the old end is out of the new mark's reach
    assert cache.account(far)["cache_read_input_tokens"] == prompt_tokens(body([]))

    cache.clear()
    cache.account(body(turns(3)))
    anchored = body(turns(3 + 21, marked_at=(-1, 2)))  # a second mark on the old end
    assert cache.account(anchored)["cache_read_input_tokens"] == prompt_tokens(body(turns(3)))

    cache.clear()
    cache.account(body(turns(3)))
    near = body(turns(3 + 20))
    assert cache.account(near)["cache_read_input_tokens"] == prompt_tokens(body(turns(3)))


def test_prefixes_shorter_than_the_minimum_are_not_cached() -> None:
    cache = PromptCache(min_tokens=10**6)
    request = body(turns(3))
    for _ in range(2):
        usage = cache.account(request)
        assert usage == {
            "input_tokens": prompt_tokens(request),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }


def test_without_breakpoints_everything_is_input_and_nothing_is_written() -> None:
    cache = PromptCache(min_tokens=1)
    plain = {"model": MODEL, "max_tokens": 8, "system": SYSTEM, "messages": turns(3, ())}
    assert breakpoint_count(plain) == 0
    assert cache.account(plain)["input_tokens"] == prompt_tokens(plain)
    marked = body(turns(3))
    assert cache.account(marked)["cache_read_input_tokens"] == 0


def test_markers_do_not_change_the_content_or_the_estimate() -> None:
    cache = PromptCache(min_tokens=100)
    cache.account(body(turns(3)))
    same = body(turns(3), system=SYSTEM)  # a plain-string system prompt, not marked
    assert prompt_tokens(same) == prompt_tokens(body(turns(3)))
    assert cache.account(same)["cache_read_input_tokens"] == prompt_tokens(same)
    # A read never reaches past the request's own last breakpoint.
    earlier = body(turns(3, marked_at=(1,)))
    assert cache.account(earlier)["cache_read_input_tokens"] == prompt_tokens(body([]))


def test_an_entry_matches_one_model_and_exact_content() -> None:
    cache = PromptCache(min_tokens=100)
    cache.account(body(turns(3)))
    assert cache.account(body(turns(3), model="claude-opus-4-6"))["cache_read_input_tokens"] == 0
    edited = turns(3)
    edited[0]["content"][0]["text"] += "!"
    usage = cache.account(body(edited))
    assert usage["cache_read_input_tokens"] == prompt_tokens(body([]))  # up to the change


def test_top_level_cache_control_marks_the_last_block() -> None:
    cache = PromptCache(min_tokens=100)
    automatic = {"model": MODEL, "max_tokens": 8, "messages": turns(6, ()), "cache_control": MARK}
    assert breakpoint_count(automatic) == 1
    cache.account(automatic)
    assert cache.account(automatic)["cache_read_input_tokens"] == prompt_tokens(automatic)


def test_string_content_is_one_text_block() -> None:
    as_string = {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    as_block = {**as_string, "messages": [{"role": "user", "content": [text("hi")]}]}
    assert prompt_tokens(as_string) == prompt_tokens(as_block) > 0


def test_concurrent_identical_requests_write_once() -> None:
    cache = PromptCache(min_tokens=100)
    request = body(turns(3))
    results: list[dict[str, int]] = []
    lock = threading.Lock()

    def call() -> None:
        usage = cache.account(request)
        with lock:
            results.append(usage)

    workers = [threading.Thread(target=call) for _ in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    writes = [u for u in results if u["cache_creation_input_tokens"]]
    assert len(writes) == 1
    assert all(total(u) == prompt_tokens(request) for u in results)
