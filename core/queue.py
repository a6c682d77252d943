"""Job queue port over arq. Redis is transport only: every job's truth is in PostgreSQL,
so a lost enqueue is repaired by a sweeper, never by the caller."""

from __future__ import annotations

from typing import Any

from arq import ArqRedis, create_pool
from arq.connections import RedisSettings
from redis.exceptions import RedisError

from core.logs import get_logger

QUEUE_NAME = "arq:queue"  # arq's default
DELIVER_NOTIFICATIONS = "deliver_notifications"


class JobQueue:
    """Enqueues arq jobs by name. Arguments must never carry secrets (they are pickled)."""

    def __init__(self, redis: ArqRedis) -> None:
        self._redis = redis
        self._log = get_logger(__name__)

    @classmethod
    async def connect(cls, redis_url: str) -> JobQueue:
        """Open a pool to ``redis_url``."""
        settings = RedisSettings.from_dsn(redis_url)
        settings.conn_timeout = 2
        settings.conn_retries = 0
        return cls(await create_pool(settings, default_queue_name=QUEUE_NAME))

    async def close(self) -> None:
        """Close the pool."""
        await self._redis.aclose()

    async def enqueue(self, function: str, *args: Any, job_id: str | None = None) -> bool:
        """Enqueue ``function(*args)``; with ``job_id``, a duplicate enqueue is a no-op.

        Returns:
            Whether a new job was queued (False: same job id already queued or done).
        """
        job = await self._redis.enqueue_job(function, *args, _job_id=job_id)
        return job is not None

    async def nudge_notifications(self) -> None:
        """Ask a worker to drain the outbox now rather than at its next scheduled run.

        Best effort: the worker's schedule delivers anyway if Redis is unavailable.
        """
        try:
            await self._redis.enqueue_job(DELIVER_NOTIFICATIONS)
        except (OSError, RedisError, TimeoutError) as exc:
            self._log.warning("notifications_nudge_failed", error=str(exc))
