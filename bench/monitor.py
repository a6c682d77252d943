"""Benchmark of the position monitor (not a test): one oracle tick evaluated over open brackets,
or (``--fill-to-cancel``) one-cancels-other end to end: a take-profit fill → its sibling's cancel.

Builds N open brackets (default 10,000) across M markets (default 20) in the trailing-stop and
breakeven tracker (:mod:`core.services.protection.trailing`), with a realistic mix: 50 %
trailing, 30 % breakeven (with a fixed stop-loss until it triggers), 20 % fixed stop-loss
only; longs and shorts alike, entries spread around each market's price, owners holding
several brackets each. Then it replays an oracle random walk, one price per market per block,
and after every block hands out and confirms the moves due (as the protection service will,
within each owner's stateful-order budget).

Prints p50 / p99 / max of the wall time and the CPU time to evaluate one oracle tick
(``on_oracle``: the index bisect plus the brackets crossed; target ≤ 5 ms), the cost of the
per-block hand-out, and a "worst tick" per market: the price jumping by ``--jump`` at once,
across every trigger of that market.

    .venv/bin/python bench/monitor.py                       # 10,000 brackets, 20 markets
    .venv/bin/python bench/monitor.py --brackets 50000 --blocks 500
    .venv/bin/python bench/monitor.py --jump 0.2 --seed 7

Pure CPU work in this process: no database, Redis or network is used.

``--fill-to-cancel`` (see :mod:`bench.fill_to_cancel`) runs the real web server and the
production worker (``tv2dydx worker``, monitor on) against PostgreSQL, Redis and the dYdX and
Telegram doubles; N traders open positions with a take-profit and a stop-loss, the oracle is
moved so every take-profit fills, and it prints p50 / p95 / p99 / max from the fill (its
block on the double) to the stop-loss's cancel reaching the node, and which path (the
monitor or the cron) cancelled each:

    .venv/bin/python bench/monitor.py --fill-to-cancel                 # 20 traders, 5 rounds
    .venv/bin/python bench/monitor.py --fill-to-cancel --traders 50 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import sys
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.domain.states import PositionSide
from core.exchange.grid import round_price_to_tick
from core.services.protection.trailing import StopSpec, StopTracker

FEE_RATE = Decimal("0.0005")


@dataclass(frozen=True)
class Market:
    ticker: str
    tick_size: Decimal
    step_size: Decimal
    price: Decimal


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def make_markets(count: int, rng: random.Random) -> list[Market]:
    markets = []
    for i in range(count):
        price = Decimal(str(round(10 ** rng.uniform(-1, 4.8), 4)))  # 0.1 … ~60,000 USD
        tick = Decimal(1).scaleb(price.adjusted() - 4)  # about 1/10,000 of the price
        price = price.quantize(tick)
        markets.append(Market(f"M{i:02d}-USD", tick, Decimal("0.001"), price))
    return markets


def pct(rng: random.Random, low: float, high: float) -> Decimal:
    return Decimal(str(round(rng.uniform(low, high), 2)))


def build(
    tracker: StopTracker, markets: list[Market], count: int, rng: random.Random
) -> dict[str, int]:
    kinds = {"trailing": 0, "breakeven": 0, "fixed": 0}
    owners = max(1, count // 5)
    for bracket_id in range(count):
        market = markets[bracket_id % len(markets)]
        side = PositionSide.LONG if rng.random() < 0.5 else PositionSide.SHORT
        long = side is PositionSide.LONG
        entry = round_price_to_tick(
            market.price * Decimal(str(1 + rng.gauss(0, 0.02))), market, up=False
        )
        roll = rng.random()
        trail = be = None
        if roll < 0.5:
            kind, trail = "trailing", pct(rng, 0.5, 5)
            distance = trail
        else:
            kind = "breakeven" if roll < 0.8 else "fixed"
            distance = pct(rng, 1, 8)
            be = pct(rng, 0.5, 3) if kind == "breakeven" else None
        factor = 1 - distance / 100 if long else 1 + distance / 100
        stop = round_price_to_tick(entry * factor, market, up=not long)
        tracker.add(
            StopSpec(
                bracket_id=bracket_id,
                owner=f"dydx1owner{rng.randrange(owners):05d}",
                market=market.ticker,
                side=side,
                entry_price=entry,
                stop=stop,
                trail_pct=trail,
                be_trigger_pct=be,
                fee_rate=FEE_RATE,
            )
        )
        kinds[kind] += 1
    return kinds


def hand_out(tracker: StopTracker, height: int) -> int:
    placed = 0
    for owner in tracker.waiting_owners():
        for move in tracker.take_due(owner, height):
            tracker.confirm(move)
            placed += 1
    return placed


def ms(ns: float) -> str:
    return f"{ns / 1e6:8.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brackets", type=int, default=10_000)
    parser.add_argument("--markets", type=int, default=20)
    parser.add_argument("--blocks", type=int, default=1_000, help="one tick per market each")
    parser.add_argument("--volatility", type=float, default=0.001, help="σ of one tick's move")
    parser.add_argument("--jump", type=float, default=0.10, help="the worst tick's move")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--fill-to-cancel",
        action="store_true",
        help="measure take-profit fill → stop-loss cancel through the monitor instead",
    )
    parser.add_argument("--traders", type=int, default=20, help="--fill-to-cancel: traders")
    parser.add_argument("--rounds", type=int, default=5, help="--fill-to-cancel: rounds")
    args = parser.parse_args()
    if args.fill_to_cancel:
        from bench.fill_to_cancel import run

        asyncio.run(run(traders=args.traders, rounds=args.rounds))
        return
    rng = random.Random(args.seed)

    markets = make_markets(args.markets, rng)
    tracker = StopTracker()
    for market in markets:
        tracker.set_market(market.ticker, market)
    started = time.perf_counter()
    kinds = build(tracker, markets, args.brackets, rng)
    print(
        f"{args.brackets} brackets over {args.markets} markets "
        f"({kinds['trailing']} trailing, {kinds['breakeven']} breakeven, {kinds['fixed']} fixed) "
        f"built in {time.perf_counter() - started:.2f} s"
    )

    prices = {m.ticker: m.price for m in markets}
    wall: list[float] = []
    cpu: list[float] = []
    handout: list[float] = []
    moves = placed = 0
    gc.collect()
    for block in range(1, args.blocks + 1):
        for market in markets:
            move = Decimal(str(round(rng.gauss(0, args.volatility), 6)))
            price = (prices[market.ticker] * (1 + move)).quantize(market.tick_size / 10)
            prices[market.ticker] = price
            w0, c0 = time.perf_counter_ns(), time.process_time_ns()
            moves += len(tracker.on_oracle(market.ticker, price, block))
            c1, w1 = time.process_time_ns(), time.perf_counter_ns()
            wall.append(w1 - w0)
            cpu.append(c1 - c0)
        w0 = time.perf_counter_ns()
        placed += hand_out(tracker, block)
        handout.append(time.perf_counter_ns() - w0)

    print(f"\none oracle tick (on_oracle), {len(wall)} ticks over {args.blocks} blocks:")
    for name, values in (("wall", wall), ("cpu ", cpu)):
        print(
            f"  {name}  p50 {ms(percentile(values, 0.5))}  p99 {ms(percentile(values, 0.99))}"
            f"  max {ms(max(values))}  mean {ms(sum(values) / len(values))}"
        )
    print(f"  moves proposed {moves}, placed and confirmed {placed} (within the budget)")
    print(
        f"per-block hand-out (take_due + confirm for every waiting owner): "
        f"p50 {ms(percentile(handout, 0.5))}  p99 {ms(percentile(handout, 0.99))}"
        f"  max {ms(max(handout))}"
    )

    # The worst tick: each market's price jumps at once across every trigger of one side.
    jump_wall: list[float] = []
    jump_cpu: list[float] = []
    jumped = 0
    height = args.blocks + 1
    for i, market in enumerate(markets):
        factor = Decimal(str(1 + args.jump)) if i % 2 == 0 else Decimal(str(1 - args.jump))
        price = (prices[market.ticker] * factor).quantize(market.tick_size / 10)
        w0, c0 = time.perf_counter_ns(), time.process_time_ns()
        jumped += len(tracker.on_oracle(market.ticker, price, height))
        c1, w1 = time.process_time_ns(), time.perf_counter_ns()
        jump_wall.append(w1 - w0)
        jump_cpu.append(c1 - c0)
    print(
        f"\nworst tick (price jumps {args.jump:.0%} at once, one market per tick, "
        f"{jumped} moves over {len(markets)} ticks, ~{jumped // len(markets)} per tick):"
    )
    for name, values in (("wall", jump_wall), ("cpu ", jump_cpu)):
        print(f"  {name}  p50 {ms(percentile(values, 0.5))}  max {ms(max(values))}")

    print("\nfill → cancel latency end to end: run again with --fill-to-cancel.")


if __name__ == "__main__":
    main()
