"""Benchmark of the P&L chart (not a test): render time of a one-year chart with 10,000 fills.

Builds a year of synthetic history (5,000 round trips on ETH-USD and BTC-USD, hourly equity
snapshots as the Indexer's ``/v4/historical-pnl`` gives them, daily funding), turns it into
the chart's series exactly as ``/pnl`` does (``core/services/analytics/pnl_data.py``) and
renders it with ``core/services/analytics/chart.py``:

- ``--renders`` times one after another in a renderer process as the bot starts it, and
  again in this process at normal priority: CPU (the process's own) and wall time per
  render, p50 / p95 / p99 / max; the wall time in the renderer process includes waiting
  for a core, which it gets last (``SCHED_IDLE``), so on a busy machine the second figure
  is the render's own;
- through the bot's ``ChartRenderer`` (one process on 2 cores), 20 at once, to show the
  queue: a burst waits for one core instead of taking all of them;
- with ``--alerts N``: the alert → broadcast latency of N alerts (one every 200 ms, the real
  ``tv2dydx web`` and ``worker`` against the doubles) idle, then N more while bursts of 20
  charts render without pause (``bench/charts_load.py``).

    .venv/bin/python bench/charts.py                     # 50 renders, then a burst of 20
    .venv/bin/python bench/charts.py --out /tmp/charts   # and write sample charts as PNG
    BENCH_REDIS_URL=redis://127.0.0.1:6379/13 .venv/bin/python bench/charts.py --alerts 200

Environment for ``--alerts``: ``BENCH_POSTGRES_URL`` and ``BENCH_REDIS_URL`` (flushed), as
``bench/execution.py``.

Targets (issue #12): p50 ≤ 150 ms, p99 ≤ 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import percentile
from core.db.repositories.analytics import FillRecord, FundingRecord
from core.domain.states import OrderSide
from core.exchange.history import EquityPoint
from core.services.analytics.chart import ChartData, render_png, tune_matplotlib
from core.services.analytics.periods import Period
from core.services.analytics.pnl import chart_data
from core.services.analytics.pnl_data import series, summarize
from core.services.analytics.rendering import (
    ChartRenderer,
    default_workers,
    render,
    renderer_pool,
)

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
ZONE = "Europe/Berlin"


def year_of_history(
    fills: int = 10_000, seed: int = 7
) -> tuple[list[FillRecord], list[FundingRecord], list[EquityPoint]]:
    """``fills`` fills (round trips of two) over the last year, hourly equity, daily funding."""
    rng = random.Random(seed)
    start = NOW - timedelta(days=365)
    step = timedelta(days=365) / fills
    prices = {"ETH-USD": 3000.0, "BTC-USD": 60000.0}
    sizes = {"ETH-USD": Decimal("0.5"), "BTC-USD": Decimal("0.02")}
    records: list[FillRecord] = []
    realized_at: list[tuple[datetime, Decimal]] = []
    for index in range(0, fills, 2):
        market = "ETH-USD" if index % 4 == 0 else "BTC-USD"
        side = OrderSide.BUY if rng.random() < 0.55 else OrderSide.SELL
        entry = prices[market] * (1 + rng.gauss(0, 0.004))
        exit_ = entry * (1 + rng.gauss(0.0016 if side is OrderSide.BUY else -0.0016, 0.006))
        prices[market] = exit_
        size = sizes[market]
        opened = start + step * index
        closed = opened + step * 0.8
        entry_d, exit_d = Decimal(f"{entry:.2f}"), Decimal(f"{exit_:.2f}")
        fee_in = (entry_d * size * Decimal("0.0005")).quantize(Decimal("0.000001"))
        fee_out = (exit_d * size * Decimal("0.0005")).quantize(Decimal("0.000001"))
        direction = 1 if side is OrderSide.BUY else -1
        gross = (exit_d - entry_d) * size * direction
        back = OrderSide.SELL if side is OrderSide.BUY else OrderSide.BUY
        for number, (at, fill_side, price, fee, pnl) in enumerate(
            (
                (opened, side, entry_d, fee_in, -fee_in),
                (closed, back, exit_d, fee_out, gross - fee_out),
            )
        ):
            records.append(
                FillRecord(
                    fill_id=index + number + 1,
                    filled_at=at,
                    market=market,
                    side=fill_side,
                    size=size,
                    price=price,
                    fee=fee,
                    realized_pnl=pnl,
                    order_id=index + number + 1,
                    alert_id=index // 2 + 1,
                    strategy="trend" if market == "ETH-USD" else "breakout",
                )
            )
        realized_at.append((opened, -fee_in))
        realized_at.append((closed, gross - fee_out))
    funding = [
        FundingRecord(
            paid_at=start + timedelta(days=day, hours=8),
            market="ETH-USD",
            payment=Decimal(f"{rng.gauss(-0.4, 0.3):.4f}"),
            rate=Decimal("0.00001"),
            position_size=Decimal("0.5"),
            oracle_price=Decimal(3000),
        )
        for day in range(365)
    ]
    equity: list[EquityPoint] = []
    total, cursor = Decimal(0), 0
    for hour in range(365 * 24):
        at = start + timedelta(hours=hour)
        while cursor < len(realized_at) and realized_at[cursor][0] <= at:
            total += realized_at[cursor][1]
            cursor += 1
        wobble = Decimal(f"{rng.gauss(0, 6):.2f}")
        equity.append(
            EquityPoint(at, Decimal(10_000) + total + wobble, total + wobble, Decimal(10_000))
        )
    return records, funding, equity


def chart_of(
    period: Period,
    history: list[FillRecord],
    funding: list[FundingRecord],
    equity: list[EquityPoint],
    *,
    paper: bool = False,
    zone: str = ZONE,
) -> ChartData:
    """The chart ``/pnl`` would draw for ``period`` (the same functions, no database)."""
    since = period.start(NOW)
    fills = [f for f in history if since is None or f.filled_at >= since]
    paid = [p for p in funding if since is None or p.paid_at >= since]
    points = [e for e in equity if since is None or e.at >= since]
    summary = summarize(fills, paid, unrealized=Decimal("12.5"), equity=points, base=None)
    drawn = series(
        history, fills, paid, points, since=since, now=NOW, zone=ZoneInfo(zone), base=Decimal(0)
    )
    return chart_data(period, paper, summary, drawn, zone)


@dataclass(frozen=True)
class Renders:
    """Milliseconds per render: CPU (the rendering process's own) and wall."""

    cpu: list[float]
    wall: list[float]


def _timed(data: ChartData) -> tuple[float, float]:
    """In a renderer process: the pool's task, with its CPU and wall time (ms)."""
    cpu, wall = time.process_time(), time.perf_counter()
    render(data)
    return (time.process_time() - cpu) * 1000, (time.perf_counter() - wall) * 1000


def measure_in_renderer(data: ChartData, renders: int) -> Renders:
    """``renders`` charts one after another in a renderer process as the bot starts it
    (warm, collector frozen, ``SCHED_IDLE``), timed inside it."""
    with renderer_pool(1) as pool:
        pool.submit(os.getpid).result()  # started and warm
        timed = [pool.submit(_timed, data).result() for _ in range(renders)]
    return Renders([cpu for cpu, _ in timed], [wall for _, wall in timed])


def measure_here(data: ChartData, renders: int) -> Renders:
    """The same in this process at normal priority: the render's own time, without the
    idle priority's wait for a core on a busy machine."""
    tune_matplotlib()
    render(data)
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        timed = [_timed(data) for _ in range(renders)]
    finally:
        gc.enable()
        gc.unfreeze()
    return Renders([cpu for cpu, _ in timed], [wall for _, wall in timed])


def _figures(values: list[float]) -> str:
    return (
        f"p50 {percentile(values, 0.5):.0f} · p95 {percentile(values, 0.95):.0f} · "
        f"p99 {percentile(values, 0.99):.0f} · max {max(values):.0f} ms"
    )


async def burst(data: ChartData, count: int) -> tuple[float, list[float]]:
    """``count`` renders submitted at once to the bot's renderer (distinct cache keys)."""
    renderer = ChartRenderer()
    try:
        await renderer.render("warm-up", data)
        begin = time.perf_counter()

        async def one(key: int) -> float:
            await renderer.render(key, data)
            return (time.perf_counter() - begin) * 1000

        done = await asyncio.gather(*(one(key) for key in range(count)))
        return (time.perf_counter() - begin) * 1000, sorted(done)
    finally:
        renderer.close()


def samples(out: Path) -> None:
    """Write the charts a trader would see, for looking at them."""
    out.mkdir(parents=True, exist_ok=True)
    history, funding, equity = year_of_history()
    for period in (Period.YEAR, Period.MONTH, Period.WEEK):
        data = chart_of(period, history, funding, equity)
        (out / f"pnl-live-{period.value}-10k-fills.png").write_bytes(render_png(data))
    few, few_funding, _ = year_of_history(fills=40, seed=3)
    data = chart_of(Period.ALL, few, few_funding, [], paper=True, zone="America/New_York")
    (out / "pnl-paper-all-40-fills-ledger-curve.png").write_bytes(render_png(data))
    print(f"sample charts written to {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--renders", type=int, default=50)
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--alerts", type=int, default=0, help="alerts idle, then rendering")
    args = parser.parse_args()
    history, funding, equity = year_of_history()
    data = chart_of(Period.YEAR, history, funding, equity)
    del history, funding, equity  # a renderer process holds only the chart's floats
    size = len(render_png(data))
    print(
        f"one-year chart, 10,000 fills, {len(data.times):,} equity points, "
        f"{size / 1024:.0f} KiB PNG (targets: p50 ≤ 150 ms, p99 ≤ 300 ms)"
    )
    pooled = measure_in_renderer(data, args.renders)
    print(f"  {args.renders} renders in a renderer process (SCHED_IDLE, as the bot runs it):")
    print(f"    CPU  {_figures(pooled.cpu)}")
    print(f"    wall {_figures(pooled.wall)}")
    here = measure_here(data, args.renders)
    print(f"  {args.renders} renders in this process (normal priority, same settings):")
    print(f"    CPU  {_figures(here.cpu)}")
    print(f"    wall {_figures(here.wall)}")
    if args.burst:
        total, done = asyncio.run(burst(data, args.burst))
        print(
            f"{args.burst} at once through the renderer ({default_workers()} process): all done in "
            f"{total:.0f} ms; first {done[0]:.0f} ms, median {percentile(done, 0.5):.0f} ms"
        )
    if args.alerts:
        from bench.charts_load import alerts_while_rendering
        from core.runtime.logs import configure_logging

        configure_logging("WARNING", "console")  # not every trader's registration
        result = asyncio.run(alerts_while_rendering(data, args.alerts, args.burst or 20))
        idle, busy = result.idle, result.rendering
        print(
            f"alert → broadcast, {args.alerts} alerts each: idle p50 "
            f"{percentile(idle, 0.5):.1f} ms, p99 {percentile(idle, 0.99):.1f} ms; while "
            f"{result.renders} charts rendered in bursts of {args.burst or 20}: p50 "
            f"{percentile(busy, 0.5):.1f} ms, p99 {percentile(busy, 0.99):.1f} ms "
            f"({percentile(busy, 0.99) / percentile(idle, 0.99) - 1:+.0%} at p99; target "
            "within 20 %)"
        )
    if args.out is not None:
        samples(args.out)


if __name__ == "__main__":
    main()
