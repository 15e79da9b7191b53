"""The notes store, on SQLite and on a real PostgreSQL server: one row per key however
the saves race (tasks, store instances standing in for workers, processes), lists
scoped to a tenant, failures as ``NoteStoreError``."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from durable_agent.devserver import free_port
from durable_agent.stores.notes import (
    NoteStore,
    NoteStoreError,
    PostgresNoteStore,
    SqliteNoteStore,
    open_note_store,
)
from durable_agent.testing.postgres import PostgresServer

OpenStore = Callable[..., NoteStore]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "dir" / "notes.sqlite3"


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, db: Path) -> Path | str:
    """Where the store under test lives: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return db
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def open_store(location: Path | str) -> AsyncIterator[OpenStore]:
    """Opens stores on ``location``, each one standing in for a worker; closes them after."""
    opened: list[NoteStore] = []

    def open_(clock: Callable[[], datetime] | None = None) -> NoteStore:
        store: NoteStore = (
            SqliteNoteStore(location, clock=clock)
            if isinstance(location, Path)
            else PostgresNoteStore(location, clock=clock)
        )
        opened.append(store)
        return store

    yield open_
    for store in opened:
        await store.close()


def test_creates_parent_dirs_and_schema_on_first_use(db: Path) -> None:
    store = SqliteNoteStore(db)
    assert not db.exists()
    assert asyncio.run(store.count()) == 0
    assert db.exists()


async def test_workers_starting_together_create_the_schema_once(open_store: OpenStore) -> None:
    stores = [open_store() for _ in range(6)]
    counts = await asyncio.wait_for(asyncio.gather(*(s.count() for s in stores)), 20)
    assert counts == [0] * 6


async def test_save_is_idempotent_per_key(open_store: OpenStore) -> None:
    store = open_store()
    first = await store.save(key="wf/1/0", tenant="t", conversation_id="wf", text="milk")
    again = await store.save(key="wf/1/0", tenant="t", conversation_id="wf", text="other")
    assert first.created and not again.created
    assert again.note == first.note  # the first write wins, unchanged
    assert first.note.text == "milk" and first.note.created_at.tzinfo is not None
    assert await store.count() == 1


async def test_concurrent_saves_with_one_key_write_one_row(open_store: OpenStore) -> None:
    store = open_store()

    async def save(i: int) -> bool:
        saved = await store.save(key="k", tenant="t", conversation_id="c", text=f"try {i}")
        return saved.created

    created = await asyncio.wait_for(asyncio.gather(*(save(i) for i in range(20))), 10)
    assert sum(created) == 1
    assert await store.count() == 1


async def test_two_workers_saving_one_key_at_once_write_one_note(open_store: OpenStore) -> None:
    a, b = open_store(), open_store()
    await asyncio.gather(a.count(), b.count())  # both connected: the saves race each other
    for i in range(10):
        first, second = await asyncio.wait_for(
            asyncio.gather(
                a.save(key=f"k{i}", tenant="t", conversation_id="c", text="from a"),
                b.save(key=f"k{i}", tenant="t", conversation_id="c", text="from b"),
            ),
            10,
        )
        assert first.created != second.created
        assert first.note == second.note
    assert await a.count() == await b.count() == 10


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
from durable_agent.stores.notes import open_note_store

async def main():
    store = open_note_store(sys.argv[1])
    try:
        saved = await store.save(key="k", tenant="t", conversation_id="c", text=sys.argv[2])
    finally:
        await store.close()
    print(saved.created, saved.note.id)

asyncio.run(main())
"""


@pytest.mark.slow
def test_worker_processes_sharing_the_store_write_one_row(location: Path | str) -> None:
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _SAVE_IN_CHILD, str(location), str(i)],
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


async def test_list_is_newest_first_filtered_and_limited(open_store: OpenStore) -> None:
    store = open_store()
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


async def test_two_instances_on_one_store_see_each_other(open_store: OpenStore) -> None:
    a, b = open_store(), open_store()
    saved = await a.save(key="k", tenant="t", conversation_id="c", text="hello")
    assert await b.list(tenant="t", query=None, limit=5) == [saved.note]
    again = await b.save(key="k", tenant="t", conversation_id="c", text="hello")
    assert not again.created and again.note.id == saved.note.id


async def test_created_at_comes_from_the_clock_in_utc(open_store: OpenStore) -> None:
    when = datetime(2026, 3, 1, 12, 0, tzinfo=UTC) + timedelta(microseconds=5)
    store = open_store(clock=lambda: when)
    saved = await store.save(key="k", tenant="t", conversation_id="c", text="x")
    assert saved.note.created_at == when
    (listed,) = await store.list(tenant="t", query=None, limit=1)
    assert listed.created_at == when


async def test_closed_store_refuses_work(open_store: OpenStore) -> None:
    store = open_store()
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
    # Opening connects nothing: the database need not be up yet.
    assert isinstance(open_note_store("postgresql://db.example/notes"), PostgresNoteStore)
    assert isinstance(open_note_store("postgres://u:p@db.example:5433/n"), PostgresNoteStore)
    with pytest.raises(ValueError, match="unsupported notes store"):
        open_note_store("mysql://db.example/notes")
    with pytest.raises(ValueError, match="invalid port") as bad_port:
        open_note_store("postgresql://u:secret-pw@db.example:port/notes")
    assert "secret-pw" not in str(bad_port.value)


# --- PostgreSQL only ----------------------------------------------------------------


async def test_postgres_stores_nul_as_a_replacement_character(postgres_url: str) -> None:
    # SQLite keeps NUL; PostgreSQL text cannot, and a failing save would be retried forever.
    store = PostgresNoteStore(postgres_url)
    try:
        saved = await store.save(key="k", tenant="t", conversation_id="c", text="a\x00b")
        assert saved.note.text == "a\ufffdb"
        assert [n.key for n in await store.list(tenant="t", query="\x00", limit=5)] == ["k"]
    finally:
        await store.close()


async def test_postgres_failures_are_store_errors_without_the_password(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    wrong = PostgresNoteStore(postgres_url.replace(postgres_server.password, "wrong-pw-4711"))
    unreachable = PostgresNoteStore(f"postgresql://agent:pw-4712@127.0.0.1:{free_port()}/x")
    for store, password in [(wrong, "wrong-pw-4711"), (unreachable, "pw-4712")]:
        with pytest.raises(NoteStoreError, match="notes store failed") as failed:
            await store.count()
        assert password not in str(failed.value) and password not in str(failed.value.__cause__)
        await store.close()


async def test_postgres_store_connects_once_the_database_exists(
    postgres_server: PostgresServer,
) -> None:
    # A worker may start before its database: the first calls fail (and are retried),
    # later ones connect; nothing broken is kept from the failed attempt.
    name = f"late_{free_port()}"
    store = PostgresNoteStore(postgres_server.url(name))
    try:
        with pytest.raises(NoteStoreError, match="does not exist"):
            await store.count()
        postgres_server.create_database(name)
        assert await store.count() == 0
    finally:
        await store.close()
