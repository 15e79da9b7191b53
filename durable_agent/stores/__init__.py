"""Storage shared by the workers outside Temporal: the notes store and the blob store,
each on SQLite (one machine) or PostgreSQL (many), chosen by a path or a URL."""

from durable_agent.stores.blobs import (
    BlobNotFound,
    BlobStore,
    BlobStoreError,
    PostgresBlobStore,
    SqliteBlobStore,
    open_blob_store,
)
from durable_agent.stores.notes import (
    Note,
    NoteStore,
    NoteStoreError,
    PostgresNoteStore,
    SavedNote,
    SqliteNoteStore,
    open_note_store,
)

__all__ = [
    "BlobNotFound",
    "BlobStore",
    "BlobStoreError",
    "Note",
    "NoteStore",
    "NoteStoreError",
    "PostgresBlobStore",
    "PostgresNoteStore",
    "SavedNote",
    "SqliteBlobStore",
    "SqliteNoteStore",
    "open_blob_store",
    "open_note_store",
]
