"""The worker's typed context, built once in ``on_startup``."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypedDict, cast
from uuid import uuid4

import structlog
from aiogram import Bot
from arq.connections import ArqRedis
from arq.typing import WorkerCoroutine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from core.adapters.arq_queue import ArqJobQueue
from core.adapters.telegram import TelegramSender
from core.db.repositories.execution import ExecutionRepository
from core.db.repositories.outbox import PlainOutbox
from core.exchange.history import AccountHistory
from core.exchange.provider import ExchangeProvider
from core.runtime.config import Settings
from core.services.analytics.digest import DigestService
from core.services.analytics.funding import FundingSync
from core.services.analytics.rendering import ChartRenderer
from core.services.credentials import CredentialService
from core.services.execution.pipeline import ExecutionService
from core.services.jobs import RECHECK_KEYS
from core.services.key_watch import RECHECK_AFTER_START, AuthorizationWatch
from core.services.manual import ManualRequestService
from core.services.notifications import NotificationService
from core.services.priority import PlacementGate
from core.services.protection.renewal import LegLifetime
from core.services.trading import TradingService
from workers.monitor import start_monitor, stop_monitor

#: How long a starting worker spends re-checking keys before it takes jobs (#13): alerts wait
#: at most this long after a restart; keys left over are re-checked by a queued run.
STARTUP_RECHECK_SECONDS = 5.0
# A burst of ten alerts settles, records and notifies concurrently. With 10 pooled
# connections the overflow was opened and closed on every burst: bench/execution.py
# --burst 10 opened 220 connections in a run, 44 with 20 kept, and PostgreSQL's CPU per
# alert fell by more than half.
WORKER_DB_POOL = 20


class WorkerContext(TypedDict):
    """What every job receives (arq adds ``redis``, ``job_id``, ``job_try``...)."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    bot: Bot
    notifications: NotificationService
    sender: TelegramSender
    credentials: CredentialService
    exchanges: ExchangeProvider
    execution_store: ExecutionRepository
    execution: ExecutionService
    manual: ManualRequestService
    key_watch: AuthorizationWatch
    priority: PlacementGate
    chart_renderer: ChartRenderer
    account_history: AccountHistory
    digest: DigestService
    redis: ArqRedis
    job_id: str
    job_try: int


async def startup(ctx: dict[str, Any]) -> None:
    """Open the database pool and the Telegram session."""
    from core.adapters.telegram import create_bot
    from core.db.engine import create_engine, create_sessionmaker
    from core.exchange.factory import (
        create_account_history,
        create_exchange_provider,
        create_key_verifier,
    )

    settings: Settings = ctx["settings"]
    # Sized for a burst (see WORKER_DB_POOL); at most 30 connections at a rare peak.
    engine = create_engine(
        settings.database_url.get_secret_value(), pool_size=WORKER_DB_POOL, max_overflow=10
    )
    sessionmaker = create_sessionmaker(engine)
    bot = create_bot(settings)
    exchanges = create_exchange_provider(sessionmaker, settings)
    store = ExecutionRepository(settings.database_url.get_secret_value())
    priority = PlacementGate()
    # The digest's chart renders in a process of its own, off the worker's event loop.
    renderer = ChartRenderer(max_waiting=8, cache_size=0)
    history = create_account_history(settings.dydx)
    execution = ExecutionService(
        sessionmaker,
        exchanges,
        store,
        max_lag=timedelta(seconds=settings.alert_max_lag_seconds),
        leg_lifetime=LegLifetime.of_seconds(
            settings.protection_leg_lifetime_seconds,
            settings.protection_renew_before_seconds,
        ),
        gate=priority,
    )
    ctx.update(
        priority=priority,
        chart_renderer=renderer,
        account_history=history,
        digest=DigestService(sessionmaker, renderer, funding=FundingSync(sessionmaker, history)),
        exchanges=exchanges,
        execution_store=store,
        execution=execution,
        manual=ManualRequestService(
            sessionmaker, trading=TradingService(sessionmaker, exchanges, execution)
        ),
        engine=engine,
        sessionmaker=sessionmaker,
        bot=bot,
        notifications=NotificationService(sessionmaker, gate=priority, outbox=PlainOutbox(store)),
        sender=TelegramSender(bot),
        credentials=CredentialService(
            sessionmaker, settings.keyring, create_key_verifier(settings.dydx)
        ),
        key_watch=AuthorizationWatch(
            sessionmaker, settings.keyring, create_key_verifier(settings.dydx)
        ),
    )
    # Every key is re-checked after a start (what changed while no worker ran), before this
    # worker takes its first job as far as STARTUP_RECHECK_SECONDS allow; a queued run (not
    # the cron's run-at-startup, whose state arq keeps per process) finishes the rest.
    await _recheck_keys_before_jobs(ctx)
    await ArqJobQueue(ctx["redis"]).enqueue(
        RECHECK_KEYS, True, job_id=f"recheck_keys:{uuid4().hex}"
    )
    await start_monitor(ctx)


async def _recheck_keys_before_jobs(ctx: dict[str, Any]) -> None:
    """Re-check the stored keys not checked in the last minutes, within a time budget."""
    try:
        async with asyncio.timeout(STARTUP_RECHECK_SECONDS):
            report = await ctx["key_watch"].recheck_due(older_than=RECHECK_AFTER_START)
    except TimeoutError:
        structlog.get_logger(__name__).warning("startup_key_recheck_unfinished")
        return
    structlog.get_logger(__name__).info(
        "startup_key_recheck", checked=report.checked, stopped=report.stopped
    )


async def bind_job_context(ctx: dict[str, Any]) -> None:
    """Bind the job id and try to every log line of the job (arq runs each job in its own
    task, which inherits this context)."""
    structlog.contextvars.bind_contextvars(job_id=ctx["job_id"], job_try=ctx["job_try"])


async def shutdown(ctx: dict[str, Any]) -> None:
    """Close what ``startup`` opened."""
    await stop_monitor(ctx)
    if "notifications" in ctx:
        await ctx["notifications"].close()
    if "credentials" in ctx:
        await ctx["credentials"].close()
    if "key_watch" in ctx:
        await ctx["key_watch"].close()
    if "exchanges" in ctx:
        await ctx["exchanges"].close()
    if "execution_store" in ctx:
        await ctx["execution_store"].close()
    if "chart_renderer" in ctx:
        ctx["chart_renderer"].close()
    if "account_history" in ctx:
        await ctx["account_history"].close()
    if "bot" in ctx:
        await ctx["bot"].session.close()
    if "engine" in ctx:
        await ctx["engine"].dispose()


def job(function: Callable[..., Awaitable[Any]]) -> WorkerCoroutine:
    """Register a job typed against :class:`WorkerContext` (arq types ``ctx`` as a dict)."""
    return cast(WorkerCoroutine, function)


def bookkeeping(function: Callable[..., Awaitable[Any]]) -> WorkerCoroutine:
    """Register a bookkeeping job: it starts once the alerts this process is placing are on
    their way (or after :data:`~core.services.priority.DEFAULT_MAX_YIELD`)."""

    @functools.wraps(function)
    async def yielding(ctx: WorkerContext, *args: Any, **kwargs: Any) -> Any:
        if "priority" in ctx:
            await ctx["priority"].yield_to_placing()
        return await function(ctx, *args, **kwargs)

    return cast(WorkerCoroutine, yielding)
