"""Exact Decimal conversions between human amounts and dYdX v4 quantums and subticks, and
the venue-neutral grid on the double's markets."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from v4_proto.dydxprotocol.clob.order_pb2 import Order, OrderId
from v4_proto.dydxprotocol.subaccounts.subaccount_pb2 import SubaccountId

from core.domain.states import OrderSide
from core.exchange.dydx.constants import CAPABILITIES, SHORT_BLOCK_WINDOW
from core.exchange.dydx.errors import error_from_chain
from core.exchange.dydx.market import DydxMarket
from core.exchange.dydx.quantize import (
    price_to_subticks,
    quantums_to_size,
    size_to_quantums,
    step_size,
    subticks_to_price,
    tick_size,
)
from core.exchange.errors import PermanentExchangeError, RetryableExchangeError
from core.exchange.grid import (
    GridError,
    PriceOffTickError,
    SizeBelowStepError,
    SizeOffStepError,
    round_price_to_tick,
    round_size_down,
    worst_price,
)
from core.exchange.port import MarketInfo, VenueCapabilities
from doubles.dydx.keys import new_key
from doubles.dydx.state import (
    ORDER_FLAG_LONG_TERM,
    ORDER_FLAG_SHORT_TERM,
    TIF_IOC,
    TIF_UNSPECIFIED,
    ChainState,
    Market,
    default_markets,
)
from doubles.dydx.state import (
    SHORT_BLOCK_WINDOW as DOUBLE_SHORT_BLOCK_WINDOW,
)

MARKETS = default_markets()
BTC, ETH, SOL = MARKETS["BTC-USD"], MARKETS["ETH-USD"], MARKETS["SOL-USD"]
any_market = st.sampled_from(list(MARKETS.values()))


def _reference_eth() -> DydxMarket:
    """ETH-USD as the reference describes it (−9, −9, step 1e6, spt 1e5)."""
    info = MarketInfo(
        ticker="ETH-USD",
        status="ACTIVE",
        oracle_price=Decimal(3000),
        tick_size=Decimal("0.1"),
        step_size=Decimal("0.001"),
        min_order_size=Decimal("0.001"),
        initial_margin_fraction=Decimal("0.02"),
        maintenance_margin_fraction=Decimal("0.012"),
    )
    return DydxMarket(
        info=info,
        clob_pair_id=1,
        atomic_resolution=-9,
        quantum_conversion_exponent=-9,
        step_base_quantums=1_000_000,
        subticks_per_tick=100_000,
    )


# ------------------------------------------------------------------ the reference's examples


def test_reference_example_eth() -> None:
    eth = _reference_eth()
    assert size_to_quantums(Decimal("0.01"), eth) == 10_000_000
    assert price_to_subticks(Decimal("3000.5"), eth) == 3_000_500_000
    assert quantums_to_size(10_000_000, eth) == Decimal("0.01")
    assert subticks_to_price(3_000_500_000, eth) == Decimal("3000.5")
    assert tick_size(eth) == eth.tick_size
    assert step_size(eth) == eth.step_size == eth.info.min_order_size


@pytest.mark.parametrize(
    ("market", "tick", "step"),
    [(BTC, Decimal(1), Decimal("0.0001")), (ETH, Decimal("0.1"), Decimal("0.001")),
     (SOL, Decimal("0.01"), Decimal("0.1"))],
)  # fmt: skip
def test_grid_of_the_doubles_mainnet_markets(market: Market, tick: Decimal, step: Decimal) -> None:
    assert tick_size(market) == tick == market.tick_size
    assert step_size(market) == step == market.step_size


@pytest.mark.parametrize(
    ("market", "size", "quantums", "price", "subticks"),
    [
        (BTC, Decimal("0.0001"), 1_000_000, Decimal(90000), 9_000_000_000),
        (BTC, Decimal("1.2345"), 12_345_000_000, Decimal("90001"), 9_000_100_000),
        (ETH, Decimal("0.01"), 10_000_000, Decimal("3000.5"), 3_000_500_000),
        (SOL, Decimal("0.1"), 1_000_000, Decimal("135.01"), 13_501_000_000),
        (SOL, Decimal(25), 250_000_000, Decimal("0.01"), 1_000_000),
    ],
)
def test_conversions_agree_with_the_double(
    market: Market, size: Decimal, quantums: int, price: Decimal, subticks: int
) -> None:
    assert size_to_quantums(size, market) == quantums == market.quantums_from_size(size)
    assert price_to_subticks(price, market) == subticks == market.subticks_from_price(price)
    assert quantums_to_size(quantums, market) == size
    assert subticks_to_price(subticks, market) == price


# ------------------------------------------------------------------ refusals, never rounding


@pytest.mark.parametrize(
    ("market", "size"),
    [(BTC, Decimal("0.00009")), (ETH, Decimal("0.0009")), (SOL, Decimal("0.09")),
     (ETH, Decimal(0)), (ETH, Decimal("-0.01"))],
)  # fmt: skip
def test_size_below_one_step_is_refused(market: Market, size: Decimal) -> None:
    with pytest.raises(SizeBelowStepError, match="minimum order size"):
        size_to_quantums(size, market)
    with pytest.raises(SizeBelowStepError):
        round_size_down(size, market)


@pytest.mark.parametrize(
    ("market", "size"),
    [(BTC, Decimal("0.00015")), (ETH, Decimal("0.0105")), (SOL, Decimal("1.05")),
     (ETH, Decimal("0.0010000000001"))],
)  # fmt: skip
def test_size_off_the_step_grid_is_refused(market: Market, size: Decimal) -> None:
    with pytest.raises(SizeOffStepError, match="step size"):
        size_to_quantums(size, market)


def test_round_size_down_gives_the_largest_valid_size() -> None:
    assert round_size_down(Decimal("0.0105"), ETH) == Decimal("0.010")
    assert round_size_down(Decimal("1.05"), SOL) == Decimal("1.0")
    assert round_size_down(Decimal("0.00019999"), BTC) == Decimal("0.0001")
    assert round_size_down(Decimal("2"), BTC) == Decimal(2)
    assert size_to_quantums(round_size_down(Decimal("0.0105"), ETH), ETH) == 10_000_000


@pytest.mark.parametrize(
    ("market", "price"),
    [(BTC, Decimal("90000.5")), (ETH, Decimal("3000.55")), (SOL, Decimal("135.005")),
     (ETH, Decimal("0.05")), (ETH, Decimal(0)), (ETH, Decimal(-1))],
)  # fmt: skip
def test_price_off_the_tick_grid_is_refused(market: Market, price: Decimal) -> None:
    with pytest.raises(PriceOffTickError, match="tick size"):
        price_to_subticks(price, market)


def test_floats_and_non_finite_values_are_refused() -> None:
    with pytest.raises(TypeError):
        size_to_quantums(0.01, ETH)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        price_to_subticks(3000.5, ETH)  # type: ignore[arg-type]
    with pytest.raises(GridError):
        size_to_quantums(Decimal("NaN"), ETH)
    with pytest.raises(GridError):
        price_to_subticks(Decimal("Infinity"), ETH)


def test_round_price_to_tick() -> None:
    assert round_price_to_tick(Decimal("3000.55"), ETH, up=True) == Decimal("3000.6")
    assert round_price_to_tick(Decimal("3000.55"), ETH, up=False) == Decimal("3000.5")
    assert round_price_to_tick(Decimal("3000.5"), ETH, up=True) == Decimal("3000.5")
    assert round_price_to_tick(Decimal("0.001"), ETH, up=False) == Decimal("0.1")  # ≥ 1 tick
    with pytest.raises(GridError):
        round_price_to_tick(Decimal(0), ETH, up=True)


def test_worst_price_examples() -> None:
    assert worst_price(OrderSide.BUY, Decimal(3000), Decimal("0.05"), ETH) == Decimal(3150)
    assert worst_price(OrderSide.SELL, Decimal(3000), Decimal("0.05"), ETH) == Decimal(2850)
    # 135.07 * 1.013 = 136.82591 → 136.83 ; 135.07 * 0.987 = 133.31409 → 133.31
    assert worst_price(OrderSide.BUY, Decimal("135.07"), Decimal("0.013"), SOL) == Decimal("136.83")
    assert worst_price(OrderSide.SELL, Decimal("135.07"), Decimal("0.013"), SOL) == Decimal(
        "133.31"
    )
    with pytest.raises(GridError):
        worst_price(OrderSide.SELL, Decimal(3000), Decimal(1), ETH)
    with pytest.raises(GridError):
        worst_price(OrderSide.BUY, Decimal(3000), Decimal("-0.01"), ETH)


def test_short_term_good_til_block() -> None:
    assert SHORT_BLOCK_WINDOW == DOUBLE_SHORT_BLOCK_WINDOW == 40
    assert CAPABILITIES.short_term_window == SHORT_BLOCK_WINDOW
    assert CAPABILITIES.short_term_good_til_block(1000) == 1030
    assert VenueCapabilities(20, 5).short_term_good_til_block(1000) == 1015
    with pytest.raises(ValueError, match="margin"):
        VenueCapabilities(short_term_window=40, short_term_safety_margin=40)
    with pytest.raises(ValueError, match="negative"):
        CAPABILITIES.short_term_good_til_block(-1)


# ------------------------------------------------------------------ properties

steps = st.integers(min_value=1, max_value=10**9)


@given(market=any_market, n=steps)
def test_round_trip_on_grid_size_is_exact(market: Market, n: int) -> None:
    size = n * step_size(market)
    quantums = size_to_quantums(size, market)
    assert quantums == n * market.step_base_quantums
    assert quantums_to_size(quantums, market) == size
    assert round_size_down(size, market) == size


@given(market=any_market, n=steps, fraction=st.integers(min_value=1, max_value=999))
def test_off_grid_size_is_refused_and_rounds_down(market: Market, n: int, fraction: int) -> None:
    step = step_size(market)
    size = n * step + step * fraction / 1000
    with pytest.raises(SizeOffStepError):
        size_to_quantums(size, market)
    assert round_size_down(size, market) == n * step


@given(market=any_market, n=st.integers(min_value=1, max_value=10**12))
def test_round_trip_on_grid_price_is_exact(market: Market, n: int) -> None:
    price = n * tick_size(market)
    subticks = price_to_subticks(price, market)
    assert subticks == n * market.subticks_per_tick
    assert subticks_to_price(subticks, market) == price


@given(
    market=any_market,
    oracle=st.decimals(min_value=Decimal(1), max_value=Decimal(200_000), places=6),
    slippage=st.decimals(min_value=Decimal(0), max_value=Decimal("0.5"), places=4),
)
def test_worst_price_bounds(market: Market, oracle: Decimal, slippage: Decimal) -> None:
    tick = tick_size(market)
    buy = worst_price(OrderSide.BUY, oracle, slippage, market)
    sell = worst_price(OrderSide.SELL, oracle, slippage, market)
    buy_target, sell_target = oracle * (1 + slippage), oracle * (1 - slippage)
    assert buy_target <= buy < buy_target + tick
    if sell_target >= tick:
        assert sell <= sell_target < sell + tick
    else:  # the chain refuses a zero price: a sell never goes below one tick
        assert sell == tick
    assert sell <= oracle <= buy
    # both are valid chain prices
    assert price_to_subticks(buy, market) % market.subticks_per_tick == 0
    assert price_to_subticks(sell, market) % market.subticks_per_tick == 0


# ------------------------------------------------------------------ end to end with the double


def _order(
    market: Market,
    owner: str,
    client_id: int,
    *,
    side: OrderSide,
    size: Decimal,
    price: Decimal,
    short_term_height: int | None = None,
    good_til_block_time: int | None = None,
) -> Order:
    order = Order(
        order_id=OrderId(
            subaccount_id=SubaccountId(owner=owner, number=0),
            client_id=client_id,
            order_flags=ORDER_FLAG_SHORT_TERM
            if short_term_height is not None
            else (ORDER_FLAG_LONG_TERM),
            clob_pair_id=market.clob_pair_id,
        ),
        side=Order.Side.SIDE_BUY if side is OrderSide.BUY else Order.Side.SIDE_SELL,
        quantums=size_to_quantums(size, market),
        subticks=price_to_subticks(price, market),
        time_in_force=TIF_IOC if short_term_height is not None else TIF_UNSPECIFIED,
    )
    if short_term_height is not None:
        order.good_til_block = CAPABILITIES.short_term_good_til_block(short_term_height)
    if good_til_block_time is not None:
        order.good_til_block_time = good_til_block_time
    return order


@pytest.mark.parametrize("ticker", ["BTC-USD", "ETH-USD", "SOL-USD"])
def test_market_orders_built_here_are_accepted_and_filled_by_the_double(ticker: str) -> None:
    state = ChainState()
    owner = new_key().address
    state.create_account(owner)
    state.deposit(owner, 0, Decimal(100_000))
    market = state.markets[ticker]
    size = round_size_down(Decimal("0.123456789"), market) + step_size(market)
    buy_price = worst_price(OrderSide.BUY, market.oracle_price, Decimal("0.05"), market)
    result = state.place_order(
        _order(market, owner, 1, side=OrderSide.BUY, size=size, price=buy_price,
               short_term_height=state.height)
    )  # fmt: skip
    assert (result.code, result.codespace) == (0, "")
    assert state.position_size(owner, 0, ticker) == size

    sell_price = worst_price(OrderSide.SELL, market.oracle_price, Decimal("0.05"), market)
    result = state.place_order(
        _order(market, owner, 2, side=OrderSide.SELL, size=size, price=sell_price,
               short_term_height=state.height)
    )  # fmt: skip
    assert result.code == 0
    assert state.position_size(owner, 0, ticker) == 0


def test_good_til_block_is_inside_the_doubles_window_even_from_a_stale_height() -> None:
    state = ChainState(height=5000)
    owner = new_key().address
    state.create_account(owner)
    state.deposit(owner, 0, Decimal(10_000))
    price = worst_price(OrderSide.BUY, ETH.oracle_price, Decimal("0.01"), ETH)
    stale = state.height - 20
    order = _order(
        ETH, owner, 7, side=OrderSide.BUY, size=Decimal("0.01"), price=price,
        short_term_height=stale,
    )  # fmt: skip
    assert state.place_order(order).code == 0


def test_refusals_of_the_double_map_to_typed_errors() -> None:
    state = ChainState()
    owner = new_key().address
    state.create_account(owner)
    state.deposit(owner, 0, Decimal(100))
    gtbt = int((state.block_time + timedelta(days=1)).timestamp())

    too_big = _order(
        ETH, owner, 1, side=OrderSide.BUY, size=Decimal(10), price=Decimal(3000),
        good_til_block_time=gtbt,
    )  # fmt: skip
    result = state.place_order(too_big)
    error = error_from_chain(result.codespace, result.code, result.log)
    assert isinstance(error, PermanentExchangeError)
    assert (error.codespace, error.code) == ("clob", 3007)
    assert "not enough free collateral" in error.reason

    state.advance_block()  # the refused order counted towards this block's rate limit
    small = [
        _order(ETH, owner, 10 + i, side=OrderSide.BUY, size=Decimal("0.001"),
               price=Decimal(2000), good_til_block_time=gtbt)
        for i in range(3)
    ]  # fmt: skip
    results = [state.place_order(order) for order in small]
    assert [r.code for r in results[:2]] == [0, 0]
    limited = error_from_chain(results[2].codespace, results[2].code, results[2].log)
    assert isinstance(limited, RetryableExchangeError)
    assert (limited.codespace, limited.code) == ("clob", 5001)
