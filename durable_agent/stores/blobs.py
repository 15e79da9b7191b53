"""The blob store: what is too big for workflow history, kept by reference.

Workflow history holds references, never the bytes: a tool result over
``tool_result_inline_bytes`` is stored here by its tool call's idempotency key (and
the model activity reads it back when it builds the model's request), and compacted
turns keep their originals here under ``transcript/<workflow id>/<n>``. Keys are
written once (a retried activity writes the same bytes under the same key).

``SqliteBlobStore`` is the embedded default, shared by the workers of one machine;
``PostgresBlobStore`` serves workers on many machines. ``open_blob_store`` picks one
from the ``AGENT_BLOB_DB`` setting.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

from durable_agent.contract import Message, Transcript, TranscriptArchive
from durable_agent.stores._location import store_location
from durable_agent.stores._sqlite import SqliteFile

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs (
    key TEXT PRIMARY KEY,
    data BLOB NOT NULL
);
"""
_PG_SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs (
    key TEXT PRIMARY KEY,
    data BYTEA NOT NULL
);
"""


class BlobStoreError(RuntimeError):
    """The store could not be read or written (retryable: disk, locks, network)."""


class BlobNotFound(KeyError):
    """No blob has this key."""


class BlobStore(Protocol):
    """Write-once bytes by key, shared by every worker."""

    async def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``; a second put of the same key keeps the first."""
        ...

    async def get(self, key: str) -> bytes:
        """The bytes under ``key``; raises ``BlobNotFound``."""
        ...

    async def close(self) -> None: ...


class SqliteBlobStore:
    """``BlobStore`` on a local SQLite file."""

    def __init__(self, path: Path) -> None:
        self._db = SqliteFile(path, _SCHEMA, BlobStoreError, "blob store")

    async def put(self, key: str, data: bytes) -> None:
        await self._db.run(self._put, key, data)

    async def get(self, key: str) -> bytes:
        found = await self._db.run(self._get, key)
        if found is None:
            raise BlobNotFound(key)
        return found

    async def close(self) -> None:
        self._db.close()

    def _put(self, key: str, data: bytes) -> None:
        with self._db.connect() as conn:
            conn.execute(
                "INSERT INTO blobs (key, data) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                (key, data),
            )

    def _get(self, key: str) -> bytes | None:
        with self._db.connect() as conn:
            row = conn.execute("SELECT data FROM blobs WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])


class PostgresBlobStore:
    """``BlobStore`` on a PostgreSQL database (see ``PostgresDatabase``)."""

    def __init__(self, url: str) -> None:
        # Imported here: asyncpg is ~3 MiB resident, and a SQLite worker never needs it.
        from durable_agent.stores._postgres import PostgresDatabase

        self._db = PostgresDatabase(url, _PG_SCHEMA, BlobStoreError, "blob store")

    async def put(self, key: str, data: bytes) -> None:
        async with self._db.connect() as conn:
            await conn.execute(
                "INSERT INTO blobs (key, data) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                key,
                data,
            )

    async def get(self, key: str) -> bytes:
        async with self._db.connect() as conn:
            found = await conn.fetchval("SELECT data FROM blobs WHERE key = $1", key)
        if found is None:
            raise BlobNotFound(key)
        return bytes(found)

    async def close(self) -> None:
        await self._db.close()


def open_blob_store(url_or_path: str | Path) -> BlobStore:
    """The store for a setting: a path or ``sqlite:///path`` opens a
    ``SqliteBlobStore``, a ``postgresql://`` URL a ``PostgresBlobStore``. Nothing
    connects before the first call."""
    location = store_location(url_or_path, "blob store")
    if isinstance(location, Path):
        return SqliteBlobStore(location)
    return PostgresBlobStore(location)


async def archived_messages(store: BlobStore, archive: TranscriptArchive) -> list[Message]:
    """The messages of a transcript archive (earlier runs of a conversation, see
    ``Transcript.archived``), oldest first. Raises ``BlobNotFound``/``BlobStoreError``,
    or ``BlobStoreError`` when the blob does not hold what the archive says."""
    data = await store.get(archive.key)
    try:
        messages = [Message.model_validate(m) for m in json.loads(data)]
    except (ValueError, TypeError) as e:
        raise BlobStoreError(f"transcript archive {archive.key} is not a transcript") from e
    if len(messages) != archive.messages:
        raise BlobStoreError(
            f"transcript archive {archive.key} holds {len(messages)} messages, "
            f"expected {archive.messages}"
        )
    return messages


async def whole_transcript(store: BlobStore, transcript: Transcript) -> list[Message]:
    """Every message of a conversation: its archive (if any) and then the current run's."""
    if transcript.archived is None:
        return transcript.messages
    return [*await archived_messages(store, transcript.archived), *transcript.messages]
