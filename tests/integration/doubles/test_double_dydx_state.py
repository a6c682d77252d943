"""Semantics of the dYdX double's ChainState (no network)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from v4_proto.dydxprotocol.clob.order_pb2 import Order
from v4_proto.dydxprotocol.clob.tx_pb2 import OrderBatch
from v4_proto.dydxprotocol.subaccounts.subaccount_pb2 import SubaccountId

from doubles.dydx.authconfig import AuthenticatorError, decode_sub_authenticators
from doubles.dydx.keys import new_key, web_app_trading_key_config
from doubles.dydx.orders import build_order
from doubles.dydx.state import (
    CONDITION_STOP_LOSS,
    CONDITION_TAKE_PROFIT,
    ORDER_FLAG_CONDITIONAL,
    ORDER_FLAG_LONG_TERM,
    ORDER_FLAG_SHORT_TERM,
    REMOVAL_EXPIRED,
    REMOVAL_INVALID_REDUCE_ONLY,
    REMOVAL_IOC_WOULD_REST,
    REMOVAL_REDUCE_ONLY_RESIZE,
    REMOVAL_UNDERCOLLATERALIZED,
    SHORT_BLOCK_WINDOW,
    TIF_IOC,
    TIF_POST_ONLY,
    TIF_UNSPECIFIED,
    BlockUpdate,
    ChainEvent,
    ChainState,
    OraclePriceUpdate,
    OrderRecord,
    SubaccountUpdate,
    TxResult,
    order_uuid,
    subaccount_uuid,
)

BTC = "BTC-USD"
ETH = "ETH-USD"


class FakeClock:
    """A controllable UTC clock for block times."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def state(clock: FakeClock) -> ChainState:
    return ChainState(clock=clock, pnl_interval_blocks=0)


@pytest.fixture
def trader(state: ChainState) -> str:
    address = new_key().address
    state.deposit(address, 0, Decimal("10000"))
    return address


def make_order(
    state: ChainState,
    owner: str,
    client_id: int,
    *,
    ticker: str = BTC,
    buy: bool = True,
    size: str = "0.01",
    price: str = "91000",
    flags: int = ORDER_FLAG_SHORT_TERM,
    tif: int = TIF_IOC,
    reduce_only: bool = False,
    gtb: int | None = None,
    gtbt: int | None = None,
    condition: int = 0,
    trigger: str | None = None,
) -> Order:
    """An order with a valid default good-til for its flags."""
    if flags == ORDER_FLAG_SHORT_TERM:
        gtb = gtb if gtb is not None else state.height + 20
    else:
        gtbt = gtbt if gtbt is not None else int((state.block_time + timedelta(days=1)).timestamp())
    return build_order(
        state.markets[ticker],
        owner,
        client_id,
        buy=buy,
        size=size,
        price=price,
        flags=flags,
        time_in_force=tif,
        reduce_only=reduce_only,
        good_til_block=gtb,
        good_til_block_time=gtbt,
        condition_type=condition,
        trigger_price=trigger,
    )


def record_of(state: ChainState, order: Order) -> OrderRecord:
    oid = order.order_id
    key = order_uuid(
        oid.subaccount_id.owner,
        oid.subaccount_id.number,
        oid.client_id,
        oid.clob_pair_id,
        oid.order_flags,
    )
    return state.orders[key]


def assert_code(result: TxResult, code: int, codespace: str = "clob") -> None:
    assert (result.code, result.codespace) == (code, codespace if code else ""), result.log


def position(state: ChainState, owner: str, ticker: str = BTC) -> Decimal:
    return state.position_size(owner, 0, ticker)


# ---------------------------------------------------------------------------- markets


def test_markets_have_mainnet_parameters(state: ChainState) -> None:
    btc, eth = state.markets[BTC], state.markets[ETH]
    assert (btc.clob_pair_id, btc.atomic_resolution, btc.quantum_conversion_exponent) == (
        0,
        -10,
        -9,
    )
    assert (btc.step_base_quantums, btc.subticks_per_tick) == (1_000_000, 100_000)
    assert (btc.tick_size, btc.step_size) == (Decimal(1), Decimal("0.0001"))
    assert (eth.clob_pair_id, eth.atomic_resolution, eth.quantum_conversion_exponent) == (
        1,
        -9,
        -9,
    )
    assert (eth.tick_size, eth.step_size) == (Decimal("0.1"), Decimal("0.001"))
    # The reference's verified conversions: 0.01 ETH → 10,000,000; $3000.5 → 3,000,500,000.
    assert eth.quantums_from_size(Decimal("0.01")) == 10_000_000
    assert eth.subticks_from_price(Decimal("3000.5")) == 3_000_500_000
    assert state.market_by_clob_pair(1) is eth
    assert state.market_by_clob_pair(99) is None


def test_indexer_ids_match_a_real_indexer_response() -> None:
    # nautilus_trader test_data/http_get_orders.json + http_get_subaccount.json.
    address = "dydx1n56z5fhmemtffzkt2eqyf9kuc7ycjfs86mvqy7"
    assert subaccount_uuid(address, 0) == "5113b9c6-885f-5f80-a2cc-ae0d93795419"
    assert order_uuid(address, 0, 1700756032, 0, 0) == "0f0981cb-152e-57d3-bea9-4d8e0dd5ed35"


# ---------------------------------------------------------------------------- IOC


def test_ioc_buy_fills_at_the_oracle_within_its_limit(state: ChainState, trader: str) -> None:
    order = make_order(state, trader, 1, price="91000")
    assert_code(state.place_order(order), 0)

    record = record_of(state, order)
    assert record.status == "FILLED"
    assert record.filled_quantums == order.quantums
    (fill,) = state.fills_of(trader, 0)
    assert (fill.price, fill.size, fill.side, fill.liquidity) == (
        Decimal(90000),
        Decimal("0.01"),
        "BUY",
        "TAKER",
    )
    assert fill.created_at_height == state.height
    assert fill.order_id == record.id
    assert position(state, trader) == Decimal("0.01")


def test_ioc_outside_its_limit_is_cancelled(state: ChainState, trader: str) -> None:
    buy = make_order(state, trader, 1, price="89999")
    sell = make_order(state, trader, 2, buy=False, price="90001")
    assert_code(state.place_order(buy), 0)
    assert_code(state.place_order(sell), 0)

    for order in (buy, sell):
        record = record_of(state, order)
        assert (record.status, record.removal_reason) == ("CANCELED", REMOVAL_IOC_WOULD_REST)
        assert record.filled_quantums == 0
    assert state.fills == []
    assert state.get_subaccount(trader, 0).usdc == Decimal("10000")


def test_ioc_fill_price_is_rounded_to_a_tick_against_the_taker(
    state: ChainState, trader: str
) -> None:
    state.set_oracle_price(BTC, Decimal("90000.4"))
    assert_code(state.place_order(make_order(state, trader, 1, price="90000")), 0)
    assert state.fills == []  # the best ask is 90001 > limit
    assert_code(state.place_order(make_order(state, trader, 2, price="90001")), 0)
    assert state.fills[-1].price == Decimal(90001)
    sell = make_order(state, trader, 3, buy=False, price="90000")
    assert_code(state.place_order(sell), 0)
    assert state.fills[-1].price == Decimal(90000)


# ---------------------------------------------------------------------------- reduce-only


def test_reduce_only_larger_than_the_position_closes_it_without_flipping(
    state: ChainState, trader: str
) -> None:
    state.place_order(make_order(state, trader, 1, size="0.01"))
    close = make_order(state, trader, 2, buy=False, size="0.03", price="1", reduce_only=True)
    assert_code(state.place_order(close), 0)

    assert position(state, trader) == 0
    record = record_of(state, close)
    assert record.filled_quantums == state.markets[BTC].quantums_from_size(Decimal("0.01"))
    assert (record.status, record.removal_reason) == ("CANCELED", REMOVAL_REDUCE_ONLY_RESIZE)
    (closed,) = state.positions_of(trader, 0)
    assert closed.status == "CLOSED"
    assert closed.size == 0


def test_reduce_only_in_the_positions_direction_or_without_position_is_refused(
    state: ChainState, trader: str
) -> None:
    no_position = make_order(state, trader, 1, buy=False, price="1", reduce_only=True)
    assert_code(state.place_order(no_position), 2001)

    state.place_order(make_order(state, trader, 2))
    same_direction = make_order(state, trader, 3, reduce_only=True)
    assert_code(state.place_order(same_direction), 2001)
    assert position(state, trader) == Decimal("0.01")


def test_reduce_only_must_require_immediate_execution(state: ChainState, trader: str) -> None:
    resting = make_order(state, trader, 1, tif=TIF_UNSPECIFIED, reduce_only=True)
    assert_code(state.place_order(resting), 9003)
    long_term = make_order(
        state, trader, 2, flags=ORDER_FLAG_LONG_TERM, tif=TIF_UNSPECIFIED, reduce_only=True
    )
    assert_code(state.place_order(long_term), 9003)


# ---------------------------------------------------------------------------- conditional


def test_conditional_stop_loss_triggers_when_the_oracle_moves_through_it(
    state: ChainState, trader: str
) -> None:
    state.place_order(make_order(state, trader, 1, size="0.01"))
    stop = make_order(
        state,
        trader,
        2,
        buy=False,
        flags=ORDER_FLAG_CONDITIONAL,
        condition=CONDITION_STOP_LOSS,
        trigger="85000",
        price="80000",
        reduce_only=True,
    )
    assert_code(state.place_order(stop), 0)
    record = record_of(state, stop)
    assert record.status == "UNTRIGGERED"

    state.set_oracle_price(BTC, Decimal("86000"))
    state.advance_block()
    assert record.status == "UNTRIGGERED"

    state.set_oracle_price(BTC, Decimal("84000"))
    state.advance_block()  # EndBlocker triggers it…
    assert (record.status, record.triggered_at_height) == ("OPEN", state.height)
    assert position(state, trader) == Decimal("0.01")

    state.advance_block()  # …and it executes in the next block at the oracle.
    assert record.status == "FILLED"
    assert state.fills[-1].price == Decimal(84000)
    assert position(state, trader) == 0


def test_take_profit_and_untouched_stop_after_close_show_the_oco_pitfall(
    state: ChainState, trader: str
) -> None:
    state.place_order(make_order(state, trader, 1, size="0.01"))
    common = {"buy": False, "flags": ORDER_FLAG_CONDITIONAL, "reduce_only": True, "price": "1"}
    take_profit = make_order(
        state, trader, 2, condition=CONDITION_TAKE_PROFIT, trigger="95000", **common
    )
    stop_loss = make_order(
        state, trader, 3, condition=CONDITION_STOP_LOSS, trigger="85000", **common
    )
    assert_code(state.place_order(take_profit), 0)
    assert_code(state.place_order(stop_loss), 0)

    state.set_oracle_price(BTC, Decimal("96000"))
    state.advance_blocks(2)
    assert record_of(state, take_profit).status == "FILLED"
    assert position(state, trader) == 0
    # No native OCO: the stop-loss stays and, once triggered, dies as invalid reduce-only.
    assert record_of(state, stop_loss).status == "UNTRIGGERED"
    state.set_oracle_price(BTC, Decimal("84000"))
    state.advance_blocks(2)
    sl = record_of(state, stop_loss)
    assert (sl.status, sl.removal_reason) == ("CANCELED", REMOVAL_INVALID_REDUCE_ONLY)


def test_conditional_orders_validate_condition_and_trigger(state: ChainState, trader: str) -> None:
    no_condition = make_order(state, trader, 1, flags=ORDER_FLAG_CONDITIONAL, trigger="85000")
    assert_code(state.place_order(no_condition), 6000)
    no_trigger = make_order(
        state, trader, 2, flags=ORDER_FLAG_CONDITIONAL, condition=CONDITION_STOP_LOSS
    )
    assert_code(state.place_order(no_trigger), 6001)


# ---------------------------------------------------------------------------- client ids


def test_short_term_replacement_needs_a_larger_good_til_block(
    state: ChainState, trader: str
) -> None:
    gtb = state.height + 10
    resting = make_order(state, trader, 7, price="80000", tif=TIF_UNSPECIFIED, gtb=gtb)
    assert_code(state.place_order(resting), 0)
    assert record_of(state, resting).status == "OPEN"

    assert_code(state.place_order(resting), 20)
    other_side = make_order(
        state, trader, 7, buy=False, price="99000", tif=TIF_UNSPECIFIED, gtb=gtb + 2
    )
    assert_code(state.place_order(other_side), 20)
    replacement = make_order(state, trader, 7, price="81000", tif=TIF_UNSPECIFIED, gtb=gtb + 1)
    assert_code(state.place_order(replacement), 0)
    record = record_of(state, replacement)
    assert record.order.subticks == replacement.subticks
    assert len(state.orders_of(trader, 0)) == 1


def test_a_fully_filled_short_term_order_id_answers_24(state: ChainState, trader: str) -> None:
    order = make_order(state, trader, 8)
    assert_code(state.place_order(order), 0)
    # Same block: the matched order counts as existing, so the same GTB is a bad replacement.
    assert_code(state.place_order(order), 20)
    state.advance_block()
    order.good_til_block += 1
    assert_code(state.place_order(order), 24)
    assert len(state.fills) == 1


def test_a_cancelled_short_term_order_id_answers_7(state: ChainState, trader: str) -> None:
    gtb = state.height + 10
    order = make_order(state, trader, 9, price="80000", tif=TIF_UNSPECIFIED, gtb=gtb)
    assert_code(state.place_order(order), 0)
    assert_code(state.cancel_order(order.order_id, good_til_block=gtb), 0)
    assert record_of(state, order).status == "CANCELED"

    assert_code(state.place_order(order), 7)
    assert_code(state.cancel_order(order.order_id, good_til_block=gtb), 9)
    order.good_til_block = gtb + 1
    assert_code(state.place_order(order), 0)


def test_a_live_stateful_duplicate_answers_3005_and_is_reusable_after_removal(
    state: ChainState, trader: str
) -> None:
    order = make_order(
        state, trader, 10, flags=ORDER_FLAG_LONG_TERM, tif=TIF_UNSPECIFIED, price="80000"
    )
    assert_code(state.place_order(order), 0)
    assert record_of(state, order).status == "OPEN"
    assert_code(state.place_order(order), 3005)

    cancel_until = int((state.block_time + timedelta(days=1)).timestamp())
    assert_code(state.cancel_order(order.order_id, good_til_block_time=cancel_until), 0)
    assert_code(state.cancel_order(order.order_id, good_til_block_time=cancel_until), 3006)
    state.advance_block()
    assert_code(state.place_order(order), 0)
    assert record_of(state, order).status == "OPEN"


# ---------------------------------------------------------------------------- validity windows


def test_short_term_good_til_block_window(state: ChainState, trader: str) -> None:
    assert SHORT_BLOCK_WINDOW == 40
    height = state.height
    assert_code(state.place_order(make_order(state, trader, 1, gtb=height)), 10)
    assert_code(
        state.place_order(make_order(state, trader, 2, gtb=height + SHORT_BLOCK_WINDOW + 1)), 11
    )
    assert_code(state.place_order(make_order(state, trader, 3, gtb=height + SHORT_BLOCK_WINDOW)), 0)
    assert_code(state.place_order(make_order(state, trader, 4, gtb=height + 1)), 0)
    missing = make_order(state, trader, 5)
    missing.ClearField("good_til_block")
    assert_code(state.place_order(missing), 5)


def test_stateful_orders_need_a_good_til_block_time_in_the_window(
    state: ChainState, trader: str
) -> None:
    now = int(state.block_time.timestamp())
    kwargs = {"flags": ORDER_FLAG_LONG_TERM, "tif": TIF_UNSPECIFIED, "price": "80000"}
    assert_code(state.place_order(make_order(state, trader, 1, gtbt=now, **kwargs)), 3003)
    too_far = now + 96 * 86400
    assert_code(state.place_order(make_order(state, trader, 2, gtbt=too_far, **kwargs)), 3004)
    ioc = make_order(state, trader, 3, flags=ORDER_FLAG_LONG_TERM, tif=TIF_IOC)
    assert_code(state.place_order(ioc), 3002)


def test_orders_expire(state: ChainState, trader: str, clock: FakeClock) -> None:
    short = make_order(state, trader, 1, price="80000", tif=TIF_UNSPECIFIED, gtb=state.height + 2)
    state.place_order(short)
    gtbt = int((state.block_time + timedelta(seconds=30)).timestamp())
    long_term = make_order(
        state, trader, 2, flags=ORDER_FLAG_LONG_TERM, tif=TIF_UNSPECIFIED, price="80000", gtbt=gtbt
    )
    state.place_order(long_term)

    state.advance_block()
    assert record_of(state, short).status == "OPEN"
    state.advance_block()
    assert (record_of(state, short).status, record_of(state, short).removal_reason) == (
        "CANCELED",
        REMOVAL_EXPIRED,
    )
    assert record_of(state, long_term).status == "OPEN"
    clock.advance(31)
    state.advance_block()
    assert record_of(state, long_term).removal_reason == REMOVAL_EXPIRED


def test_basic_validation_codes(state: ChainState, trader: str) -> None:
    odd_size = make_order(state, trader, 1)
    odd_size.quantums += 1
    assert_code(state.place_order(odd_size), 12)
    odd_price = make_order(state, trader, 2)
    odd_price.subticks += 1
    assert_code(state.place_order(odd_price), 12)
    zero = make_order(state, trader, 3)
    zero.quantums = 0
    assert_code(state.place_order(zero), 4)
    bad_clob = make_order(state, trader, 4)
    bad_clob.order_id.clob_pair_id = 42
    assert_code(state.place_order(bad_clob), 8)
    no_side = make_order(state, trader, 5)
    no_side.side = Order.Side.SIDE_UNSPECIFIED
    assert_code(state.place_order(no_side), 3)
    bad_owner = make_order(state, "cosmos1xyz", 6)
    assert_code(state.place_order(bad_owner), 201, "subaccounts")
    twap = make_order(state, trader, 7, flags=128, tif=TIF_UNSPECIFIED)
    assert_code(state.place_order(twap), 3000)


# ---------------------------------------------------------------------------- money


def test_entry_price_realized_and_unrealized_pnl(state: ChainState, trader: str) -> None:
    state.place_order(make_order(state, trader, 1, size="0.01", price="90000"))
    state.set_oracle_price(BTC, Decimal("92000"))
    state.place_order(make_order(state, trader, 2, size="0.01", price="92000"))
    state.set_oracle_price(BTC, Decimal("95000"))
    state.place_order(make_order(state, trader, 3, buy=False, size="0.01", price="95000"))

    sub = state.get_subaccount(trader, 0)
    pos = sub.positions[BTC]
    assert pos.entry_price == Decimal(91000)
    assert (pos.size, pos.max_size, pos.sum_open, pos.sum_close) == (
        Decimal("0.01"),
        Decimal("0.02"),
        Decimal("0.02"),
        Decimal("0.01"),
    )
    assert pos.exit_price == Decimal(95000)
    assert pos.realized_pnl == Decimal(40)
    assert pos.unrealized_pnl(state.markets[BTC].oracle_price) == Decimal(40)
    fees = sum((f.fee for f in state.fills), Decimal(0))
    assert fees == Decimal("0.45") + Decimal("0.46") + Decimal("0.475")
    assert state.equity(sub) == Decimal(10000) + 40 + 40 - fees
    assert state.free_collateral(sub) == state.equity(sub) - Decimal("0.01") * 95000 * Decimal(
        "0.02"
    )


def test_short_positions_and_flips(state: ChainState, trader: str) -> None:
    state.place_order(make_order(state, trader, 1, buy=False, size="0.02", price="1"))
    pos = state.get_subaccount(trader, 0).positions[BTC]
    assert (pos.side, pos.size, pos.max_size) == ("SHORT", Decimal("-0.02"), Decimal("-0.02"))
    state.set_oracle_price(BTC, Decimal("89000"))
    assert pos.unrealized_pnl(Decimal(89000)) == Decimal(20)

    state.place_order(make_order(state, trader, 2, size="0.03", price="89000"))
    closed, opened = state.positions_of(trader, 0)
    assert (closed.status, closed.realized_pnl) == ("CLOSED", Decimal(20))
    assert (opened.side, opened.size, opened.entry_price) == (
        "LONG",
        Decimal("0.01"),
        Decimal(89000),
    )


def test_taker_and_maker_fees(state: ChainState, trader: str) -> None:
    state.place_order(make_order(state, trader, 1, size="0.01"))
    assert state.fills[-1].fee == Decimal("0.45")  # 900 USD * 5 bps

    resting = make_order(
        state, trader, 2, flags=ORDER_FLAG_LONG_TERM, tif=TIF_UNSPECIFIED, price="89000"
    )
    state.place_order(resting)
    assert record_of(state, resting).status == "OPEN"
    state.set_oracle_price(BTC, Decimal("88500"))
    assert record_of(state, resting).status == "OPEN"  # crossings act at the next block
    state.advance_block()
    maker = state.fills[-1]
    assert (maker.liquidity, maker.price, maker.fee) == ("MAKER", Decimal(89000), Decimal("0.089"))
    assert record_of(state, resting).status == "FILLED"
    usdc = Decimal(10000) - 900 - Decimal("0.45") - 890 - Decimal("0.089")
    assert state.get_subaccount(trader, 0).usdc == usdc


def test_post_only_that_would_cross_is_cancelled(state: ChainState, trader: str) -> None:
    order = make_order(state, trader, 1, tif=TIF_POST_ONLY, price="91000")
    assert_code(state.place_order(order), 0)
    assert record_of(state, order).status == "CANCELED"


def test_collateral_checks(state: ChainState, trader: str) -> None:
    # 10,000 USDC at 2% initial margin carries at most ~500,000 USD of BTC; a resting order is
    # checked as if filled at its own price.
    too_big_stateful = make_order(
        state,
        trader,
        1,
        buy=False,
        flags=ORDER_FLAG_LONG_TERM,
        tif=TIF_UNSPECIFIED,
        size="20",
        price="91000",
    )
    assert_code(state.place_order(too_big_stateful), 3007)
    too_big_ioc = make_order(state, trader, 2, size="6")
    assert_code(state.place_order(too_big_ioc), 0)  # CheckTx passes; the order dies
    record = record_of(state, too_big_ioc)
    assert (record.status, record.removal_reason) == ("CANCELED", REMOVAL_UNDERCOLLATERALIZED)
    assert_code(state.place_order(make_order(state, trader, 3, size="5")), 0)
    assert position(state, trader) == Decimal(5)

    broke = new_key().address
    assert_code(state.place_order(make_order(state, broke, 1, size="0.001")), 0)
    assert state.position_size(broke, 0, BTC) == 0


def test_withdrawal_keeps_the_subaccount_collateralized(state: ChainState, trader: str) -> None:
    state.place_order(make_order(state, trader, 1, size="1"))
    assert_code(state.withdraw(trader, 0, Decimal("9000")), 102, "subaccounts")
    assert_code(state.withdraw(trader, 0, Decimal("1000")), 0)
    assert state.get_subaccount(trader, 0).net_transfers == Decimal(9000)


def test_block_rate_limit_for_stateful_orders(state: ChainState, trader: str) -> None:
    kwargs = {"flags": ORDER_FLAG_LONG_TERM, "tif": TIF_UNSPECIFIED, "price": "80000"}
    assert_code(state.place_order(make_order(state, trader, 1, **kwargs)), 0)
    assert_code(state.place_order(make_order(state, trader, 2, **kwargs)), 0)
    assert_code(state.place_order(make_order(state, trader, 3, **kwargs)), 5001)
    state.advance_block()
    assert_code(state.place_order(make_order(state, trader, 3, **kwargs)), 0)


def test_batch_cancel(state: ChainState, trader: str) -> None:
    gtb = state.height + 10
    orders = [
        make_order(state, trader, cid, price="80000", tif=TIF_UNSPECIFIED, gtb=gtb)
        for cid in (1, 2)
    ]
    for order in orders:
        state.place_order(order)
    sub_id = SubaccountId(owner=trader, number=0)
    batch = OrderBatch(clob_pair_id=0, client_ids=[1, 2])
    assert_code(state.batch_cancel(sub_id, [batch], gtb), 0)
    assert [record_of(state, o).status for o in orders] == ["CANCELED", "CANCELED"]
    assert_code(state.batch_cancel(sub_id, [batch], gtb), 46)
    assert_code(state.batch_cancel(sub_id, [], gtb), 45)


def test_short_term_orders_can_wait_for_the_next_block(clock: FakeClock) -> None:
    state = ChainState(clock=clock, short_term_fill_next_block=True)
    owner = new_key().address
    state.deposit(owner, 0, Decimal(1000))
    order = make_order(state, owner, 1)
    assert_code(state.place_order(order), 0)
    assert record_of(state, order).status == "BEST_EFFORT_OPENED"
    state.advance_block()
    assert record_of(state, order).status == "FILLED"
    assert state.fills[0].created_at_height == state.height


# ---------------------------------------------------------------------------- events, pnl


def test_events_carry_order_fill_position_and_asset_updates(state: ChainState, trader: str) -> None:
    events: list[ChainEvent] = []
    unsubscribe = state.subscribe(events.append)
    state.set_oracle_price(ETH, Decimal("3100"))
    state.place_order(make_order(state, trader, 1, ticker=ETH, price="3200", size="0.1"))
    state.advance_block()
    unsubscribe()
    state.advance_block()

    oracle, update, block = events
    assert isinstance(oracle, OraclePriceUpdate)
    assert (oracle.ticker, oracle.price, oracle.market_id) == (ETH, Decimal(3100), 1)
    assert isinstance(update, SubaccountUpdate)
    assert (update.address, update.subaccount_number) == (trader, 0)
    assert [o.status for o in update.orders] == ["FILLED"]
    assert [f.price for f in update.fills] == [Decimal(3100)]
    assert [p.size for p in update.positions] == [Decimal("0.1")]
    assert update.asset_changed
    assert isinstance(block, BlockUpdate)
    assert block.height == state.height - 1


def test_historical_pnl_snapshots(clock: FakeClock) -> None:
    state = ChainState(clock=clock, pnl_interval_blocks=5)
    owner = new_key().address
    state.deposit(owner, 0, Decimal(1000))
    state.advance_blocks(10)
    assert len(state.pnl_ticks) == 2
    assert state.pnl_ticks[-1].equity == Decimal(1000)
    assert state.pnl_ticks[-1].total_pnl == 0
    assert state.pnl_ticks[-1].block_height == state.height


# ---------------------------------------------------------------------------- accounts


def test_accounts_and_timestamp_nonces(state: ChainState) -> None:
    key = new_key()
    first = state.create_account(key.address, key.public_key)
    second = state.create_account(new_key().address)
    assert second.account_number == first.account_number + 1
    assert state.create_account(key.address) is first
    assert state.get_account(key.address).pub_key == key.public_key
    assert state.get_account(new_key().address) is None
    with pytest.raises(ValueError, match="invalid dydx address"):
        state.create_account("cosmos1notdydx")

    for nonce in range(1, 26):
        first.record_timestamp_nonce(1_700_000_000_000 + nonce)
    assert len(first.timestamp_nonces) == 20
    assert min(first.timestamp_nonces) == 1_700_000_000_006
    assert first.max_ejected_nonce == 1_700_000_000_005


def test_authenticators_like_x_accountplus(state: ChainState) -> None:
    owner = new_key().address
    api = new_key()
    config = web_app_trading_key_config(api.public_key)
    first = state.add_authenticator(owner, "AllOf", config)
    second = state.add_authenticator(new_key().address, "SignatureVerification", api.public_key)
    assert (first, second) == (0, 1)

    (record,) = state.get_authenticators(owner)
    assert (record.id, record.type, record.config) == (0, "AllOf", config)
    subs = decode_sub_authenticators(record.config)
    assert [t for t, _ in subs] == ["SignatureVerification", "AnyOf", "SubaccountFilter"]
    assert subs[0][1] == api.public_key
    assert subs[2][1] == b"0"
    filters = decode_sub_authenticators(subs[1][1])
    assert [c for _, c in filters] == [
        b"/dydxprotocol.clob.MsgPlaceOrder",
        b"/dydxprotocol.clob.MsgCancelOrder",
        b"/dydxprotocol.clob.MsgBatchCancel",
    ]
    # The web app's exact bytes: compact JSON, base64 sub-configs.
    assert json.loads(config)[0] == {
        "type": "SignatureVerification",
        "config": base64.b64encode(api.public_key).decode(),
    }
    assert b" " not in config

    # dydx-v4-client's Authenticator.compose encodes sub-configs as byte arrays.
    composed = json.dumps(
        [
            {"type": "SignatureVerification", "config": list(api.public_key)},
            {"type": "MessageFilter", "config": list(b"/dydxprotocol.clob.MsgPlaceOrder")},
        ]
    ).encode()
    assert state.add_authenticator(owner, "AllOf", composed) == 2

    with pytest.raises(AuthenticatorError, match="expected 33, got 32"):
        state.add_authenticator(owner, "SignatureVerification", b"\x02" * 32)
    with pytest.raises(AuthenticatorError, match="not registered"):
        state.add_authenticator(owner, "Passkey", b"")
    with pytest.raises(AuthenticatorError, match="no sub-authenticators"):
        state.add_authenticator(owner, "AnyOf", b'[{"type":"MessageFilter","config":"eA=="}]')

    state.remove_authenticator(owner, 0)
    assert [a.id for a in state.get_authenticators(owner)] == [2]
    with pytest.raises(AuthenticatorError, match="does not exist"):
        state.remove_authenticator(owner, 0)
    assert state.add_authenticator(owner, "MessageFilter", b"/x") == 3
