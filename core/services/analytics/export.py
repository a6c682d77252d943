"""The trade history as CSV: one row per fill (and per funding payment), UTC times."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from core.db.repositories.analytics import FillRecord, FundingRecord

#: The columns, in order (documented in docs/analytics.md).
CSV_COLUMNS = (
    "time_utc",
    "kind",
    "market",
    "side",
    "size",
    "price",
    "fee",
    "realized_pnl",
    "order_id",
    "alert_id",
    "strategy",
)


def _plain(value: Decimal) -> str:
    """A decimal without exponent or trailing zeros: ``0.100000`` → ``0.1``."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _utc(at: datetime) -> str:
    """ISO 8601 in UTC to the millisecond (sorts as text)."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds")


def _row(fill: FillRecord) -> tuple[object, ...]:
    return (
        _utc(fill.filled_at),
        "fill",
        fill.market,
        fill.side.value,
        _plain(fill.size),
        _plain(fill.price),
        _plain(fill.fee),
        _plain(fill.realized_pnl),
        fill.order_id if fill.order_id is not None else "",
        fill.alert_id if fill.alert_id is not None else "",
        fill.strategy or "",
    )


def _funding_row(payment: FundingRecord) -> tuple[object, ...]:
    side = "LONG" if payment.position_size > 0 else "SHORT"
    return (
        _utc(payment.paid_at),
        "funding",
        payment.market,
        side,
        _plain(abs(payment.position_size)),
        _plain(payment.oracle_price),
        "0",
        _plain(payment.payment),
        "",
        "",
        "",
    )


def history_csv(fills: Sequence[FillRecord], funding: Sequence[FundingRecord]) -> bytes:
    """Every fill and funding payment, oldest first, as UTF-8 CSV with a header row."""
    rows = sorted(
        [_row(fill) for fill in fills] + [_funding_row(payment) for payment in funding],
        key=lambda row: (str(row[0]), str(row[1])),
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(rows)
    return buffer.getvalue().encode()
