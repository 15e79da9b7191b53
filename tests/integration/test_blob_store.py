"""The blob store, on SQLite and on a real PostgreSQL server: bytes kept exactly, the
first write of a key wins however the writers race, a missing key is ``BlobNotFound``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from durable_agent.devserver import free_port
from durable_agent.stores.blobs import (
    BlobNotFound,
    BlobStore,
    BlobStoreError,
    PostgresBlobStore,
    SqliteBlobStore,
    open_blob_store,
)

OpenStore = Callable[[], BlobStore]


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where the store under test lives: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "blobs.sqlite3"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def open_store(location: Path | str) -> AsyncIterator[OpenStore]:
    """Opens stores on ``location`` through the factory the worker uses; closes them after."""
    opened: list[BlobStore] = []

    def open_() -> BlobStore:
        opened.append(open_blob_store(location))
        return opened[-1]

    yield open_
    for store in opened:
        await store.close()


async def test_put_then_get_returns_the_bytes(open_store: OpenStore) -> None:
    store = open_store()
    data = bytes(range(256)) * 4096  # 1 MiB, every byte value, NUL included
    await store.put("tool/wf/1/0", data)
    await store.put("transcript/wf/1", b"")
    assert await store.get("tool/wf/1/0") == data
    assert await store.get("transcript/wf/1") == b""


async def test_missing_key_is_blob_not_found(open_store: OpenStore) -> None:
    store = open_store()
    with pytest.raises(BlobNotFound):
        await store.get("nothing/here")


async def test_a_key_is_written_once(open_store: OpenStore) -> None:
    store = open_store()
    await store.put("k", b"first")
    await store.put("k", b"second")  # a retried activity: the first bytes stay
    assert await store.get("k") == b"first"


async def test_two_workers_putting_one_key_at_once_keep_one_value(open_store: OpenStore) -> None:
    a, b = open_store(), open_store()
    for i in range(10):
        await asyncio.wait_for(asyncio.gather(a.put(f"k{i}", b"a"), b.put(f"k{i}", b"b")), 10)
        assert await a.get(f"k{i}") == await b.get(f"k{i}") in (b"a", b"b")


async def test_closed_store_refuses_work(open_store: OpenStore) -> None:
    store = open_store()
    await store.close()
    with pytest.raises(RuntimeError, match="closed"):
        await store.get("k")


def test_open_blob_store(tmp_path: Path) -> None:
    assert isinstance(open_blob_store(tmp_path / "a.db"), SqliteBlobStore)
    assert isinstance(open_blob_store(f"sqlite:///{tmp_path}/b.db"), SqliteBlobStore)
    assert isinstance(open_blob_store("postgresql://db.example/blobs"), PostgresBlobStore)
    with pytest.raises(ValueError, match="unsupported blob store"):
        open_blob_store("s3://bucket/blobs")


async def test_postgres_failure_is_a_blob_store_error() -> None:
    store = PostgresBlobStore(f"postgresql://agent:pw-4713@127.0.0.1:{free_port()}/x")
    with pytest.raises(BlobStoreError, match="blob store failed") as failed:
        await store.put("k", b"x")
    assert "pw-4713" not in str(failed.value)
    await store.close()
