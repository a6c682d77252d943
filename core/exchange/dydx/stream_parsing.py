"""Strict parsers of the dYdX Indexer WebSocket (socks) messages into the venue-neutral events
of :mod:`core.exchange.stream` (pure; exposed for tests).

Envelope: ``{type: connected|subscribed|unsubscribed|channel_data|channel_batch_data|error|pong,
connection_id, message_id, channel?, id?, version?, contents?, message?}``; with
``batched: true`` the contents are a list. ``v4_subaccounts`` updates carry
``{perpetualPositions?, assetPositions?, orders?, fills?, transfers?, blockHeight?}``,
``v4_markets`` updates ``{trading?, oraclePrices?}``.

Every message is outside input. An envelope that does not have this shape raises
:class:`MalformedAnswerError`; inside a valid envelope, an item (one order, one fill) that
does not parse is left out and named in :attr:`Parsed.problems`, so the caller logs once per
message and keeps what is sound.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from core.domain.states import OrderSide, PositionSide
from core.exchange.dydx.parsing import (
    ORDER_STATUSES,
    MalformedAnswerError,
    _choice,
    _decimal,
    _int,
    _list,
    _obj,
    _optional_time,
    _str,
    _time,
)
from core.exchange.orders import MAX_CLIENT_ID
from core.exchange.port import Fill, OpenOrder, Position
from core.exchange.stream import (
    FillEvent,
    OraclePrice,
    OrderEvent,
    PositionEvent,
    SubaccountEvent,
    SubaccountRef,
)

CHANNEL_SUBACCOUNTS = "v4_subaccounts"
CHANNEL_MARKETS = "v4_markets"
ENVELOPE_TYPES = frozenset(
    {
        "connected",
        "subscribed",
        "unsubscribed",
        "channel_data",
        "channel_batch_data",
        "error",
        "pong",
    }
)
#: Fill types of the liquidated side (``postgres/src/types/fill-types.ts``).
LIQUIDATION_FILL_TYPES = frozenset({"LIQUIDATED", "DELEVERAGED"})
_FILL_TYPES = frozenset(
    {
        "MARKET",
        "LIMIT",
        "LIQUIDATED",
        "LIQUIDATION",
        "DELEVERAGED",
        "OFFSETTING",
        "TWAP_SUBORDER",
    }
)
_SUB_ID_RE = re.compile(r"^([a-z0-9]{1,90})/(\d{1,6})$")
_MAX_TEXT = 4_000_000  # a v4_markets snapshot of every market is about 300 kB


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"non-finite JSON number {name}")


@dataclass(frozen=True, slots=True)
class Envelope:
    """One socks message, its contents always as a list.

    Attributes:
        type: The message type.
        channel: The channel, for subscription messages.
        id: The subscription id (``v4_markets`` has none).
        contents: The contents (one item unless batched; none for control messages).
        message: The error text of an ``error`` message.
    """

    type: str
    channel: str | None = None
    id: str | None = None
    contents: tuple[Mapping[str, Any], ...] = ()
    message: str | None = None


@dataclass(slots=True)
class Parsed:
    """What one message's contents gave, and what was left out."""

    events: list[SubaccountEvent] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def parse_envelope(text: str | bytes) -> Envelope:
    """The envelope of one WebSocket text frame.

    Raises:
        MalformedAnswerError: Not JSON, not an object, an unknown type, or a field of the
            wrong type.
    """
    if len(text) > _MAX_TEXT:
        raise MalformedAnswerError("the message is too large")
    try:
        body = json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError):
        raise MalformedAnswerError("the message is not JSON") from None
    item = _obj(body, "message")
    kind = _choice(item, "type", ENVELOPE_TYPES)
    channel = item.get("channel")
    if channel is not None and not isinstance(channel, str):
        raise MalformedAnswerError("channel is not a string")
    sub_id = item.get("id")
    if sub_id is not None and not isinstance(sub_id, str):
        raise MalformedAnswerError("id is not a string")
    message = item.get("message")
    if kind == "error":
        if not isinstance(message, str):
            raise MalformedAnswerError("message is not a string")
        return Envelope(kind, channel, sub_id, (), message[:500])
    contents: tuple[Mapping[str, Any], ...] = ()
    if kind in ("subscribed", "channel_data", "channel_batch_data"):
        if channel is None:
            raise MalformedAnswerError("channel is missing")
        raw = item.get("contents")
        if kind == "channel_batch_data":
            contents = tuple(_obj(c, "contents") for c in _list(raw, "contents"))
        elif raw is not None:
            contents = (_obj(raw, "contents"),)
        elif kind == "channel_data":
            raise MalformedAnswerError("contents are missing")
    return Envelope(kind, channel, sub_id, contents, None)


def subaccount_ref(sub_id: str | None) -> SubaccountRef:
    """The subaccount of a ``v4_subaccounts`` id (``"<address>/<number>"``).

    Raises:
        MalformedAnswerError: Not such an id.
    """
    match = _SUB_ID_RE.match(sub_id or "")
    if match is None:
        raise MalformedAnswerError("id is not a subaccount id")
    return SubaccountRef(match.group(1), int(match.group(2)))


def _client_id(item: Mapping[str, Any]) -> int:
    client_id = _int(item, "clientId")
    if not 0 <= client_id <= MAX_CLIENT_ID:
        raise MalformedAnswerError("clientId is not a uint32")
    return client_id


def parse_order_event(data: Any) -> OrderEvent:
    """One ``OrderSubaccountMessageContents`` (fields other than these may be missing).

    Raises:
        MalformedAnswerError: A needed field is missing, or any field is of the wrong type.
    """
    item = _obj(data, "order")
    filled = None if item.get("totalFilled") is None else _decimal(item, "totalFilled")
    size = None if item.get("size") is None else _decimal(item, "size")
    if filled is not None and filled < 0:
        raise MalformedAnswerError("totalFilled is negative")
    if size is not None and (size <= 0 or (filled is not None and filled > size)):
        raise MalformedAnswerError("size is out of range")
    reason = item.get("removalReason")
    if reason is not None and not isinstance(reason, str):
        raise MalformedAnswerError("removalReason is not a string")
    return OrderEvent(
        order_id=_str(item, "id"),
        client_id=_client_id(item),
        market=_str(item, "ticker"),
        status=_choice(item, "status", ORDER_STATUSES),
        filled_size=filled,
        size=size,
        removal_reason=reason[:64] if reason else None,
    )


def parse_fill_event(data: Any, client_ids: Mapping[str, int]) -> FillEvent:
    """One ``FillSubaccountMessageContents``.

    Args:
        data: The fill.
        client_ids: Client ids of the orders seen so far, by the venue's order id.

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
    kind = _choice(item, "type", _FILL_TYPES)
    return FillEvent(
        fill_id=_str(item, "id"),
        order_id=order_id,
        order_client_id=client_ids.get(order_id) if order_id else None,
        market=_str(item, "ticker"),
        side=OrderSide(_choice(item, "side", ("BUY", "SELL"))),
        size=size,
        price=price,
        fee=_decimal(item, "fee"),
        liquidation=kind in LIQUIDATION_FILL_TYPES,
        at=_time(item, "createdAt"),
        liquidity=liquidity if isinstance(liquidity := item.get("liquidity"), str) else "",
        height=_height(item.get("createdAtHeight")),
    )


def _height(value: Any) -> int | None:
    """A block height the venue sends as a decimal string (None when absent or not one)."""
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def parse_position_event(data: Any) -> PositionEvent:
    """One ``PerpetualPositionSubaccountMessageContents`` (size made positive).

    Raises:
        MalformedAnswerError: A field is missing or of the wrong type.
    """
    item = _obj(data, "position")
    status = _choice(item, "status", ("OPEN", "CLOSED", "LIQUIDATED"))
    size = abs(_decimal(item, "size"))
    market = _str(item, "market")
    if status != "OPEN" or size == 0:
        return PositionEvent(market, None, Decimal(0), None)
    return PositionEvent(
        market=market,
        side=PositionSide(_choice(item, "side", ("LONG", "SHORT"))),
        size=size,
        entry_price=_decimal(item, "entryPrice"),
    )


def parse_subaccount_update(
    contents: Mapping[str, Any], client_ids: MutableMapping[str, int]
) -> Parsed:
    """The events of one ``v4_subaccounts`` update: orders, then fills, then positions.

    Args:
        contents: One update's contents.
        client_ids: Client ids by the venue's order id; the orders read here are added, so a
            fill finds its order's client id even when the order came in an earlier message.
    """
    parsed = Parsed()
    for key, parse in (
        ("orders", parse_order_event),
        ("fills", lambda d: parse_fill_event(d, client_ids)),
        ("perpetualPositions", parse_position_event),
    ):
        raw = contents.get(key)
        if raw is None:
            continue
        if not isinstance(raw, list):
            parsed.problems.append(f"{key} is not a list")
            continue
        for data in raw:
            try:
                event = parse(data)
            except MalformedAnswerError as exc:
                parsed.problems.append(f"{key}: {exc}")
                continue
            if isinstance(event, OrderEvent):
                client_ids[event.order_id] = event.client_id
            parsed.events.append(event)
    return parsed


def parse_initial_orders(contents: Mapping[str, Any], client_ids: MutableMapping[str, int]) -> None:
    """Learn the client ids of the live orders a ``v4_subaccounts`` subscription starts with
    (what else it carries is caught up over REST)."""
    raw = contents.get("orders")
    if not isinstance(raw, list):
        return
    for data in raw:
        try:
            event = parse_order_event(data)
        except MalformedAnswerError:
            continue
        client_ids[event.order_id] = event.client_id


@dataclass(slots=True)
class OracleParsed:
    """Oracle prices of one message and what was left out."""

    prices: list[OraclePrice] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def parse_oracle_prices(contents: Mapping[str, Any], now: datetime | None = None) -> OracleParsed:
    """Oracle prices of a ``v4_markets`` update (``oraclePrices``) or snapshot (``markets``,
    stamped ``now``)."""
    parsed = OracleParsed()
    stamp = now or datetime.now(UTC)
    for key in ("oraclePrices", "markets"):
        source = contents.get(key)
        if source is None:
            continue
        if not isinstance(source, Mapping):
            parsed.problems.append(f"{key} is not an object")
            continue
        for ticker, data in source.items():
            try:
                item = _obj(data, "oracle price")
                if key == "markets" and item.get("oraclePrice") is None:
                    continue  # a market without an oracle price yet
                price = _decimal(item, "oraclePrice")
                if price <= 0:
                    raise MalformedAnswerError("oraclePrice is not positive")
                at = _optional_time(item, "effectiveAt") if key == "oraclePrices" else None
                parsed.prices.append(OraclePrice(str(ticker)[:32], price, at or stamp))
            except MalformedAnswerError as exc:
                parsed.problems.append(f"{key}: {exc}")
    return parsed


# --------------------------------------------------------------------------------------------
# REST answers (port DTOs) as events, for catch-up and polling
# --------------------------------------------------------------------------------------------


def order_event_of(order: OpenOrder) -> OrderEvent:
    """An order from REST as an event."""
    return OrderEvent(
        order_id=order.order_id,
        client_id=order.client_id,
        market=order.market,
        status=order.status,
        filled_size=order.filled_size,
        size=order.size,
    )


def fill_event_of(fill: Fill, client_ids: Mapping[str, int]) -> FillEvent:
    """A fill from REST as an event (REST fills carry no type here: a fill without an order
    is the liquidated side's, as ender stores it)."""
    return FillEvent(
        fill_id=fill.fill_id,
        order_id=fill.order_id,
        order_client_id=client_ids.get(fill.order_id) if fill.order_id else None,
        market=fill.market,
        side=fill.side,
        size=fill.size,
        price=fill.price,
        fee=fill.fee,
        liquidation=fill.order_id is None,
        at=fill.created_at,
        liquidity=fill.liquidity,
        height=fill.created_at_height,
    )


def position_event_of(position: Position) -> PositionEvent:
    """An open position from REST as an event."""
    return PositionEvent(position.market, position.side, position.size, position.entry_price)
