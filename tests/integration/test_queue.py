"""The arq job queue port against real Redis."""

from __future__ import annotations

import pytest
from arq import ArqRedis
from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.adapters.arq_queue import QUEUE_NAME, ArqJobQueue
from core.services.jobs import DELIVER_NOTIFICATIONS


async def test_enqueue_with_a_job_id_is_idempotent(redis: Redis, redis_url: str) -> None:
    queue = await ArqJobQueue.connect(redis_url)
    try:
        assert await queue.enqueue("execute_alert", 1, job_id="alert:1")
        assert not await queue.enqueue("execute_alert", 1, job_id="alert:1")
        assert await redis.zcard(QUEUE_NAME) == 1
    finally:
        await queue.close()


async def test_nudge_queues_a_delivery(redis: Redis, redis_url: str) -> None:
    queue = await ArqJobQueue.connect(redis_url)
    try:
        await queue.nudge_notifications()
        jobs = await redis.zrange(QUEUE_NAME, 0, -1)
        assert len(jobs) == 1
        assert await redis.exists(f"arq:job:{jobs[0].decode()}")
    finally:
        await queue.close()
    assert DELIVER_NOTIFICATIONS == "deliver_notifications"


async def test_nudge_is_best_effort_when_redis_is_unreachable() -> None:
    queue = ArqJobQueue(ArqRedis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1))
    try:
        with pytest.raises(RedisError):
            await queue.enqueue("anything")
        # The nudge swallows the same failure: the worker's schedule delivers anyway.
        await queue.nudge_notifications()
    finally:
        await queue.close()
