"""The worker gives freed heap memory back to the OS periodically (glibc's malloc_trim),
and keeps its start-up objects out of the garbage collector's passes."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from durable_agent import process
from durable_agent.process import freeing_memory, malloc_trimmer, return_free_memory, settle_heap


def test_malloc_trim_is_found_on_glibc() -> None:
    trim = malloc_trimmer()
    assert trim is not None  # CI and the Docker image run on glibc
    trim()


def _counted_trims(monkeypatch: pytest.MonkeyPatch, enough: int) -> tuple[list[int], asyncio.Event]:
    """Trims recorded instead of made, and an event set once there are ``enough``."""
    trims: list[int] = []
    reached = asyncio.Event()

    def trim() -> None:
        trims.append(1)
        if len(trims) == enough:
            reached.set()

    monkeypatch.setattr(process, "malloc_trimmer", lambda: trim)
    return trims, reached


async def test_it_trims_every_period_until_cancelled(monkeypatch: pytest.MonkeyPatch) -> None:
    _, third = _counted_trims(monkeypatch, 3)
    task = asyncio.create_task(return_free_memory(0.01))
    await asyncio.wait_for(third.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_zero_seconds_never_trims(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process, "malloc_trimmer", lambda: pytest.fail("asked for a trim"))
    await asyncio.wait_for(return_free_memory(0), 1)


async def test_freeing_memory_trims_while_the_block_runs_and_never_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trims, second = _counted_trims(monkeypatch, 2)
    async with freeing_memory(0.01):
        await asyncio.wait_for(second.wait(), 5)
    after = len(trims)
    await asyncio.sleep(0.05)  # five periods: a task left running would trim again
    assert len(trims) == after


@pytest.fixture
def restored_collector() -> Iterator[None]:
    """The garbage collector as it was, after the test."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_collector")
def test_settle_heap_freezes_what_is_alive_and_sets_the_young_generation() -> None:
    alive: dict[str, list[int]] = {"payload": [1, 2, 3]}
    assert any(obj is alive for obj in gc.get_objects())
    _, gen1, gen2 = gc.get_threshold()
    settle_heap(10_000)
    assert gc.get_freeze_count() > 0
    assert not any(obj is alive for obj in gc.get_objects())  # no pass looks at it again
    assert gc.get_threshold() == (10_000, gen1, gen2)
    later: dict[str, list[int]] = {"payload": []}
    assert any(obj is later for obj in gc.get_objects())  # what comes later is collected


@pytest.mark.usefixtures("restored_collector")
def test_settle_heap_with_zero_keeps_the_threshold() -> None:
    before = gc.get_threshold()
    settle_heap(0)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() > 0
