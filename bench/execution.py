"""Benchmark of alert execution (not a test): alert POST → BroadcastTx received at the node.

Runs the real web server and the production worker as deployed (``tv2dydx web`` and
``tv2dydx worker``, subprocesses) against real PostgreSQL and Redis, with the dYdX and
Telegram doubles (the tests' protocol-faithful doubles) in a process of their own. Each
alert is a market order of one of N traders, signed with their permissioned API key and
broadcast to the node double, which records the moment it receives the transaction on the
same monotonic clock as the POST.

Prints, over the measured alerts: p50 / p95 / p99 / max of POST → BroadcastTx; the CPU
time (user + system, from the kernel's /proc accounting, all threads) the web server, the
worker and the doubles used per executed alert, and the part of it that is background (the
same processes' CPU per second while no alert is sent, times the measured phase's length);
PostgreSQL's CPU per alert (the whole server's: its backends, and those of connections
closed meanwhile; so nothing else should use it during a run); the worst event-loop
stall and longest GC pause inside the web and worker processes (their
``LOOP_STALL_REPORT``: each loop's longest turn, timed at its selector; up to 041726f a
10 ms ticker that cost each process ~13 ms of CPU a second on a small VM, so compare CPU
against older commits with ``--no-stall``, which leaves the report out);
PostgreSQL transactions per alert (``pg_stat_database``); and the per-stage medians from
the ledger's own timestamps.

    .venv/bin/python bench/execution.py                    # 200 alerts, one every 200 ms
    .venv/bin/python bench/execution.py --interval 0.05    # one every 50 ms
    .venv/bin/python bench/execution.py --burst 10         # ten at once, 30 bursts, 500 ms apart
    .venv/bin/python bench/execution.py --burst 10 --json runs.jsonl   # and append a JSON line
    .venv/bin/python bench/execution.py --burst 10 --profile prof/     # py-spy on web and worker
    .venv/bin/python bench/stacks.py prof/worker.txt --alerts 300      # where its CPU went

Environment: ``BENCH_POSTGRES_URL`` (admin URL, default
``postgresql://postgres@127.0.0.1:5432/postgres``) and ``BENCH_REDIS_URL`` (default
``redis://127.0.0.1:6379/12``; that db is flushed).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp.test_utils import unused_port
from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (
    ADMIN_URL,
    REDIS_URL,
    Cpu,
    Doubles,
    Poster,
    Profiler,
    admin,
    percentile,
    postmaster_pid,
    process_tree_times,
    register_all,
    server_times,
    stack_env,
    start_component,
    stop_component,
    wait_ready,
    worst_stalls,
)
from core.runtime.logs import configure_logging
from core.runtime.migrate import upgrade

FIRST_ROUND_TIMEOUT = 90.0  # the worker's start-up (imports, pools, monitor) comes first
ROUND_TIMEOUT = 10.0
SETTLE_SECONDS = 3.0


async def stage_breakdown(database_url: str, first_round: int) -> dict[str, list[float]]:
    """Per-stage latencies of the measured alerts, from the ledger's own timestamps."""
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        rows = await conn.fetch(
            """
            SELECT a.received_at, a.started_at, o.signed_at, o.submitted_at
            FROM alerts a JOIN orders o ON o.alert_id = a.id
            WHERE split_part(substr(a.external_id, 2), '-', 1)::int >= $1  -- r<round>-<i>
            """,
            first_round,
        )
    finally:
        await conn.close()
    stages: dict[str, list[float]] = {
        "received -> picked up": [],
        "picked up -> signed+committed": [],
        "committed -> broadcast": [],
    }
    for row in rows:
        moments = [row["received_at"], row["started_at"], row["signed_at"], row["submitted_at"]]
        for stage, (earlier, later) in zip(stages, itertools.pairwise(moments), strict=True):
            stages[stage].append((later - earlier).total_seconds() * 1000)
    return stages


async def transactions(database: str) -> tuple[int, int]:
    """Commits and rollbacks in the database so far, per PostgreSQL's statistics (each
    backend reports at most once a second, so a snapshot lags by up to about that)."""
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        row = await conn.fetchrow(
            "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = $1", database
        )
    finally:
        await conn.close()
    assert row is not None
    return int(row["xact_commit"]), int(row["xact_rollback"])


def cpu_of(pids: dict[str, int]) -> dict[str, Cpu]:
    found = {
        name: server_times(pid) if name == "postgres" else process_tree_times(pid)
        for name, pid in pids.items()
    }
    return {name: times for name, times in found.items() if times is not None}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark; its figures as a JSON-ready dict."""
    name = f"tv2dydx_bench_exec_{secrets.token_hex(3)}"
    base = ADMIN_URL.rsplit("/", 1)[0]
    database_url = f"{base.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}"
    await admin(f'CREATE DATABASE "{name}"')
    redis: Redis = Redis.from_url(REDIS_URL)
    await redis.flushdb()
    doubles = Doubles(args.traders)
    reports = Path(tempfile.mkdtemp(prefix="tv2dydx-bench-"))
    processes: dict[str, subprocess.Popen[str]] = {}
    poster = None
    profiler = None
    try:
        telegram_env, dydx_env, people = doubles.start()
        await asyncio.to_thread(upgrade, database_url)
        env = stack_env(
            telegram_env,
            dydx_env,
            database_url,
            LOG_LEVEL=args.log_level,
            WORKER_PROCESSES=str(args.worker_processes),
        )
        traders = await register_all(env, database_url, people)
        port = unused_port()
        web_env = {"WEB_PORT": str(port), "WEB_HOST": "127.0.0.1"}

        def stall_report(component: str) -> dict[str, str]:
            path = reports / f"{component}.jsonl"
            return {} if args.no_stall else {"LOOP_STALL_REPORT": str(path)}

        def start(component: str, component_env: dict[str, str]) -> subprocess.Popen[str]:
            if not args.logs:
                return start_component(component, component_env, subprocess.DEVNULL)
            Path(args.logs).mkdir(parents=True, exist_ok=True)
            with open(Path(args.logs) / f"{component}.log", "w") as log:  # the child keeps it
                return start_component(component, component_env, log)

        processes["web"] = start("web", {**env, **web_env, **stall_report("web")})
        await wait_ready(port)
        processes["worker"] = start("worker", {**env, **stall_report("worker")})
        pids = {name: process.pid for name, process in processes.items()}
        if doubles.pid is not None:
            pids["doubles"] = doubles.pid
        postmaster = await postmaster_pid()
        if postmaster is not None:
            pids["postgres"] = postmaster  # the whole server: run nothing else meanwhile
        poster = Poster(port)
        poster.start()

        async def execute(round_no: int, size: int, sent: int, within: float) -> list[float]:
            """One round: ``size`` alerts at once; POST → BroadcastTx (ms) of each."""
            batch = [(traders[(sent + i) % len(traders)], f"r{round_no}-{i}") for i in range(size)]
            assert poster is not None
            answers = await poster.post_many(batch)
            assert all(status == 200 for _, status in answers), answers
            deadline = time.monotonic() + within
            received: list[int] = []
            while len(received) < size:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"round {round_no}'s broadcasts did not arrive")
                # The node stamps each arrival itself: asking rarely keeps the bench light.
                await asyncio.sleep(0.02)
                received = await asyncio.to_thread(doubles.broadcasts_since, sent)
            # Every alert of a round is posted within microseconds of the first.
            first_post = min(started for started, _ in answers)
            return [(at - first_post) / 1e6 for at in received[:size]]

        sent = 0
        for round_no in range(args.warmup_rounds):
            within = FIRST_ROUND_TIMEOUT if round_no == 0 else ROUND_TIMEOUT
            await execute(round_no, args.burst, sent, within)
            sent += args.burst
            await asyncio.sleep(args.interval)
        # Background: what the processes use with no alert (crons, the monitor, polling),
        # once the warm-up's jobs are over (their fills recorded, their messages sent).
        await asyncio.sleep(SETTLE_SECONDS)
        idle_from, idle_xacts_from = cpu_of(pids), await transactions(name)
        await asyncio.sleep(args.idle)
        idle = {name: cpu - idle_from[name] for name, cpu in cpu_of(pids).items()}
        idle_xacts = sum(await transactions(name)) - sum(idle_xacts_from)
        if args.profile:
            targets = {"web": pids["web"], "worker": pids["worker"]}
            profiler = Profiler(Path(args.profile), targets, gil=args.profile_gil)
            await profiler.start()
        latencies: list[float] = []
        measured_from_ns = time.perf_counter_ns()
        cpu_from = cpu_of(pids)
        xacts_from = await transactions(name)
        for round_no in range(args.warmup_rounds, args.warmup_rounds + args.rounds):
            latencies += await execute(round_no, args.burst, sent, ROUND_TIMEOUT)
            sent += args.burst
            await asyncio.sleep(args.interval)
        cpu = {name: times - cpu_from[name] for name, times in cpu_of(pids).items()}
        xacts_to = await transactions(name)
        measured_to_ns = time.perf_counter_ns()
        profiles = profiler.stop() if profiler is not None else []
        stages = await stage_breakdown(database_url, args.warmup_rounds)
    finally:
        if profiler is not None:
            profiler.stop()
        if poster is not None:
            poster.stop()
        for process in reversed(processes.values()):
            stop_component(process)
        doubles.stop()
        await redis.flushdb()
        await redis.aclose()
        if args.keep:
            print(f"database kept: {name}")
        else:
            await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    seconds = (measured_to_ns - measured_from_ns) / 1e9
    alerts = len(latencies)
    processes_out: dict[str, Any] = {}
    for component, used in cpu.items():
        background = idle[component].total / args.idle * seconds if args.idle > 0 else 0.0
        stalls = worst_stalls(reports / f"{component}.jsonl", measured_from_ns, measured_to_ns)
        processes_out[component] = {
            "cpu_ms_per_alert": round(used.total * 1000 / alerts, 3),
            "user_ms_per_alert": round(used.user * 1000 / alerts, 3),
            "system_ms_per_alert": round(used.system * 1000 / alerts, 3),
            "background_ms_per_s": round(idle[component].total * 1000 / args.idle, 2)
            if args.idle > 0
            else None,
            "net_cpu_ms_per_alert": round((used.total - background) * 1000 / alerts, 3),
            "max_stall_ms": stalls[0] if stalls else None,
            "max_stall_cpu_ms": stalls[1] if stalls else None,
            "max_gc_ms": stalls[2] if stalls else None,
        }
    return {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "burst": args.burst,
        "rounds": args.rounds,
        "interval_s": args.interval,
        "stall_report": not args.no_stall,
        "alerts": alerts,
        "seconds": round(seconds, 2),
        "latency_ms": {
            "p50": round(statistics.median(latencies), 2),
            "p95": round(percentile(latencies, 0.95), 2),
            "p99": round(percentile(latencies, 0.99), 2),
            "max": round(max(latencies), 2),
        },
        "processes": processes_out,
        "commits_per_alert": round((xacts_to[0] - xacts_from[0]) / alerts, 2),
        "rollbacks_per_alert": round((xacts_to[1] - xacts_from[1]) / alerts, 2),
        "background_transactions_per_s": round(idle_xacts / args.idle, 1) if args.idle else None,
        "stages_ms": {
            stage: {
                "p50": round(statistics.median(values), 2),
                "p99": round(percentile(values, 0.99), 2),
            }
            for stage, values in stages.items()
            if values
        },
        "profiles": [str(path) for path in profiles],
    }


def git_commit() -> str | None:
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or None


def show(result: dict[str, Any]) -> None:
    """The compact table."""
    latency = result["latency_ms"]
    print(
        f"{result['alerts']} alerts measured, {result['burst']} at once per round, "
        f"{result['rounds']} rounds {result['interval_s']} s apart ({result['seconds']} s)"
    )
    print(
        "POST -> BroadcastTx      "
        f"p50 {latency['p50']:.1f}  p95 {latency['p95']:.1f}  "
        f"p99 {latency['p99']:.1f}  max {latency['max']:.1f} ms"
    )
    names = list(result["processes"])
    print(f"{'':25}" + "".join(f"{name:>12}" for name in names))
    rows = [
        ("CPU per alert (ms)", "cpu_ms_per_alert", "{:.2f}"),
        ("  user / system (ms)", None, ""),
        ("  background (ms/s)", "background_ms_per_s", "{:.1f}"),
        ("  net of background (ms)", "net_cpu_ms_per_alert", "{:.2f}"),
        ("worst loop stall (ms)", "max_stall_ms", "{:.1f}"),
        ("  the loop's CPU in it (ms)", "max_stall_cpu_ms", "{:.1f}"),
        ("longest GC pause (ms)", "max_gc_ms", "{:.1f}"),
    ]
    for label, key, form in rows:
        cells = []
        for name in names:
            figures = result["processes"][name]
            if key is None:
                cell = f"{figures['user_ms_per_alert']:.2f}/{figures['system_ms_per_alert']:.2f}"
            else:
                cell = "-" if figures[key] is None else form.format(figures[key])
            cells.append(f"{cell:>12}")
        print(f"{label:25}" + "".join(cells))
    print(
        f"PostgreSQL transactions per alert (web + worker): {result['commits_per_alert']} "
        f"commits, {result['rollbacks_per_alert']} rollbacks "
        f"(background {result['background_transactions_per_s']}/s)"
    )
    for stage, figures in result["stages_ms"].items():
        print(f"  {stage:<30} p50 {figures['p50']:6.1f} ms   p99 {figures['p99']:6.1f} ms")
    for path in result["profiles"]:
        summarise = f"bench/stacks.py {path} --alerts {result['alerts']}"
        print(f"profile: {path} (summarise: .venv/bin/python {summarise})")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--alerts", type=int, default=200, help="measured alerts, one at a time")
    parser.add_argument("--burst", type=int, default=1, help="alerts sent at once per round")
    parser.add_argument("--bursts", type=int, default=30, help="measured rounds with --burst")
    parser.add_argument(
        "--interval", type=float, help="seconds between rounds (0.2; 0.5 with --burst)"
    )
    parser.add_argument("--traders", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured alerts first")
    parser.add_argument(
        "--idle", type=float, default=5.0, help="seconds of no alerts for the background CPU"
    )
    parser.add_argument(
        "--worker-processes",
        type=int,
        default=1,
        help="the worker's WORKER_PROCESSES (CPU counts the whole process tree; --profile "
        "samples the first process only)",
    )
    parser.add_argument(
        "--no-stall",
        action="store_true",
        help="no LOOP_STALL_REPORT (older commits' 10 ms tickers cost ~13 ms/s each here)",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        help="the processes' LOG_LEVEL (INFO, as deployed; their output is discarded)",
    )
    parser.add_argument("--logs", metavar="DIR", help="write the web's and worker's logs there")
    parser.add_argument(
        "--keep", action="store_true", help="keep the database, to look at the ledger after"
    )
    parser.add_argument("--json", metavar="FILE", help="append the figures as one JSON line")
    parser.add_argument("--profile", metavar="DIR", help="py-spy the web and worker into DIR")
    parser.add_argument(
        "--profile-gil", action="store_true", help="sample only while holding the GIL"
    )
    args = parser.parse_args()
    args.rounds = args.bursts if args.burst > 1 else args.alerts
    args.warmup_rounds = max(1, math.ceil(args.warmup / args.burst))
    if args.interval is None:
        args.interval = 0.5 if args.burst > 1 else 0.2
    return args


async def main() -> None:
    args = arguments()
    configure_logging("WARNING", "console")  # not every trader's registration
    result = await run(args)
    show(result)
    if args.json:
        with open(args.json, "a", encoding="utf-8") as out:  # noqa: ASYNC230 - once, at the end
            out.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
