"""Units of work against real PostgreSQL: a read-only unit reads without a transaction
and cannot write."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from core.db.uow import ReadOnlyUnitError, UnitOfWork

# now() is the start of the statement's transaction.
TRANSACTION_START = text("SELECT now()")


async def test_a_read_only_unit_runs_each_statement_on_its_own(
    live_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with UnitOfWork(live_sessionmaker, read_only=True) as uow:
        first = await uow.session.scalar(TRANSACTION_START)
        await uow.session.execute(text("SELECT pg_sleep(0.01)"))
        assert await uow.session.scalar(TRANSACTION_START) > first


async def test_a_unit_that_writes_keeps_one_transaction(
    live_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with UnitOfWork(live_sessionmaker) as uow:
        first = await uow.session.scalar(TRANSACTION_START)
        await uow.session.execute(text("SELECT pg_sleep(0.01)"))
        assert await uow.session.scalar(TRANSACTION_START) == first


async def test_a_read_only_unit_refuses_to_commit_and_writes_nothing(
    live_sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    async with UnitOfWork(live_sessionmaker, read_only=True) as uow:
        with pytest.raises(ReadOnlyUnitError):
            await uow.users.get_or_create(telegram_id=4242)
        with pytest.raises(ReadOnlyUnitError):
            await uow.commit()
    async with engine.connect() as connection:
        count = await connection.scalar(text("SELECT count(*) FROM users"))
    assert count == 0


async def test_a_read_only_unit_shares_the_engines_pool(
    live_sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    before = engine.pool.checkedout()
    async with UnitOfWork(live_sessionmaker, read_only=True) as uow:
        await uow.session.execute(text("SELECT 1"))
        assert engine.pool.checkedout() == before + 1
    assert engine.pool.checkedout() == before


async def test_an_autocommit_unit_commits_each_statement_on_its_own(
    live_sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    async with UnitOfWork(live_sessionmaker, autocommit=True) as uow:
        await uow.users.get_or_create(telegram_id=4343)
        # Visible to everyone at once, before (and without) the unit's commit.
        async with engine.connect() as connection:
            count = await connection.scalar(text("SELECT count(*) FROM users"))
        assert count == 1
