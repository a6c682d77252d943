"""Statistics to the cent against the hand-checked ledger of ``tests/analytics_ledger``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from core.domain.states import PositionSide
from core.services.analytics.round_trips import round_trips
from core.services.analytics.stats import NO_STRATEGY, Breakdown, compute_stats, max_drawdown
from tests import analytics_ledger as ledger

D = Decimal
START = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def _trips():  # type: ignore[no-untyped-def]
    return round_trips(ledger.fill_records(START), ledger.funding_records(START))


def test_round_trips_group_fills_split_the_flip_and_take_their_funding() -> None:
    trips = _trips()
    summary = [
        (t.market, t.side, t.fees, t.funding, t.realized, t.net, t.is_open) for t in trips.trades
    ]
    assert summary == [
        ("ETH-USD", PositionSide.LONG, D("3.05"), D("-2.40"), D("96.95"), D("94.55"), False),
        ("BTC-USD", PositionSide.SHORT, D("6.05"), D("1.20"), D("-106.05"), D("-104.85"), False),
        ("ETH-USD", PositionSide.SHORT, D("6.325"), D("-0.75"), D("143.675"), D("142.925"), False),
        ("SOL-USD", PositionSide.LONG, D("1.975"), D(0), D("-51.975"), D("-51.975"), False),
        ("ETH-USD", PositionSide.LONG, D("3.00"), D(0), D("47.00"), D("47.00"), False),
        ("ETH-USD", PositionSide.SHORT, D("3.00"), D("-0.50"), D("-3.00"), D("-3.50"), True),
    ]
    assert trips.unattributed_funding == D("0.30")
    short = trips.trades[2]
    assert (short.size, short.entry_price, short.exit_price) == (D(2), D(3200), D(3125))
    assert short.fill_ids == [5, 6, 7]
    flipped = trips.trades[5]
    assert (flipped.size, flipped.entry_price, flipped.exit_price) == (D(2), D(3050), None)
    assert (flipped.alert_id, flipped.strategy) == (9, "trend")  # the flip's alert
    assert trips.trades[3].strategy is None
    assert trips.trades[3].alert_id is None


def test_statistics_of_the_closed_trades_to_the_cent() -> None:
    closed = [t for t in _trips().trades if not t.is_open]
    stats = compute_stats(closed, ledger.timings(START))
    assert (stats.trades, stats.wins, stats.losses) == (5, 3, 2)
    assert stats.win_rate == D(60)
    assert stats.net == D("127.65")
    assert stats.fees == D("20.40")
    assert stats.funding == D("-1.95")
    assert stats.profit_factor is not None
    assert stats.profit_factor.quantize(D("0.0001")) == D("1.8140")  # 284.475 / 156.825
    assert stats.average_win == D("94.825")
    assert stats.average_loss == D("-78.4125")
    assert stats.expectancy == D("25.53")
    assert stats.max_drawdown == D("104.85")
    assert stats.best is closed[2]
    assert stats.worst is closed[1]
    assert stats.median_latency == timedelta(milliseconds=210)
    assert stats.median_slippage_bps == D(10)
    assert stats.strategies == [
        Breakdown("trend", 3, 3, D("284.475")),
        Breakdown(NO_STRATEGY, 1, 0, D("-51.975")),
        Breakdown("mean-rev", 1, 0, D("-104.85")),
    ]
    assert stats.markets == [
        Breakdown("ETH-USD", 3, 3, D("284.475")),
        Breakdown("SOL-USD", 1, 0, D("-51.975")),
        Breakdown("BTC-USD", 1, 0, D("-104.85")),
    ]


def test_no_trades_gives_no_ratios() -> None:
    stats = compute_stats([], [])
    assert (stats.trades, stats.win_rate, stats.profit_factor, stats.expectancy) == (
        0,
        None,
        None,
        None,
    )
    assert (stats.best, stats.worst, stats.median_latency) == (None, None, None)


def test_max_drawdown_starts_from_zero() -> None:
    assert max_drawdown([D(-5), D(10), D(-3), D(-4), D(1)]) == D(7)
    assert max_drawdown([D(1), D(2)]) == D(0)
