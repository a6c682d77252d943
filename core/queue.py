"""Job queue port over arq. Redis is transport only: every job's truth is in PostgreSQL,
so a lost enqueue is repaired by a sweeper, never by the caller."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from arq import ArqRedis, create_pool
from arq.connections import RedisSettings
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms
from redis.exceptions import RedisError

from core.logs import get_logger

QUEUE_NAME = "arq:queue"  # arq's default
DELIVER_NOTIFICATIONS = "deliver_notifications"

# arq's enqueue_job (WATCH, EXISTS, MULTI/EXEC: three round trips) as one atomic script,
# writing the same keys and the same serialized job, so arq workers see no difference.
# KEYS: job key, result key, queue. ARGV: job id, score (ms), expiry (ms), serialized job.
_ENQUEUE_SCRIPT = """
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return 0 end
redis.call('PSETEX', KEYS[1], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return 1
"""


class JobQueue:
    """Enqueues arq jobs by name. Arguments must never carry secrets (they are pickled)."""

    def __init__(self, redis: ArqRedis) -> None:
        self._redis = redis
        self._enqueue_script: Any = redis.register_script(_ENQUEUE_SCRIPT)
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
        job_id = job_id or uuid4().hex
        now_ms = timestamp_ms()
        job = serialize_job(function, args, {}, None, now_ms, serializer=self._redis.job_serializer)
        added = await self._enqueue_script(
            keys=[
                job_key_prefix + job_id,
                result_key_prefix + job_id,
                self._redis.default_queue_name,
            ],
            args=[job_id, now_ms, self._redis.expires_extra_ms, job],
        )
        return bool(added)

    async def nudge_notifications(self) -> None:
        """Ask a worker to drain the outbox now rather than at its next scheduled run.

        Best effort: the worker's schedule delivers anyway if Redis is unavailable.
        """
        try:
            await self._redis.enqueue_job(DELIVER_NOTIFICATIONS)
        except (OSError, RedisError, TimeoutError) as exc:
            self._log.warning("notifications_nudge_failed", error=str(exc))
