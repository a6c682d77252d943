"""``TradingWorker`` against real Redis: woken by the enqueue, one claim per batch, arq's rules.

The jobs here are small functions recording their runs; the production jobs run on the
same worker in ``tests/test_execution*.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from arq import ArqRedis, create_pool
from arq.connections import RedisSettings
from arq.constants import in_progress_key_prefix
from arq.cron import cron
from arq.worker import func
from redis.asyncio import Redis

from core.adapters.arq_queue import MAX_WAKE_TOKENS, QUEUE_NAME, ArqJobQueue, wake_key
from workers.worker import TradingWorker

WAKE = wake_key(QUEUE_NAME)


class Runs:
    """What the test jobs did, in this process."""

    def __init__(self) -> None:
        self.done: list[Any] = []
        self.running = 0
        self.most_running = 0
        self.release = asyncio.Event()
        self.release.set()

    async def record(self, ctx: dict[str, Any], value: Any) -> None:
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self.release.wait()
            self.done.append(value)
        finally:
            self.running -= 1

    async def until(self, count: int, within: float = 10.0) -> None:
        await settled(lambda: len(self.done) >= count, within)


async def settled(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Return once ``condition()`` holds; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        if condition():
            return
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(
    redis_url: str, runs: Runs, *, idle_poll: float, max_jobs: int = 10, peers: int = 1
) -> AsyncIterator[TradingWorker]:
    worker = TradingWorker(
        peers=peers,
        functions=[func(runs.record, name="record")],
        redis_settings=RedisSettings.from_dsn(redis_url),
        queue_name=QUEUE_NAME,
        handle_signals=False,
        idle_poll=idle_poll,
        max_jobs=max_jobs,
        keep_result=0,
    )
    task = asyncio.create_task(worker.async_run())
    try:
        yield worker
        # A job counts as run once arq has recorded it, a moment after the function returns.
        await settled(lambda: worker.job_counter == 0)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await worker.close()


@contextlib.asynccontextmanager
async def job_queue(redis_url: str) -> AsyncIterator[ArqJobQueue]:
    queue = await ArqJobQueue.connect(redis_url)
    try:
        yield queue
    finally:
        await queue.close()


@contextlib.asynccontextmanager
async def arq_pool(redis_url: str) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(RedisSettings.from_dsn(redis_url), default_queue_name=QUEUE_NAME)
    try:
        yield pool
    finally:
        await pool.aclose()


# --- wake tokens --------------------------------------------------------------------------


async def test_an_enqueue_pushes_one_wake_token_per_call_and_only_for_new_jobs(
    redis: Redis, redis_url: str
) -> None:
    async with job_queue(redis_url) as queue:
        assert await queue.enqueue_many("record", [("a", 1), ("b", 2), ("c", 3)]) == [True] * 3
        assert await redis.llen(WAKE) == 1
        assert await queue.enqueue("record", 4, job_id="d")
        assert await redis.llen(WAKE) == 2
        # Nothing new queued: nobody to wake.
        assert await queue.enqueue_many("record", [("a", 1), ("b", 2)]) == [False, False]
        assert not await queue.enqueue("record", 4, job_id="d")
        assert await redis.llen(WAKE) == 2


async def test_wake_tokens_are_capped_while_no_worker_takes_them(
    redis: Redis, redis_url: str
) -> None:
    async with job_queue(redis_url) as queue:
        for number in range(MAX_WAKE_TOKENS + 10):
            await queue.enqueue("record", number, job_id=f"job:{number}")
    assert await redis.llen(WAKE) == MAX_WAKE_TOKENS
    assert await redis.zcard(QUEUE_NAME) == MAX_WAKE_TOKENS + 10


async def test_an_enqueued_job_wakes_a_worker_long_before_its_next_poll(
    redis: Redis, redis_url: str
) -> None:
    runs = Runs()
    # Polling alone, the worker would look again only after 30 s.
    async with running(redis_url, runs, idle_poll=30.0), job_queue(redis_url) as queue:
        await asyncio.sleep(0.2)  # the worker's first poll found nothing and now waits
        await queue.enqueue_many("record", [("alert:1", "one"), ("alert:2", "two")])
        await runs.until(2, within=5.0)
    assert sorted(runs.done) == ["one", "two"]
    assert await redis.llen(WAKE) == 0


async def test_a_job_queued_without_a_token_is_found_by_the_idle_poll(
    redis: Redis, redis_url: str
) -> None:
    runs = Runs()
    async with running(redis_url, runs, idle_poll=0.05), arq_pool(redis_url) as pool:
        # arq's own enqueue (crons, retries, other producers) pushes no token.
        await pool.enqueue_job("record", "plain", _job_id="plain")
        await runs.until(1, within=5.0)
    assert runs.done == ["plain"]


# --- claiming ------------------------------------------------------------------------------


async def test_a_job_running_on_another_worker_is_not_started(redis: Redis, redis_url: str) -> None:
    runs = Runs()
    await redis.set(in_progress_key_prefix + "taken", b"1")
    async with running(redis_url, runs, idle_poll=0.05), job_queue(redis_url) as queue:
        await queue.enqueue("record", "taken", job_id="taken")
        await queue.enqueue("record", "free", job_id="free")
        await runs.until(1)
        await asyncio.sleep(0.3)  # several polls
        assert runs.done == ["free"]
        # The other worker died and its claim expired: the job is still queued, so it runs.
        await redis.delete(in_progress_key_prefix + "taken")
        await runs.until(2)
    assert runs.done == ["free", "taken"]


async def test_a_deferred_job_waits_for_its_time(redis: Redis, redis_url: str) -> None:
    runs = Runs()
    async with running(redis_url, runs, idle_poll=0.05), arq_pool(redis_url) as pool:
        await pool.enqueue_job("record", "later", _job_id="later", _defer_by=1.5)
        await asyncio.sleep(0.5)  # ten polls, each seeing the job not yet due
        assert runs.done == []
        await runs.until(1, within=5.0)
    assert runs.done == ["later"]


async def test_a_deferred_job_ends_the_wait_when_it_is_due(redis: Redis, redis_url: str) -> None:
    runs = Runs()
    # Polling alone, the worker would look again only after 30 s.
    async with running(redis_url, runs, idle_poll=30.0), job_queue(redis_url) as queue:
        async with arq_pool(redis_url) as pool:
            await pool.enqueue_job("record", "later", _job_id="later", _defer_by=4.0)
        # A woken poll runs "now" and sees "later" waiting: its wait ends when that is due.
        await queue.enqueue("record", "now", job_id="now")
        await runs.until(1)
        assert runs.done == ["now"]
        await runs.until(2, within=10.0)
    assert runs.done == ["now", "later"]


async def test_crons_run_on_time_however_long_the_idle_poll(redis_url: str) -> None:
    ticks: list[float] = []

    async def tick(ctx: dict[str, Any]) -> None:
        ticks.append(time.monotonic())

    worker = TradingWorker(
        functions=[],
        cron_jobs=[cron(tick, name="tick", second=set(range(60)), run_at_startup=True)],
        redis_settings=RedisSettings.from_dsn(redis_url),
        queue_name=QUEUE_NAME,
        handle_signals=False,
        idle_poll=30.0,
        keep_result=0,
    )
    task = asyncio.create_task(worker.async_run())
    try:
        # Every second, though nothing wakes the worker and it polls every 30 s.
        await settled(lambda: len(ticks) >= 5, within=20.0)
        # Stop between two runs: arq's close() would raise a run cut short.
        await settled(lambda: worker.job_counter == 0)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await worker.close()
    # The first run is the start-up one; then one a second (a 30 s poll, or the 2.5 s lease
    # renewal, would space them far wider).
    gaps = sorted(later - earlier for earlier, later in itertools.pairwise(ticks[1:]))
    assert 0.5 < gaps[len(gaps) // 2] < 1.8, gaps


async def test_a_burst_is_claimed_up_to_the_free_slots(redis: Redis, redis_url: str) -> None:
    runs = Runs()
    runs.release.clear()
    async with (
        running(redis_url, runs, idle_poll=0.05, max_jobs=3) as worker,
        job_queue(redis_url) as queue,
    ):
        await queue.enqueue_many("record", [(f"job:{n}", n) for n in range(8)])
        await settled(lambda: runs.running == 3)
        await asyncio.sleep(0.2)
        assert (runs.running, runs.most_running, worker.job_counter) == (3, 3, 3)
        # Only the running jobs are claimed; the rest wait in the queue unclaimed.
        claimed = await redis.keys(in_progress_key_prefix + "*")
        assert len(claimed) == 3
        runs.release.set()
        await runs.until(8)
        await settled(lambda: worker.job_counter == 0)
    assert sorted(runs.done) == list(range(8))
    assert runs.most_running == 3


async def test_two_workers_sharing_a_queue_run_each_job_once(redis: Redis, redis_url: str) -> None:
    runs = Runs()
    async with (
        running(redis_url, runs, idle_poll=0.01) as first,
        running(redis_url, runs, idle_poll=0.01) as second,
        job_queue(redis_url) as queue,
    ):
        for batch in range(20):
            jobs = [(f"job:{batch}:{n}", (batch, n)) for n in range(5)]
            await queue.enqueue_many("record", jobs)
            await asyncio.sleep(0.005)
        await runs.until(100)
        await asyncio.sleep(0.3)  # anything run twice would show by now
        started = (first.jobs_complete, second.jobs_complete)
    assert len(runs.done) == 100
    assert sorted(runs.done) == sorted((batch, n) for batch in range(20) for n in range(5))
    assert sum(started) == 100


async def test_a_burst_wakes_two_workers_and_each_claims_its_share(
    redis: Redis, redis_url: str
) -> None:
    first_runs, second_runs = Runs(), Runs()
    first_runs.release.clear()
    second_runs.release.clear()
    # Idle polls far apart: only the enqueue's wake tokens can start the jobs in time.
    async with (
        running(redis_url, first_runs, idle_poll=30.0, peers=2),
        running(redis_url, second_runs, idle_poll=30.0, peers=2),
    ):
        await asyncio.sleep(0.2)  # both waiting on the wake list
        async with arq_pool(redis_url) as pool:
            queue = ArqJobQueue(pool, workers=2)
            await queue.enqueue_many("record", [(f"alert:{n}", n) for n in range(10)])
            await settled(lambda: first_runs.running + second_runs.running == 10)
        # Each took a share, and took again what the other left: no job twice.
        assert first_runs.running >= 1
        assert second_runs.running >= 1
        first_runs.release.set()
        second_runs.release.set()
        await settled(lambda: len(first_runs.done) + len(second_runs.done) == 10)
    assert sorted(first_runs.done + second_runs.done) == list(range(10))


async def test_one_worker_alone_takes_the_whole_burst_it_was_meant_to_share(
    redis: Redis, redis_url: str
) -> None:
    runs = Runs()
    async with running(redis_url, runs, idle_poll=30.0, peers=2):
        await asyncio.sleep(0.2)
        async with job_queue(redis_url) as queue:
            await queue.enqueue_many("record", [(f"alert:{n}", n) for n in range(10)])
            # The peer never comes: the jobs left for it are claimed by the next polls,
            # which follow at once, not after the 30 s idle poll.
            await runs.until(10, within=5.0)
    assert sorted(runs.done) == list(range(10))


async def test_a_job_this_worker_runs_is_not_claimed_again_when_its_lease_lapses(
    redis: Redis, redis_url: str
) -> None:
    """An event loop stalled past the lease lets the in-progress key expire: the job must
    still not start a second time in the process that runs it."""
    runs = Runs()
    runs.release.clear()
    async with running(redis_url, runs, idle_poll=0.02) as worker, job_queue(redis_url) as queue:
        await queue.enqueue("record", "once", job_id="once")
        await settled(lambda: runs.running == 1)
        await redis.delete(in_progress_key_prefix + "once")  # the lease lapsed
        await queue.enqueue("record", "nudge", job_id="nudge")  # wake the worker: it polls
        await runs.until(0, within=1)
        await asyncio.sleep(0.3)
        assert runs.most_running == 2  # "once" and "nudge", never "once" twice
        assert worker.job_counter == 2
        runs.release.set()
        await runs.until(2)
    assert sorted(runs.done) == ["nudge", "once"]
