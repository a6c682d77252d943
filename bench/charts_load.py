"""``bench/charts.py --alerts N``: alert → broadcast latency idle, and while ``/pnl`` charts
render in bursts of 20 through the bot's renderer (one renderer process, as the bot runs it),
in alternating blocks.

The real ``tv2dydx web`` and ``tv2dydx worker`` execute alerts (one every 200 ms) against the
doubles, on real PostgreSQL and Redis; the renderer process competes with them for the
machine's cores exactly as the bot's would.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import secrets
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import unused_port
from redis.asyncio import Redis

from bench._common import (
    ADMIN_URL,
    REDIS_URL,
    Doubles,
    Poster,
    admin,
    register_all,
    stack_env,
    start_component,
    stop_component,
    wait_ready,
)
from core.runtime.migrate import upgrade
from core.services.analytics.chart import ChartData
from core.services.analytics.rendering import ChartRenderer

TRADERS = 5
WARMUP = 10
INTERVAL = 0.2
FIRST_TIMEOUT = 90.0  # the worker's start-up comes first
TIMEOUT = 10.0
BLOCKS = 4


def _render_bursts(data: ChartData, burst: int, started: Any, stop: Any, done: Any) -> None:
    """Child process (the bot): bursts of ``burst`` charts through a ``ChartRenderer`` until
    ``stop`` is set; ``done`` counts them."""

    async def run() -> None:
        renderer = ChartRenderer(max_waiting=burst * 2, cache_size=0)
        try:
            await renderer.render("warm-up", data)
            started.set()
            count = 0
            while not stop.is_set():
                keys = range(count, count + burst)
                await asyncio.gather(*(renderer.render(key, data) for key in keys))
                count += burst
                done.value = count
        finally:
            renderer.close()

    asyncio.run(run())


class RenderingBot:
    """A process that keeps the bot's renderer busy, as a burst of ``/pnl`` would."""

    def __init__(self, data: ChartData, burst: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._started, self._stop = context.Event(), context.Event()
        self._done = context.Value("i", 0)
        self._process = context.Process(
            target=_render_bursts,
            args=(data, burst, self._started, self._stop, self._done),
        )

    def start(self) -> None:
        """Start it and wait until its renderer process has drawn a first chart."""
        self._process.start()
        if not self._started.wait(60):
            self._process.kill()
            raise RuntimeError("the rendering process did not start")

    def stop(self) -> int:
        """Stop it (after the burst under way, or at once after 10 s); how many charts it
        rendered in whole bursts."""
        self._stop.set()
        self._process.join(10)
        if self._process.is_alive():
            self._process.terminate()  # its renderer process ends with it (parent gone)
            self._process.join(10)
        return int(self._done.value)


@dataclass(frozen=True)
class LoadResult:
    """Alert → broadcast latencies (ms) idle and while rendering, and the renders done."""

    idle: list[float]
    rendering: list[float]
    renders: int


async def alerts_while_rendering(data: ChartData, alerts: int, burst: int) -> LoadResult:
    """Run the stack, measure ``alerts`` alerts idle, then ``alerts`` more while the
    renderer is kept busy with bursts of ``burst`` charts."""
    name = f"tv2dydx_bench_charts_{secrets.token_hex(3)}"
    base = ADMIN_URL.rsplit("/", 1)[0]
    database_url = f"{base.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}"
    await admin(f'CREATE DATABASE "{name}"')
    redis: Redis = Redis.from_url(REDIS_URL)
    await redis.flushdb()
    doubles = Doubles(TRADERS)
    processes: list[subprocess.Popen[str]] = []
    poster: Poster | None = None
    try:
        telegram_env, dydx_env, people = doubles.start()
        await asyncio.to_thread(upgrade, database_url)
        env = stack_env(
            telegram_env, dydx_env, database_url, LOG_LEVEL="WARNING", WORKER_PROCESSES="1"
        )
        traders = await register_all(env, database_url, people)
        port = unused_port()
        web = {"WEB_PORT": str(port), "WEB_HOST": "127.0.0.1"}
        processes.append(start_component("web", {**env, **web}, subprocess.DEVNULL))
        await wait_ready(port)
        processes.append(start_component("worker", env, subprocess.DEVNULL))
        poster = Poster(port)
        poster.start()
        sent = 0

        async def one(within: float) -> float:
            nonlocal sent
            assert poster is not None
            [(posted, status)] = await poster.post_many([(traders[sent % TRADERS], f"a{sent}")])
            assert status == 200, status
            deadline = time.monotonic() + within
            received: list[int] = []
            while not received:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"alert {sent} was never broadcast")
                await asyncio.sleep(0.01)
                received = await asyncio.to_thread(doubles.broadcasts_since, sent)
            sent += 1
            return (received[0] - posted) / 1e6

        async def series(count: int) -> list[float]:
            latencies = []
            for _ in range(count):
                latencies.append(await one(TIMEOUT))
                await asyncio.sleep(INTERVAL)
            return latencies

        await one(FIRST_TIMEOUT)
        await series(WARMUP)
        # Idle and rendering blocks alternate, so a neighbour's load on a shared machine
        # falls on both alike. The charts are asked for by a process of their own, as the
        # bot's would be, not by this one (whose GIL the alert poster shares).
        idle: list[float] = []
        rendering: list[float] = []
        rendered = 0
        for block in range(BLOCKS):
            size = alerts // BLOCKS + (1 if block < alerts % BLOCKS else 0)
            idle += await series(size)
            bot = RenderingBot(data, burst)
            try:
                await asyncio.to_thread(bot.start)
                rendering += await series(size)
            finally:
                rendered += await asyncio.to_thread(bot.stop)
        return LoadResult(idle=idle, rendering=rendering, renders=rendered)
    finally:
        if poster is not None:
            poster.stop()
        for process in reversed(processes):
            stop_component(process)
        doubles.stop()
        await redis.flushdb()
        await redis.aclose()
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
