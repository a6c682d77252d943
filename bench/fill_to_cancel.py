"""``bench/monitor.py --fill-to-cancel``: one-cancels-other through the monitor, end to end.

The real web server (``tv2dydx web``) and the production worker (``tv2dydx worker``, the
monitor on, every cron as in production) run as subprocesses against real PostgreSQL and
Redis; the dYdX and Telegram doubles run in a process of their own. Each round, N traders
post an entry with a take-profit and a stop-loss (``tp_pct=1``, ``sl_pct=1``); once every
bracket rests, the oracle is moved past the take-profits: each triggers in the next block
and fills in the one after. The double stamps each fill when its block delivers it
(``perf_counter_ns``, CLOCK_MONOTONIC) and the node stamps each broadcast on arrival (same
clock), so fill → the stop-loss's ``MsgCancelOrder`` at the node is measured across
processes without clock skew.

Which path cancelled each sibling comes from the worker's own log: the protection step logs
``bracket_leg_filled`` with ``protection_via`` (``subaccount``: the monitor's call after a
sync; ``cron``: the once-a-second advance of due brackets; ``job``: an alert's job).

Environment: ``BENCH_POSTGRES_URL`` and ``BENCH_REDIS_URL`` as for ``bench/execution.py``
(that Redis db is flushed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO, Any

import aiohttp
import asyncpg
from aiohttp.test_utils import unused_port
from redis.asyncio import Redis
from v4_proto.dydxprotocol.clob.tx_pb2 import MsgCancelOrder

from bench._common import (
    ADMIN_URL,
    REDIS_URL,
    admin,
    percentile,
    register_all,
    stack_env,
    wait_ready,
)
from core.runtime.migrate import upgrade
from doubles.dydx.accounts import make_funded_trader
from doubles.dydx.double import DydxDouble
from doubles.dydx.state import SubaccountUpdate
from doubles.telegram import TelegramDouble
from tests.trading_stack import Trader

MARKET = "ETH-USD"
BASE_PRICE = Decimal("3000")
#: Past every take-profit at 1 % above an entry near BASE_PRICE.
TP_PRICE = Decimal("3100")
ROUND_TIMEOUT = 60.0


@dataclass(frozen=True)
class Fill:
    perf_ns: int
    owner: str
    client_id: int


@dataclass(frozen=True)
class Cancel:
    perf_ns: int
    owner: str
    client_id: int


def serve_doubles(conn: Connection, traders: int) -> None:
    """Child process: the doubles, funded traders, and the fills' and cancels' timestamps."""
    telegram = TelegramDouble().start()
    telegram.add_bot(username="tv2dydx_bench_bot", first_name="tv2dydx")
    dydx = DydxDouble().start()
    fills: list[Fill] = []

    def on_event(event: object) -> None:
        # Runs on the double's loop when the block's events are delivered (the WebSocket
        # messages go out from the same delivery).
        if isinstance(event, SubaccountUpdate) and event.fills:
            now = time.perf_counter_ns()
            for fill in event.fills:
                record = dydx.state.orders.get(fill.order_id)
                client_id = record.order.order_id.client_id if record is not None else -1
                fills.append(Fill(now, fill.address, client_id))

    dydx.call(dydx.state.subscribe, on_event)
    people = [
        (telegram.user(first_name="Trader", started=True).id, make_funded_trader(dydx))
        for _ in range(traders)
    ]
    conn.send((telegram.env(), dydx.env(), people))
    while True:
        request = conn.recv()
        if request == "stop":
            break
        verb, arg = request
        if verb == "oracle":
            dydx.set_oracle_price(MARKET, arg)
            conn.send(None)
        elif verb == "fills":
            conn.send(fills[arg:])
        elif verb == "cancels":
            conn.send(
                [
                    Cancel(
                        record.received_perf_ns,
                        m.order_id.subaccount_id.owner,
                        m.order_id.client_id,
                    )
                    for record in list(dydx.node.broadcasts)[arg:]
                    for m in record.messages
                    if isinstance(m, MsgCancelOrder)
                ]
            )
        elif verb == "marks":
            conn.send((len(fills), len(dydx.node.broadcasts)))
    dydx.stop()
    telegram.stop()


class Doubles:
    """The doubles' process, asked over a pipe."""

    def __init__(self, traders: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=serve_doubles, args=(child, traders), daemon=True)

    def start(self) -> Any:
        self._process.start()
        return self._conn.recv()

    def ask(self, verb: str, arg: Any = None) -> Any:
        self._conn.send((verb, arg))
        return self._conn.recv()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send("stop")
        self._process.join(15)


def start_component(name: str, env: dict[str, str], out: IO[str] | int) -> subprocess.Popen[str]:
    tv2dydx = Path(sys.executable).with_name("tv2dydx")
    return subprocess.Popen(
        [str(tv2dydx), name],
        env={**os.environ, **env},
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
    )


async def post_entries(port: int, traders: list[Trader], round_no: int) -> None:
    async with aiohttp.ClientSession() as session:

        async def post(trader: Trader, i: int) -> None:
            body = {
                "passphrase": trader.hook.passphrase,
                "market": MARKET,
                "action": "buy",
                "size": "0.01",
                "tp_pct": "1",
                "sl_pct": "1",
                "alert_id": f"r{round_no}-{i}",
                "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            url = f"http://127.0.0.1:{port}/hook/{trader.token}"
            async with session.post(url, json=body) as response:
                assert response.status == 200, await response.text()

        await asyncio.gather(*(post(t, i) for i, t in enumerate(traders)))


async def brackets(db: asyncpg.Connection, since_id: int) -> list[asyncpg.Record]:
    """This round's brackets with their owner and legs' client ids and states."""
    return list(
        await db.fetch(
            """
            SELECT b.id, b.state::text AS state, b.owner_address,
                   tp.client_id AS tp_client, tp.state::text AS tp_state,
                   sl.client_id AS sl_client, sl.state::text AS sl_state
            FROM brackets b
            LEFT JOIN orders tp ON tp.bracket_id = b.id AND tp.purpose::text = 'TAKE_PROFIT'
            LEFT JOIN orders sl ON sl.bracket_id = b.id AND sl.purpose::text = 'STOP_LOSS'
            WHERE b.id > $1 ORDER BY b.id
            """,
            since_id,
        )
    )


async def wait_for(check: Any, what: str, within: float = ROUND_TIMEOUT) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def path_of(event: dict[str, Any]) -> str:
    """Which path a protection step ran on, from its log context."""
    if event.get("via") == "monitor":
        return "monitor"
    job = str(event.get("job_id", ""))
    if job.startswith("cron:"):
        return job.split(":")[1]  # advance_brackets, reconcile_orders...
    return "alert job" if job.startswith("alert:") else "?"


def paths_of(log_path: str) -> dict[int, str]:
    """Bracket id → the path that cancelled its sibling, from the worker's JSON log."""
    found: dict[int, str] = {}
    with open(log_path, encoding="utf-8") as log:
        for line in log:
            if "bracket_leg_filled" not in line:
                continue
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if event.get("cancelled"):
                    found.setdefault(int(event["bracket_id"]), path_of(event))
    return found


async def run(*, traders: int, rounds: int) -> None:
    """Run the benchmark and print its figures."""
    name = f"tv2dydx_bench_oco_{secrets.token_hex(3)}"
    base = ADMIN_URL.rsplit("/", 1)[0]
    database_url = f"{base.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}"
    await admin(f'CREATE DATABASE "{name}"')
    redis: Redis = Redis.from_url(REDIS_URL)
    await redis.flushdb()
    doubles = Doubles(traders)
    telegram_env, dydx_env, people = doubles.start()
    processes: list[subprocess.Popen[str]] = []
    log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)  # noqa: SIM115
    db: asyncpg.Connection | None = None
    latencies: list[float] = []
    cancelled_by: dict[int, str] = {}
    try:
        await asyncio.to_thread(upgrade, database_url)
        env = stack_env(telegram_env, dydx_env, database_url)
        people_traders = await register_all(env, database_url, people)
        port = unused_port()
        processes.append(
            start_component(
                "web",
                {**env, "WEB_PORT": str(port), "WEB_HOST": "127.0.0.1", "LOG_LEVEL": "WARNING"},
                subprocess.DEVNULL,
            )
        )
        await wait_ready(port)
        processes.append(start_component("worker", {**env, "LOG_LEVEL": "INFO"}, log))
        db = await asyncpg.connect(database_url.replace("+asyncpg", ""))
        last_id = 0
        for round_no in range(rounds):
            await asyncio.to_thread(doubles.ask, "oracle", str(BASE_PRICE))
            await post_entries(port, people_traders, round_no)

            async def resting(since: int = last_id) -> bool:
                rows = await brackets(db, since)
                return len(rows) == traders and all(r["state"] == "RESTING" for r in rows)

            await wait_for(resting, f"round {round_no}'s brackets to rest")
            # A quiet moment: the entries' own work is over and the monitor (ticking every
            # second) has subscribed the subaccounts again.
            await asyncio.sleep(2)
            fills_mark, broadcasts_mark = await asyncio.to_thread(doubles.ask, "marks")
            await asyncio.to_thread(doubles.ask, "oracle", str(TP_PRICE))

            async def closed(since: int = last_id) -> bool:
                rows = await brackets(db, since)
                return all(r["state"] == "CLOSED" and r["sl_state"] == "CANCELED" for r in rows)

            await wait_for(closed, f"round {round_no}'s stop-losses to be cancelled")
            rows = await brackets(db, last_id)
            fills: list[Fill] = await asyncio.to_thread(doubles.ask, "fills", fills_mark)
            cancels: list[Cancel] = await asyncio.to_thread(doubles.ask, "cancels", broadcasts_mark)
            filled_at = {(f.owner, f.client_id): f.perf_ns for f in reversed(fills)}
            cancelled_at = {(c.owner, c.client_id): c.perf_ns for c in reversed(cancels)}
            for row in rows:
                fill = filled_at[(row["owner_address"], row["tp_client"])]
                cancel = cancelled_at[(row["owner_address"], row["sl_client"])]
                latencies.append((cancel - fill) / 1e6)
            last_id = max(r["id"] for r in rows)
            print(f"round {round_no + 1}/{rounds}: {len(rows)} stop-losses cancelled", flush=True)
        await asyncio.sleep(0.5)  # the last log lines
        cancelled_by = paths_of(log.name)
    finally:
        if db is not None:
            await db.close()
        for process in reversed(processes):
            process.send_signal(signal.SIGINT if process is processes[0] else signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        doubles.stop()
        await redis.flushdb()
        await redis.aclose()
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        log.close()

    paths = Counter(cancelled_by.values())
    print(
        f"\ntake-profit fill -> stop-loss cancel at the node, {len(latencies)} brackets "
        f"({traders} traders x {rounds} rounds):"
    )
    for label, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        print(f"  {label}  {percentile(latencies, q):8.1f} ms")
    print(f"  max  {max(latencies):8.1f} ms   min {min(latencies):8.1f} ms")
    print(
        f"cancelled by: monitor {paths.pop('monitor', 0)}, "
        f"cron {paths.pop('advance_brackets', 0)}, others {dict(paths)}, "
        f"unattributed {len(latencies) - len(cancelled_by)}"
    )
    print(f"worker log: {log.name}")
