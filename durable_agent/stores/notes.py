"""The notes store behind the ``save_note`` and ``list_notes`` tools.

Every worker, on every machine, must see the same notes, and a retried ``save_note``
must not write twice: a note is keyed by the tool call's idempotency key, unique in
the store, so the database (not the worker) decides which write wins.

``SqliteNoteStore`` is the embedded default: one file, shared by the worker processes
of one machine (WAL mode, a busy timeout). ``NoteStore`` is the protocol a
server-backed store (PostgreSQL: ``INSERT … ON CONFLICT (key) DO NOTHING``, the same
statement) implements for workers on several machines.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict

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


def open_note_store(url_or_path: str | Path) -> NoteStore:
    """The store for a setting: a path or ``sqlite:///path`` (``sqlite:////abs/path``
    for an absolute one) opens a ``SqliteNoteStore``."""
    if isinstance(url_or_path, Path):
        return SqliteNoteStore(url_or_path)
    scheme, sep, rest = url_or_path.partition("://")
    if not sep:
        return SqliteNoteStore(Path(url_or_path))
    if scheme == "sqlite" and rest.startswith("/") and len(rest) > 1:
        return SqliteNoteStore(Path(rest[1:]))
    if scheme in ("postgres", "postgresql") or scheme.startswith("postgresql+"):
        raise NotImplementedError(
            "a PostgreSQL notes store is not built in yet: the server-backed store arrives "
            "with multi-machine deployment; use a SQLite path for now"
        )
    raise ValueError(f"unsupported notes store {scheme!r}: use a path or sqlite:///path")
