"""Benchmark of the alert intake (not a test): accepted alerts per second and ack latency.

Runs the real web server (``tv2dydx web``, a subprocess) on loopback against real
PostgreSQL and Redis, in a database and Redis db of its own, and drives it from N
keep-alive HTTP/1.1 connections. Every request is a distinct, valid alert (its own
``alert_id``) of one of many users.

The load comes from ``wrk`` (C, with a Lua script building each alert) when it is
installed, else from a minimal asyncio client in this process. On a small machine the
client shares the cores with the server, PostgreSQL and Redis: the Python client costs
several times wrk's CPU, so its figures understate the server (``--client`` chooses).

Back to back (the default), each connection sends its next alert as soon as the previous
one is answered: the server's saturation throughput, where latency is mostly queueing
(Little's law: 50 connections at 1,000 alerts/s wait 50 ms on average). With ``--rate``
the alerts are offered at that total rate instead, which measures the ack latency a
sender sees at that load; requests that could not leave on schedule (every connection
busy) are counted as late.

    .venv/bin/python bench/intake.py                      # 50 connections, 10 s
    .venv/bin/python bench/intake.py --connections 50 --duration 20 --rate 1000
    .venv/bin/python bench/intake.py --processes 2 --client python

Environment: ``BENCH_POSTGRES_URL`` (an admin URL, default
``postgresql://postgres@127.0.0.1:5432/postgres``) and ``BENCH_REDIS_URL`` (default
``redis://127.0.0.1:6379/11``; that db is flushed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aiohttp.test_utils import unused_port
from redis.asyncio import Redis
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import ADMIN_URL, admin, percentile, process_tree_times, wait_ready
from core.db.engine import create_engine, create_sessionmaker
from core.db.models import Alert
from core.db.uow import UnitOfWork
from core.domain.states import AlertState
from core.runtime.logs import configure_logging
from core.runtime.migrate import upgrade
from core.security.crypto import generate_key_entry
from core.services.webhooks import WebhookService

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
BOT_TOKEN = "123456789:BENCH-token-never-used-against-telegram-0"

# wrk's script: a distinct alert per request (thread, run and counter in its alert_id),
# optional pacing through wrk's delay() hook on a monotonic clock (LuaJIT ffi), and one
# parseable result line. Latency is wrk's, from the moment the request is written.
WRK_SCRIPT = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local threads = {}
local thread_count = 0
function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_index", thread_count)
  table.insert(threads, thread)
end

function init(args)
  hooks = {}
  for line in io.lines(args[1]) do
    local path, passphrase = line:match("^(%S+) (%S+)$")
    hooks[#hooks + 1] = {path, passphrase}
  end
  run_label = args[2] .. "-" .. thread_index
  interval_ms = tonumber(args[3])
  counter = 0
  late = 0
  next_slot = nil
end

function delay()
  if interval_ms == 0 then return 0 end
  local now = now_ms()
  if next_slot == nil then next_slot = now end
  local wait = next_slot - now
  next_slot = next_slot + interval_ms
  if wait < -1 then late = late + 1 end
  if wait <= 0 then return 0 end
  return math.floor(wait)
end

function request()
  counter = counter + 1
  local hook = hooks[(counter * 7 + thread_index) % #hooks + 1]
  local body = string.format(
    '{"passphrase":"%s","market":"BINANCE:BTCUSDT.P","action":"buy","position":"long",' ..
    '"size":"0.001","price":"65000","alert_id":"wrk-%s-%d","time":"%s"}',
    hook[2], run_label, counter, os.date("!%Y-%m-%dT%H:%M:%SZ"))
  return wrk.format("POST", hook[1], {["Content-Type"] = "application/json"}, body)
end

function done(summary, latency, requests)
  local late_total = 0
  for _, thread in ipairs(threads) do late_total = late_total + thread:get("late") end
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d non2xx=%d " ..
    "socket_errors=%d late=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.status, e.connect + e.read + e.write + e.timeout, late_total))
end
"""


@dataclass
class Hook:
    path: str
    passphrase: str


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)


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


async def count_alerts(database_url: str) -> tuple[int, int, int]:
    """All alert rows, the accepted ones, and the accepted ones not marked enqueued."""
    accepted = Alert.state == AlertState.ACCEPTED
    engine = create_engine(database_url, pool_size=1)
    async with create_sessionmaker(engine)() as session:
        total = await session.scalar(select(func.count()).select_from(Alert))
        good = await session.scalar(select(func.count()).select_from(Alert).where(accepted))
        unqueued = await session.scalar(
            select(func.count()).select_from(Alert).where(accepted, Alert.enqueued_at.is_(None))
        )
    await engine.dispose()
    return int(total or 0), int(good or 0), int(unqueued or 0)


def cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user + system) used so far by ``pid`` and its children (Linux only)."""
    times = process_tree_times(pid)
    return times.total if times is not None else None


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


@dataclass
class Measured:
    """What one measured run observed (latencies in milliseconds)."""

    answers: dict[str, int]
    accepted: int
    p50: float | None
    p99: float | None
    max: float | None
    late: int | None = None


async def run_wrk(
    args: argparse.Namespace, port: int, hooks_file: Path, script: Path, label: str, seconds: float
) -> dict[str, int]:
    """One wrk run; its result line as numbers."""
    per_thread_interval_ms = args.wrk_threads * 1000 / args.rate if args.rate else 0
    command = [
        "wrk",
        f"-t{args.wrk_threads}",
        f"-c{args.connections}",
        f"-d{seconds:.0f}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}",
        "--",
        str(hooks_file),
        label,
        f"{per_thread_interval_ms:.6f}",
    ]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    match = re.search(rb"^BENCH (.*)$", out, re.MULTILINE)
    if process.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed: {(err or out).decode(errors='replace')[-500:]}")
    return {
        key: int(value)
        for key, value in (pair.split("=") for pair in match.group(1).decode().split())
    }


def write_wrk_files(directory: Path, hooks: list[Hook]) -> tuple[Path, Path]:
    """The hooks (``path passphrase`` lines) and the Lua script, for wrk to read."""
    hooks_file = directory / "hooks.txt"
    hooks_file.write_text("".join(f"{hook.path} {hook.passphrase}\n" for hook in hooks))
    script = directory / "intake.lua"
    script.write_text(WRK_SCRIPT)
    return hooks_file, script


async def measure_with_wrk(
    args: argparse.Namespace, port: int, hooks: list[Hook], database_url: str, server_pid: int
) -> tuple[Measured, float | None]:
    with tempfile.TemporaryDirectory() as scratch:
        hooks_file, script = write_wrk_files(Path(scratch), hooks)
        label = secrets.token_hex(4)
        if args.warmup >= 1:
            await run_wrk(args, port, hooks_file, script, f"{label}w", args.warmup)
        _, before, _ = await count_alerts(database_url)
        cpu_before = cpu_seconds(server_pid)
        result = await run_wrk(args, port, hooks_file, script, label, args.duration)
        cpu_after = cpu_seconds(server_pid)
        _, after, _ = await count_alerts(database_url)
    answered = result["requests"] - result["non2xx"]
    cpu = cpu_after - cpu_before if cpu_before is not None and cpu_after is not None else None
    return (
        Measured(
            answers={
                "2xx": answered,
                "non-2xx": result["non2xx"],
                "socket errors": result["socket_errors"],
            },
            accepted=min(answered, after - before),  # rows also of requests cut off at the end
            p50=result["p50_us"] / 1000,
            p99=result["p99_us"] / 1000,
            max=result["max_us"] / 1000,
            late=result["late"] if args.rate else None,
        ),
        cpu,
    )


async def measure_with_python(
    args: argparse.Namespace, port: int, hooks: list[Hook], server_pid: int
) -> tuple[Measured, float | None]:
    stats = Stats()
    interval = args.connections / args.rate if args.rate else None
    start = time.monotonic()
    record_from = start + args.warmup
    stop_at = record_from + args.duration
    cpu_before = None

    async def sample_cpu() -> None:
        nonlocal cpu_before
        await asyncio.sleep(record_from - time.monotonic())
        cpu_before = cpu_seconds(server_pid)

    await asyncio.wait_for(
        asyncio.gather(
            sample_cpu(),
            *(
                connection(port, hooks, index, stop_at, record_from, stats, interval)
                for index in range(args.connections)
            ),
        ),
        timeout=args.warmup + args.duration + 30,
    )
    cpu_after = cpu_seconds(server_pid)
    cpu = cpu_after - cpu_before if cpu_before is not None and cpu_after is not None else None
    latencies_ms = [value * 1000 for value in stats.latencies]
    return (
        Measured(
            answers=dict(stats.statuses),
            accepted=stats.statuses["accepted"],
            p50=statistics.median(latencies_ms) if latencies_ms else None,
            p99=percentile(latencies_ms, 0.99) if latencies_ms else None,
            max=max(latencies_ms) if latencies_ms else None,
        ),
        cpu,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first")
    parser.add_argument("--users", type=int, default=100, help="distinct webhooks")
    parser.add_argument(
        "--rate",
        type=float,
        help="offer this many alerts/s in total (paced) instead of back to back",
    )
    parser.add_argument(
        "--client",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="load generator: wrk when installed (auto), or the asyncio client",
    )
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk's threads (cores)")
    parser.add_argument("--processes", type=int, default=1, help="the server's WEB_PROCESSES")
    parser.add_argument("--log-level", default="INFO", help="the server's LOG_LEVEL")
    parser.add_argument(
        "--profile", help="run the server under cProfile, writing this file (one process)"
    )
    args = parser.parse_args()
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    elif client == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not installed (apt-get install wrk), or use --client python")
    configure_logging("WARNING", "console")  # not the set-up's own lines

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
                "WEB_PROCESSES": str(args.processes),
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
        if args.processes > 1:
            await asyncio.sleep(2)  # every server process listening, not only the first
        if client == "wrk":
            measured, cpu = await measure_with_wrk(args, port, hooks, database_url, server.pid)
        else:
            measured, cpu = await measure_with_python(args, port, hooks, server.pid)
    finally:
        if server is not None:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=15)
    try:
        # After the server stopped: its last batch of enqueued_at marks is written.
        total, accepted_rows, unqueued = await count_alerts(database_url)
        queued = await redis.zcard("arq:queue")
    finally:
        await redis.flushdb()
        await redis.aclose()
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    mode = f"paced at {args.rate:,.0f} alerts/s offered" if args.rate else "back to back"
    load = f"wrk, {args.wrk_threads} thread(s)" if client == "wrk" else "asyncio client"
    print(f"connections        {args.connections} ({mode}; load from {load})")
    print(f"server processes   {args.processes}")
    print(f"webhooks (users)   {args.users}")
    print(f"measured           {args.duration:.0f} s after {args.warmup:.0f} s warm-up")
    print(f"answers            {measured.answers}")
    print(f"accepted alerts/s  {measured.accepted / args.duration:,.0f}")
    if measured.p50 is not None and measured.p99 is not None and measured.max is not None:
        print(f"ack latency p50    {measured.p50:.2f} ms")
        print(f"ack latency p99    {measured.p99:.2f} ms")
        print(f"ack latency max    {measured.max:.2f} ms")
    if measured.late is not None:
        print(f"sent late          {measured.late} (> 1 ms behind schedule: every connection busy)")
    if cpu is not None and measured.accepted:
        print(f"server CPU         {cpu * 1000 / measured.accepted:.2f} ms per accepted alert")
    print(
        f"alert rows         {total}, accepted {accepted_rows} (not enqueued: {unqueued}); "
        f"jobs queued {queued}"
    )


if __name__ == "__main__":
    asyncio.run(main())
