"""Programmatic Alembic: upgrade, downgrade and the head/current comparison for /readyz."""

from __future__ import annotations

from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncConnection


def _script_location() -> str:
    spec = find_spec("migrations")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the 'migrations' package is not installed")
    return str(Path(next(iter(spec.submodule_search_locations))))


def alembic_config(database_url: str) -> Config:
    """An Alembic config pointing at the installed migrations and ``database_url``."""
    config = Config()
    config.set_main_option("script_location", _script_location())
    config.set_main_option("file_template", "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s")
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (blocking; call via a thread from async code)."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    """Revert migrations down to ``revision`` (blocking)."""
    command.downgrade(alembic_config(database_url), revision)


@lru_cache(maxsize=1)
def head_revisions() -> frozenset[str]:
    """The head revision(s) of the installed migration scripts."""
    config = Config()
    config.set_main_option("script_location", _script_location())
    return frozenset(ScriptDirectory.from_config(config).get_heads())


async def current_revisions(connection: AsyncConnection) -> frozenset[str]:
    """The revision(s) the database is at; empty when never migrated."""
    try:
        rows = await connection.execute(text("SELECT version_num FROM alembic_version"))
    except ProgrammingError:  # no alembic_version table yet
        await connection.rollback()
        return frozenset()
    return frozenset(row[0] for row in rows)
