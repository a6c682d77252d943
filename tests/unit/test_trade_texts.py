"""The fill message says how the price compares with what the trader expected, in words."""

from __future__ import annotations

from decimal import Decimal

from core.domain.states import OrderSide, PositionSide
from core.texts.trade import FillSummary, slippage_line


def _fill(side: OrderSide, price: str, reference: str, purpose: str) -> FillSummary:
    return FillSummary(
        alert_id=1,
        strategy=None,
        market="ETH-USD",
        side=side,
        size=Decimal("0.1"),
        filled_size=Decimal("0.1"),
        average_price=Decimal(price),
        fee=Decimal("0.15"),
        reference_price=Decimal(reference),
        realized_pnl=None,
        position_side=PositionSide.LONG,
        position_size=Decimal("0.1"),
        paper=False,
        purpose=purpose,
    )


def test_a_take_profit_that_sold_above_its_trigger_is_better_in_words() -> None:
    line = slippage_line(_fill(OrderSide.SELL, "3012", "3000", "TAKE_PROFIT"))
    assert line == "Price: 0.400% better than $3,000.00 (the trigger)"


def test_a_buy_that_paid_more_than_the_alert_is_worse() -> None:
    line = slippage_line(_fill(OrderSide.BUY, "3000", "2999.5", "ENTRY"))
    assert line == "Price: 0.017% worse than $2,999.50 (the alert's price)"


def test_a_stop_that_filled_below_its_trigger_is_worse_and_an_exact_fill_says_so() -> None:
    assert slippage_line(_fill(OrderSide.SELL, "2940", "2970", "STOP_LOSS")) == (
        "Price: 1.010% worse than $2,970.00 (the trigger)"
    )
    assert slippage_line(_fill(OrderSide.SELL, "2970", "2970", "STOP_LOSS")) == (
        "Price: exactly $2,970.00 (the trigger)"
    )
