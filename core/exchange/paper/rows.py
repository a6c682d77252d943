"""The paper ledger's rows and the :class:`~core.exchange.port.Exchange` port's values, each
way (pure: the venue loads and stores the rows)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal

from core.db.models import PaperFill, PaperOrder, PaperPosition
from core.domain.states import PositionSide
from core.exchange.orders import OrderFlags, OrderKind, OrderRequest, TimeInForce
from core.exchange.paper.book import status
from core.exchange.port import Account, Fill, MarketInfo, OpenOrder, Position

#: Pseudo blocks per second of the venue's block height (about dYdX's pace).
BLOCKS_PER_SECOND = 2


def pseudo_height(moment: float) -> int:
    """The pseudo block height at a POSIX timestamp."""
    return int(moment * BLOCKS_PER_SECOND)


def new_order(user_id: int, request: OrderRequest, tx_hash: str, now: datetime) -> PaperOrder:
    """The row of an order a broadcast accepts: OPEN, nothing filled yet."""
    return PaperOrder(
        user_id=user_id,
        tx_hash=tx_hash,
        client_id=request.client_id,
        order_flags=int(request.flags),
        market=request.market,
        side=request.side,
        kind=request.kind.value,
        time_in_force=request.time_in_force.value,
        size=request.size,
        price=request.price,
        trigger_price=request.trigger_price,
        reduce_only=request.reduce_only,
        status="OPEN",
        filled_size=Decimal(0),
        good_til_block=request.good_til_block,
        good_til_block_time=request.good_til_block_time,
        created_at=now,
        updated_at=now,
    )


def open_order(order: PaperOrder, height: int, now: datetime) -> OpenOrder:
    """An order row as the port shows it (a live order past its expiry reads CANCELED)."""
    return OpenOrder(
        order_id=f"paper-{order.id}",
        client_id=order.client_id,
        flags=OrderFlags(order.order_flags),
        market=order.market,
        side=order.side,
        kind=OrderKind(order.kind),
        size=order.size,
        filled_size=order.filled_size,
        price=order.price,
        trigger_price=order.trigger_price,
        reduce_only=order.reduce_only,
        time_in_force=TimeInForce(order.time_in_force),
        status=status(order, height, now),
        good_til_block=order.good_til_block,
        good_til_block_time=order.good_til_block_time,
    )


def fill(row: PaperFill) -> Fill:
    """A fill row as the port shows it (every paper fill is a taker fill)."""
    return Fill(
        fill_id=f"paper-fill-{row.id}",
        order_id=f"paper-{row.paper_order_id}",
        market=row.market,
        side=row.side,
        size=row.size,
        price=row.price,
        fee=row.fee,
        liquidity="TAKER",
        created_at=row.created_at,
        created_at_height=pseudo_height(row.created_at.timestamp()),
    )


def account(
    balance: Decimal, positions: Iterable[PaperPosition], markets: Mapping[str, MarketInfo]
) -> Account:
    """Equity (balance plus unrealized PnL at the oracle) and free collateral (equity minus
    initial margin); a delisted market is valued at entry with full margin."""
    equity = balance
    margin = Decimal(0)
    for position in positions:
        info = markets.get(position.market)
        oracle = position.entry_price if info is None else info.oracle_price
        fraction = Decimal(1) if info is None else info.initial_margin_fraction
        equity += position.size * (oracle - position.entry_price)
        margin += abs(position.size) * oracle * fraction
    return Account(equity=equity, free_collateral=equity - margin)


def positions(rows: Iterable[PaperPosition], markets: Mapping[str, MarketInfo]) -> list[Position]:
    """The open positions (closed rows skipped), unrealized PnL at the oracle."""
    result = []
    for row in rows:
        if row.size == 0:
            continue
        info = markets.get(row.market)
        oracle = row.entry_price if info is None else info.oracle_price
        result.append(
            Position(
                market=row.market,
                side=PositionSide.LONG if row.size > 0 else PositionSide.SHORT,
                size=abs(row.size),
                entry_price=row.entry_price,
                unrealized_pnl=row.size * (oracle - row.entry_price),
                realized_pnl=row.realized_pnl,
            )
        )
    return result
