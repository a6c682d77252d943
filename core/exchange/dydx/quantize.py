"""Exact conversions between human amounts and the dYdX v4 chain's integers.

dydx-v4-client's ``Market.calculate_quantums``/``calculate_subticks`` use floats and silently
round a too-small size *up* to one step. Here everything is :class:`~decimal.Decimal` and an
amount that is not on the market's grid is refused with a typed error; rounding happens only
where a caller asks for it (:func:`round_size_down`, :func:`round_price_to_tick`,
:func:`worst_price`).

Formulas (quote asset USDC has atomic resolution -6):

* ``quantums = size * 10**-atomic_resolution``, a positive multiple of ``step_base_quantums``;
* ``subticks = price * 10**(atomic_resolution - quantum_conversion_exponent + 6)``, a positive
  multiple of ``subticks_per_tick``.

ETH-USD (AR -9, QCE -9, step 1e6, spt 1e5): 0.01 ETH → 10,000,000 quantums; $3000.5 →
3,000,500,000 subticks.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, Inexact, localcontext
from typing import Protocol

from core.domain.states import OrderSide

#: ``ShortBlockWindow`` of the chain since protocol v9.5.0 (it was 20 before).
SHORT_BLOCK_WINDOW = 40
#: Blocks kept free at the end of the window: our height may be ahead of the checking node.
SHORT_BLOCK_SAFETY_MARGIN = 10
#: ``quantums`` and ``subticks`` are uint64 on the chain.
MAX_UINT64 = 2**64 - 1
_QUOTE_ATOMIC_RESOLUTION = -6


class QuantizationParams(Protocol):
    """The four parameters of a market's size and price grids (``MarketInfo`` has them)."""

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


class QuantizationError(ValueError):
    """An amount cannot be expressed on the market's grid.

    Attributes:
        reason: Plain words for the trader.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SizeBelowStepError(QuantizationError):
    """The size is smaller than the market's minimum order size (one step)."""


class SizeOffStepError(QuantizationError):
    """The size is not a whole number of steps."""


class PriceOffTickError(QuantizationError):
    """The price is not a whole number of ticks (or below one tick)."""


def _require_decimal(value: Decimal, what: str) -> None:
    if not isinstance(value, Decimal):
        raise TypeError(f"{what} must be a Decimal, not {type(value).__name__}")
    if not value.is_finite():
        raise QuantizationError(f"the {what} is not a finite number")


def _shift(value: Decimal, exponent: int) -> Decimal:
    """``value * 10**exponent``, exactly (never rounded by the context's precision)."""
    with localcontext() as ctx:
        ctx.prec = max(28, len(value.as_tuple().digits) + 2)
        ctx.traps[Inexact] = True
        return value.scaleb(exponent)


def _price_exponent(market: QuantizationParams) -> int:
    """Exponent ``e`` with ``subticks = price * 10**e``."""
    return market.atomic_resolution - market.quantum_conversion_exponent - _QUOTE_ATOMIC_RESOLUTION


def step_size(market: QuantizationParams) -> Decimal:
    """Size increment (and minimum order size) in base units."""
    return quantums_to_size(market.step_base_quantums, market)


def tick_size(market: QuantizationParams) -> Decimal:
    """Price increment in USD."""
    return subticks_to_price(market.subticks_per_tick, market)


def size_to_quantums(size: Decimal, market: QuantizationParams) -> int:
    """Convert a size in base units to the chain's base quantums, exactly.

    Args:
        size: Order size in base units (e.g. ``Decimal("0.01")`` ETH).
        market: The market's grid parameters.

    Returns:
        ``size * 10**-atomic_resolution``, a positive multiple of ``step_base_quantums``.

    Raises:
        TypeError: ``size`` is not a Decimal.
        SizeBelowStepError: ``size`` is smaller than one step (never rounded up).
        SizeOffStepError: ``size`` is not a whole number of steps (never rounded).
        QuantizationError: ``size`` is not finite or does not fit a uint64.
    """
    _require_decimal(size, "size")
    step = step_size(market)
    if size < step:
        raise SizeBelowStepError(
            f"the size {size.normalize():f} is below the market's minimum order size "
            f"{step.normalize():f}"
        )
    quantums = _shift(size, -market.atomic_resolution)
    if quantums != quantums.to_integral_value() or int(quantums) % market.step_base_quantums:
        raise SizeOffStepError(
            f"the size {size.normalize():f} is not a multiple of the market's step size "
            f"{step.normalize():f}"
        )
    result = int(quantums)
    if result > MAX_UINT64:
        raise QuantizationError("the size is too large for the exchange")
    return result


def quantums_to_size(quantums: int, market: QuantizationParams) -> Decimal:
    """Convert base quantums to a size in base units (exact)."""
    return _shift(Decimal(quantums), market.atomic_resolution)


def round_size_down(size: Decimal, market: QuantizationParams) -> Decimal:
    """The largest valid order size that is not larger than ``size``.

    Raises:
        TypeError: ``size`` is not a Decimal.
        SizeBelowStepError: ``size`` is smaller than one step, so no valid size exists.
        QuantizationError: ``size`` is not finite.
    """
    _require_decimal(size, "size")
    step = step_size(market)
    if size < step:
        raise SizeBelowStepError(
            f"the size {size.normalize():f} is below the market's minimum order size "
            f"{step.normalize():f}"
        )
    with localcontext() as ctx:
        ctx.prec = max(28, len(size.as_tuple().digits) + 30)
        steps = (size / step).to_integral_value(rounding=ROUND_FLOOR)
        return steps * step


def price_to_subticks(price: Decimal, market: QuantizationParams) -> int:
    """Convert a USD price to the chain's subticks, exactly.

    Args:
        price: Price in USD (per base unit), on the market's tick grid.
        market: The market's grid parameters.

    Returns:
        ``price * 10**(atomic_resolution - quantum_conversion_exponent + 6)``, a positive
        multiple of ``subticks_per_tick``.

    Raises:
        TypeError: ``price`` is not a Decimal.
        PriceOffTickError: ``price`` is below one tick or not a whole number of ticks; use
            :func:`round_price_to_tick` first.
        QuantizationError: ``price`` is not finite or does not fit a uint64.
    """
    _require_decimal(price, "price")
    tick = tick_size(market)
    subticks = _shift(price, _price_exponent(market))
    if (
        price < tick
        or subticks != subticks.to_integral_value()
        or int(subticks) % market.subticks_per_tick
    ):
        raise PriceOffTickError(
            f"the price {price.normalize():f} is not a positive multiple of the market's tick "
            f"size {tick.normalize():f}"
        )
    result = int(subticks)
    if result > MAX_UINT64:
        raise QuantizationError("the price is too large for the exchange")
    return result


def subticks_to_price(subticks: int, market: QuantizationParams) -> Decimal:
    """Convert subticks to a USD price (exact)."""
    return _shift(Decimal(subticks), -_price_exponent(market))


def round_price_to_tick(price: Decimal, market: QuantizationParams, *, up: bool) -> Decimal:
    """Round a USD price to a whole number of ticks, never below one tick.

    Args:
        price: Price in USD.
        market: The market's grid parameters.
        up: Round up (towards a higher price) if True, else down.

    Raises:
        TypeError: ``price`` is not a Decimal.
        QuantizationError: ``price`` is not finite or not positive.
    """
    _require_decimal(price, "price")
    if price <= 0:
        raise QuantizationError("the price must be positive")
    tick = tick_size(market)
    with localcontext() as ctx:
        ctx.prec = max(28, len(price.as_tuple().digits) + 30)
        ticks = (price / tick).to_integral_value(rounding=ROUND_CEILING if up else ROUND_FLOOR)
        return max(ticks, Decimal(1)) * tick


def worst_price(
    side: OrderSide, oracle_price: Decimal, slippage: Decimal, market: QuantizationParams
) -> Decimal:
    """The worst acceptable price of a market order, on the tick grid.

    A buy accepts up to ``oracle * (1 + slippage)`` rounded *up* to a tick, so the bound is
    never tighter than asked; a sell accepts down to ``oracle * (1 - slippage)`` rounded
    *down* to a tick (but at least one tick: the chain refuses a zero price).

    Args:
        side: BUY or SELL.
        oracle_price: Current oracle price in USD (positive).
        slippage: Accepted slippage as a fraction, ``0 <= slippage < 1`` (``0.05`` is 5 %).
        market: The market's grid parameters.

    Raises:
        TypeError: An amount is not a Decimal.
        QuantizationError: The oracle price is not positive or the slippage out of range.
    """
    _require_decimal(oracle_price, "oracle price")
    _require_decimal(slippage, "slippage")
    if oracle_price <= 0:
        raise QuantizationError("the oracle price must be positive")
    if not 0 <= slippage < 1:
        raise QuantizationError("the slippage must be at least 0 and below 100 %")
    with localcontext() as ctx:
        ctx.prec = 60
        if side is OrderSide.BUY:
            return round_price_to_tick(oracle_price * (1 + slippage), market, up=True)
        return round_price_to_tick(oracle_price * (1 - slippage), market, up=False)


def short_term_good_til_block(
    current_height: int,
    *,
    window: int = SHORT_BLOCK_WINDOW,
    margin: int = SHORT_BLOCK_SAFETY_MARGIN,
) -> int:
    """The ``good_til_block`` of a short-term order sent now.

    The chain accepts ``height < good_til_block <= height + ShortBlockWindow`` (``height`` is
    the last committed block of the checking node). Going ``window - margin`` blocks ahead
    tolerates a height we read that is up to ``window - margin - 1`` blocks stale, and a
    checking node up to ``margin`` blocks behind.

    Args:
        current_height: Last committed block height we know.
        window: The chain's ``ShortBlockWindow`` (40 since protocol v9.5.0, 20 before).
        margin: Blocks kept free at the end of the window.

    Raises:
        ValueError: Negative height, or a margin that leaves no block in the window.
    """
    if current_height < 0:
        raise ValueError("the block height cannot be negative")
    if not 0 <= margin < window:
        raise ValueError("the margin must leave at least one block in the window")
    return current_height + window - margin
