"""Nothing accepted is lost: alerts committed while Redis was down reach the queue later.

The outage test runs its own Redis on a spare port (never the shared one) and stops it.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import unused_port
from arq import ArqRedis
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.adapters.arq_queue import QUEUE_NAME, ArqJobQueue
from core.db.base import utcnow
from core.db.models import Alert
from core.db.uow import UnitOfWork
from core.domain.states import AlertState
from core.runtime.config import Settings
from core.services.alert_sweeper import AlertSweeper
from tests.integration.test_intake import (
    alert_body,
    make_webhook,
    start,
    token_of,
    wait_enqueued_marks,
)
from workers.context import WorkerContext
from workers.jobs.sweep_alerts import sweep_alerts
from workers.settings import WorkerSettings

Maker = async_sessionmaker[AsyncSession]


async def add_alert(maker: Maker, user_id: int, *, age: timedelta, **values: Any) -> int:
    async with UnitOfWork(maker) as uow:
        alert = Alert(
            user_id=user_id,
            body_hash="0" * 64,
            state=values.pop("state", AlertState.ACCEPTED),
            received_at=utcnow() - age,
            fields={},
            **values,
        )
        uow.session.add(alert)
        await uow.session.flush()
        await uow.commit()
        return alert.id


async def enqueued_at(maker: Maker) -> dict[int, bool]:
    async with maker() as session:
        rows = await session.execute(select(Alert.id, Alert.enqueued_at))
        return {alert_id: at is not None for alert_id, at in rows}


async def jobs(redis: Redis) -> list[str]:
    # Only alert jobs: other features nudge the same queue (the notifications outbox).
    queued = (job.decode() for job in await redis.zrange(QUEUE_NAME, 0, -1))
    return sorted(job for job in queued if job.startswith("alert:"))


async def test_the_sweeper_enqueues_only_accepted_unqueued_alerts_past_the_grace(
    live_sessionmaker: Maker, redis: Redis, redis_url: str
) -> None:
    user_id, _ = await make_webhook(live_sessionmaker, 6001)
    lost = await add_alert(live_sessionmaker, user_id, age=timedelta(seconds=30))
    fresh = await add_alert(live_sessionmaker, user_id, age=timedelta(seconds=0))
    queued = await add_alert(
        live_sessionmaker, user_id, age=timedelta(seconds=30), enqueued_at=utcnow()
    )
    refused = await add_alert(
        live_sessionmaker, user_id, age=timedelta(seconds=30), state=AlertState.REJECTED
    )
    queue = ArqJobQueue(ArqRedis.from_url(redis_url))
    try:
        report = await AlertSweeper(live_sessionmaker).sweep(queue)
        assert (report.enqueued, report.failed) == (1, False)
        assert await jobs(redis) == [f"alert:{lost}"]
        flags = await enqueued_at(live_sessionmaker)
        assert flags == {lost: True, fresh: False, queued: True, refused: False}
        # Idempotent: a second sweep finds nothing, and re-sweeping a queued alert
        # (its enqueued_at lost) does not queue it twice.
        assert (await AlertSweeper(live_sessionmaker).sweep(queue)).enqueued == 0
        async with live_sessionmaker() as session:
            alert = await session.get(Alert, lost)
            assert alert is not None
            alert.enqueued_at = None
            await session.commit()
        assert (await AlertSweeper(live_sessionmaker).sweep(queue)).enqueued == 1
        assert await jobs(redis) == [f"alert:{lost}"]
    finally:
        await queue.close()


async def test_a_sweep_with_redis_down_keeps_everything_for_the_next_one(
    live_sessionmaker: Maker,
) -> None:
    user_id, _ = await make_webhook(live_sessionmaker, 6002)
    alert_id = await add_alert(live_sessionmaker, user_id, age=timedelta(seconds=30))
    queue = ArqJobQueue(ArqRedis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1))
    try:
        report = await AlertSweeper(live_sessionmaker).sweep(queue)
    finally:
        await queue.close()
    assert (report.enqueued, report.failed) == (0, True)
    assert await enqueued_at(live_sessionmaker) == {alert_id: False}


async def test_the_worker_job_sweeps_through_its_own_redis(
    live_sessionmaker: Maker, redis: Redis, redis_url: str
) -> None:
    user_id, _ = await make_webhook(live_sessionmaker, 6003)
    alert_id = await add_alert(live_sessionmaker, user_id, age=timedelta(seconds=30))
    arq_redis = ArqRedis.from_url(redis_url)
    try:
        ctx: Any = {"sessionmaker": live_sessionmaker, "redis": arq_redis}
        typed: WorkerContext = ctx
        assert await sweep_alerts(typed) == 1
    finally:
        await arq_redis.aclose()
    assert await jobs(redis) == [f"alert:{alert_id}"]


def test_the_sweeper_is_a_frequent_cron_and_execute_alert_is_not_stubbed() -> None:
    crons = {job.name: job for job in WorkerSettings.cron_jobs}
    sweep = crons["cron:sweep_alerts"]
    assert sweep.run_at_startup
    assert sweep.second is not None
    assert len(sweep.second) >= 6  # at least every ten seconds
    names = {getattr(f, "__name__", "") for f in WorkerSettings.functions}
    assert "execute_alert" not in names


# A real Redis outage ----------------------------------------------------------------------


class OwnRedis:
    """A throwaway redis-server on a spare loopback port."""

    def __init__(self) -> None:
        self.port = unused_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        subprocess.run(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "yes",
            ],
            check=True,
            capture_output=True,
            timeout=10,
        )
        self._wait(up=True)

    def stop(self) -> None:
        subprocess.run(
            ["redis-cli", "-p", str(self.port), "shutdown", "nosave"],
            capture_output=True,
            timeout=10,
            check=False,
        )
        self._wait(up=False)

    def _wait(self, *, up: bool) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            answer = subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"],
                capture_output=True,
                timeout=5,
                check=False,
            )
            if (answer.stdout.strip() == b"PONG") == up:
                return
            time.sleep(0.05)
        raise RuntimeError(f"redis on {self.port} did not {'start' if up else 'stop'}")


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    assert shutil.which("redis-server"), "redis-server is needed for the outage test"
    server = OwnRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def outage_app(
    make_settings: Callable[..., Settings], live_sessionmaker: Maker, own_redis: OwnRedis
) -> AsyncIterator[Any]:
    client = await start(make_settings(redis_url=own_redis.url, webhook_ip_allowlist="*"))
    yield client
    await client.close()


async def test_an_alert_accepted_during_a_redis_outage_is_enqueued_after_it(
    outage_app: Any, own_redis: OwnRedis, live_sessionmaker: Maker
) -> None:
    _, issued = await make_webhook(live_sessionmaker, 6004)
    own_redis.stop()
    began = time.monotonic()
    response = await outage_app.post(f"/hook/{token_of(issued)}", json=alert_body(issued))
    elapsed = time.monotonic() - began
    body = await response.json()
    assert response.status == 200, body
    assert body["status"] == "accepted"
    assert elapsed < 2.0  # well inside TradingView's 3 s
    assert await enqueued_at(live_sessionmaker) == {body["id"]: False}

    own_redis.start()
    returned: Redis = Redis.from_url(own_redis.url)
    queue = ArqJobQueue(ArqRedis.from_url(own_redis.url))
    try:
        assert await returned.zcard(QUEUE_NAME) == 0
        async with asyncio.timeout(10):
            report = await AlertSweeper(live_sessionmaker).sweep(queue, grace=timedelta(0))
        assert report.enqueued == 1
        queued = [job.decode() for job in await returned.zrange(QUEUE_NAME, 0, -1)]
        assert queued == [f"alert:{body['id']}"]
        # Intake works normally again, with its own connection back.
        again = await outage_app.post(
            f"/hook/{token_of(issued)}", json=alert_body(issued, alert_id="after")
        )
        assert (await again.json())["status"] == "accepted"
        assert await returned.zcard(QUEUE_NAME) == 2
    finally:
        await queue.close()
        await returned.aclose()
    await wait_enqueued_marks(live_sessionmaker)
    assert set((await enqueued_at(live_sessionmaker)).values()) == {True}
