"""The job queue over arq (:class:`core.services.jobs.JobQueue`). Redis is transport only:
every job's truth is in PostgreSQL, so a lost enqueue is repaired by a sweeper, never by the
caller."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import uuid4

from arq import ArqRedis, create_pool
from arq.connections import RedisSettings
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms
from redis.asyncio import ConnectionPool
from redis.exceptions import RedisError

from core.runtime.logs import get_logger
from core.services.jobs import DELIVER_NOTIFICATIONS

QUEUE_NAME = "arq:queue"  # arq's default

# Wake tokens kept at most: each only makes a worker poll once more, so a few suffice
# while no worker runs, and the list never grows.
MAX_WAKE_TOKENS = 16


def wake_key(queue_name: str) -> str:
    """The list a queue's workers wait on between polls (see ``workers.worker``)."""
    return f"{queue_name}:wake"


# arq's enqueue_job (WATCH, EXISTS, MULTI/EXEC: three round trips) as one atomic script,
# writing the same keys and the same serialized job, so arq workers see no difference;
# it also pushes a wake token, so a waiting worker starts the job at once.
# KEYS: job key, result key, queue, wake list.
# ARGV: job id, score (ms), expiry (ms), serialized job, most wake tokens.
_ENQUEUE_SCRIPT = """
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return 0 end
redis.call('PSETEX', KEYS[1], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
if redis.call('RPUSH', KEYS[4], '1') > tonumber(ARGV[5]) then redis.call('LPOP', KEYS[4]) end
return 1
"""

# The same for several jobs at once (one round trip for a batch of alerts).
# KEYS: the queue, the wake list, then per job its job key and result key.
# ARGV: score (ms), expiry (ms), most wake tokens, workers to wake, then per job its id and
# serialized job.
# Returns, per job, 1 if queued, 0 if that job id was already queued or done.
_ENQUEUE_MANY_SCRIPT = """
local added = {}
for i = 1, (#KEYS - 2) / 2 do
  local job_key = KEYS[2 * i + 1]
  if redis.call('EXISTS', job_key, KEYS[2 * i + 2]) > 0 then
    added[i] = 0
  else
    redis.call('PSETEX', job_key, ARGV[2], ARGV[2 * i + 4])
    redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2 * i + 3])
    added[i] = 1
  end
end
-- One token per queued job, up to the number of workers to wake (ARGV[4]): each idle
-- worker takes its share of a burst.
local queued = 0
for i = 1, #added do queued = queued + added[i] end
for _ = 1, math.min(queued, tonumber(ARGV[4])) do
  if redis.call('RPUSH', KEYS[2], '1') > tonumber(ARGV[3]) then
    redis.call('LPOP', KEYS[2])
  end
end
return added
"""


class ArqJobQueue:
    """Enqueues arq jobs by name (satisfies :class:`core.services.jobs.JobQueue`).
    Arguments must never carry secrets (they are pickled).

    Args:
        redis: The arq pool.
        workers: How many worker processes share the queue (``WORKER_PROCESSES``): a batch
            of jobs wakes up to that many, so a burst of alerts is shared between them.
    """

    def __init__(self, redis: ArqRedis, *, workers: int = 1) -> None:
        self._redis = redis
        self._workers = max(1, workers)
        self._enqueue_script: Any = redis.register_script(_ENQUEUE_SCRIPT)
        self._enqueue_many_script: Any = redis.register_script(_ENQUEUE_MANY_SCRIPT)
        self._log = get_logger(__name__)

    @classmethod
    async def connect(cls, redis_url: str) -> ArqJobQueue:
        """Open a pool to ``redis_url``."""
        settings = RedisSettings.from_dsn(redis_url)
        settings.conn_timeout = 2
        settings.conn_retries = 0
        return cls(await create_pool(settings, default_queue_name=QUEUE_NAME))

    @classmethod
    def lazy(cls, redis_url: str) -> ArqJobQueue:
        """A queue whose connections open on first use (for a synchronous composition root,
        like the bot's)."""
        pool = ConnectionPool.from_url(redis_url, socket_connect_timeout=2)
        return cls(ArqRedis(pool, default_queue_name=QUEUE_NAME))

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
        queue = self._redis.default_queue_name
        added = await self._enqueue_script(
            keys=[job_key_prefix + job_id, result_key_prefix + job_id, queue, wake_key(queue)],
            args=[job_id, now_ms, self._redis.expires_extra_ms, job, MAX_WAKE_TOKENS],
        )
        return bool(added)

    async def enqueue_many(self, function: str, jobs: Sequence[tuple[Any, ...]]) -> list[bool]:
        """Enqueue ``function(*arguments)`` for each ``(job_id, *arguments)`` in one round trip.

        Each job is exactly what :meth:`enqueue` would have queued.

        Returns:
            Per job, whether it was newly queued.
        """
        if not jobs:
            return []
        now_ms = timestamp_ms()
        queue = self._redis.default_queue_name
        keys = [queue, wake_key(queue)]
        args: list[Any] = [now_ms, self._redis.expires_extra_ms, MAX_WAKE_TOKENS, self._workers]
        for job_id, *arguments in jobs:
            keys += [job_key_prefix + job_id, result_key_prefix + job_id]
            job = serialize_job(
                function, tuple(arguments), {}, None, now_ms, serializer=self._redis.job_serializer
            )
            args += [job_id, job]
        added = await self._enqueue_many_script(keys=keys, args=args)
        return [bool(flag) for flag in added]

    async def nudge_notifications(self) -> None:
        """Ask a worker to drain the outbox now rather than at its next scheduled run.

        Best effort: the worker's schedule delivers anyway if Redis is unavailable.
        """
        try:
            await self.enqueue(DELIVER_NOTIFICATIONS)
        except (OSError, RedisError, TimeoutError) as exc:
            self._log.warning("notifications_nudge_failed", error=str(exc))
