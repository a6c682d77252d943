"""A market's size and price grid, venue-neutral: the rounding that planning and venues share.

Every venue publishes a size step (also the minimum order size) and a price tick. Amounts are
:class:`~decimal.Decimal`; an amount that is not on the grid is refused with a typed error, and
rounding happens only where a caller asks for it (:func:`round_size_down`,
:func:`round_price_to_tick`, :func:`worst_price`). A venue's own integer encodings (dYdX's
quantums and subticks) stay inside that venue's adapter.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext
from typing import Protocol

from core.domain.states import OrderSide
from core.texts import exchange as texts


class GridParams(Protocol):
    """What a market's grid is made of (:class:`~core.exchange.port.MarketInfo` has it)."""

    @property
    def step_size(self) -> Decimal:
        """Size increment, and minimum order size, in base units."""
        ...

    @property
    def tick_size(self) -> Decimal:
        """Price increment in quote units (USD)."""
        ...


class GridError(ValueError):
    """An amount cannot be expressed on the market's grid.

    Attributes:
        reason: Plain words for the trader.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SizeBelowStepError(GridError):
    """The size is smaller than the market's minimum order size (one step)."""


class SizeOffStepError(GridError):
    """The size is not a whole number of steps."""


class PriceOffTickError(GridError):
    """The price is not a whole number of ticks (or below one tick)."""


def require_decimal(value: Decimal, what: str) -> None:
    """Refuse anything but a finite :class:`~decimal.Decimal` (floats never reach the grid).

    Raises:
        TypeError: ``value`` is not a Decimal.
        GridError: ``value`` is not finite.
    """
    if not isinstance(value, Decimal):
        raise TypeError(f"{what} must be a Decimal, not {type(value).__name__}")
    if not value.is_finite():
        raise GridError(texts.not_finite(what))


def _is_multiple(value: Decimal, unit: Decimal) -> bool:
    with localcontext() as ctx:
        ctx.prec = max(28, len(value.as_tuple().digits) + 30)
        ratio = value / unit
        return ratio == ratio.to_integral_value()


def check_size(size: Decimal, market: GridParams) -> None:
    """Refuse a size that is below one step or not a whole number of steps.

    Raises:
        TypeError: ``size`` is not a Decimal.
        SizeBelowStepError: ``size`` is smaller than one step (never rounded up).
        SizeOffStepError: ``size`` is not a whole number of steps (never rounded).
        GridError: ``size`` is not finite.
    """
    require_decimal(size, "size")
    step = market.step_size
    if size < step:
        raise SizeBelowStepError(texts.size_below_step(size, step))
    if not _is_multiple(size, step):
        raise SizeOffStepError(texts.size_off_step(size, step))


def check_price(price: Decimal, market: GridParams) -> None:
    """Refuse a price that is below one tick or not a whole number of ticks.

    Raises:
        TypeError: ``price`` is not a Decimal.
        PriceOffTickError: ``price`` is off the tick grid; use :func:`round_price_to_tick`.
        GridError: ``price`` is not finite.
    """
    require_decimal(price, "price")
    tick = market.tick_size
    if price < tick or not _is_multiple(price, tick):
        raise PriceOffTickError(texts.price_off_tick(price, tick))


def round_size_down(size: Decimal, market: GridParams) -> Decimal:
    """The largest valid order size that is not larger than ``size``.

    Raises:
        TypeError: ``size`` is not a Decimal.
        SizeBelowStepError: ``size`` is smaller than one step, so no valid size exists.
        GridError: ``size`` is not finite.
    """
    require_decimal(size, "size")
    step = market.step_size
    if size < step:
        raise SizeBelowStepError(texts.size_below_step(size, step))
    with localcontext() as ctx:
        ctx.prec = max(28, len(size.as_tuple().digits) + 30)
        steps = (size / step).to_integral_value(rounding=ROUND_FLOOR)
        return steps * step


def round_price_to_tick(price: Decimal, market: GridParams, *, up: bool) -> Decimal:
    """Round a price to a whole number of ticks, never below one tick.

    Args:
        price: Price in quote units.
        market: The market's grid.
        up: Round up (towards a higher price) if True, else down.

    Raises:
        TypeError: ``price`` is not a Decimal.
        GridError: ``price`` is not finite or not positive.
    """
    require_decimal(price, "price")
    if price <= 0:
        raise GridError(texts.PRICE_NOT_POSITIVE)
    tick = market.tick_size
    with localcontext() as ctx:
        ctx.prec = max(28, len(price.as_tuple().digits) + 30)
        ticks = (price / tick).to_integral_value(rounding=ROUND_CEILING if up else ROUND_FLOOR)
        return max(ticks, Decimal(1)) * tick


def worst_price(
    side: OrderSide, oracle_price: Decimal, slippage: Decimal, market: GridParams
) -> Decimal:
    """The worst acceptable price of a market order, on the tick grid.

    A buy accepts up to ``oracle * (1 + slippage)`` rounded *up* to a tick, so the bound is
    never tighter than asked; a sell accepts down to ``oracle * (1 - slippage)`` rounded
    *down* to a tick (but at least one tick: venues refuse a zero price).

    Args:
        side: BUY or SELL.
        oracle_price: Current oracle price (positive).
        slippage: Accepted slippage as a fraction, ``0 <= slippage < 1`` (``0.05`` is 5 %).
        market: The market's grid.

    Raises:
        TypeError: An amount is not a Decimal.
        GridError: The oracle price is not positive or the slippage out of range.
    """
    require_decimal(oracle_price, "oracle price")
    require_decimal(slippage, "slippage")
    if oracle_price <= 0:
        raise GridError(texts.ORACLE_NOT_POSITIVE)
    if not 0 <= slippage < 1:
        raise GridError(texts.SLIPPAGE_OUT_OF_RANGE)
    with localcontext() as ctx:
        ctx.prec = 60
        if side is OrderSide.BUY:
            return round_price_to_tick(oracle_price * (1 + slippage), market, up=True)
        return round_price_to_tick(oracle_price * (1 - slippage), market, up=False)
