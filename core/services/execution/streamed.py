"""An order's end as the venue's stream told it, when that is the whole story.

The job following its order is woken with the stream's batch (the order's update, its fills,
the positions after them; see :class:`~core.services.execution.follow.FollowedOrders`). The
Indexer sends that batch from the same block processing its REST answers come from, so when
the batch says the order is done and its fills add up to the total the venue reports, the
job records the outcome from it, without the three Indexer requests (order, fills,
positions) a look costs. Anything less (a fill still missing, no position for the market,
an order still open) and the job asks the Indexer as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from core.domain.states import PositionSide
from core.exchange.port import Fill, Position
from core.exchange.stream import FillEvent, OrderEvent, PositionEvent, SubaccountEvent

#: Statuses after which an order changes no more (a short-term order's best-effort cancel
#: too: it can no longer fill once its block passed).
_DONE = frozenset({"FILLED", "CANCELED"})
_SHORT_TERM_DONE = _DONE | {"BEST_EFFORT_CANCELED"}


@dataclass(frozen=True, slots=True)
class StreamedEnd:
    """A followed order's end, complete, from the stream.

    Attributes:
        filled_size: What the venue reports filled.
        fills: Every fill of the order.
        positions: The order's market's position after it (empty when flat); None when the
            stream did not tell (an order that filled nothing leaves the position alone).
    """

    filled_size: Decimal
    fills: list[Fill]
    positions: list[Position] | None


def streamed_end(
    client_id: int, market: str, news: Sequence[SubaccountEvent], *, short_term: bool
) -> StreamedEnd | None:
    """The order's end if the stream's news tells all of it, else None.

    Args:
        client_id: The order's client id.
        market: Its market.
        news: What the stream told while the order was followed, oldest first.
        short_term: Whether it is a short-term order (a best-effort cancel ends it).
    """
    update = next(
        (e for e in reversed(news) if isinstance(e, OrderEvent) and e.client_id == client_id),
        None,
    )
    done = _SHORT_TERM_DONE if short_term else _DONE
    if update is None or update.status not in done or update.filled_size is None:
        return None
    fills: dict[str, FillEvent] = {}
    for event in news:
        if (
            isinstance(event, FillEvent)
            and not event.liquidation
            and (event.order_client_id == client_id or event.order_id == update.order_id)
        ):
            fills[event.fill_id] = event
    if sum((f.size for f in fills.values()), Decimal(0)) != update.filled_size:
        return None
    position: PositionEvent | None = next(
        (e for e in reversed(news) if isinstance(e, PositionEvent) and e.market == market),
        None,
    )
    if fills and position is None:
        return None  # the position after the fills is the Indexer's to tell
    return StreamedEnd(
        filled_size=update.filled_size,
        fills=[_fill(event, update.order_id) for event in fills.values()],
        positions=_positions(position),
    )


def _fill(event: FillEvent, order_id: str) -> Fill:
    return Fill(
        fill_id=event.fill_id,
        order_id=event.order_id or order_id,
        market=event.market,
        side=event.side,
        size=event.size,
        price=event.price,
        fee=event.fee,
        liquidity=event.liquidity,
        created_at=event.at,
        created_at_height=event.height or 0,
    )


def _positions(position: PositionEvent | None) -> list[Position] | None:
    if position is None:
        return None
    if position.side is None or not position.size:
        return []
    side: PositionSide = position.side
    return [
        Position(
            market=position.market,
            side=side,
            size=position.size,
            entry_price=position.entry_price or Decimal(0),
            unrealized_pnl=Decimal(0),
            realized_pnl=Decimal(0),
        )
    ]
