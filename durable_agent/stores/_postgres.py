"""One PostgreSQL database shared by the workers of every machine, used from asyncio.

Each store keeps a small asyncpg pool, opened on first use: a worker starts while the
database is still coming up, and a store nobody uses never connects. The schema is
created then too, under an advisory lock, because ``CREATE TABLE IF NOT EXISTS`` alone
is not safe when several workers start at once (both can find the table missing; one
then fails on the catalog's unique index). Statements run outside transactions, so
each is its own, as on SQLite.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from durable_agent.logs import REDACTED
from durable_agent.stores._location import url_passwords

POOL_MAX_SIZE = 4
"""Connections one store holds at most; more concurrent calls wait for a free one."""
CONNECT_TIMEOUT_SECONDS = 10.0
"""How long opening a connection, or waiting for a free one, may take."""
STATEMENT_TIMEOUT_SECONDS = 10.0
"""How long one statement may run (the bound SQLite's busy timeout sets there)."""
CLOSE_TIMEOUT_SECONDS = 10.0
"""How long ``close`` waits for borrowed connections before cutting them."""

_FAILURES = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class PostgresDatabase:
    """A PostgreSQL database with ``schema``, created on first use. Failures raise
    ``error`` (a store's own exception type) naming ``what`` failed, never the URL's
    password."""

    def __init__(self, url: str, schema: str, error: type[Exception], what: str) -> None:
        self._url = url
        self._schema = schema
        self._error = error
        self._what = what
        self._secrets = url_passwords(url)
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._closed = False

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled ``asyncpg.Connection`` for the block, in autocommit."""
        if self._closed:
            raise RuntimeError(f"the {self._what} is closed")
        try:
            pool = self._pool or await self._open()
            async with pool.acquire(timeout=CONNECT_TIMEOUT_SECONDS) as conn:
                yield conn
        except _FAILURES as e:
            message = f"{self._what} failed: {type(e).__name__}: {e}"
            for secret in self._secrets:
                message = message.replace(secret, REDACTED)
            raise self._error(message) from e

    async def close(self) -> None:
        """Close the pool (cutting connections still borrowed after a while)."""
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT_SECONDS)
            except TimeoutError:
                pool.terminate()

    async def _open(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                pool = await asyncpg.create_pool(
                    self._url,
                    min_size=1,
                    max_size=POOL_MAX_SIZE,
                    timeout=CONNECT_TIMEOUT_SECONDS,
                    command_timeout=STATEMENT_TIMEOUT_SECONDS,
                )
                try:
                    async with pool.acquire() as conn, conn.transaction():
                        # Held to the end of the transaction: one schema change at a time.
                        await conn.execute(
                            "SELECT pg_advisory_xact_lock(hashtext('durable_agent.stores'))"
                        )
                        await conn.execute(self._schema)
                except BaseException:
                    pool.terminate()
                    raise
                self._pool = pool
            return self._pool
