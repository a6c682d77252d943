"""Build v4_proto orders for the dYdX double with exact Decimal conversions.

Product code builds orders with dydx-v4-client; tests that drive :class:`ChainState` directly
use :func:`build_order`.
"""

from __future__ import annotations

from decimal import Decimal

from v4_proto.dydxprotocol.clob.order_pb2 import Order, OrderId
from v4_proto.dydxprotocol.subaccounts.subaccount_pb2 import SubaccountId

from tests.doubles.dydx.state import ORDER_FLAG_SHORT_TERM, TIF_IOC, Market


def build_order(
    market: Market,
    owner: str,
    client_id: int,
    *,
    buy: bool = True,
    size: Decimal | str = "0.01",
    price: Decimal | str,
    flags: int = ORDER_FLAG_SHORT_TERM,
    time_in_force: int = TIF_IOC,
    reduce_only: bool = False,
    good_til_block: int | None = None,
    good_til_block_time: int | None = None,
    condition_type: int = 0,
    trigger_price: Decimal | str | None = None,
    subaccount_number: int = 0,
    client_metadata: int = 2,
) -> Order:
    """An Order on ``market`` (size in base units, prices in USD).

    Exactly one of ``good_til_block`` (short-term) and ``good_til_block_time`` (stateful,
    unix seconds) should be given.
    """
    order = Order(
        order_id=OrderId(
            subaccount_id=SubaccountId(owner=owner, number=subaccount_number),
            client_id=client_id,
            order_flags=flags,
            clob_pair_id=market.clob_pair_id,
        ),
        side=Order.Side.SIDE_BUY if buy else Order.Side.SIDE_SELL,
        quantums=market.quantums_from_size(Decimal(size)),
        subticks=market.subticks_from_price(Decimal(price)),
        time_in_force=time_in_force,
        reduce_only=reduce_only,
        client_metadata=client_metadata,
        condition_type=condition_type,
        conditional_order_trigger_subticks=(
            market.subticks_from_price(Decimal(trigger_price)) if trigger_price is not None else 0
        ),
    )
    if good_til_block is not None:
        order.good_til_block = good_til_block
    if good_til_block_time is not None:
        order.good_til_block_time = good_til_block_time
    return order
