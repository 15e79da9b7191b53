"""One SQLite file shared by the processes of one machine, used from asyncio.

Each operation opens its own connection in a worker thread (``asyncio.to_thread``), so
the event loop never blocks on disk or on another process's lock, and no connection is
shared between threads. WAL mode lets readers run during a write; the busy timeout makes
concurrent writers wait for each other instead of failing.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import TypeVar

_T = TypeVar("_T")

BUSY_TIMEOUT_SECONDS = 10.0
"""How long a write waits for another process's write lock before failing."""
INIT_ATTEMPTS = 20
"""Tries at creating the file's schema while other processes do the same (~4 s)."""


class SqliteFile:
    """A SQLite file with ``schema``, created on first use. Failures raise ``error``
    (a store's own exception type) naming ``what`` failed."""

    def __init__(self, path: Path, schema: str, error: type[Exception], what: str) -> None:
        self.path = Path(path)
        self._schema = schema
        self._error = error
        self._what = what
        self._init_lock = threading.Lock()
        self._ready = False
        self._closed = False

    async def run(self, fn: Callable[..., _T], *args: object) -> _T:
        """Run ``fn(*args)`` (which calls ``connect``) in a worker thread."""
        if self._closed:
            raise RuntimeError(f"the {self._what} is closed")
        try:
            return await asyncio.to_thread(fn, *args)
        except (sqlite3.Error, OSError) as e:
            raise self._error(f"{self._what} failed: {type(e).__name__}: {e}") from e

    def connect(self) -> closing[sqlite3.Connection]:
        """A new autocommit connection (each statement its own transaction), to use in
        a ``with`` block."""
        if not self._ready:
            with self._init_lock:
                if not self._ready:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self._create()
                    self._ready = True
        return closing(self._open())

    def _create(self) -> None:
        """WAL mode and the schema. Switching the journal mode while another process
        does the same can fail at once with "database is locked" (SQLite does not call
        the busy handler there), so that is retried, a bounded number of times."""
        for attempt in range(INIT_ATTEMPTS):
            try:
                with closing(self._open()) as conn:
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.executescript(self._schema)
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or attempt == INIT_ATTEMPTS - 1:
                    raise
                time.sleep(0.02 * (attempt + 1))

    def close(self) -> None:
        self._closed = True

    def _open(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
