"""Process start-up shared by every entry point: settings, logging, Sentry, pre-flight."""

from __future__ import annotations

import asyncio
import sys
from typing import NoReturn

from redis.asyncio import Redis

from core import __version__
from core.db.engine import create_engine
from core.runtime.config import ConfigError, Settings, load_settings
from core.runtime.health import (
    NOT_MIGRATED,
    CheckResult,
    check_migrations,
    check_postgres,
    check_redis,
)
from core.runtime.logs import configure_logging, init_sentry


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one plain line to stderr and exit; the way every start-up error ends."""
    print(f"tv2dydx: {message}", file=sys.stderr)
    raise SystemExit(code)


def settings_or_exit() -> Settings:
    """Load settings, or exit naming each missing or invalid variable (one line each)."""
    try:
        return load_settings()
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"tv2dydx: {problem}", file=sys.stderr)
        raise SystemExit(2) from None


def start_process(component: str) -> Settings:
    """Settings, logging and Sentry for a long-running component (web, bot, worker); exits
    naming the secret the component needs when it is missing (only the worker needs
    ``ENCRYPTION_KEYS``)."""
    settings = settings_or_exit()
    problems = settings.problems_for(component)
    for problem in problems:
        print(f"tv2dydx: {problem}", file=sys.stderr)
    if problems:
        raise SystemExit(2)
    configure_logging(settings.log_level, settings.log_format)
    dsn = settings.sentry_dsn.get_secret_value() if settings.sentry_dsn else None
    init_sentry(dsn, environment=settings.dydx_network, release=f"tv2dydx@{__version__}")
    return settings


async def _preflight(settings: Settings) -> list[CheckResult]:
    engine = create_engine(settings.database_url.get_secret_value(), pool_size=1)
    redis: Redis = Redis.from_url(settings.redis_url.get_secret_value())
    try:
        results = list(await asyncio.gather(check_postgres(engine), check_redis(redis)))
        if results[0].ok:  # a database never migrated fails at once too, not mid-start-up
            schema = await check_migrations(engine)
            if not schema.ok and schema.detail.startswith(NOT_MIGRATED):
                results.append(schema)
        return results
    finally:
        await engine.dispose()
        await redis.aclose()


def preflight_or_exit(settings: Settings) -> None:
    """Exit with one line when PostgreSQL or Redis is unreachable at start, or the database
    was never migrated. (A schema at another revision is left to the operator: a rolling
    upgrade migrates while older processes still run.)"""
    for result in asyncio.run(_preflight(settings)):
        if not result.ok:
            fail(result.detail, code=1)
