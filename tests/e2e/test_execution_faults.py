"""Exactly-once under faults: a worker SIGKILLed around the broadcast, Redis restarted
mid-stream, Telegram down for a minute. The worker runs as a real ``tv2dydx worker`` process
where it is killed, in-process elsewhere; the web app, PostgreSQL and the doubles are real."""
# Spawning the product as real processes from async tests is the point of this module.

from __future__ import annotations

import asyncio
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from typing import IO, Any

import pytest
from aiohttp.test_utils import TestClient
from arq.constants import in_progress_key_prefix, retry_key_prefix

from core.domain.states import AlertState, OrderState
from core.runtime.config import Settings
from core.services.jobs import alert_job_id
from doubles.dydx.double import DydxDouble
from doubles.telegram import TelegramDouble
from tests.e2e.test_cli import TV2DYDX, bare_env
from tests.integration.test_sweeper import OwnRedis
from tests.trading_stack import (
    Maker,
    add_trader,
    orders_of,
    placed_orders,
    post_alert,
    running_web,
    running_worker,
    wait_alert,
)
from workers.worker import IN_PROGRESS_LEASE_SECONDS


def _settings(make_settings: Callable[..., Settings], *envs: dict[str, str], **kw: Any) -> Settings:
    merged: dict[str, str] = {}
    for env in envs:
        merged.update(env)
    return make_settings(
        **merged,
        webhook_ip_allowlist="*",
        alert_rate_per_token=100_000,
        alert_rate_per_ip=100_000,
        **kw,
    )


class WorkerProcess:
    """``tv2dydx worker`` as a child process, its output in a temporary file."""

    def __init__(self, env: dict[str, str]) -> None:
        self._env = env
        self._log: IO[str] = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed in stop()
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [TV2DYDX, "worker"],
            env=self._env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> str:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.seek(0)
        output = self._log.read()
        self._log.close()
        return output


@pytest.fixture
def private_redis() -> Iterator[OwnRedis]:
    """A redis-server of this test alone, so it can be restarted."""
    server = OwnRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def worker_env(
    base_env: dict[str, str], telegram_env: dict[str, str], dydx_env: dict[str, str]
) -> dict[str, str]:
    return bare_env({**base_env, **telegram_env, **dydx_env})


@pytest.fixture
def worker_process(worker_env: dict[str, str]) -> Iterator[WorkerProcess]:
    process = WorkerProcess(worker_env)
    yield process
    process.stop()


async def _until(predicate: Callable[[], bool], within: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


@pytest.fixture
async def web(
    make_settings: Callable[..., Settings],
    telegram_env: dict[str, str],
    dydx_env: dict[str, str],
    live_sessionmaker: Maker,
    redis: Any,
) -> AsyncIterator[tuple[Settings, TestClient]]:
    settings = _settings(make_settings, telegram_env, dydx_env)
    async with running_web(settings) as client:
        yield settings, client


@pytest.mark.parametrize("processed", [False, True], ids=["before-broadcast", "after-broadcast"])
async def test_a_worker_killed_around_the_broadcast_leaves_exactly_one_order(
    processed: bool,
    web: tuple[Settings, TestClient],
    worker_process: WorkerProcess,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
) -> None:
    settings, client = web
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    # The node holds the broadcast: without processing it (the worker dies between the commit
    # and the broadcast, as far as the chain can tell) or after processing it (the worker
    # dies just after the broadcast, before the answer).
    dydx_double.node.hang(120, process_first=processed)
    worker_process.start()
    answer = await post_alert(client, me, size="0.1")
    await _until(lambda: len(dydx_double.node.broadcasts) == 1)
    if processed:
        await _until(lambda: dydx_double.node.broadcasts[0].processed)
    worker_process.kill()
    # Blocks stop while the worker is down, so the order's good_til_block stays ahead
    # however slowly this machine restarts a worker (a fast restart, on the chain's clock).
    dydx_double.pause_clock()
    (ledger,) = await orders_of(live_sessionmaker, me.user_id)
    assert ledger.state is OrderState.SUBMITTING  # committed before anything was sent

    worker_process.start()
    for _ in range(900):  # until the restarted worker has reconciled the order
        (ledger,) = await orders_of(live_sessionmaker, me.user_id)
        if ledger.state is not OrderState.SUBMITTING:
            break
        await asyncio.sleep(0.1)
    dydx_double.resume_clock()
    row = await wait_alert(live_sessionmaker, answer["id"], within=90)
    assert row.state is AlertState.EXECUTED
    assert len(placed_orders(dydx_double)) == 1
    (ledger,) = await orders_of(live_sessionmaker, me.user_id)
    assert ledger.state is OrderState.FILLED
    message = await me.chat.next_message(timeout=30)
    assert "Bought 0.1 ETH-USD" in message.text
    await asyncio.sleep(2)
    assert len(me.chat.bot_messages) == 1


async def test_a_killed_workers_alert_job_runs_again_within_seconds_of_its_return(
    web: tuple[Settings, TestClient],
    worker_process: WorkerProcess,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    redis: Any,
) -> None:
    settings, client = web
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    dydx_double.node.hang(120, process_first=False)  # the job is mid-broadcast when killed
    worker_process.start()
    answer = await post_alert(client, me, size="0.1")
    job_id = alert_job_id(answer["id"])
    await _until(lambda: len(dydx_double.node.broadcasts) == 1)
    worker_process.kill()
    killed_at = asyncio.get_running_loop().time()
    # Blocks stop while the worker is down, so the order's good_til_block stays ahead
    # however slowly this machine restarts a worker (the chain's clock, as above).
    dydx_double.pause_clock()
    # arq 0.28 alone would hold the job for the longest function timeout + 10 s (1,810 s
    # with the compliance cron); the worker's lease is 10 s and died with it.
    lease_ms = await redis.pttl(in_progress_key_prefix + job_id)
    assert 0 < lease_ms <= IN_PROGRESS_LEASE_SECONDS * 1000
    assert await redis.get(retry_key_prefix + job_id) == b"1"

    worker_process.start()
    tries = b"1"
    while tries == b"1":
        assert asyncio.get_running_loop().time() - killed_at < 90, "the job was not re-run"
        await asyncio.sleep(0.1)
        tries = await redis.get(retry_key_prefix + job_id) or b"done"
    rerun_after = asyncio.get_running_loop().time() - killed_at
    dydx_double.resume_clock()
    # Within the lease plus the restart of a process (slow under coverage on a small VM) of
    # the kill, not arq's half an hour.
    assert rerun_after < IN_PROGRESS_LEASE_SECONDS + 60
    row = await wait_alert(live_sessionmaker, answer["id"], within=60)
    assert row.state is AlertState.EXECUTED
    assert len(placed_orders(dydx_double)) == 1
    message = await me.chat.next_message(timeout=30)
    assert "Bought 0.1 ETH-USD" in message.text
    await asyncio.sleep(2)
    assert len(me.chat.bot_messages) == 1


async def test_a_redis_restart_mid_stream_loses_and_doubles_nothing(
    make_settings: Callable[..., Settings],
    telegram_env: dict[str, str],
    dydx_env: dict[str, str],
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    private_redis: OwnRedis,
) -> None:
    settings = _settings(make_settings, telegram_env, dydx_env, redis_url=private_redis.url)
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    ids: list[int] = []
    async with running_web(settings) as client:
        for n in range(4):  # queued in Redis; no worker yet
            ids.append((await post_alert(client, me, size="0.01", alert_id=f"a{n}"))["id"])
        private_redis.stop()  # a restart without persistence: the queued jobs are gone
        for n in range(4, 7):  # accepted while Redis is away
            ids.append((await post_alert(client, me, size="0.01", alert_id=f"a{n}"))["id"])
        private_redis.start()
        for n in range(7, 10):
            ids.append((await post_alert(client, me, size="0.01", alert_id=f"a{n}"))["id"])
        async with running_worker(settings):
            rows = [await wait_alert(live_sessionmaker, alert_id, within=60) for alert_id in ids]
    assert {row.state for row in rows} == {AlertState.EXECUTED}
    assert len(placed_orders(dydx_double)) == 10
    orders = await orders_of(live_sessionmaker, me.user_id)
    assert len(orders) == 10
    assert {order.alert_id for order in orders} == set(ids)


async def test_telegram_down_for_a_minute_loses_and_doubles_no_notification(
    web: tuple[Settings, TestClient],
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
) -> None:
    settings, client = web
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    telegram_double.set_down(60)
    async with running_worker(settings):
        ids = [
            (await post_alert(client, me, size="0.01", alert_id=f"t{n}"))["id"] for n in range(3)
        ]
        for alert_id in ids:
            assert (await wait_alert(live_sessionmaker, alert_id)).state is AlertState.EXECUTED
        assert me.chat.bot_messages == []
        texts = [(await me.chat.next_message(timeout=100)).text for _ in ids]
        await asyncio.sleep(3)
    assert all("Bought 0.01 ETH-USD" in text for text in texts)
    assert len(me.chat.bot_messages) == 3
