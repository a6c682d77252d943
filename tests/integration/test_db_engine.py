"""The engine against real PostgreSQL: a connection that died while idle is never handed out."""

from __future__ import annotations

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from core.db.engine import ping_after_idle


async def backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        pid: int = await connection.scalar(text("SELECT pg_backend_pid()"))
    return pid


async def terminate(database_url: str, pid: int) -> None:
    """What a PostgreSQL restart (or an idle-session timeout) does to a pooled connection."""
    admin = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()


def one_connection_engine(database_url: str) -> AsyncEngine:
    return create_async_engine(database_url, pool_size=1, max_overflow=0)


async def test_an_idle_connection_that_died_is_replaced_before_use(database_url: str) -> None:
    engine = one_connection_engine(database_url)
    ping_after_idle(engine.sync_engine, 0.0)  # every returned connection counts as idle
    try:
        dead = await backend_pid(engine)
        await terminate(database_url, dead)
        replacement = await backend_pid(engine)  # no error: the ping found it dead
        assert replacement != dead
    finally:
        await engine.dispose()


async def test_a_connection_used_moments_ago_is_not_pinged(database_url: str) -> None:
    engine = one_connection_engine(database_url)
    ping_after_idle(engine.sync_engine, 3600.0)
    try:
        dead = await backend_pid(engine)
        await terminate(database_url, dead)
        # No ping: the unit of work that finds it dead fails, once...
        with pytest.raises(DBAPIError) as failure:
            await backend_pid(engine)
        assert failure.value.connection_invalidated
        # ...and the pool then opens a new connection.
        assert await backend_pid(engine) != dead
    finally:
        await engine.dispose()
