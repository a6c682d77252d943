"""Things that happen to a subaccount without our API key: the owner trading or cancelling in
the dYdX web app, and the protocol liquidating a position.

They go through the same :class:`~doubles.dydx.state.ChainState` paths as our own
orders, so the chain state, the Indexer REST answers and the ``v4_subaccounts`` updates follow:

* a web-app trade is a short-term IOC order (the web app's market order) from the owner; it
  counts towards the owner's block rate limits like any order of that address;
* a web-app stateful action (long-term/conditional place, stateful cancel) is signed by the
  owner's wallet; with ``sequence_nonce`` the owner's x/auth sequence advances, which is what
  an API key sharing that account sees on its next sequence-checked tx;
* a liquidation closes the position at a price with a ``LIQUIDATED`` taker fill that has no
  order (ender's ``dydx_liquidation_fill_handler_per_order``: NULL order id and client
  metadata). ender closes the position with status ``CLOSED``, not ``LIQUIDATED``
  (``dydx_subaccount_update_handler.sql``; the enum value exists but nothing sets it);
* a counterparty's order takes part (or all) of a resting order: the resting order is the
  maker, filled at its own limit price with a ``MAKER`` fill; while some of it is left it
  stays ``OPEN`` with its ``totalFilled`` (the Indexer has no "partially filled" status).
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from v4_proto.dydxprotocol.clob.order_pb2 import Order, OrderId

from doubles.dydx.orders import build_order
from doubles.dydx.state import (
    INDEXER_UUID_NAMESPACE,
    ORDER_FLAG_SHORT_TERM,
    STATEFUL_ORDER_TIME_WINDOW,
    STATUS_OPEN,
    TAKER_FEE_RATE,
    TIF_IOC,
    ChainState,
    FillRecord,
    TxLogEntry,
    TxResult,
    fmt_decimal,
    order_uuid,
)
from doubles.dydx.state.ids import _round_usdc_up

#: Client metadata of web-app orders in the double (ours use 2, as dydx-v4-client sets).
WEB_APP_CLIENT_METADATA = 0
#: Worst-price slippage of a web-app market order.
WEB_APP_SLIPPAGE = Decimal("0.05")
#: How far ahead the web app sets a short-term order's good_til_block.
WEB_APP_GOOD_TIL_BLOCKS = 20
_WEB_APP_CLIENT_ID_BASE = 0x4000_0000


def _bump_sequence(state: ChainState, owner: str) -> None:
    account = state.get_account(owner)
    if account is not None:
        account.sequence += 1


def external_place(state: ChainState, order: Order, *, sequence_nonce: bool = True) -> TxResult:
    """Place ``order`` as the owner would in the web app.

    Args:
        state: The chain.
        order: Any order of the owner's subaccount.
        sequence_nonce: For an accepted stateful order, advance the owner's account sequence
            (the web app signed with it); False models a timestamp nonce.

    Returns:
        The CheckTx result.
    """
    result = state.place_order(order)
    if result.ok and sequence_nonce and order.order_id.order_flags != ORDER_FLAG_SHORT_TERM:
        _bump_sequence(state, order.order_id.subaccount_id.owner)
    return result


def external_trade(
    state: ChainState,
    owner: str,
    ticker: str,
    side: str,
    size: Decimal | str,
    *,
    subaccount_number: int = 0,
    reduce_only: bool = False,
) -> tuple[TxResult, str]:
    """A web-app market order: short-term IOC at the oracle price ± 5 % worst price.

    Args:
        state: The chain.
        owner: The subaccount owner.
        ticker: Market, e.g. ``"ETH-USD"``.
        side: ``"BUY"`` or ``"SELL"``.
        size: Size in base units.
        subaccount_number: Subaccount.
        reduce_only: Close-only order.

    Returns:
        ``(CheckTx result, Indexer order id)``.

    Raises:
        ValueError: Unknown side.
    """
    if side not in ("BUY", "SELL"):
        raise ValueError(f"side must be BUY or SELL, not {side!r}")
    market = state.markets[ticker]
    buy = side == "BUY"
    worst = market.oracle_price * (1 + WEB_APP_SLIPPAGE if buy else 1 - WEB_APP_SLIPPAGE)
    client_id = _WEB_APP_CLIENT_ID_BASE + len(state.tx_log) % _WEB_APP_CLIENT_ID_BASE
    order = build_order(
        market,
        owner,
        client_id,
        buy=buy,
        size=Decimal(size),
        price=market.round_to_tick(worst, up=not buy),
        time_in_force=TIF_IOC,
        reduce_only=reduce_only,
        good_til_block=state.height + WEB_APP_GOOD_TIL_BLOCKS,
        subaccount_number=subaccount_number,
        client_metadata=WEB_APP_CLIENT_METADATA,
    )
    result = state.place_order(order)
    return result, order_uuid(owner, subaccount_number, client_id, market.clob_pair_id, 0)


def external_cancel(state: ChainState, order_id: str, *, sequence_nonce: bool = True) -> TxResult:
    """Cancel an order (by Indexer id) as the owner would in the web app.

    Short-term orders are cancelled with their own good_til_block; stateful ones with a
    good_til_block_time inside the stateful window (``MsgCancelOrder`` needs one).

    Raises:
        KeyError: No order with that Indexer id.
    """
    record = state.orders[order_id]
    proto_id = OrderId()
    proto_id.CopyFrom(record.order.order_id)
    if record.is_short_term:
        return state.cancel_order(proto_id, good_til_block=record.order.good_til_block)
    latest = int((state.block_time + STATEFUL_ORDER_TIME_WINDOW).timestamp())
    result = state.cancel_order(
        proto_id, good_til_block_time=min(record.order.good_til_block_time, latest)
    )
    if result.ok and sequence_nonce:
        _bump_sequence(state, record.address)
    return result


def liquidate(
    state: ChainState,
    owner: str,
    ticker: str,
    price: Decimal | str,
    *,
    subaccount_number: int = 0,
    insurance_fund_fee_rate: Decimal | str = Decimal(0),
) -> FillRecord:
    """Close the whole position in ``ticker`` by liquidation at ``price``.

    The liquidated subaccount gets a ``TAKER`` fill of type ``LIQUIDATED`` (no order id), pays
    the taker fee on it plus ``insurance_fund_fee_rate`` × notional to the insurance fund
    (the chain charges up to ``max_liquidation_fee_ppm``, 1.5 % on mainnet), and the position
    closes (status ``CLOSED``).

    Raises:
        ValueError: No open position.
    """
    sub = state.get_subaccount(owner, subaccount_number)
    position = sub.positions.get(ticker) if sub is not None else None
    if sub is None or position is None:
        raise ValueError(f"{owner}/{subaccount_number} has no open {ticker} position")
    market = state.markets[ticker]
    fill_price = Decimal(price)
    size = abs(position.size)
    is_buy = position.size < 0
    delta = size if is_buy else -size
    with state._batch():
        fee = _round_usdc_up(size * fill_price * TAKER_FEE_RATE)
        insurance = _round_usdc_up(size * fill_price * Decimal(insurance_fund_fee_rate))
        sub.usdc -= delta * fill_price + fee + insurance
        sub.updated_at_height = state.height
        state._apply_position_delta(sub, market, delta, fill_price)
        fill = FillRecord(
            id=str(uuid.uuid5(INDEXER_UUID_NAMESPACE, f"fill-{state._next_serial()}")),
            address=owner,
            subaccount_number=subaccount_number,
            ticker=ticker,
            clob_pair_id=market.clob_pair_id,
            side="BUY" if is_buy else "SELL",
            liquidity="TAKER",
            price=fill_price,
            size=size,
            fee=fee,
            created_at=state.block_time,
            created_at_height=state.height,
            order_id="",
            client_metadata=0,
            type="LIQUIDATED",
        )
        state.fills.append(fill)
        update = state._update(sub.key)
        update.fills.append(fill)
        update.asset_changed = True
    state.tx_log.append(TxLogEntry(state.height, "liquidation", (owner, subaccount_number), 0))
    return fill


def resting_order_id(
    state: ChainState, owner: str, client_id: int, *, subaccount_number: int = 0
) -> str:
    """The Indexer id of the owner's live order with ``client_id`` (any flags, any market).

    Raises:
        KeyError: No live order of that owner has that client id.
    """
    for record in state.orders.values():
        if (
            record.is_live
            and record.address == owner
            and record.subaccount_number == subaccount_number
            and record.order.order_id.client_id == client_id
        ):
            return record.id
    raise KeyError(f"{owner}/{subaccount_number} has no live order with client id {client_id}")


def take_resting(state: ChainState, order_id: str, size: Decimal | str) -> FillRecord:
    """A counterparty's order takes ``size`` of a resting order, in the current block.

    The resting order is the maker: it fills at its own limit price, pays the maker fee and
    moves its owner's position, through the same path as an oracle-crossed fill, so the
    Indexer REST answers and the ``v4_subaccounts`` updates (the order with its
    ``totalFilled``, the ``MAKER`` fill, the position) follow. Taking what is left fills it.

    Args:
        state: The chain.
        order_id: The resting order's Indexer id.
        size: Base units taken: positive, on the market's step grid, at most what is left.

    Returns:
        The maker's fill.

    Raises:
        KeyError: No order with that Indexer id.
        ValueError: The order is not resting (untriggered, filled, cancelled), is
            reduce-only, the size is off the grid or above what is left, or the owner
            could not afford it.
    """
    record = state.orders[order_id]
    if record.status != STATUS_OPEN or (
        record.is_conditional and record.triggered_at_height is None
    ):
        raise ValueError(f"order {order_id} is {record.status}, not resting on the book")
    if record.order.reduce_only:
        raise ValueError("a reduce-only order never rests on the book")
    market = state.markets[record.ticker]
    amount = Decimal(size)
    quantums = market.quantums_from_size(amount)
    exact = market.size_from_quantums(quantums) == amount
    if amount <= 0 or not exact or quantums % market.step_base_quantums:
        raise ValueError(f"size {amount} is not a positive multiple of {market.step_size}")
    if quantums > record.remaining_quantums:
        left = fmt_decimal(market.size_from_quantums(record.remaining_quantums))
        raise ValueError(f"size {amount} is above the {left} left of order {order_id}")
    price = market.price_from_subticks(record.order.subticks)
    with state._batch():
        if not state._fill(record, market, quantums, price, "MAKER"):
            raise ValueError(f"{record.address} cannot afford {amount} at {price}")
        if record.remaining_quantums == 0:
            state._mark_filled(record)
    state.tx_log.append(TxLogEntry(state.height, "maker_fill", record.key, 0))
    return state.fills[-1]
