"""The notes store behind the ``save_note`` and ``list_notes`` tools.

Every worker, on every machine, must see the same notes, and a retried ``save_note``
must not write twice: a note is keyed by the tool call's idempotency key, unique in
the store, so the database (not the worker) decides which write wins.

``SqliteNoteStore`` is the embedded default: one file, shared by the worker processes
of one machine (WAL mode, a busy timeout). ``PostgresNoteStore`` serves workers on
several machines with the same statement, ``INSERT … ON CONFLICT (key) DO NOTHING``.
``open_note_store`` picks one from the ``AGENT_NOTES_DB`` setting.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from durable_agent.stores._location import store_location
from durable_agent.stores._sqlite import SqliteFile


class NoteStoreError(RuntimeError):
    """The store could not do its work (disk, locks, network); worth retrying."""


class Note(BaseModel):
    """One saved note."""

    model_config = ConfigDict(frozen=True)

    id: int
    """Store-assigned, increasing: a larger id is a newer note."""
    key: str
    """The idempotency key of the tool call that saved it; unique."""
    tenant: str
    conversation_id: str
    text: str
    created_at: datetime
    """When it was first saved, UTC."""


class SavedNote(BaseModel):
    """The result of ``NoteStore.save``."""

    note: Note
    created: bool
    """``False`` when a note with this key already existed (a retried call)."""


class NoteStore(Protocol):
    """Where notes live. Implementations are safe for concurrent use by many tasks,
    threads and processes, and raise ``NoteStoreError`` when the storage fails."""

    async def save(self, *, key: str, tenant: str, conversation_id: str, text: str) -> SavedNote:
        """Save a note once per ``key``; a second save with the same key writes nothing
        and returns the note saved first."""
        ...

    async def list(self, *, tenant: str, query: str | None, limit: int) -> builtins.list[Note]:
        """The tenant's newest ``limit`` notes, newest first; with ``query``, only notes
        containing it (case-insensitive)."""
        ...

    async def count(self, *, tenant: str | None = None) -> int:
        """How many notes the tenant (or, for ``None``, everyone) has."""
        ...

    async def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    tenant TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS notes_tenant_id ON notes (tenant, id);
"""
_COLUMNS = "id, key, tenant, conversation_id, text, created_at"


class SqliteNoteStore:
    """``NoteStore`` on a local SQLite file (see ``SqliteFile``)."""

    def __init__(self, path: Path, *, clock: Callable[[], datetime] | None = None) -> None:
        self._db = SqliteFile(path, _SCHEMA, NoteStoreError, "notes store")
        self.path = self._db.path
        self._clock = clock or (lambda: datetime.now(UTC))

    async def save(self, *, key: str, tenant: str, conversation_id: str, text: str) -> SavedNote:
        created_at = self._clock().astimezone(UTC).isoformat()
        return await self._db.run(self._save, key, tenant, conversation_id, text, created_at)

    async def list(self, *, tenant: str, query: str | None, limit: int) -> builtins.list[Note]:
        return await self._db.run(self._list, tenant, query, limit)

    async def count(self, *, tenant: str | None = None) -> int:
        return await self._db.run(self._count, tenant)

    async def close(self) -> None:
        self._db.close()

    # --- in a worker thread -------------------------------------------------------------

    def _save(
        self, key: str, tenant: str, conversation_id: str, text: str, created_at: str
    ) -> SavedNote:
        with self._db.connect() as conn:
            inserted = conn.execute(
                "INSERT INTO notes (key, tenant, conversation_id, text, created_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
                (key, tenant, conversation_id, text, created_at),
            ).rowcount
            row = conn.execute(f"SELECT {_COLUMNS} FROM notes WHERE key = ?", (key,)).fetchone()
        return SavedNote(note=_note(row), created=inserted == 1)

    def _list(self, tenant: str, query: str | None, limit: int) -> builtins.list[Note]:
        sql = f"SELECT {_COLUMNS} FROM notes WHERE tenant = ?"
        params: builtins.list[object] = [tenant]
        if query:
            sql += " AND text LIKE ? ESCAPE '\\'"
            params.append(f"%{_escape_like(query)}%")
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        with self._db.connect() as conn:
            return [_note(row) for row in conn.execute(sql, params)]

    def _count(self, tenant: str | None) -> int:
        sql = "SELECT count(*) FROM notes"
        params: tuple[str, ...] = ()
        if tenant is not None:
            sql, params = sql + " WHERE tenant = ?", (tenant,)
        with self._db.connect() as conn:
            return int(conn.execute(sql, params).fetchone()[0])


def _note(row: tuple[int, str, str, str, str, str]) -> Note:
    id_, key, tenant, conversation_id, text, created_at = row
    return Note(
        id=id_,
        key=key,
        tenant=tenant,
        conversation_id=conversation_id,
        text=text,
        created_at=datetime.fromisoformat(created_at),
    )


def _escape_like(text: str) -> str:
    """Make ``%`` and ``_`` in a query match themselves."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


_PG_SCHEMA = """
CREATE TABLE IF NOT EXISTS notes (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    tenant TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS notes_tenant_id ON notes (tenant, id);
"""


class PostgresNoteStore:
    """``NoteStore`` on a PostgreSQL database (see ``PostgresDatabase``)."""

    def __init__(self, url: str, *, clock: Callable[[], datetime] | None = None) -> None:
        # Imported here: asyncpg is ~3 MiB resident, and a SQLite worker never needs it.
        from durable_agent.stores._postgres import PostgresDatabase

        self._db = PostgresDatabase(url, _PG_SCHEMA, NoteStoreError, "notes store")
        self._clock = clock or (lambda: datetime.now(UTC))

    async def save(self, *, key: str, tenant: str, conversation_id: str, text: str) -> SavedNote:
        created_at = self._clock().astimezone(UTC)
        async with self._db.connect() as conn:
            row = await conn.fetchrow(
                "INSERT INTO notes (key, tenant, conversation_id, text, created_at)"
                f" VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key) DO NOTHING RETURNING {_COLUMNS}",
                key,
                tenant,
                conversation_id,
                _pg_text(text),
                created_at,
            )
            if row is not None:
                return SavedNote(note=Note.model_validate(dict(row)), created=True)
            # A separate statement sees the row the winning writer committed.
            row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM notes WHERE key = $1", key)
        return SavedNote(note=Note.model_validate(dict(row)), created=False)

    async def list(self, *, tenant: str, query: str | None, limit: int) -> builtins.list[Note]:
        select = f"SELECT {_COLUMNS} FROM notes WHERE tenant = $1"
        async with self._db.connect() as conn:
            if query:  # strpos, not LIKE: nothing in the query is a wildcard
                rows = await conn.fetch(
                    f"{select} AND strpos(lower(text), lower($2)) > 0 ORDER BY id DESC LIMIT $3",
                    tenant,
                    _pg_text(query),
                    limit,
                )
            else:
                rows = await conn.fetch(f"{select} ORDER BY id DESC LIMIT $2", tenant, limit)
        return [Note.model_validate(dict(row)) for row in rows]

    async def count(self, *, tenant: str | None = None) -> int:
        async with self._db.connect() as conn:
            if tenant is None:
                return int(await conn.fetchval("SELECT count(*) FROM notes"))
            return int(await conn.fetchval("SELECT count(*) FROM notes WHERE tenant = $1", tenant))

    async def close(self) -> None:
        await self._db.close()


def _pg_text(text: str) -> str:
    """PostgreSQL text cannot hold NUL, which SQLite keeps: store U+FFFD instead of
    failing the save on every retry."""
    return text.replace("\x00", "\ufffd")


def open_note_store(url_or_path: str | Path) -> NoteStore:
    """The store for a setting: a path or ``sqlite:///path`` (``sqlite:////abs/path``
    for an absolute one) opens a ``SqliteNoteStore``, a ``postgresql://`` URL a
    ``PostgresNoteStore``. Nothing connects before the first call."""
    location = store_location(url_or_path, "notes store")
    if isinstance(location, Path):
        return SqliteNoteStore(location)
    return PostgresNoteStore(location)
