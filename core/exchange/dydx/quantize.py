"""Exact conversions between human amounts and the dYdX v4 chain's integers.

dydx-v4-client's ``Market.calculate_quantums``/``calculate_subticks`` use floats and silently
round a too-small size *up* to one step. Here everything is :class:`~decimal.Decimal` and an
amount that is not on the market's grid is refused with the typed errors of
:mod:`core.exchange.grid` (rounding is :func:`core.exchange.grid.round_size_down` and friends).

Formulas (quote asset USDC has atomic resolution -6):

* ``quantums = size * 10**-atomic_resolution``, a positive multiple of ``step_base_quantums``;
* ``subticks = price * 10**(atomic_resolution - quantum_conversion_exponent + 6)``, a positive
  multiple of ``subticks_per_tick``.

ETH-USD (AR -9, QCE -9, step 1e6, spt 1e5): 0.01 ETH → 10,000,000 quantums; $3000.5 →
3,000,500,000 subticks.
"""

from __future__ import annotations

from decimal import Decimal, Inexact, localcontext
from typing import Protocol

from core.exchange.grid import GridError, GridParams, check_price, check_size

#: ``quantums`` and ``subticks`` are uint64 on the chain.
MAX_UINT64 = 2**64 - 1
_QUOTE_ATOMIC_RESOLUTION = -6


class QuantumParams(Protocol):
    """The four chain parameters of a market's size and price grids."""

    @property
    def atomic_resolution(self) -> int:
        """Base quantums are ``size * 10**-atomic_resolution``."""
        ...

    @property
    def quantum_conversion_exponent(self) -> int:
        """Relates subticks to quote quantums."""
        ...

    @property
    def step_base_quantums(self) -> int:
        """Order quantums are multiples of this."""
        ...

    @property
    def subticks_per_tick(self) -> int:
        """Order subticks are multiples of this."""
        ...


class QuantizationParams(QuantumParams, GridParams, Protocol):
    """A market's chain parameters and its grid in human units
    (:class:`~core.exchange.dydx.market.DydxMarket` has them)."""


def _shift(value: Decimal, exponent: int) -> Decimal:
    """``value * 10**exponent``, exactly (never rounded by the context's precision)."""
    with localcontext() as ctx:
        ctx.prec = max(28, len(value.as_tuple().digits) + 2)
        ctx.traps[Inexact] = True
        return value.scaleb(exponent)


def _price_exponent(market: QuantumParams) -> int:
    """Exponent ``e`` with ``subticks = price * 10**e``."""
    return market.atomic_resolution - market.quantum_conversion_exponent - _QUOTE_ATOMIC_RESOLUTION


def step_size(market: QuantumParams) -> Decimal:
    """Size increment (and minimum order size) in base units, from the chain parameters."""
    return quantums_to_size(market.step_base_quantums, market)


def tick_size(market: QuantumParams) -> Decimal:
    """Price increment in USD, from the chain parameters."""
    return subticks_to_price(market.subticks_per_tick, market)


def size_to_quantums(size: Decimal, market: QuantizationParams) -> int:
    """Convert a size in base units to the chain's base quantums, exactly.

    Args:
        size: Order size in base units (e.g. ``Decimal("0.01")`` ETH).
        market: The market's parameters.

    Returns:
        ``size * 10**-atomic_resolution``, a positive multiple of ``step_base_quantums``.

    Raises:
        TypeError: ``size`` is not a Decimal.
        SizeBelowStepError: ``size`` is smaller than one step (never rounded up).
        SizeOffStepError: ``size`` is not a whole number of steps (never rounded).
        GridError: ``size`` is not finite or does not fit a uint64.
    """
    check_size(size, market)
    result = int(_shift(size, -market.atomic_resolution))
    if result > MAX_UINT64:
        raise GridError("the size is too large for the exchange")
    return result


def quantums_to_size(quantums: int, market: QuantumParams) -> Decimal:
    """Convert base quantums to a size in base units (exact)."""
    return _shift(Decimal(quantums), market.atomic_resolution)


def price_to_subticks(price: Decimal, market: QuantizationParams) -> int:
    """Convert a USD price to the chain's subticks, exactly.

    Args:
        price: Price in USD (per base unit), on the market's tick grid.
        market: The market's parameters.

    Returns:
        ``price * 10**(atomic_resolution - quantum_conversion_exponent + 6)``, a positive
        multiple of ``subticks_per_tick``.

    Raises:
        TypeError: ``price`` is not a Decimal.
        PriceOffTickError: ``price`` is below one tick or not a whole number of ticks; use
            :func:`core.exchange.grid.round_price_to_tick` first.
        GridError: ``price`` is not finite or does not fit a uint64.
    """
    check_price(price, market)
    result = int(_shift(price, _price_exponent(market)))
    if result > MAX_UINT64:
        raise GridError("the price is too large for the exchange")
    return result


def subticks_to_price(subticks: int, market: QuantumParams) -> Decimal:
    """Convert subticks to a USD price (exact)."""
    return _shift(Decimal(subticks), -_price_exponent(market))
