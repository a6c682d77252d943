"""An order's end from the stream's news: only when the news tells all of it."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from core.domain.states import OrderSide, PositionSide
from core.exchange.stream import FillEvent, OrderEvent, PositionEvent, SubaccountEvent
from core.services.execution.streamed import StreamedEnd, streamed_end

AT = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def order(status: str, filled: str | None, client_id: int = 7) -> OrderEvent:
    return OrderEvent(
        order_id="venue-order",
        client_id=client_id,
        market="ETH-USD",
        status=status,
        filled_size=Decimal(filled) if filled is not None else None,
        size=Decimal("0.1"),
    )


def fill(fill_id: str, size: str, client_id: int | None = 7) -> FillEvent:
    return FillEvent(
        fill_id=fill_id,
        order_id="venue-order" if client_id == 7 else "other-order",
        order_client_id=client_id,
        market="ETH-USD",
        side=OrderSide.BUY,
        size=Decimal(size),
        price=Decimal(3000),
        fee=Decimal("0.15"),
        liquidation=False,
        at=AT,
        liquidity="TAKER",
        height=120,
    )


LONG = PositionEvent("ETH-USD", PositionSide.LONG, Decimal("0.1"), Decimal(3000))


def end(news: list[SubaccountEvent], short_term: bool = True) -> StreamedEnd | None:
    return streamed_end(7, "ETH-USD", news, short_term=short_term)


def test_a_filled_order_with_all_its_fills_and_the_position_is_its_end() -> None:
    done = end(
        [
            fill("a", "0.04"),
            fill("b", "0.06"),
            fill("x", "1", client_id=9),
            order("FILLED", "0.1"),
            LONG,
        ]
    )
    assert done is not None
    assert done.filled_size == Decimal("0.1")
    assert [(f.fill_id, f.size, f.liquidity, f.created_at_height) for f in done.fills] == [
        ("a", Decimal("0.04"), "TAKER", 120),
        ("b", Decimal("0.06"), "TAKER", 120),
    ]
    assert done.positions is not None
    assert [(p.side, p.size) for p in done.positions] == [(PositionSide.LONG, Decimal("0.1"))]


def test_a_fill_told_twice_counts_once() -> None:
    done = end([fill("a", "0.1"), order("FILLED", "0.1"), LONG, fill("a", "0.1"), LONG])
    assert done is not None
    assert len(done.fills) == 1


def test_a_fill_not_yet_told_leaves_it_to_the_indexer() -> None:
    assert end([fill("a", "0.04"), order("FILLED", "0.1"), LONG]) is None


def test_no_position_after_fills_leaves_it_to_the_indexer() -> None:
    assert end([fill("a", "0.1"), order("FILLED", "0.1")]) is None


def test_an_order_still_open_or_without_its_total_is_not_its_end() -> None:
    assert end([order("OPEN", "0")]) is None
    assert end([order("FILLED", None), LONG]) is None
    assert end([fill("a", "0.1"), LONG]) is None  # no order update at all


def test_a_best_effort_cancel_ends_only_a_short_term_order() -> None:
    news: list[SubaccountEvent] = [order("BEST_EFFORT_CANCELED", "0")]
    done = end(news, short_term=True)
    assert done is not None
    assert (done.filled_size, done.fills, done.positions) == (Decimal(0), [], None)
    assert end(news, short_term=False) is None


def test_a_flat_position_after_a_close_is_an_empty_list() -> None:
    flat = PositionEvent("ETH-USD", None, Decimal(0), None)
    done = end([fill("a", "0.1"), order("FILLED", "0.1"), flat])
    assert done is not None
    assert done.positions == []


def test_the_latest_order_update_counts() -> None:
    assert end([order("FILLED", "0.1"), order("OPEN", "0")]) is None
    done = end([order("OPEN", "0"), fill("a", "0.1"), order("FILLED", "0.1"), LONG])
    assert done is not None
