"""Build v4_proto orders for the dYdX double with exact Decimal conversions, and pick out
order messages among broadcasts.

Product code builds orders with dydx-v4-client; tests that drive :class:`ChainState` directly
use :func:`build_order`. :func:`placing` and :func:`cancelling` are ``when=`` matches for
:meth:`~doubles.dydx.node.NodeServer.hang` (hold a chosen broadcast, not the next one).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from google.protobuf.message import Message
from v4_proto.dydxprotocol.clob.order_pb2 import Order, OrderId
from v4_proto.dydxprotocol.clob.tx_pb2 import MsgCancelOrder, MsgPlaceOrder
from v4_proto.dydxprotocol.subaccounts.subaccount_pb2 import SubaccountId

from doubles.dydx.state import ORDER_FLAG_SHORT_TERM, TIF_IOC, Market


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


def placing(
    condition_type: int | None = None, *, flags: int | None = None
) -> Callable[[tuple[Message, ...]], bool]:
    """Match a transaction placing an order of this kind.

    Args:
        condition_type: ``Order.CONDITION_TYPE_*`` (``CONDITION_TYPE_UNSPECIFIED`` for a plain
            order such as an entry, ``..._TAKE_PROFIT``, ``..._STOP_LOSS``); None: any.
        flags: ``order_id.order_flags`` (short-term 0, conditional 32, long-term 64); None: any.

    Returns:
        A predicate on a broadcast's decoded messages.
    """

    def matches(messages: tuple[Message, ...]) -> bool:
        return any(
            isinstance(m, MsgPlaceOrder)
            and (condition_type is None or m.order.condition_type == condition_type)
            and (flags is None or m.order.order_id.order_flags == flags)
            for m in messages
        )

    return matches


def cancelling(client_id: int | None = None) -> Callable[[tuple[Message, ...]], bool]:
    """Match a transaction cancelling one order (``MsgCancelOrder``).

    Args:
        client_id: The cancelled order's client id; None: any.

    Returns:
        A predicate on a broadcast's decoded messages.
    """

    def matches(messages: tuple[Message, ...]) -> bool:
        return any(
            isinstance(m, MsgCancelOrder)
            and (client_id is None or m.order_id.client_id == client_id)
            for m in messages
        )

    return matches
