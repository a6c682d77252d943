"""Realized P&L of a fill against the position it meets (core.services.execution.pnl)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from core.domain.states import OrderSide
from core.exchange.port import Fill
from core.services.execution.pnl import realize


def _fill(side: OrderSide, size: str, price: str) -> Fill:
    return Fill(
        fill_id="f",
        order_id="o",
        market="ETH-USD",
        side=side,
        size=Decimal(size),
        price=Decimal(price),
        fee=Decimal(0),
        liquidity="TAKER",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        created_at_height=1,
    )


@pytest.mark.parametrize(
    ("held", "entry", "fill", "expected"),
    [
        # Opening from flat realizes nothing and enters at the fill's price.
        ("0", None, _fill(OrderSide.BUY, "1", "3000"), ("0", "1", "3000")),
        # Adding averages the entry.
        ("1", "3000", _fill(OrderSide.BUY, "1", "3100"), ("0", "2", "3050")),
        # Reducing a long realizes the gain on the part closed and keeps the entry.
        ("2", "3000", _fill(OrderSide.SELL, "1", "3100"), ("100", "1", "3000")),
        # Closing a short at a higher price is a loss, and flat has no entry.
        ("-1", "3000", _fill(OrderSide.BUY, "1", "3100"), ("-100", "0", None)),
        # Flipping realizes the closed part; the rest opens at the fill's price.
        ("1", "3000", _fill(OrderSide.SELL, "3", "2900"), ("-100", "-2", "2900")),
    ],
)
def test_realize(held: str, entry: str | None, fill: Fill, expected: tuple[Any, ...]) -> None:
    pnl, after, entry_after = realize(
        Decimal(held), Decimal(entry) if entry is not None else None, fill
    )
    want_pnl, want_after, want_entry = expected
    assert pnl == Decimal(want_pnl)
    assert after == Decimal(want_after)
    assert entry_after == (Decimal(want_entry) if want_entry is not None else None)
