"""/stats, /trades and its CSV export, /pnl captions."""

from __future__ import annotations

from decimal import Decimal
from html import escape
from typing import TYPE_CHECKING

from core.domain.states import PositionSide
from core.texts import fmt

if TYPE_CHECKING:  # view types only: texts import no services at run time
    from core.services.analytics.pnl_data import PnlSummary
    from core.services.analytics.round_trips import Trade
    from core.services.analytics.service import Export, StatsReport, TradesPage
    from core.services.analytics.stats import Breakdown

EXPORT_BUTTON = "📄 Export CSV"
#: Labels drawn on the chart.
CHART_DRAWDOWN = "drawdown"
CHART_ENTRY = "entry"
CHART_EXIT = "exit"
CHART_DAILY = "daily realized P&L"
NEWER_BUTTON = "◀ Newer"
OLDER_BUTTON = "Older ▶"
#: Button labels of the periods, by ``Period`` value.
PERIOD_BUTTONS = {"7d": "7D", "30d": "30D", "90d": "90D", "1y": "1Y", "all": "All"}
_PERIOD_NAMES = {
    "7d": "last 7 days",
    "30d": "last 30 days",
    "90d": "last 90 days",
    "1y": "last 12 months",
    "all": "all time",
}
_NEXT_STEP = (
    "Trades appear here once an alert (or /close) has filled: connect TradingView with "
    "/webhook, or try it risk-free with paper mode in /settings."
)


def venue(paper: bool) -> str:
    """The ledger a figure comes from."""
    return "📝 PAPER" if paper else "💸 LIVE"


def period_name(period: str) -> str:
    """``30d`` → ``last 30 days``."""
    return _PERIOD_NAMES.get(period, period)


def usage_period(argument: str, command: str) -> str:
    """An argument that is no period."""
    return f"“{escape(argument[:32])}” is not a period. Try /{command} 7d, 30d, 90d, 1y or all" + (
        " and, optionally, a strategy: /stats 30d trend" if command == "stats" else "."
    )


def _ratio(value: Decimal | None, suffix: str = "") -> str:
    return "—" if value is None else f"{value.quantize(Decimal('0.01'))}{suffix}"


def _money(value: Decimal | None) -> str:
    return "—" if value is None else fmt.usd(value, signed=True)


def _trade_brief(trade: Trade) -> str:
    return f"{fmt.usd(trade.net, signed=True)} {trade.market} {trade.side.value}"


def _breakdown(title: str, rows: list[Breakdown]) -> list[str]:
    lines = [f"\n<b>{title}</b>"]
    lines += [
        f"{escape(row.name)}: {row.trades} trade{'s' if row.trades != 1 else ''}, "
        f"{fmt.pct(row.win_rate.quantize(Decimal(1)))} won, {fmt.usd(row.net, signed=True)}"
        for row in rows
    ]
    return lines


def stats(report: StatsReport) -> str:
    """The /stats screen."""
    s = report.stats
    scope = f" · strategy {escape(report.strategy)}" if report.strategy else ""
    head = f"📈 <b>Stats</b> · {period_name(report.period)} ({venue(report.paper)}){scope}"
    if not s.trades:
        return f"{head}\n\nNo closed trades in this period. {_NEXT_STEP}"
    lines = [
        head,
        "",
        f"Trades {s.trades} · wins {s.wins} · losses {s.losses} · win rate "
        f"{_ratio(s.win_rate, '%')}",
        f"Net <b>{fmt.usd(s.net, signed=True)}</b> · fees {fmt.usd(s.fees)} · funding "
        f"{fmt.usd(s.funding, signed=True)}",
        f"Profit factor {_ratio(s.profit_factor)} · expectancy {_money(s.expectancy)} per trade",
        f"Average win {_money(s.average_win)} · average loss {_money(s.average_loss)}",
        f"Max drawdown {fmt.usd(s.max_drawdown)}",
    ]
    if s.best is not None and s.worst is not None:
        lines.append(f"Best {_trade_brief(s.best)} · worst {_trade_brief(s.worst)}")
    latency = "—" if s.median_latency is None else fmt.duration(s.median_latency)
    slippage = (
        "—"
        if s.median_slippage_bps is None
        else f"{fmt.number(s.median_slippage_bps.quantize(Decimal('0.1')))} bps"
    )
    lines.append(f"\n⚡ Execution: median alert→broadcast {latency} · median slippage {slippage}")
    lines += _breakdown("By strategy", s.strategies)
    lines += _breakdown("By market", s.markets)
    return "\n".join(lines)


def _side_word(side: PositionSide) -> str:
    return "long" if side is PositionSide.LONG else "short"


def _trade_lines(trade: Trade, page: TradesPage) -> list[str]:
    zone = page.preferences.zone
    opened = fmt.local_time(trade.opened_at, zone, seconds=False)
    exit_price = "open" if trade.exit_price is None else fmt.price(trade.exit_price)
    alert = f"alert #{trade.alert_id}" if trade.alert_id is not None else "by hand"
    strategy = f" ({escape(trade.strategy)})" if trade.strategy else ""
    result = "still open" if trade.is_open else f"P&amp;L <b>{fmt.usd(trade.net, signed=True)}</b>"
    return [
        f"<b>{trade.market}</b> {_side_word(trade.side)} {fmt.size(trade.size)} · "
        f"{fmt.price(trade.entry_price)} → {exit_price}",
        f"  {opened} · {result} · fees {fmt.usd(trade.fees)} · {alert}{strategy}",
    ]


def trades(page: TradesPage) -> str:
    """A page of /trades."""
    head = f"🧾 <b>Trades</b> ({venue(page.paper)})"
    if not page.total:
        return f"{head}\n\nNo trades yet. {_NEXT_STEP}"
    lines = [f"{head} · page {page.page + 1}/{page.pages} · {page.total} in all", ""]
    for trade in page.trades:
        lines += _trade_lines(trade, page)
    lines.append("\nExport CSV sends every fill and funding payment (UTC times).")
    return "\n".join(lines)


def export_caption(export: Export) -> str:
    """Caption of the CSV document."""
    return (
        f"Your trade history ({venue(export.paper)}): {export.fills} fill"
        f"{'s' if export.fills != 1 else ''} and the funding payments, one row each, UTC."
    )


def nothing_to_export() -> str:
    """Export pressed with an empty ledger."""
    return "There is nothing to export yet."


def chart_title(period: str) -> str:
    """The chart's first line."""
    return f"P&L · {period_name(period)}"


def _return(value: Decimal | None) -> str:
    if value is None:
        return "—"
    rounded = value.quantize(Decimal("0.01"))
    return f"+{fmt.pct(rounded)}" if rounded > 0 else fmt.pct(rounded)


def chart_subtitle(summary: PnlSummary) -> str:
    """The chart's second line (plain text: matplotlib draws it)."""
    return f"net {fmt.usd(summary.net, signed=True)} · return {_return(summary.return_pct)}"


def chart_badge(paper: bool) -> str:
    """The badge in the chart's corner."""
    return "PAPER" if paper else "LIVE"


def chart_value_label(equity: bool) -> str:
    """What the curve is: the venue's equity, or the ledger's cumulative P&L."""
    return "equity" if equity else "cumulative P&L"


def pnl_caption(summary: PnlSummary, period: str, paper: bool) -> str:
    """The photo's caption."""
    unrealized = "—" if summary.unrealized is None else fmt.usd(summary.unrealized, signed=True)
    return "\n".join(
        [
            f"📈 <b>P&amp;L</b> · {period_name(period)} ({venue(paper)})",
            f"Realized {fmt.usd(summary.realized, signed=True)} · unrealized {unrealized}",
            f"Fees {fmt.usd(summary.fees)} · funding {fmt.usd(summary.funding, signed=True)}",
            f"Net <b>{fmt.usd(summary.net, signed=True)}</b> · return "
            f"{_return(summary.return_pct)}",
        ]
    )


def no_pnl(paper: bool) -> str:
    """/pnl before any trade."""
    return f"📈 No trades to chart yet ({venue(paper)}). {_NEXT_STEP}"


def renderer_busy() -> str:
    """Too many charts waiting."""
    return "Many charts are being drawn right now: try again in a few seconds."
