"""Start-up and shutdown of the alert intake (its database pool, queue and rate limiter)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from arq import ArqRedis

from core.adapters.arq_queue import ArqJobQueue
from core.db.repositories.intake import IntakeRepository
from core.security.client_ip import SenderPolicy
from core.security.ratelimit import Limit, RateLimiter
from core.services.intake import IntakeLimits, IntakeService
from webhook_server.keys import INTAKE, REDIS, SENDER_POLICY, SETTINGS

# Accepted alerts use at most 4 connections (2 batches of lookups, 2 of inserts, see
# core.db.repositories.intake); the rest serve refusals (one insert each) and enqueued_at marks.
# Small enough that several web processes (WEB_PROCESSES), each with its ORM pool, plus the
# bot and the worker stay under PostgreSQL's default 100 connections.
INTAKE_POOL_SIZE = 10


async def intake_context(app: web.Application) -> AsyncIterator[None]:
    """Open the intake's resources; registered after the shared ones (it uses ``REDIS``).

    The queue connects lazily, so a web server started while Redis is down still accepts
    alerts (the worker's sweeper enqueues them) and enqueues again once Redis is back.
    """
    settings = app[SETTINGS]
    app[SENDER_POLICY] = SenderPolicy(settings.webhook_allowlist, settings.trusted_proxy_networks)
    store = await IntakeRepository.connect(
        settings.database_url.get_secret_value(), max_size=INTAKE_POOL_SIZE
    )
    queue = ArqJobQueue(
        ArqRedis.from_url(
            settings.redis_url.get_secret_value(), socket_connect_timeout=1, socket_timeout=1
        ),
        workers=settings.worker_processes,
    )
    service = app[INTAKE] = IntakeService(
        store,
        queue=queue,
        limiter=RateLimiter(app[REDIS]),
        limits=IntakeLimits(
            max_lag_seconds=settings.alert_max_lag_seconds,
            per_token=Limit.per_minute_with_burst(settings.alert_rate_per_token),
            per_ip=Limit.per_minute_with_burst(settings.alert_rate_per_ip),
        ),
    )
    yield
    await service.close()
    await queue.close()
    await store.close()
