"""Benchmark of alert execution (not a test): alert POST → BroadcastTx received at the node.

Runs the real web server (``tv2dydx web``, a subprocess) and the production worker
(``TradingWorker`` with ``WorkerSettings``, in this process so its event loop can be
watched) against real PostgreSQL and Redis, with the dYdX and Telegram doubles (the
tests' protocol-faithful doubles) in a process of their own, so their work does not share
the worker's interpreter.
Each alert is a market order of one of N traders, signed with their permissioned API key and
broadcast to the node double, which records the moment it receives the transaction on the
same monotonic clock as the POST.

Prints p50 / p99 / max of POST → BroadcastTx over the alerts, and the largest lag of a
10 ms ticker on the worker's event loop during the run (what a blocking call would show).

    .venv/bin/python bench/execution.py                    # 200 alerts, one every 200 ms
    .venv/bin/python bench/execution.py --interval 0.05    # one every 50 ms
    .venv/bin/python bench/execution.py --burst 10 --interval 0.5   # ten at once, 20 times

Environment: ``BENCH_POSTGRES_URL`` (admin URL, default
``postgresql://postgres@127.0.0.1:5432/postgres``) and ``BENCH_REDIS_URL`` (default
``redis://127.0.0.1:6379/12``; that db is flushed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import multiprocessing
import os
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp.test_utils import unused_port
from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.db.engine import create_engine, create_sessionmaker
from core.db.uow import UnitOfWork
from core.exchange.factory import create_key_verifier
from core.runtime.config import Settings
from core.runtime.migrate import upgrade
from core.security.crypto import generate_key_entry
from core.services.credentials import CredentialService
from core.services.webhooks import WebhookService
from tests.doubles.dydx.double import DydxDouble
from tests.doubles.dydx.fixtures import FundedTrader, make_funded_trader
from tests.doubles.telegram import TelegramDouble
from tests.trading_stack import Trader, running_worker

ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")


async def admin(statement: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class GcWatch:
    """The longest garbage-collector pause in this process (a stall the ticker also sees)."""

    def __init__(self) -> None:
        self.max_pause = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.max_pause = max(self.max_pause, time.perf_counter() - self._started)


class Ticker:
    """A 10 ms ticker on the worker's loop; its worst lateness is the loop's worst stall."""

    def __init__(self, period: float = 0.01) -> None:
        self.period = period
        self.max_lag = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        expected = time.perf_counter() + self.period
        while True:
            await asyncio.sleep(self.period)
            now = time.perf_counter()
            self.max_lag = max(self.max_lag, now - expected)
            expected = now + self.period

    @property
    def idle(self) -> bool:
        """Whether the ticker has not started yet."""
        return self._task is None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class Poster:
    """Sends alerts from its own thread and loop, so the client does not share the worker's."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        self._thread.start()
        self._call(self._open())

    async def _open(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=100), timeout=aiohttp.ClientTimeout(total=10)
        )

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def _post(self, trader: Trader, alert_id: str) -> tuple[int, int]:
        assert self._session is not None
        body = {
            "passphrase": trader.hook.passphrase,
            "market": "ETH-USD",
            "action": "buy",
            "size": "0.01",
            "alert_id": alert_id,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        started = time.perf_counter_ns()
        async with self._session.post(
            f"http://127.0.0.1:{self._port}/hook/{trader.token}", json=body
        ) as response:
            await response.read()
            return started, response.status

    async def _post_many(self, batch: list[tuple[Trader, str]]) -> list[tuple[int, int]]:
        return list(await asyncio.gather(*(self._post(t, a) for t, a in batch)))

    async def post_many(self, batch: list[tuple[Trader, str]]) -> list[tuple[int, int]]:
        """POST a batch at once; ``(perf_counter_ns at send, status)`` per alert."""
        future = asyncio.run_coroutine_threadsafe(self._post_many(batch), self._loop)
        return await asyncio.wrap_future(future)

    def stop(self) -> None:
        if self._session is not None:
            self._call(self._session.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def serve_doubles(conn: Connection, traders: int) -> None:
    """Child process: the Telegram and dYdX doubles, and funded traders on them."""
    telegram = TelegramDouble().start()
    telegram.add_bot(username="tv2dydx_bench_bot", first_name="tv2dydx")
    dydx = DydxDouble().start()
    people = [
        (telegram.user(first_name="Trader", started=True).id, make_funded_trader(dydx))
        for _ in range(traders)
    ]
    conn.send((telegram.env(), dydx.env(), people))
    while True:
        request = conn.recv()
        if request == "stop":
            break
        start = int(request)
        # perf_counter is CLOCK_MONOTONIC on Linux: comparable with the parent's.
        conn.send([record.received_perf_ns for record in dydx.node.broadcasts[start:]])
    dydx.stop()
    telegram.stop()


class Doubles:
    """The doubles' process, asked over a pipe."""

    def __init__(self, traders: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=serve_doubles, args=(child, traders), daemon=True)

    def start(self) -> tuple[dict[str, str], dict[str, str], list[tuple[int, FundedTrader]]]:
        self._process.start()
        answer: Any = self._conn.recv()
        return answer  # type: ignore[no-any-return]

    def broadcasts_since(self, start: int) -> list[int]:
        """Receive times (perf_counter_ns) of the node's broadcasts from index ``start``."""
        self._conn.send(start)
        received: list[int] = self._conn.recv()
        return received

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send("stop")
        self._process.join(15)


async def register(maker: Any, settings: Settings, chat_id: int, funded: FundedTrader) -> Trader:
    """A user with the funded trader's API key and a webhook, as onboarding leaves them."""
    async with UnitOfWork(maker) as uow:
        user = await uow.users.get_or_create(chat_id)
        await uow.commit()
    credentials = CredentialService(
        maker,
        settings.keyring,
        create_key_verifier(settings.dydx),
    )
    try:
        await credentials.add_key(user.id, funded.owner_address, funded.api_private_key_hex)
    finally:
        await credentials.close()
    hook = await WebhookService(maker, settings.public_base_url).issue(user.id)
    return Trader(user_id=user.id, chat=None, hook=hook, dydx=funded)


def start_web(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    tv2dydx = Path(sys.executable).with_name("tv2dydx")
    command = (
        [str(tv2dydx), "web"] if tv2dydx.exists() else [sys.executable, "-m", "webhook_server"]
    )
    return subprocess.Popen(
        command,
        env={**os.environ, **env, "WEB_PORT": str(port), "WEB_HOST": "127.0.0.1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def wait_ready(port: int, within: float = 60) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError):  # not listening yet
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise RuntimeError("the web server did not start")


async def stage_breakdown(database_url: str) -> dict[str, list[float]]:
    """Per-stage latencies from the ledger's own timestamps (what /why shows)."""
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        rows = await conn.fetch(
            """
            SELECT a.received_at, a.started_at, o.signed_at, o.submitted_at
            FROM alerts a JOIN orders o ON o.alert_id = a.id
            ORDER BY a.id
            """
        )
    finally:
        await conn.close()
    stages: dict[str, list[float]] = {
        "received -> picked up": [],
        "picked up -> signed+committed": [],
        "committed -> broadcast": [],
    }
    for row in rows:
        stages["received -> picked up"].append(
            (row["started_at"] - row["received_at"]).total_seconds() * 1000
        )
        stages["picked up -> signed+committed"].append(
            (row["signed_at"] - row["started_at"]).total_seconds() * 1000
        )
        stages["committed -> broadcast"].append(
            (row["submitted_at"] - row["signed_at"]).total_seconds() * 1000
        )
    return stages


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=200, help="measured alerts")
    parser.add_argument("--burst", type=int, default=1, help="alerts sent at once per round")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between rounds")
    parser.add_argument("--traders", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured alerts first")
    args = parser.parse_args()

    name = f"tv2dydx_bench_exec_{secrets.token_hex(3)}"
    base = ADMIN_URL.rsplit("/", 1)[0]
    database_url = f"{base.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}"
    await admin(f'CREATE DATABASE "{name}"')
    redis: Redis = Redis.from_url(REDIS_URL)
    await redis.flushdb()
    doubles = Doubles(args.traders)
    telegram_env, dydx_env, people = doubles.start()
    web = None
    poster = None
    try:
        await asyncio.to_thread(upgrade, database_url)
        env = {
            **telegram_env,
            **dydx_env,
            "PUBLIC_BASE_URL": "http://localhost",
            "DATABASE_URL": database_url,
            "REDIS_URL": REDIS_URL,
            "ENCRYPTION_KEYS": generate_key_entry(),
            "WEBHOOK_IP_ALLOWLIST": "*",
            "ALERT_RATE_PER_TOKEN": "1000000",
            "ALERT_RATE_PER_IP": "10000000",
            "LOG_LEVEL": "WARNING",
            "LOG_FORMAT": "json",
        }
        settings = Settings(_env_file=None, **{k.lower(): v for k, v in env.items()})  # type: ignore[call-arg]
        engine = create_engine(database_url, pool_size=2)
        maker = create_sessionmaker(engine)
        traders = [await register(maker, settings, chat, funded) for chat, funded in people]
        await engine.dispose()
        port = unused_port()
        web = start_web(env, port)
        await wait_ready(port)
        poster = Poster(port)
        poster.start()
        gc.collect()
        gc.freeze()  # as `tv2dydx worker` does before it starts
        ticker = Ticker()
        gc_watch = GcWatch()
        latencies: list[float] = []
        async with running_worker(settings):
            total = args.warmup + args.alerts
            sent = 0
            round_no = 0
            while sent < total:
                batch = [
                    (traders[(sent + i) % len(traders)], f"b{round_no}-{i}")
                    for i in range(min(args.burst, total - sent))
                ]
                answers = await poster.post_many(batch)
                assert all(status == 200 for _, status in answers), answers
                deadline = time.monotonic() + 10
                received: list[int] = []
                while len(received) < len(batch):
                    if time.monotonic() > deadline:
                        raise RuntimeError("broadcasts did not arrive")
                    # The node stamps each arrival itself: asking rarely keeps the bench light.
                    await asyncio.sleep(0.02)
                    received = await asyncio.to_thread(doubles.broadcasts_since, sent)
                if sent >= args.warmup:
                    if ticker.idle:
                        ticker.start()
                        gc.callbacks.append(gc_watch)
                    first_post = min(started for started, _ in answers)
                    # Every alert of a round was posted within microseconds of the first.
                    latencies += [(at - first_post) / 1e6 for at in received[: len(batch)]]
                sent += len(batch)
                round_no += 1
                await asyncio.sleep(args.interval)
            await ticker.stop()
        stages = await stage_breakdown(database_url)
    finally:
        if poster is not None:
            poster.stop()
        if web is not None:
            web.send_signal(signal.SIGINT)
            web.wait(timeout=15)
        doubles.stop()
        await redis.flushdb()
        await redis.aclose()
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    print(f"alerts measured          {len(latencies)} ({args.burst} at once per round)")
    print(f"POST -> BroadcastTx p50  {statistics.median(latencies):.1f} ms")
    print(f"POST -> BroadcastTx p99  {percentile(latencies, 0.99):.1f} ms")
    print(f"POST -> BroadcastTx max  {max(latencies):.1f} ms")
    print(f"worker loop stall (max)  {ticker.max_lag * 1000:.1f} ms (10 ms ticker)")
    print(f"longest GC pause         {gc_watch.max_pause * 1000:.1f} ms")
    for stage, values in stages.items():
        p50, p99 = statistics.median(values), percentile(values, 0.99)
        print(f"  {stage:<30} p50 {p50:6.1f} ms   p99 {p99:6.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
