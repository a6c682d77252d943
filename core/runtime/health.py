"""Readiness checks shared by ``/readyz`` and ``tv2dydx doctor``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.runtime.migrate import current_revisions, head_revisions

CHECK_TIMEOUT = 2.0  # seconds; a probe must answer well inside an orchestrator's timeout


@dataclass(frozen=True, slots=True)
class CheckResult:
    """Outcome of one dependency check.

    Attributes:
        name: What was checked (``postgres``, ``redis``, ``migrations``...).
        ok: Whether it is usable.
        detail: Plain words: what is wrong and how to fix it, or a short status.
    """

    name: str
    ok: bool
    detail: str


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    text_ = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text_[:200]


async def check_postgres(engine: AsyncEngine) -> CheckResult:
    """PostgreSQL answers a query."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        return CheckResult(
            "postgres",
            False,
            f"cannot reach PostgreSQL ({_reason(exc)}); check DATABASE_URL and that the "
            "server is running",
        )
    return CheckResult("postgres", True, "reachable")


# How a database without any schema version is described.
NOT_MIGRATED = "database has no tables yet"


async def check_migrations(engine: AsyncEngine) -> CheckResult:
    """The schema is at the head revision of the installed migrations."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT), engine.connect() as conn:
            current = await current_revisions(conn)
    except Exception as exc:
        return CheckResult("migrations", False, f"cannot read the schema version ({_reason(exc)})")
    heads = head_revisions()
    if current == heads:
        return CheckResult("migrations", True, f"at head {', '.join(sorted(heads))}")
    expects = ", ".join(sorted(heads))
    if not current:
        detail = f"{NOT_MIGRATED}, code expects revision {expects}"
    else:
        detail = f"database is at revision {', '.join(sorted(current))}, code expects {expects}"
    return CheckResult("migrations", False, f"{detail}; run: tv2dydx migrate")


async def check_redis(redis: Redis) -> CheckResult:
    """Redis answers PING."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await redis.ping()
    except Exception as exc:
        return CheckResult(
            "redis",
            False,
            f"cannot reach Redis ({_reason(exc)}); check REDIS_URL and that the server is running",
        )
    return CheckResult("redis", True, "reachable")


async def readiness(engine: AsyncEngine, redis: Redis) -> list[CheckResult]:
    """All readiness checks, run concurrently."""
    results = await asyncio.gather(check_postgres(engine), check_redis(redis))
    postgres = results[0]
    migrations = (
        await check_migrations(engine)
        if postgres.ok
        else CheckResult("migrations", False, "unknown: PostgreSQL is unreachable")
    )
    return [postgres, results[1], migrations]
