"""Migrations: round trip on a fresh database, no drift from the models, idempotent CLI."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from core.db.base import Base
from core.db.engine import create_engine
from core.runtime.migrate import downgrade, head_revisions, upgrade
from tests.conftest import drop_database, make_database

TV2DYDX = str(Path(sys.executable).with_name("tv2dydx"))


@pytest.fixture
def fresh_database() -> Iterator[str]:
    name = f"tv2dydx_mig_{secrets.token_hex(4)}"
    url = make_database(name)
    yield url
    drop_database(name)


def _tables(url: str) -> set[str]:
    async def run() -> set[str]:
        engine = create_engine(url, pool_size=1)
        try:
            async with engine.connect() as conn:
                return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _drift(url: str) -> list[object]:
    async def run() -> list[object]:
        engine = create_engine(url, pool_size=1)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(
                    lambda c: compare_metadata(
                        MigrationContext.configure(c, opts={"compare_type": True}),
                        Base.metadata,
                    )
                )
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_round_trip_upgrade_downgrade_upgrade(fresh_database: str) -> None:
    expected = {table.name for table in Base.metadata.sorted_tables}
    upgrade(fresh_database)
    assert expected <= _tables(fresh_database)
    downgrade(fresh_database, "base")
    assert _tables(fresh_database) == {"alembic_version"}
    upgrade(fresh_database)
    assert expected <= _tables(fresh_database)


def test_models_and_migrations_agree(fresh_database: str) -> None:
    upgrade(fresh_database)
    assert _drift(fresh_database) == []


def test_cli_migrate_creates_schema_then_is_a_no_op(
    fresh_database: str, base_env: dict[str, str]
) -> None:
    env = {"PATH": os.environ["PATH"], **base_env, "DATABASE_URL": fresh_database}
    first = subprocess.run(
        [TV2DYDX, "migrate"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert first.returncode == 0, first.stderr
    head = ", ".join(sorted(head_revisions()))
    assert f"schema at head {head}" in first.stdout
    assert "Running upgrade" in first.stdout

    async def version() -> str:
        engine = create_engine(fresh_database, pool_size=1)
        try:
            async with engine.connect() as conn:
                return str(await conn.scalar(text("SELECT version_num FROM alembic_version")))
        finally:
            await engine.dispose()

    assert asyncio.run(version()) == head
    second = subprocess.run(
        [TV2DYDX, "migrate"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert second.returncode == 0
    assert "Running upgrade" not in second.stdout + second.stderr
    assert asyncio.run(version()) == head
