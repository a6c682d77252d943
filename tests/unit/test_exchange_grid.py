"""The venue-neutral size and price grid: on and off the grid, and rounding."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.domain.states import OrderSide
from core.exchange.grid import (
    GridError,
    PriceOffTickError,
    SizeBelowStepError,
    SizeOffStepError,
    check_price,
    check_size,
    round_price_to_tick,
    round_size_down,
    worst_price,
)

D = Decimal


@dataclass(frozen=True)
class Grid:
    step_size: Decimal
    tick_size: Decimal


ETH = Grid(step_size=D("0.001"), tick_size=D("0.1"))
COARSE = Grid(step_size=D(10), tick_size=D("0.25"))


@pytest.mark.parametrize(
    ("grid", "size"),
    [(ETH, D("0.001")), (ETH, D("0.010")), (ETH, D("12.345")), (COARSE, D(10)), (COARSE, D(990))],
)
def test_sizes_on_the_grid_pass(grid: Grid, size: Decimal) -> None:
    check_size(size, grid)
    assert round_size_down(size, grid) == size


@pytest.mark.parametrize(
    ("grid", "size", "error"),
    [
        (ETH, D("0.0009"), SizeBelowStepError),
        (ETH, D(0), SizeBelowStepError),
        (ETH, D("-0.01"), SizeBelowStepError),
        (ETH, D("0.0015"), SizeOffStepError),
        (COARSE, D(15), SizeOffStepError),
    ],
)
def test_sizes_off_the_grid_are_refused(grid: Grid, size: Decimal, error: type[GridError]) -> None:
    with pytest.raises(error) as raised:
        check_size(size, grid)
    assert isinstance(raised.value, GridError)
    assert isinstance(raised.value, ValueError)
    assert str(raised.value) == raised.value.reason


def test_size_messages_name_the_market_minimum_and_step() -> None:
    with pytest.raises(SizeBelowStepError, match=r"below the market's minimum order size 0\.001"):
        check_size(D("0.0001"), ETH)
    with pytest.raises(SizeOffStepError, match=r"not a multiple of the market's step size 0\.001"):
        check_size(D("0.0015"), ETH)


@pytest.mark.parametrize(
    ("grid", "price"), [(ETH, D("0.1")), (ETH, D("3000.5")), (COARSE, D("1.75"))]
)
def test_prices_on_the_grid_pass(grid: Grid, price: Decimal) -> None:
    check_price(price, grid)


@pytest.mark.parametrize(
    ("grid", "price"), [(ETH, D("3000.55")), (ETH, D("0.05")), (ETH, D(0)), (COARSE, D("1.1"))]
)
def test_prices_off_the_grid_are_refused(grid: Grid, price: Decimal) -> None:
    with pytest.raises(PriceOffTickError, match="tick size"):
        check_price(price, grid)


def test_floats_and_non_finite_amounts_are_refused() -> None:
    with pytest.raises(TypeError):
        check_size(0.01, ETH)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        check_price(3000.5, ETH)  # type: ignore[arg-type]
    with pytest.raises(GridError, match="finite"):
        check_size(D("NaN"), ETH)
    with pytest.raises(GridError, match="finite"):
        round_price_to_tick(D("Infinity"), ETH, up=True)


def test_rounding() -> None:
    assert round_size_down(D("0.0129"), ETH) == D("0.012")
    assert round_size_down(D(19), COARSE) == D(10)
    with pytest.raises(SizeBelowStepError):
        round_size_down(D("0.0009"), ETH)
    assert round_price_to_tick(D("3000.55"), ETH, up=True) == D("3000.6")
    assert round_price_to_tick(D("3000.55"), ETH, up=False) == D("3000.5")
    assert round_price_to_tick(D("1.3"), COARSE, up=False) == D("1.25")
    assert round_price_to_tick(D("0.01"), COARSE, up=False) == D("0.25")  # never below a tick
    with pytest.raises(GridError, match="positive"):
        round_price_to_tick(D(0), ETH, up=True)


def test_worst_price() -> None:
    assert worst_price(OrderSide.BUY, D(3000), D("0.05"), ETH) == D(3150)
    assert worst_price(OrderSide.SELL, D(3000), D("0.05"), ETH) == D(2850)
    assert worst_price(OrderSide.SELL, D("0.2"), D("0.9"), ETH) == D("0.1")  # at least a tick
    with pytest.raises(GridError, match="slippage"):
        worst_price(OrderSide.BUY, D(3000), D(1), ETH)
    with pytest.raises(GridError, match="oracle"):
        worst_price(OrderSide.BUY, D(0), D("0.01"), ETH)


@given(
    n=st.integers(min_value=1, max_value=10**9),
    fraction=st.integers(min_value=1, max_value=999),
)
def test_off_grid_sizes_round_down_to_the_grid(n: int, fraction: int) -> None:
    size = n * ETH.step_size + ETH.step_size * fraction / 1000
    with pytest.raises(SizeOffStepError):
        check_size(size, ETH)
    rounded = round_size_down(size, ETH)
    assert rounded == n * ETH.step_size
    check_size(rounded, ETH)


@given(price=st.decimals(min_value=D("0.01"), max_value=D(200_000), places=4))
def test_rounded_prices_are_on_the_grid_and_bracket_the_price(price: Decimal) -> None:
    up = round_price_to_tick(price, ETH, up=True)
    down = round_price_to_tick(price, ETH, up=False)
    check_price(up, ETH)
    check_price(down, ETH)
    assert up >= price
    assert down <= price or down == ETH.tick_size
    assert up - down <= ETH.tick_size
