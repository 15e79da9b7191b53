"""A conversation on a worker whose notes and blob stores are PostgreSQL (a real server,
the session's): what the tools save lands in the database every worker shares."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
from temporalio.client import Client

from durable_agent.client import start_conversation
from durable_agent.testing.fake_tools import FakeToolServer
from tests.conftest import make_settings
from tests.helpers import running_worker, saved_notes

LONG_NOTE = "the boiler manual says " + "bleed the radiators first, " * 12


async def test_conversation_keeps_its_notes_and_large_results_in_postgres(
    client: Client, tmp_path: Path, tool_server: FakeToolServer, postgres_url: str
) -> None:
    settings = make_settings(
        tmp_path,
        tool_server,
        notes_db=postgres_url,
        blob_db=postgres_url,
        tool_result_inline_bytes=256,  # the long note's listing goes to the blob store
    )
    queue = f"postgres-{uuid.uuid4().hex[:10]}"
    async with running_worker(client, settings, queue):
        conversation = await start_conversation(client, task_queue=queue)
        saved = await conversation.send_message("Remember that the boiler code is 4711")
        assert [(c.name, c.outcome) for c in saved.tool_calls] == [("save_note", "ok")]
        await conversation.send_message(f"Remember that {LONG_NOTE}")
        listed = await conversation.send_message("What did I note?")

    (listing,) = listed.tool_calls
    assert listing.name == "list_notes" and listing.outcome == "ok" and listing.result_ref
    # The model activity read the whole result back from PostgreSQL (an unreadable
    # reference would have failed the turn).
    assert listed.status == "ok" and "radiators" in listed.text

    conn = await asyncpg.connect(postgres_url, timeout=10)
    try:
        notes = await conn.fetch("SELECT tenant, conversation_id, text FROM notes ORDER BY id")
        blob = await conn.fetchval("SELECT data FROM blobs WHERE key = $1", listing.result_ref)
    finally:
        await conn.close()
    assert [(n["tenant"], n["conversation_id"]) for n in notes] == [
        ("default", conversation.id)
    ] * 2
    assert "4711" in notes[0]["text"] and "radiators" in notes[1]["text"]
    assert "boiler code is 4711" in bytes(blob).decode()
    assert await saved_notes(settings) == [n["text"] for n in notes]  # the factory's view
