"""The daily digest: yesterday's P&L, open positions with their protection, alerts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from core.texts import fmt

CHART_TITLE = "Yesterday"


@dataclass(frozen=True, slots=True)
class PositionLine:
    """An open position and the triggers of its protection (``None``: none resting)."""

    market: str
    side: str
    size: Decimal
    entry: Decimal | None
    take_profit: Decimal | None
    stop_loss: Decimal | None


def _position(line: PositionLine) -> str:
    entry = f" @ {fmt.price(line.entry)}" if line.entry is not None else ""
    guards = []
    if line.take_profit is not None:
        guards.append(f"TP {fmt.price(line.take_profit)}")
    if line.stop_loss is not None:
        guards.append(f"SL {fmt.price(line.stop_loss)}")
    else:
        guards.append("⚠️ no stop-loss")
    return f"• {line.market} {line.side} {fmt.size(line.size)}{entry} · {' · '.join(guards)}"


def digest(
    *,
    day: date,
    paper: bool,
    realized: Decimal,
    fees: Decimal,
    funding: Decimal,
    net: Decimal,
    fills: int,
    positions: list[PositionLine],
    accepted: int,
    rejected: int,
) -> str:
    """The digest's text (HTML; also the photo's caption when it has a chart)."""
    venue = "📝 PAPER" if paper else "💸 LIVE"
    lines = [f"🗓 <b>Daily digest</b> · {day:%a %d %b %Y} ({venue})", ""]
    if fills:
        lines += [
            f"Net <b>{fmt.usd(net, signed=True)}</b> from {fills} fill{'s' if fills != 1 else ''}",
            f"Realized {fmt.usd(realized, signed=True)} · fees {fmt.usd(fees)} · funding "
            f"{fmt.usd(funding, signed=True)}",
        ]
    else:
        lines.append(f"No fills · funding {fmt.usd(funding, signed=True)}")
    lines.append("")
    if positions:
        lines.append("<b>Open positions</b>")
        lines += [_position(line) for line in positions]
    else:
        lines.append("No open positions.")
    lines += [
        "",
        f"Alerts: {accepted} accepted, {rejected} rejected.",
        "/pnl for the chart, /stats for the figures; switch the digest off in /settings.",
    ]
    return "\n".join(lines)
