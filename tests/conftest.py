"""Shared test fixtures: real PostgreSQL, real Redis and the protocol doubles.

Each run creates its own PostgreSQL database (migrated once) and uses its own Redis db
index. A test's database work happens inside an outer transaction that is rolled back;
tests that need real concurrent transactions use ``live_sessionmaker``, which commits for
real and truncates afterwards.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from aiogram import Bot, Dispatcher
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.app import Services, close_services, create_dispatcher, create_services
from core.adapters.telegram import create_bot
from core.db.base import Base
from core.db.engine import create_engine
from core.runtime.config import Settings
from core.runtime.migrate import upgrade
from core.security.crypto import generate_key_entry

pytest_plugins = [
    "tests.fixtures.telegram",
    "tests.fixtures.dydx",
]

ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_BASE = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")
# A db index per run (1-14), so two runs on one machine rarely share a queue; CI runs alone.
# Db 15 is the demo's default (`tv2dydx demo` empties its db at start).
REDIS_DB = int(os.environ.get("TEST_REDIS_DB", str(1 + os.getpid() % 14)))
BOT_TOKEN = "123456789:TEST-token-for-the-telegram-double-00000"


def make_database(name: str) -> str:
    """Create an empty database and return its asyncpg URL."""
    _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _admin_execute(f'CREATE DATABASE "{name}"')
    base = ADMIN_URL.rsplit("/", 1)[0]
    return f"{base.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}"


def drop_database(name: str) -> None:
    """Drop a database made by :func:`make_database`."""
    _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin_execute(statement: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(ADMIN_URL)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh database for this run, migrated to head."""
    name = f"tv2dydx_test_{os.getpid()}_{secrets.token_hex(3)}"
    url = make_database(name)
    upgrade(url)
    yield url
    drop_database(name)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """This run's Redis database."""
    return f"{REDIS_BASE}/{REDIS_DB}"


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The engine of the run's database."""
    engine = create_engine(database_url, pool_size=5)
    yield engine
    await engine.dispose()


@pytest.fixture
async def sessionmaker(engine: AsyncEngine) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions joined to one outer transaction that is rolled back after the test.

    Production code commits as usual; its commits release SAVEPOINTs.
    """
    async with engine.connect() as connection:
        transaction = await connection.begin()
        yield async_sessionmaker(
            bind=connection,
            expire_on_commit=False,
            autoflush=False,
            join_transaction_mode="create_savepoint",
        )
        if transaction.is_active:
            await transaction.rollback()


@pytest.fixture
async def live_sessionmaker(
    engine: AsyncEngine,
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Real, concurrent transactions; every table is emptied afterwards."""
    yield async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """This run's Redis database, emptied before and after the test."""
    client: Redis = Redis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


def without_keyring(settings: Settings) -> Settings:
    """The settings of a process that must not hold the keyring (the bot, the web): the
    worker's public sealing key instead of ``ENCRYPTION_KEYS``."""
    if settings.encryption_keys is None:
        return settings
    public = settings.keyring.sealing_key().encode()
    return settings.model_copy(update={"encryption_keys": None, "key_sealing_public_key": public})


@asynccontextmanager
async def polling_bot(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    dispatcher: Dispatcher,
) -> AsyncIterator[tuple[Bot, Services]]:
    """Run the real bot (long polling the Telegram double) for the duration of the block.

    The bot gets no ``ENCRYPTION_KEYS``, as in production: only the worker's public sealing
    key (issue #13: only the worker holds the keyring).
    """
    settings = without_keyring(settings)
    bot = create_bot(settings)
    services = create_services(sessionmaker, settings)
    polling = asyncio.create_task(
        dispatcher.start_polling(
            bot, handle_signals=False, close_bot_session=False, polling_timeout=1, **services
        )
    )
    try:
        yield bot, services
    finally:
        await dispatcher.stop_polling()
        await asyncio.wait_for(polling, 10)
        await close_services(services)
        await bot.session.close()


@pytest.fixture(scope="session")
def dispatcher() -> Dispatcher:
    """The bot's dispatcher; built once, as in production (routers attach only once)."""
    return create_dispatcher()


@pytest.fixture(scope="session")
def encryption_keys() -> str:
    """A keyring for the run."""
    return generate_key_entry()


@pytest.fixture
def base_env(database_url: str, redis_url: str, encryption_keys: str) -> dict[str, str]:
    """Environment variables of a complete configuration (before doubles are added)."""
    return {
        "BOT_TOKEN": BOT_TOKEN,
        "PUBLIC_BASE_URL": "http://localhost:8080",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "ENCRYPTION_KEYS": encryption_keys,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        # One worker process per ``tv2dydx worker`` (the default follows the cores): tests
        # that kill a worker mean that process; two-process tests ask for it.
        "WORKER_PROCESSES": "1",
    }


@pytest.fixture
def make_settings(base_env: dict[str, str]) -> Callable[..., Settings]:
    """Build ``Settings`` from the base environment plus overrides (no .env, no os.environ)."""

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {key.lower(): value for key, value in base_env.items()}
        values.update({key.lower(): value for key, value in overrides.items()})
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return build
