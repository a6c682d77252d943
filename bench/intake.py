"""Benchmark of the alert intake (not a test): accepted alerts per second and ack latency.

Runs the real web server (``tv2dydx web``, a subprocess) on loopback against real
PostgreSQL and Redis, in a database and Redis db of its own, and drives it from N
keep-alive HTTP/1.1 connections with a minimal client (so the client costs little of the
machine the server runs on). Every request is a distinct, valid alert of one of many users.

    .venv/bin/python bench/intake.py                      # 50 connections, 10 s
    .venv/bin/python bench/intake.py --connections 50 --duration 20 --users 200

Environment: ``BENCH_POSTGRES_URL`` (an admin URL, default
``postgresql://postgres@127.0.0.1:5432/postgres``) and ``BENCH_REDIS_URL`` (default
``redis://127.0.0.1:6379/11``; that db is flushed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from aiohttp.test_utils import unused_port
from redis.asyncio import Redis
from sqlalchemy import func, select

from core.crypto import generate_key_entry
from core.db.engine import create_engine, create_sessionmaker
from core.db.models import Alert
from core.db.uow import UnitOfWork
from core.migrate import upgrade
from core.services.webhooks import WebhookService

ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
BOT_TOKEN = "123456789:BENCH-token-never-used-against-telegram-0"


@dataclass
class Hook:
    path: str
    passphrase: str


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)


async def admin(statement: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def prepare(database_url: str, users: int) -> list[Hook]:
    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url, pool_size=2)
    maker = create_sessionmaker(engine)
    service = WebhookService(maker, "http://127.0.0.1")
    hooks = []
    for n in range(users):
        async with UnitOfWork(maker) as uow:
            user = await uow.users.get_or_create(900_000 + n)
            await uow.commit()
        issued = await service.issue(user.id)
        hooks.append(
            Hook(path=issued.url.removeprefix("http://127.0.0.1"), passphrase=issued.passphrase)
        )
    await engine.dispose()
    return hooks


async def count_alerts(database_url: str) -> tuple[int, int]:
    engine = create_engine(database_url, pool_size=1)
    async with create_sessionmaker(engine)() as session:
        total = await session.scalar(select(func.count()).select_from(Alert))
        unqueued = await session.scalar(
            select(func.count()).select_from(Alert).where(Alert.enqueued_at.is_(None))
        )
    await engine.dispose()
    return int(total or 0), int(unqueued or 0)


def start_server(env: dict[str, str], port: int, profile: str | None) -> subprocess.Popen[bytes]:
    tv2dydx = Path(sys.executable).with_name("tv2dydx")
    command = (
        [str(tv2dydx), "web"] if tv2dydx.exists() else [sys.executable, "-m", "webhook_server"]
    )
    if profile:  # same server, under cProfile; stopped with SIGINT so the profile is written
        command = [sys.executable, "-m", "cProfile", "-o", profile, "-m", "webhook_server"]
    return subprocess.Popen(
        command,
        env={**os.environ, **env, "WEB_PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def wait_ready(port: int, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            await writer.drain()
            answer = await reader.read()
            writer.close()
            if answer.startswith(b"HTTP/1.1 200"):
                return
        except OSError:
            answer = b""  # not listening yet
        await asyncio.sleep(0.1)
    raise RuntimeError("the web server did not become ready")


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return status, await reader.readexactly(length)


async def connection(
    port: int,
    hooks: list[Hook],
    index: int,
    stop_at: float,
    record_from: float,
    stats: Stats,
    interval: float | None,
) -> None:
    """One keep-alive connection: back to back, or one request every ``interval`` seconds.

    Paced requests are timed from when they were due, not from when they were sent, so a
    slow answer that delays the next request is counted against the server (no
    coordinated omission).
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sent = 0
    due = time.monotonic() + (interval or 0) * index / 50
    try:
        while (now := time.monotonic()) < stop_at:
            if interval is not None:
                if due > now:
                    await asyncio.sleep(due - now)
                    now = time.monotonic()
                began_wall = time.perf_counter() - (now - due)
                due += interval
            hook = hooks[(index + sent * 7) % len(hooks)]
            body = json.dumps(
                {
                    "passphrase": hook.passphrase,
                    "market": "BINANCE:BTCUSDT.P",
                    "action": "buy",
                    "position": "long",
                    "size": "0.001",
                    "price": "65000",
                    "alert_id": f"bench-{index}-{sent}",
                    "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            ).encode()
            request = (
                f"POST {hook.path} HTTP/1.1\r\nHost: bench\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            began = time.perf_counter() if interval is None else began_wall
            writer.write(request)
            status, answer = await read_response(reader)
            elapsed = time.perf_counter() - began
            sent += 1
            if now >= record_from:
                verdict = json.loads(answer).get("status", "?") if status == 200 else str(status)
                stats.statuses[verdict] += 1
                if verdict == "accepted":
                    stats.latencies.append(elapsed)
    finally:
        writer.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first")
    parser.add_argument("--users", type=int, default=100, help="distinct webhooks")
    parser.add_argument(
        "--rate",
        type=float,
        help="offer this many alerts/s in total (paced, open loop) instead of back to back",
    )
    parser.add_argument("--log-level", default="INFO", help="the server's LOG_LEVEL")
    parser.add_argument("--profile", help="run the server under cProfile, writing this file")
    args = parser.parse_args()

    name = f"tv2dydx_bench_{secrets.token_hex(3)}"
    base = ADMIN_URL.rsplit("/", 1)[0]
    database_url = f"{base.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}"
    await admin(f'CREATE DATABASE "{name}"')
    redis: Redis = Redis.from_url(REDIS_URL)
    await redis.flushdb()
    server = None
    try:
        hooks = await prepare(database_url, args.users)
        port = unused_port()
        server = start_server(
            {
                "BOT_TOKEN": BOT_TOKEN,
                "PUBLIC_BASE_URL": "http://localhost",
                "DATABASE_URL": database_url,
                "REDIS_URL": REDIS_URL,
                "ENCRYPTION_KEYS": generate_key_entry(),
                "WEB_HOST": "127.0.0.1",
                "WEBHOOK_IP_ALLOWLIST": "*",
                "ALERT_RATE_PER_TOKEN": "1000000",
                "ALERT_RATE_PER_IP": "10000000",
                "LOG_LEVEL": args.log_level,
                "LOG_FORMAT": "json",
            },
            port,
            args.profile,
        )
        await wait_ready(port)
        stats = Stats()
        interval = args.connections / args.rate if args.rate else None
        start = time.monotonic()
        record_from = start + args.warmup
        stop_at = record_from + args.duration
        await asyncio.wait_for(
            asyncio.gather(
                *(
                    connection(port, hooks, index, stop_at, record_from, stats, interval)
                    for index in range(args.connections)
                )
            ),
            timeout=args.warmup + args.duration + 30,
        )
    finally:
        if server is not None:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=15)
    try:
        # After the server stopped: its last batch of enqueued_at marks is written.
        total, unqueued = await count_alerts(database_url)
        queued = await redis.zcard("arq:queue")
    finally:
        await redis.flushdb()
        await redis.aclose()
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    accepted = stats.statuses["accepted"]
    latencies_ms = [value * 1000 for value in stats.latencies]
    mode = f"paced at {args.rate:,.0f} alerts/s offered" if args.rate else "back to back"
    print(f"connections        {args.connections} ({mode})")
    print(f"webhooks (users)   {args.users}")
    print(f"measured           {args.duration:.0f} s after {args.warmup:.0f} s warm-up")
    print(f"answers            {dict(stats.statuses)}")
    print(f"accepted alerts/s  {accepted / args.duration:,.0f}")
    if latencies_ms:
        print(f"ack latency p50    {statistics.median(latencies_ms):.2f} ms")
        print(f"ack latency p99    {percentile(latencies_ms, 0.99):.2f} ms")
        print(f"ack latency max    {max(latencies_ms):.2f} ms")
    print(f"alert rows         {total} (not enqueued: {unqueued}); jobs queued {queued}")


if __name__ == "__main__":
    asyncio.run(main())
