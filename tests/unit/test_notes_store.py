"""The SQLite notes store: one row per key however the saves race, tenant-scoped lists."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from durable_agent.stores.notes import SqliteNoteStore, open_note_store


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "dir" / "notes.sqlite3"


def test_creates_parent_dirs_and_schema_on_first_use(db: Path) -> None:
    store = SqliteNoteStore(db)
    assert not db.exists()
    assert asyncio.run(store.count()) == 0
    assert db.exists()


async def test_save_is_idempotent_per_key(db: Path) -> None:
    store = SqliteNoteStore(db)
    first = await store.save(key="wf/1/0", tenant="t", conversation_id="wf", text="milk")
    again = await store.save(key="wf/1/0", tenant="t", conversation_id="wf", text="other")
    assert first.created and not again.created
    assert again.note == first.note  # the first write wins, unchanged
    assert first.note.text == "milk" and first.note.created_at.tzinfo is not None
    assert await store.count() == 1


async def test_concurrent_saves_with_one_key_write_one_row(db: Path) -> None:
    store = SqliteNoteStore(db)

    async def save(i: int) -> bool:
        saved = await store.save(key="k", tenant="t", conversation_id="c", text=f"try {i}")
        return saved.created

    created = await asyncio.wait_for(asyncio.gather(*(save(i) for i in range(20))), 10)
    assert sum(created) == 1
    assert await store.count() == 1


def test_concurrent_saves_from_threads_and_stores_write_one_row(db: Path) -> None:
    # Separate store instances on one file stand in for separate worker processes.
    stores = [SqliteNoteStore(db) for _ in range(4)]

    def save(i: int) -> tuple[bool, int]:
        store = stores[i % len(stores)]
        saved = asyncio.run(store.save(key="k", tenant="t", conversation_id="c", text=str(i)))
        return saved.created, saved.note.id

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(save, range(16), timeout=10))
    assert sum(created for created, _ in results) == 1
    assert len({note_id for _, note_id in results}) == 1
    assert asyncio.run(stores[0].count()) == 1


_SAVE_IN_CHILD = """
import asyncio, sys
from pathlib import Path
from durable_agent.stores.notes import SqliteNoteStore
store = SqliteNoteStore(Path(sys.argv[1]))
saved = asyncio.run(store.save(key="k", tenant="t", conversation_id="c", text=sys.argv[2]))
print(saved.created, saved.note.id)
"""


@pytest.mark.slow
def test_worker_processes_sharing_the_file_write_one_row(db: Path) -> None:
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _SAVE_IN_CHILD, str(db), str(i)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parents[2],
        )
        for i in range(3)
    ]
    outputs = [child.communicate(timeout=30)[0].split() for child in children]
    assert all(child.returncode == 0 for child in children)
    assert sorted(created for created, _ in outputs) == ["False", "False", "True"]
    assert len({note_id for _, note_id in outputs}) == 1


async def test_list_is_newest_first_filtered_and_limited(db: Path) -> None:
    store = SqliteNoteStore(db)
    for i, text in enumerate(["Buy milk", "call Bob", "buy bread", "50% off"]):
        await store.save(key=f"k{i}", tenant="t", conversation_id="c", text=text)
    await store.save(key="other", tenant="u", conversation_id="c", text="buy a boat")

    assert [n.text for n in await store.list(tenant="t", query=None, limit=10)] == [
        "50% off",
        "buy bread",
        "call Bob",
        "Buy milk",
    ]
    assert [n.text for n in await store.list(tenant="t", query="BUY", limit=10)] == [
        "buy bread",
        "Buy milk",
    ]
    assert [n.text for n in await store.list(tenant="t", query=None, limit=2)] == [
        "50% off",
        "buy bread",
    ]
    # LIKE wildcards in a query match themselves.
    assert [n.text for n in await store.list(tenant="t", query="%", limit=10)] == ["50% off"]
    assert await store.list(tenant="t", query="_", limit=10) == []
    assert await store.count(tenant="t") == 4
    assert await store.count(tenant="u") == 1
    assert await store.count() == 5


async def test_two_instances_on_one_file_see_each_other(db: Path) -> None:
    a, b = SqliteNoteStore(db), SqliteNoteStore(db)
    saved = await a.save(key="k", tenant="t", conversation_id="c", text="hello")
    assert await b.list(tenant="t", query=None, limit=5) == [saved.note]
    again = await b.save(key="k", tenant="t", conversation_id="c", text="hello")
    assert not again.created and again.note.id == saved.note.id


async def test_created_at_comes_from_the_clock_in_utc(db: Path) -> None:
    when = datetime(2026, 3, 1, 12, 0, tzinfo=UTC) + timedelta(microseconds=5)
    store = SqliteNoteStore(db, clock=lambda: when)
    saved = await store.save(key="k", tenant="t", conversation_id="c", text="x")
    assert saved.note.created_at == when


async def test_closed_store_refuses_work(db: Path) -> None:
    store = SqliteNoteStore(db)
    await store.close()
    with pytest.raises(RuntimeError, match="closed"):
        await store.count()


def test_open_note_store(tmp_path: Path) -> None:
    assert isinstance(open_note_store(tmp_path / "a.db"), SqliteNoteStore)
    from_path = open_note_store(str(tmp_path / "b.db"))
    assert isinstance(from_path, SqliteNoteStore) and from_path.path == tmp_path / "b.db"
    absolute = open_note_store(f"sqlite:///{tmp_path}/c.db")
    assert isinstance(absolute, SqliteNoteStore) and absolute.path == tmp_path / "c.db"
    relative = open_note_store("sqlite:///data/notes.db")
    assert isinstance(relative, SqliteNoteStore) and relative.path == Path("data/notes.db")
    with pytest.raises(NotImplementedError, match="server-backed store arrives with"):
        open_note_store("postgresql://db.example/notes")
    with pytest.raises(ValueError, match="unsupported notes store"):
        open_note_store("mysql://db.example/notes")
