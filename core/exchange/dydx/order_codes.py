"""The chain's codes for an order request: side, time in force, condition, expiry."""

from __future__ import annotations

from datetime import datetime

from v4_proto.dydxprotocol.clob.order_pb2 import Order

from core.domain.states import OrderSide
from core.exchange.orders import OrderKind, TimeInForce

_MAX_UINT32 = 2**32 - 1

SIDES = {OrderSide.BUY: Order.Side.SIDE_BUY, OrderSide.SELL: Order.Side.SIDE_SELL}
TIME_IN_FORCE = {
    TimeInForce.GTT: Order.TimeInForce.TIME_IN_FORCE_UNSPECIFIED,
    TimeInForce.IOC: Order.TimeInForce.TIME_IN_FORCE_IOC,
    TimeInForce.POST_ONLY: Order.TimeInForce.TIME_IN_FORCE_POST_ONLY,
}
CONDITIONS = {
    OrderKind.STOP: Order.ConditionType.CONDITION_TYPE_STOP_LOSS,
    OrderKind.TAKE_PROFIT: Order.ConditionType.CONDITION_TYPE_TAKE_PROFIT,
}


def unix_seconds(moment: datetime) -> int:
    """``good_til_block_time`` (a fixed32 of unix seconds) of a tz-aware time."""
    if moment.tzinfo is None:
        raise ValueError("good_til_block_time must be timezone-aware")
    seconds = int(moment.timestamp())
    if not 0 < seconds <= _MAX_UINT32:
        raise ValueError("good_til_block_time is out of range")
    return seconds
