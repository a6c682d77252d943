"""Engine and session factory, built by entry points only."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine

# A connection back in the pool for longer than this is pinged before it is handed out.
# One used moments ago is not: SQLAlchemy's pre-ping costs three round trips (BEGIN,
# SELECT, ROLLBACK on asyncpg) per unit of work, and under load every connection is
# reused within milliseconds.
PING_AFTER_IDLE_SECONDS = 5.0

_RETURNED_AT = "tv2dydx_returned_at"


def create_engine(
    database_url: str,
    *,
    pool_size: int = 10,
    max_overflow: int | None = None,
    echo: bool = False,
) -> AsyncEngine:
    """An asyncpg engine that survives a restarted PostgreSQL.

    Connections idle for :data:`PING_AFTER_IDLE_SECONDS` are pinged when checked out, and a
    dead one is replaced before use; a connection that dies while busy fails that one unit
    of work and SQLAlchemy then replaces the pool's connections.

    Args:
        database_url: A ``postgresql+asyncpg://`` URL (``Settings`` normalises it).
        pool_size: Connections kept open. Size it for the process's usual peak: a
            connection beyond it (overflow) is closed when handed back, so a pool that
            overflows on every burst opens and closes connections on every burst (a
            PostgreSQL backend started and ended each time: milliseconds of CPU per
            connection on both sides).
        max_overflow: Connections opened beyond ``pool_size`` at a rare peak (default: as
            many as ``pool_size``).
        echo: Log SQL (debugging only).
    """
    engine = _create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=pool_size if max_overflow is None else max_overflow,
        pool_recycle=1800,
        echo=echo,
        connect_args={"timeout": 5, "command_timeout": 30},
    )
    ping_after_idle(engine.sync_engine, PING_AFTER_IDLE_SECONDS)
    return engine


def ping_after_idle(engine: Engine, idle_seconds: float) -> None:
    """Ping connections that sat in ``engine``'s pool for ``idle_seconds`` or more."""

    @event.listens_for(engine, "checkin")
    def _returned(dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _handed_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        returned = record.info.get(_RETURNED_AT)  # none: a connection opened just now
        if returned is None or time.monotonic() - returned < idle_seconds:
            return
        dialect = engine.dialect
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            if dialect.is_disconnect(exc, dbapi_connection, None):
                # The pool discards this connection and hands out a new one.
                raise DisconnectionError(str(exc)) from exc
            raise


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Session factory; objects stay usable after commit (services return them as DTOs)."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
