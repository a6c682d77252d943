"""Engine and session factory, built by entry points only."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine


def create_engine(database_url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    """An asyncpg engine with pre-ping, so a restarted PostgreSQL is survived transparently.

    Args:
        database_url: A ``postgresql+asyncpg://`` URL (``Settings`` normalises it).
        pool_size: Connections kept open.
        echo: Log SQL (debugging only).
    """
    return _create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        echo=echo,
        connect_args={"timeout": 5, "command_timeout": 30},
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Session factory; objects stay usable after commit (services return them as DTOs)."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
