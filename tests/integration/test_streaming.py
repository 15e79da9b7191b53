"""Live streaming through a conversation's Workflow Stream, as clients read it: the
client API's iterator, the gateway's Server-Sent Events and the CLI, against the real
dev server with the offline planner streaming word by word at a pace.

What is checked: text arrives before the turn ends and adds up to the reply; a reader
resumes from its offset with nothing repeated or lost (SSE ``Last-Event-ID``, a worker
killed mid-stream); a reader follows the conversation across continue-as-new; a
closed conversation's stream drains and ends."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from bench.processes import worker_process
from durable_agent.client import (
    ConversationStream,
    start_conversation,
)
from durable_agent.config import Settings
from durable_agent.contract import ConversationInput, Reply, StreamItem
from durable_agent.devserver import DevServer
from durable_agent.streaming import TurnText
from durable_agent.testing.fake_tools import FakeToolServer
from tests.conftest import make_settings
from tests.gateway_support import key_entries, serving, sse_events, tenants
from tests.helpers import ROOT, eventually, run_command, running_worker

PACE = 0.05
"""Seconds between the words the offline planner streams."""
LONG = "hello"
"""A message the offline planner answers at length (its help: some 50 words)."""


@asynccontextmanager
async def paced_worker(
    client: Client, tmp_path: Path, tools: FakeToolServer, pace: float = PACE
) -> AsyncIterator[str]:
    """An in-process worker whose offline planner streams a word every ``pace`` seconds."""
    settings = make_settings(tmp_path, tools, offline_stream_pace_seconds=pace)
    queue = f"stream-{uuid.uuid4().hex[:10]}"
    async with running_worker(client, settings, queue):
        yield queue


async def collect(stream: ConversationStream, timeout: float = 60) -> list[StreamItem]:
    """Every item of ``stream`` until it ends."""
    items: list[StreamItem] = []

    async def read() -> None:
        async for item in stream:
            items.append(item)

    await asyncio.wait_for(read(), timeout)
    return items


def turn_text(items: Sequence[StreamItem], turn: int) -> str:
    """What a reader shows of ``turn``'s reply from ``items`` (restarts applied)."""
    text = TurnText(turn)
    for item in items:
        if item.delta is not None:
            text.apply(item.delta)
    return text.text


def assert_each_once_in_order(offsets: Sequence[int], first: int = 0) -> None:
    assert list(offsets) == list(range(first, first + len(offsets))), offsets


async def test_a_client_sees_the_answer_as_it_is_written(
    client: Client, tmp_path: Path, tool_server: FakeToolServer
) -> None:
    async with paced_worker(client, tmp_path, tool_server) as queue:
        conversation = await start_conversation(client, task_queue=queue)
        turn = await conversation.send_streaming(LONG)
        seen: list[tuple[float, str]] = []
        async with asyncio.timeout(60):
            async for text in turn:
                seen.append((time.monotonic(), text))
            reply = await turn.reply()
        replied = time.monotonic()
        # Streaming off (the default) for the next message: no delta in its turn.
        quiet = await conversation.send_message("What is 6 * 7?")
        items: list[StreamItem] = []
        page = conversation.stream()
        async with asyncio.timeout(30):
            async for item in page:
                items.append(item)
                if item.event is not None and item.event.kind == "reply" and item.event.turn == 2:
                    break

    before_reply = [t for at, t in seen if at < replied]
    assert len(before_reply) >= 3, f"{len(before_reply)} updates of {len(seen)} before the reply"
    assert seen[-1][1] == reply.text and reply.turn == turn.turn == 1
    assert all(b.startswith(a) for (_, a), (_, b) in itertools.pairwise(seen))
    # The stream holds the first turn's deltas (they add up to the reply), then its
    # reply; the second turn has step events only.
    assert_each_once_in_order([i.offset for i in items])
    deltas = [i.delta for i in items if i.delta is not None]
    assert "".join(d.text for d in deltas if d.kind == "text") == reply.text
    assert {d.turn for d in deltas} == {1}
    assert quiet.turn == 2 and "42" in quiet.text
    events = [i.event for i in items if i.event is not None]
    assert [e.seq for e in events] == [i.offset + 1 for i in items if i.event is not None]
    assert page.queries > 0 and page.missed == 0


async def test_sse_resumes_from_last_event_id_with_nothing_repeated_or_lost(
    client: Client, tmp_path: Path, tool_server: FakeToolServer, settings: Settings
) -> None:
    found = tenants(1)
    async with paced_worker(client, tmp_path, tool_server, pace=0.1) as queue:
        config = settings.model_copy(
            update={
                "task_queue": queue,
                "gateway_keys": key_entries(found),
                "gateway_events_poll_seconds": 0.05,
            }
        )
        async with (
            serving(config, client) as url,
            httpx.AsyncClient(base_url=url, headers=found[0].headers, timeout=30) as api,
        ):
            conversation = (await api.post("/v1/conversations", json={})).json()["id"]
            events = f"/v1/conversations/{conversation}/events"
            sent = await api.post(
                f"/v1/conversations/{conversation}/messages",
                params={"wait": "false"},
                json={"text": LONG, "stream": True},
            )
            assert sent.status_code == 202
            async with api.stream("GET", events) as stream:
                first = await read_sse(stream, lambda got: deltas_in(got) >= 3)
            # The connection dropped mid-turn. A client connecting now with no cursor
            # gets the turn so far; the first resumes after the last id it saw.
            async with api.stream("GET", events) as stream:
                late = await read_sse(stream, lambda got: deltas_in(got) >= 1)
            resume = {"Last-Event-ID": first[-1][2]}
            async with api.stream("GET", events, headers=resume) as stream:
                rest = await read_sse(stream, lambda got: got[-1][0] == "reply")
            async with api.stream("GET", events, params={"deltas": "false"}) as stream:
                steps = await read_sse(stream, lambda got: got[-1][0] == "reply")
            reply = (await api.get(f"/v1/conversations/{conversation}/transcript")).json()

    whole = first + rest
    assert deltas_in(rest) >= 1, "the turn ended before the first connection dropped"
    assert_each_once_in_order([int(id) for _, _, id in whole])
    assert late[0][0] == "turn_started" and late[0][2] == "0"
    text = "".join(d["text"] for kind, d, _ in whole if kind == "delta" and d["kind"] == "text")
    answer = reply["messages"][-1]["content"][0]["text"]
    assert text == whole[-1][1]["reply"]["text"] == answer
    # Without deltas: the same step events, with the same ids.
    assert [(k, i) for k, _, i in steps] == [(k, i) for k, _, i in whole if k != "delta"]


async def read_sse(
    response: httpx.Response, done: Any, timeout: float = 30
) -> list[tuple[str, dict[str, Any], str]]:
    """``(event, data, id)`` of the items of an SSE stream until ``done(items)``."""
    got: list[tuple[str, dict[str, Any], str]] = []

    async def consume() -> None:
        async for kind, data, id in sse_events(response):
            if id:
                got.append((kind, json.loads(data), id))
                if done(got):
                    return

    await asyncio.wait_for(consume(), timeout)
    return got


def deltas_in(got: Sequence[tuple[str, dict[str, Any], str]]) -> int:
    return sum(kind == "delta" for kind, _, _ in got)


async def test_a_reader_follows_the_conversation_across_continue_as_new(
    client: Client, tmp_path: Path, tool_server: FakeToolServer
) -> None:
    async with paced_worker(client, tmp_path, tool_server, pace=0.01) as queue:
        conversation = await start_conversation(
            client,
            ConversationInput(continue_as_new_after_turns=2, stream=True),
            task_queue=queue,
        )
        reading = asyncio.ensure_future(collect(conversation.stream(), timeout=120))
        replies: list[Reply] = []
        for _ in range(5):
            replies.append(await conversation.send_message(LONG))
        runs = (await conversation.status()).runs
        await conversation.end()
        items = await reading

    assert runs >= 3
    assert_each_once_in_order([i.offset for i in items])
    for reply in replies:
        assert turn_text(items, reply.turn) == reply.text
    ends = [
        i.event.kind for i in items if i.event is not None and i.event.kind in ("reply", "ended")
    ]
    assert ends == ["reply"] * 5 + ["ended"]


async def test_the_stream_of_a_closed_conversation_drains_and_ends(
    client: Client, tmp_path: Path, tool_server: FakeToolServer
) -> None:
    async with paced_worker(client, tmp_path, tool_server, pace=0.01) as queue:
        conversation = await start_conversation(client, task_queue=queue)
        reply = await conversation.send_message(LONG, stream=True)
        await conversation.end()
        await conversation.result()
        items = await collect(conversation.stream(), timeout=30)

        # Cancelled, it never says "ended": the reader sees the workflow closed.
        cancelled = await start_conversation(client, task_queue=queue)
        await cancelled.send_message("What is 6 * 7?")
        await cancelled.cancel()
        started = time.monotonic()
        tail = await collect(cancelled.stream(idle_poll_seconds=0.2), timeout=30)
        took = time.monotonic() - started

    assert_each_once_in_order([i.offset for i in items], items[0].offset)
    assert turn_text(items, 1) == reply.text
    assert [i.event.kind for i in items if i.event is not None][-2:] == ["reply", "ended"]
    assert [i.event.kind for i in tail if i.event is not None][-1] == "reply" and took < 15


@pytest.mark.slow  # the killed attempt times out on its heartbeat (30 s)
async def test_a_killed_worker_mid_stream_loses_and_repeats_nothing(
    client: Client, temporal_server: DevServer, tool_server: FakeToolServer, tmp_path: Path
) -> None:
    queue = f"stream-crash-{uuid.uuid4().hex[:10]}"
    notes_db = tmp_path / "notes.sqlite3"
    env = {"AGENT_OFFLINE_STREAM_PACE_SECONDS": "0.1"}
    conversation = await start_conversation(client, task_queue=queue)
    items: list[StreamItem] = []

    async def read(stream: ConversationStream, into: list[StreamItem]) -> None:
        async for item in stream:
            into.append(item)
            if item.event is not None and item.event.kind == "reply":
                return

    async with worker_process(temporal_server, queue, notes_db, tool_server, env=env) as first:
        sending = asyncio.ensure_future(conversation.send_message(LONG, stream=True))
        reading = asyncio.ensure_future(read(conversation.stream(), items))
        await eventually(_count_text(items), until=lambda n: n >= 1, timeout=30)
        before_kill = items[-1].offset
        first.send_signal(signal.SIGKILL)
        await first.wait()
        assert not sending.done()

    async with worker_process(temporal_server, queue, notes_db, tool_server, env=env):
        reply = await asyncio.wait_for(sending, timeout=90)
        await asyncio.wait_for(reading, timeout=30)
        # Another reader resumes from the offset the first had when the worker died.
        resumed: list[StreamItem] = []
        await asyncio.wait_for(read(conversation.stream(after=before_kill), resumed), 30)
        status = await conversation.status()

    assert_each_once_in_order([i.offset for i in items])
    assert resumed == [i for i in items if i.offset > before_kill]
    deltas = [i.delta for i in items if i.delta is not None]
    assert [(d.kind, d.attempt) for d in deltas if d.kind == "restarted"] == [("restarted", 2)]
    assert turn_text(items, 1) == reply.text and status.turns == 1
    assert sum(i.event is not None and i.event.kind == "reply" for i in items) == 1


def _count_text(items: list[StreamItem]) -> Any:
    async def probe() -> int:
        return sum(i.delta is not None and i.delta.kind == "text" for i in items)

    return probe


async def test_the_cli_prints_the_answer_as_it_is_written(
    client: Client, temporal_server: DevServer, tmp_path: Path, tool_server: FakeToolServer
) -> None:
    async with paced_worker(client, tmp_path, tool_server, pace=0.1) as queue:
        conversation = await start_conversation(client, task_queue=queue)
        cli = [sys.executable, "starter.py"]
        where = ["--server", temporal_server.address, "-c", conversation.id]
        chunks = await timed_output(*cli, "send", *where, "--stream", LONG)
        code, chat, err = await run_command(
            *cli, "chat", *where, "--stream", stdin=f"{LONG}\n/quit\n"
        )
        transcript = await conversation.transcript()

    answer = transcript.messages[-1].text()
    out = "".join(chunk for _, chunk in chunks)
    assert out.startswith(f"assistant: {answer}\n") and out.count(answer) == 1
    assert "[turn 1 · offline:" in out
    first_words = next(at for at, chunk in chunks if "assistant: " in chunk)
    details = next(at for at, chunk in chunks if "[turn 1" in chunk)
    assert details - first_words > 1.0  # the answer came word by word, not at the end
    assert code == 0, err
    assert f"assistant: {answer}\n" in chat and chat.count(answer) == 1
    assert "[turn 2 · offline:" in chat


async def timed_output(*command: str, timeout: float = 60) -> list[tuple[float, str]]:
    """What ``command`` writes to stdout, chunk by chunk, with when each came."""
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL, cwd=ROOT
    )
    assert process.stdout is not None
    chunks: list[tuple[float, str]] = []
    async with asyncio.timeout(timeout):
        while chunk := await process.stdout.read(4096):
            chunks.append((time.monotonic(), chunk.decode()))
        assert await process.wait() == 0
    return chunks


async def test_streaming_chat_asks_for_approval_on_a_line_of_its_own(
    temporal_server: DevServer, task_queue: str, settings: Settings
) -> None:
    code, out, err = await run_command(
        sys.executable, "starter.py", "chat", "--server", temporal_server.address,
        "--task-queue", task_queue, "--approval-tools", "save_note", "--by", "me", "--stream",
        stdin="Remember that streaming chat asks first\ny\n/quit\n",
    )  # fmt: skip
    assert code == 0, err
    # The first model call's words, the question, then the reply (the second call's).
    assert "assistant: Let me use save_note.\napproval needed: save_note" in out
    assert "approved by me\nassistant: I saved that note.\n  · save_note" in out
    assert out.count("I saved that note.") == 1
