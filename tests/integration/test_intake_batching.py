"""Coalescing of the intake's round trips: each caller still gets exactly its own outcome.

The batcher alone, then each batched call against real Redis and PostgreSQL, then the web
app under concurrent distinct alerts.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestClient, TestServer
from arq import ArqRedis
from arq.jobs import deserialize_job
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.adapters.arq_queue import QUEUE_NAME, ArqJobQueue
from core.db.base import utcnow
from core.db.models import Alert
from core.db.uow import UnitOfWork
from core.runtime.batching import MicroBatcher
from core.runtime.config import Settings
from core.runtime.logs import configure_logging
from core.security.ratelimit import Limit, RateLimiter
from core.services.jobs import EXECUTE_ALERT, alert_job_id
from core.services.webhooks import IssuedWebhook, WebhookService
from webhook_server.access_log import IntakeAccessLogger
from webhook_server.app import create_app

Maker = async_sessionmaker[AsyncSession]
BASE_URL = "https://tv2dydx.example.com"


class Recorder:
    """A batch function that records the batches it was given."""

    def __init__(self, delay: float = 0) -> None:
        self.batches: list[list[int]] = []
        self.delay = delay

    async def __call__(self, items: Sequence[int]) -> list[int | Exception]:
        self.batches.append(list(items))
        await asyncio.sleep(self.delay)
        return [ValueError(item) if item < 0 else item * 10 for item in items]


# The batcher ------------------------------------------------------------------------------


async def test_calls_made_together_share_one_batch_and_keep_their_own_results() -> None:
    run = Recorder()
    batcher = MicroBatcher(run)
    results = await asyncio.gather(*(batcher.submit(n) for n in range(5)))
    assert results == [0, 10, 20, 30, 40]
    assert run.batches == [[0, 1, 2, 3, 4]]


async def test_calls_arriving_while_a_batch_runs_form_the_next_one() -> None:
    run = Recorder(delay=0.05)
    batcher = MicroBatcher(run, max_in_flight=1)
    first = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0.01)  # the first batch is in flight
    later = [asyncio.ensure_future(batcher.submit(n)) for n in (2, 3, 4)]
    assert await asyncio.gather(first, *later) == [10, 20, 30, 40]
    assert run.batches == [[1], [2, 3, 4]]


async def test_batches_are_capped_in_size() -> None:
    run = Recorder()
    batcher = MicroBatcher(run, max_batch=2, max_in_flight=3)
    assert await asyncio.gather(*(batcher.submit(n) for n in range(5))) == [0, 10, 20, 30, 40]
    assert sorted(len(batch) for batch in run.batches) == [1, 2, 2]


async def test_an_item_error_reaches_only_its_caller() -> None:
    batcher = MicroBatcher(Recorder())
    results = await asyncio.gather(*(batcher.submit(n) for n in (1, -1, 2)), return_exceptions=True)
    assert results[0] == 10
    assert isinstance(results[1], ValueError)
    assert results[2] == 20


async def test_a_batch_error_reaches_every_caller_of_the_batch() -> None:
    async def broken(items: Sequence[int]) -> list[int | Exception]:
        raise ConnectionError("down")

    batcher = MicroBatcher(broken)
    results = await asyncio.gather(*(batcher.submit(n) for n in range(3)), return_exceptions=True)
    assert all(isinstance(result, ConnectionError) for result in results)


async def test_an_abandoned_call_is_not_run() -> None:
    run = Recorder(delay=0.05)
    batcher = MicroBatcher(run, max_in_flight=1)
    first = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0.01)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await batcher.submit(2)  # waits behind the first batch, then gives up
    assert await batcher.submit(3) == 30
    assert await first == 10
    await batcher.drain()
    assert run.batches == [[1], [3]]


# Batched calls against Redis --------------------------------------------------------------


async def test_concurrent_checks_of_one_bucket_are_charged_one_after_another(redis: Redis) -> None:
    limiter = RateLimiter(redis, prefix="test:rl")
    limit = Limit(per_minute=1, burst=5)
    decisions = await asyncio.gather(
        *(
            limiter.check([("token", "t1", limit), ("ip", "10.0.0.1", Limit(600, 600))])
            for _ in range(8)
        )
    )
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 3
    assert [d.bucket for d in decisions[5:]] == ["token"] * 3
    assert [d.first_refusal for d in decisions[5:]] == [True, False, False]
    # The refused checks did not drain the shared per-IP bucket: only five tokens left it.
    level = await redis.hget("test:rl:ip:10.0.0.1", "v")  # type: ignore[misc]
    assert level is not None
    assert float(level) == pytest.approx(595, abs=0.5)


async def test_enqueue_many_queues_what_enqueue_would_and_skips_known_ids(
    redis: Redis, redis_url: str
) -> None:
    queue = ArqJobQueue(ArqRedis.from_url(redis_url))
    try:
        assert await queue.enqueue(EXECUTE_ALERT, 1, job_id=alert_job_id(1))
        added = await queue.enqueue_many(
            EXECUTE_ALERT, [(alert_job_id(alert_id), alert_id) for alert_id in (1, 2, 3)]
        )
        assert added == [False, True, True]
        assert await queue.enqueue_many(EXECUTE_ALERT, []) == []
        queued = sorted(job.decode() for job in await redis.zrange(QUEUE_NAME, 0, -1))
        assert queued == ["alert:1", "alert:2", "alert:3"]
        for alert_id in (1, 2, 3):
            raw = await redis.get(f"arq:job:{alert_job_id(alert_id)}")
            assert raw is not None
            job = deserialize_job(raw)
            assert (job.function, job.args, job.kwargs) == (EXECUTE_ALERT, (alert_id,), {})
    finally:
        await queue.close()


# Through the web app ----------------------------------------------------------------------


@pytest.fixture
async def client(
    make_settings: Callable[..., Settings], live_sessionmaker: Maker, redis: Redis
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    settings = make_settings(
        public_base_url=BASE_URL,
        webhook_ip_allowlist="*",
        alert_rate_per_token=1_000_000,
        alert_rate_per_ip=10_000_000,
    )
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    yield client
    await client.close()


async def _hooks(maker: Maker, count: int) -> list[IssuedWebhook]:
    hooks = []
    for n in range(count):
        async with UnitOfWork(maker) as uow:
            user = await uow.users.get_or_create(7100 + n)
            await uow.commit()
        hooks.append(await WebhookService(maker, BASE_URL).issue(user.id))
    return hooks


async def test_concurrent_distinct_alerts_each_get_their_row_and_job(
    client: TestClient[web.Request, web.Application], live_sessionmaker: Maker, redis: Redis
) -> None:
    hooks = await _hooks(live_sessionmaker, 3)
    now = utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")

    async def post(n: int) -> tuple[int, dict[str, Any]]:
        hook = hooks[n % len(hooks)]
        body = {
            "passphrase": hook.passphrase,
            "market": "BTC-USD",
            "action": "buy",
            "position": "long",
            "size": "0.01",
            # Two senders repeat one alert_id: one row each per user, the repeat a duplicate.
            "alert_id": f"a-{n % 30}",
            "time": now,
        }
        response = await client.post(f"/hook/{hook.url.rsplit('/', 1)[1]}", json=body)
        return response.status, await response.json()

    answers = await asyncio.gather(*(post(n) for n in range(60)))
    assert {status for status, _ in answers} == {200}
    accepted = [answer["id"] for _, answer in answers if answer["status"] == "accepted"]
    assert len(accepted) == len(set(accepted)) == 30
    assert sum(answer["status"] == "duplicate" for _, answer in answers) == 30
    async with live_sessionmaker() as session:
        rows = await session.scalar(select(func.count()).select_from(Alert))
    assert rows == 30
    queued = {job.decode() for job in await redis.zrange(QUEUE_NAME, 0, -1)}
    assert queued >= {alert_job_id(alert_id) for alert_id in accepted}


async def test_the_access_log_leaves_acknowledged_alerts_to_the_intake(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", "json")

    async def answer(request: web.Request) -> web.Response:
        return web.json_response({}, status=int(request.query["status"]))

    app = web.Application()
    app.router.add_post("/hook/{token}", answer)
    app.router.add_post("/link/{token}", answer)
    runner = web.AppRunner(app, access_log_class=IntakeAccessLogger)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with ClientSession() as http:
            for path in (
                "/hook/s3cretT0ken?status=200",
                "/hook/s3cretT0ken?status=401",
                "/link/x?status=200",
            ):
                async with http.post(f"http://127.0.0.1:{port}{path}") as response:
                    await response.read()
    finally:
        await runner.cleanup()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    logged = [(line["path"], line["status"]) for line in lines if line["event"] == "http_request"]
    assert logged == [("/hook/***?status=401", 401), ("/link/x?status=200", 200)]
