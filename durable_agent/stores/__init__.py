"""Storage shared by the workers: the notes store."""

from durable_agent.stores.notes import (
    Note,
    NoteStore,
    NoteStoreError,
    SavedNote,
    SqliteNoteStore,
    open_note_store,
)

__all__ = [
    "Note",
    "NoteStore",
    "NoteStoreError",
    "SavedNote",
    "SqliteNoteStore",
    "open_note_store",
]
