"""``tv2dydx worker`` with ``WORKER_PROCESSES=2``: one supervisor, two workers sharing the
queue; every alert is executed exactly once, SIGTERM stops both, a dead one stops the other."""
# Spawning the product as real processes from async tests is the point of this module.

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from core.domain.states import AlertState
from core.runtime.config import Settings
from doubles.dydx.double import DydxDouble
from doubles.telegram import TelegramDouble
from tests.e2e.test_cli import bare_env
from tests.e2e.test_execution_faults import WorkerProcess
from tests.e2e.test_web_processes import alive, servers_of
from tests.trading_stack import (
    Maker,
    add_trader,
    placed_orders,
    post_alert,
    running_web,
    wait_alert,
)

#: Alerts per trader, and traders: enough that both workers take some.
ALERTS, TRADERS = 3, 3


@pytest.fixture
async def web(
    make_settings: Callable[..., Settings],
    telegram_env: dict[str, str],
    dydx_env: dict[str, str],
    live_sessionmaker: Maker,
    redis: Any,
) -> AsyncIterator[tuple[Settings, TestClient]]:
    settings = make_settings(
        **telegram_env,
        **dydx_env,
        webhook_ip_allowlist="*",
        alert_rate_per_token=100_000,
        alert_rate_per_ip=100_000,
    )
    async with running_web(settings) as client:
        yield settings, client


@pytest.fixture
def workers(
    base_env: dict[str, str], telegram_env: dict[str, str], dydx_env: dict[str, str]
) -> Iterator[WorkerProcess]:
    process = WorkerProcess(
        bare_env({**base_env, **telegram_env, **dydx_env}, WORKER_PROCESSES="2")
    )
    yield process
    process.stop()


async def _until(predicate: Callable[[], bool], within: float = 90) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


def _workers_of(process: WorkerProcess) -> set[int]:
    assert process.proc is not None
    return servers_of(process.proc.pid)


async def test_two_worker_processes_share_the_queue_and_execute_each_alert_once(
    web: tuple[Settings, TestClient],
    workers: WorkerProcess,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
) -> None:
    settings, client = web
    workers.start()
    await _until(lambda: len(_workers_of(workers)) == 2)
    children = _workers_of(workers)
    traders = [
        await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
        for _ in range(TRADERS)
    ]
    # Distinct sizes: the same alert twice within its window is one alert (deduplicated).
    answers = await asyncio.gather(
        *(post_alert(client, me, size=f"0.0{n + 1}") for me in traders for n in range(ALERTS))
    )
    for answer in answers:
        row = await wait_alert(live_sessionmaker, answer["id"], within=90)
        assert row.state is AlertState.EXECUTED
    # Exactly once: one order on the chain per alert, whichever worker claimed it.
    assert len(placed_orders(dydx_double)) == ALERTS * TRADERS
    assert _workers_of(workers) == children  # both still running
    for me in traders:
        texts = [(await me.chat.next_message(timeout=30)).text for _ in range(ALERTS)]
        for n in range(ALERTS):
            assert sum(f"Bought 0.0{n + 1} ETH-USD" in text for text in texts) == 1
    await asyncio.sleep(2)
    assert [len(me.chat.bot_messages) for me in traders] == [ALERTS] * TRADERS

    assert workers.proc is not None
    workers.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(workers.proc.wait, 60) == 0
    await _until(lambda: not any(alive(pid) for pid in children), within=15)


async def test_when_one_worker_process_dies_the_other_stops_and_the_exit_is_an_error(
    workers: WorkerProcess,
) -> None:
    workers.start()
    await _until(lambda: len(_workers_of(workers)) == 2)
    first, second = sorted(_workers_of(workers))
    os.kill(first, signal.SIGKILL)
    assert workers.proc is not None
    # The supervisor stops the survivor and fails, so a service manager restarts them all.
    assert await asyncio.to_thread(workers.proc.wait, 60) == 1
    await _until(lambda: not alive(second), within=30)
