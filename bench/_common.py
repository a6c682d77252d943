"""What the benchmarks share: the database and Redis they use, traders on the doubles, the
processes under test, and what the OS says about those processes' CPU and event loops."""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO, Any

import aiohttp
import asyncpg

from core.db.engine import create_engine, create_sessionmaker
from core.db.uow import UnitOfWork
from core.exchange.factory import create_key_verifier
from core.runtime.config import Settings
from core.security.crypto import generate_key_entry
from core.services.credentials import CredentialService
from core.services.webhooks import WebhookService
from doubles.dydx.accounts import FundedTrader, make_funded_trader
from doubles.dydx.double import DydxDouble
from doubles.telegram import TelegramDouble
from tests.trading_stack import Trader

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


def stack_env(
    telegram_env: dict[str, str], dydx_env: dict[str, str], database_url: str, **extra: str
) -> dict[str, str]:
    """The environment of ``tv2dydx web`` and ``worker`` on the doubles: a fresh keyring,
    every webhook source allowed, the alert rate limits out of the way, JSON logs; ``extra``
    adds to it or overrides it (``LOG_LEVEL``, ``WORKER_PROCESSES``)."""
    return {
        **telegram_env,
        **dydx_env,
        "PUBLIC_BASE_URL": "http://localhost",
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "ENCRYPTION_KEYS": generate_key_entry(),
        "WEBHOOK_IP_ALLOWLIST": "*",
        "ALERT_RATE_PER_TOKEN": "1000000",
        "ALERT_RATE_PER_IP": "10000000",
        "LOG_FORMAT": "json",
        **extra,
    }


async def register_all(
    env: dict[str, str], database_url: str, people: list[tuple[int, FundedTrader]]
) -> list[Trader]:
    """Each of the doubles' funded people as a registered trader (see :func:`register`)."""
    settings = Settings(_env_file=None, **{k.lower(): v for k, v in env.items()})  # type: ignore[call-arg, arg-type]
    engine = create_engine(database_url, pool_size=2)
    try:
        maker = create_sessionmaker(engine)
        return [await register(maker, settings, chat, funded) for chat, funded in people]
    finally:
        await engine.dispose()


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


def start_component(name: str, env: dict[str, str], out: IO[str] | int) -> subprocess.Popen[str]:
    """``tv2dydx web`` or ``tv2dydx worker``, as deployed (``python -m`` without the script)."""
    tv2dydx = Path(sys.executable).with_name("tv2dydx")
    module = {"web": "webhook_server", "worker": "workers"}[name]
    command = [str(tv2dydx), name] if tv2dydx.exists() else [sys.executable, "-m", module]
    return subprocess.Popen(
        command, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, text=True
    )


def stop_component(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


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

    @property
    def pid(self) -> int | None:
        return self._process.pid

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
        if self._process.pid is None:
            return  # never started
        with contextlib.suppress(OSError):
            self._conn.send("stop")
        self._process.join(15)


class Poster:
    """Sends alerts from its own thread and loop, so the client does not share the bench's.

    A round's requests are encoded first and then written back to back on as many kept-alive
    connections, within a fraction of a millisecond, as TradingView's servers send a bar
    close's alerts each on its own connection. (Through an HTTP client library the requests
    left one after another, each after ~0.5-1 ms of the client's own work on a small VM, so
    the tenth alert of a burst left ~5-10 ms after the first and the burst's latency, taken
    from the first, counted that too: up to 041726f.)
    """

    def __init__(self, port: int) -> None:
        self._port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    def start(self) -> None:
        self._thread.start()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _request(self, trader: Trader, alert_id: str) -> bytes:
        body = json.dumps(
            {
                "passphrase": trader.hook.passphrase,
                "market": "ETH-USD",
                "action": "buy",
                "size": "0.01",
                "alert_id": alert_id,
                "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        ).encode()
        head = (
            f"POST /hook/{trader.token} HTTP/1.1\r\nHost: 127.0.0.1:{self._port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._idle:
            return self._idle.pop()
        return await asyncio.open_connection("127.0.0.1", self._port)

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[int, bool]:
        """The status of one response, and whether its connection may be used again."""
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split(" ")[1])
        headers = dict(line.split(": ", 1) for line in head[1:] if ": " in line)
        await reader.readexactly(int(headers.get("Content-Length", "0")))
        return status, headers.get("Connection", "").lower() != "close"

    async def _post_many(self, batch: list[tuple[Trader, str]]) -> list[tuple[int, int]]:
        requests = [self._request(trader, alert_id) for trader, alert_id in batch]
        connections = [await self._connection() for _ in batch]
        sent = []
        for request, (_, writer) in zip(requests, connections, strict=True):
            sent.append(time.perf_counter_ns())
            writer.write(request)  # no await between writes: the round leaves at once
        answers = []
        for started, (reader, writer) in zip(sent, connections, strict=True):
            status, reusable = await self._answer(reader)
            if reusable:
                self._idle.append((reader, writer))
            else:
                writer.close()
            answers.append((started, status))
        return answers

    async def post_many(self, batch: list[tuple[Trader, str]]) -> list[tuple[int, int]]:
        """POST a batch at once; ``(perf_counter_ns at send, status)`` per alert."""
        future = asyncio.run_coroutine_threadsafe(self._post_many(batch), self._loop)
        return await asyncio.wrap_future(future)

    async def _close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()

    def stop(self) -> None:
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


@dataclass(frozen=True)
class Cpu:
    """CPU seconds a process tree has used, as the kernel counts them (all threads)."""

    user: float
    system: float

    @property
    def total(self) -> float:
        return self.user + self.system

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu(self.user - other.user, self.system - other.system)


def process_tree_times(pid: int) -> Cpu | None:
    """User and system CPU of ``pid`` and its descendants, from /proc (Linux only)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, int, int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        stats[int(entry.name)] = (int(fields[1]), int(fields[11]), int(fields[12]))
    tree = {pid}
    grew = True
    while grew:
        grew = False
        for child, (parent, _, _) in stats.items():
            if parent in tree and child not in tree:
                tree.add(child)
                grew = True
    members = [stats[member] for member in tree if member in stats]
    return Cpu(sum(m[1] for m in members) / ticks, sum(m[2] for m in members) / ticks)


async def postmaster_pid() -> int | None:
    """The PostgreSQL server's main process (the parent of a backend), if it runs here."""
    conn = await asyncpg.connect(ADMIN_URL)
    try:  # read while the backend lives: it exits with the connection
        return _parent_of(await conn.fetchval("SELECT pg_backend_pid()"))
    finally:
        await conn.close()


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None  # another host (or no /proc)
    return int(stat.rsplit(")", 1)[1].split()[1])


def server_times(pid: int) -> Cpu | None:
    """CPU of a forking server: its live process tree plus the children it has reaped (a
    PostgreSQL backend per connection, so connections opened and closed count too)."""
    live = process_tree_times(pid)
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    if live is None:
        return None
    return Cpu(live.user + int(fields[13]) / ticks, live.system + int(fields[14]) / ticks)


def worst_stalls(
    report: Path, from_ns: int, to_ns: int
) -> tuple[float, float | None, float] | None:
    """The worst event-loop stall, the loop thread's CPU during it, and the longest GC pause
    (ms) that a ``LOOP_STALL_REPORT`` file shows in the windows that overlap
    ``[from_ns, to_ns]`` (perf_counter_ns); None without any."""
    if not report.exists():
        return None
    windows = [json.loads(line) for line in report.read_text().splitlines() if line]
    inside = [w for w in windows if w["to_ns"] > from_ns and w["from_ns"] < to_ns]
    if not inside:
        return None
    worst = max(inside, key=lambda w: w["max_stall_ms"])
    return worst["max_stall_ms"], worst.get("max_stall_cpu_ms"), max(w["max_gc_ms"] for w in inside)


class Profiler:
    """py-spy sampling the given processes (CPU-active samples only), as collapsed stacks."""

    def __init__(
        self, directory: Path, targets: dict[str, int], *, rate: int = 250, gil: bool = False
    ) -> None:
        self._directory = directory
        self._targets = targets
        self._rate = rate
        # --gil: only samples holding the GIL, so not the time in a socket write during which
        # the process was mostly preempted by the PostgreSQL or Redis server it just woke.
        self._gil = gil
        self._running: list[subprocess.Popen[bytes]] = []

    @staticmethod
    def available() -> str | None:
        found = shutil.which("py-spy") or Path(sys.executable).with_name("py-spy")
        return str(found) if Path(found).exists() else None

    async def start(self) -> None:
        py_spy = self.available()
        if py_spy is None:
            raise RuntimeError("--profile needs py-spy: .venv/bin/pip install py-spy")
        self._directory.mkdir(parents=True, exist_ok=True)
        for name, pid in self._targets.items():
            output = self._directory / f"{name}.txt"
            command = [py_spy, "record", "--pid", str(pid), "--rate", str(self._rate)]
            # --nonblocking: sample without pausing the process, so its latency stays as is.
            command += ["--format", "raw", "--nonblocking", "--output", str(output)]
            command += ["--gil"] if self._gil else []
            command += ["--subprocesses"]  # WORKER_PROCESSES > 1: the workers are children
            self._running.append(
                subprocess.Popen(  # noqa: ASYNC220 - starting it does not wait for it
                    command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            )
        await asyncio.sleep(1.0)  # attached

    def stop(self) -> list[Path]:
        for process in self._running:
            process.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        for process in self._running:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        return [self._directory / f"{name}.txt" for name in self._targets]
