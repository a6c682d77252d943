"""Strict parsers of the dYdX Indexer's answers (pure; exposed for tests and for other
adapters that read the same shapes).

Every answer is outside input: it is parsed strictly into the exchange port's Decimal DTOs
(JSON numbers arrive as :class:`~decimal.Decimal`, never ``float``) and a field that does not
have the Indexer's shape raises :class:`MalformedAnswerError` rather than being guessed at.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from core.domain.states import OrderSide, PositionSide
from core.exchange.dydx.market import DydxMarket
from core.exchange.dydx.quantize import step_size, tick_size
from core.exchange.orders import MAX_CLIENT_ID, OrderFlags, OrderKind, TimeInForce
from core.exchange.port import Account, Fill, MarketInfo, OpenOrder, Position

#: Namespace of every Indexer uuid (``indexer/packages/postgres/src/helpers/uuid.ts``).
INDEXER_UUID_NAMESPACE = uuid.UUID("0f9da948-a6fb-4c45-9edc-4685c3f3317d")

MARKET_STATUSES = frozenset(
    {"ACTIVE", "PAUSED", "CANCEL_ONLY", "POST_ONLY", "INITIALIZING", "FINAL_SETTLEMENT"}
)
ORDER_STATUSES = frozenset(
    {"OPEN", "FILLED", "CANCELED", "BEST_EFFORT_CANCELED", "BEST_EFFORT_OPENED", "UNTRIGGERED"}
)
#: Statuses of an order that may still trade.
LIVE_ORDER_STATUSES = ("OPEN", "BEST_EFFORT_OPENED", "UNTRIGGERED")
_ORDER_KINDS = {
    "LIMIT": OrderKind.LIMIT,
    "MARKET": OrderKind.MARKET,
    "STOP_LIMIT": OrderKind.STOP,
    "STOP_MARKET": OrderKind.STOP,
    "TRAILING_STOP": OrderKind.STOP,
    "TAKE_PROFIT": OrderKind.TAKE_PROFIT,
    "TAKE_PROFIT_MARKET": OrderKind.TAKE_PROFIT,
}
_ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]00:00)$")
_INT_RE = re.compile(r"^-?\d{1,30}$")


def subaccount_uuid(owner: str, subaccount_number: int) -> str:
    """The Indexer's id of a subaccount: ``uuidv5("{address}-{n}")``."""
    return str(uuid.uuid5(INDEXER_UUID_NAMESPACE, f"{owner}-{subaccount_number}"))


def indexer_order_id(
    owner: str, subaccount_number: int, client_id: int, clob_pair_id: int, order_flags: int
) -> str:
    """The Indexer's id of an order, computed locally (``order-table.ts uuid``).

    ``uuidv5("{subaccountUuid}-{clientId}-{clobPairId}-{orderFlags}")`` in the Indexer's
    namespace, so ``GET /v4/orders/{id}`` finds an order from its chain id alone.
    """
    name = (
        f"{subaccount_uuid(owner, subaccount_number)}-{client_id}-{clob_pair_id}-{int(order_flags)}"
    )
    return str(uuid.uuid5(INDEXER_UUID_NAMESPACE, name))


class MalformedAnswerError(ValueError):
    """An Indexer answer does not have the expected shape (says which field, never values)."""


# --------------------------------------------------------------------------------------------
# Strict field readers
# --------------------------------------------------------------------------------------------


def _obj(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedAnswerError(f"{what} is not an object")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise MalformedAnswerError(f"{what} is not a list")
    return value


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedAnswerError(f"{key} is not a non-empty string")
    return value


def _decimal(data: Mapping[str, Any], key: str) -> Decimal:
    value = data.get(key)
    # bool is an int: refuse it explicitly; floats never appear (JSON floats parse to Decimal).
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise MalformedAnswerError(f"{key} is not a number")
    try:
        result = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except InvalidOperation:
        raise MalformedAnswerError(f"{key} is not a number") from None
    if not result.is_finite():
        raise MalformedAnswerError(f"{key} is not a finite number")
    return result


def _optional_decimal(data: Mapping[str, Any], key: str) -> Decimal | None:
    return None if data.get(key) is None else _decimal(data, key)


def _int(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool):
        raise MalformedAnswerError(f"{key} is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INT_RE.match(value):
        return int(value)
    raise MalformedAnswerError(f"{key} is not an integer")


def _optional_int(data: Mapping[str, Any], key: str) -> int | None:
    return None if data.get(key) is None else _int(data, key)


def _bool(data: Mapping[str, Any], key: str) -> bool:
    value = data.get(key)
    if not isinstance(value, bool):
        raise MalformedAnswerError(f"{key} is not a boolean")
    return value


def _time(data: Mapping[str, Any], key: str) -> datetime:
    value = data.get(key)
    if not isinstance(value, str) or not _ISO_RE.match(value):
        raise MalformedAnswerError(f"{key} is not an ISO 8601 UTC time")
    text = value.replace("Z", "+00:00")
    head, _, tail = text.partition(".")
    if tail:  # Python parses at most microseconds
        fraction, offset = tail[:-6], tail[-6:]
        text = f"{head}.{fraction[:6].ljust(6, '0')}{offset}"
    return datetime.fromisoformat(text).astimezone(UTC)


def _optional_time(data: Mapping[str, Any], key: str) -> datetime | None:
    return None if data.get(key) is None else _time(data, key)


def _choice(data: Mapping[str, Any], key: str, allowed: frozenset[str] | tuple[str, ...]) -> str:
    value = _str(data, key)
    if value not in allowed:
        raise MalformedAnswerError(f"{key} has an unknown value")
    return value


# --------------------------------------------------------------------------------------------
# Parsers
# --------------------------------------------------------------------------------------------


def parse_market(data: Any) -> DydxMarket:
    """A ``PerpetualMarketResponseObject`` as a :class:`DydxMarket`.

    Raises:
        MalformedAnswerError: A field is missing, of the wrong type or inconsistent (the tick
            and step sizes must match the quantization parameters).
    """
    item = _obj(data, "market")
    market = DydxMarket(
        info=MarketInfo(
            ticker=_str(item, "ticker"),
            status=_choice(item, "status", MARKET_STATUSES),
            oracle_price=_decimal(item, "oraclePrice"),
            tick_size=_decimal(item, "tickSize"),
            step_size=_decimal(item, "stepSize"),
            min_order_size=_decimal(item, "stepSize"),
            initial_margin_fraction=_decimal(item, "initialMarginFraction"),
            maintenance_margin_fraction=_decimal(item, "maintenanceMarginFraction"),
        ),
        clob_pair_id=_int(item, "clobPairId"),
        atomic_resolution=_int(item, "atomicResolution"),
        quantum_conversion_exponent=_int(item, "quantumConversionExponent"),
        step_base_quantums=_int(item, "stepBaseQuantums"),
        subticks_per_tick=_int(item, "subticksPerTick"),
    )
    info = market.info
    if market.clob_pair_id < 0:
        raise MalformedAnswerError("clobPairId is negative")
    if info.oracle_price <= 0:
        raise MalformedAnswerError("oraclePrice is not positive")
    if market.step_base_quantums <= 0 or market.subticks_per_tick <= 0:
        raise MalformedAnswerError("stepBaseQuantums or subticksPerTick is not positive")
    if not (
        -30 <= market.atomic_resolution <= 30 and -30 <= market.quantum_conversion_exponent <= 30
    ):
        raise MalformedAnswerError("atomicResolution or quantumConversionExponent out of range")
    if not 0 <= info.maintenance_margin_fraction <= info.initial_margin_fraction <= 1:
        raise MalformedAnswerError("margin fractions are inconsistent")
    if info.tick_size != tick_size(market) or info.step_size != step_size(market):
        raise MalformedAnswerError("tickSize or stepSize contradicts the quantization parameters")
    return market


def parse_position(data: Any) -> Position:
    """A ``PerpetualPositionResponseObject`` as :class:`Position` (size made positive).

    Raises:
        MalformedAnswerError: A field is missing or of the wrong type.
    """
    item = _obj(data, "position")
    return Position(
        market=_str(item, "market"),
        side=PositionSide(_choice(item, "side", ("LONG", "SHORT"))),
        size=abs(_decimal(item, "size")),  # the Indexer signs it (negative when short)
        entry_price=_decimal(item, "entryPrice"),
        unrealized_pnl=_decimal(item, "unrealizedPnl"),
        realized_pnl=_decimal(item, "realizedPnl"),
    )


def parse_subaccount(data: Any) -> tuple[Account, list[Position]]:
    """The ``subaccount`` object of ``/v4/addresses/{a}/subaccountNumber/{n}``.

    Raises:
        MalformedAnswerError: A field is missing or of the wrong type.
    """
    item = _obj(data, "subaccount")
    account = Account(
        equity=_decimal(item, "equity"), free_collateral=_decimal(item, "freeCollateral")
    )
    raw_positions = _obj(item.get("openPerpetualPositions"), "openPerpetualPositions")
    positions = []
    for ticker, raw in raw_positions.items():
        position = parse_position(raw)
        if position.market != ticker:
            raise MalformedAnswerError("a position is filed under another market")
        if position.size != 0:
            positions.append(position)
    return account, positions


def _order_flags(item: Mapping[str, Any]) -> OrderFlags:
    try:
        return OrderFlags(_int(item, "orderFlags"))
    except ValueError:
        raise MalformedAnswerError("orderFlags has an unknown value") from None


def _time_in_force(item: Mapping[str, Any]) -> TimeInForce:
    if item.get("postOnly") is True:
        return TimeInForce.POST_ONLY
    # FOK is deprecated on the chain; like IOC it never rests.
    value = _choice(item, "timeInForce", ("GTT", "IOC", "FOK"))
    return TimeInForce.GTT if value == "GTT" else TimeInForce.IOC


def parse_order(data: Any) -> OpenOrder:
    """An ``OrderResponseObject`` as :class:`OpenOrder`.

    The Indexer files every non-conditional order as ``LIMIT``; a short-term IOC one is what
    the port calls a MARKET order (the chain has no other kind of market order).

    Raises:
        MalformedAnswerError: A field is missing, of the wrong type or out of range.
    """
    item = _obj(data, "order")
    order_id = _str(item, "id")
    try:
        uuid.UUID(order_id)
    except ValueError:
        raise MalformedAnswerError("id is not a uuid") from None
    client_id = _int(item, "clientId")
    if not 0 <= client_id <= MAX_CLIENT_ID:
        raise MalformedAnswerError("clientId is not a uint32")
    flags = _order_flags(item)
    time_in_force = _time_in_force(item)
    kind = _ORDER_KINDS[_choice(item, "type", tuple(_ORDER_KINDS))]
    if (
        kind is OrderKind.LIMIT
        and flags is OrderFlags.SHORT_TERM
        and time_in_force is TimeInForce.IOC
    ):
        kind = OrderKind.MARKET
    good_til_block = _optional_int(item, "goodTilBlock")
    good_til_block_time = _optional_time(item, "goodTilBlockTime")
    if (good_til_block is None) == (good_til_block_time is None):
        raise MalformedAnswerError("exactly one of goodTilBlock and goodTilBlockTime is expected")
    size = _decimal(item, "size")
    filled = _decimal(item, "totalFilled")
    if size <= 0 or not 0 <= filled <= size:
        raise MalformedAnswerError("size or totalFilled is out of range")
    return OpenOrder(
        order_id=order_id,
        client_id=client_id,
        flags=flags,
        market=_str(item, "ticker"),
        side=OrderSide(_choice(item, "side", ("BUY", "SELL"))),
        kind=kind,
        size=size,
        filled_size=filled,
        price=_decimal(item, "price"),
        trigger_price=_optional_decimal(item, "triggerPrice"),
        reduce_only=_bool(item, "reduceOnly"),
        time_in_force=time_in_force,
        status=_choice(item, "status", ORDER_STATUSES),
        good_til_block=good_til_block,
        good_til_block_time=good_til_block_time,
    )


def parse_fill(data: Any) -> Fill:
    """A ``FillResponseObject`` as :class:`Fill`.

    Raises:
        MalformedAnswerError: A field is missing or of the wrong type.
    """
    item = _obj(data, "fill")
    order_id = item.get("orderId")
    if order_id is not None and (not isinstance(order_id, str) or not order_id):
        raise MalformedAnswerError("orderId is not a string")
    size = _decimal(item, "size")
    price = _decimal(item, "price")
    if size <= 0 or price <= 0:
        raise MalformedAnswerError("size or price is not positive")
    return Fill(
        fill_id=_str(item, "id"),
        order_id=order_id,
        market=_str(item, "market"),
        side=OrderSide(_choice(item, "side", ("BUY", "SELL"))),
        size=size,
        price=price,
        fee=_decimal(item, "fee"),
        liquidity=_choice(item, "liquidity", ("MAKER", "TAKER")),
        created_at=_time(item, "createdAt"),
        created_at_height=_int(item, "createdAtHeight"),
    )
