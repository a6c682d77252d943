"""The chain's acceptance rules the paper venue applies, refusing with the chain's own codes.

A paper refusal is the error the chain would give (same codespace and code, same plain
reason, see :func:`core.exchange.dydx.errors.error_from_chain`), so the execution layer handles
paper and live refusals alike. The market grid is the venue-neutral one
(:mod:`core.exchange.grid`); the short-term block window is dYdX's capability, since the
paper venue mimics that chain.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from core.exchange import grid
from core.exchange.dydx.constants import CAPABILITIES
from core.exchange.dydx.errors import error_from_chain
from core.exchange.errors import ExchangeError
from core.exchange.orders import OrderFlags, OrderRequest, PlaceResult, TimeInForce
from core.exchange.port import MarketInfo

#: The chain refuses stateful orders that expire further ahead than this.
MAX_STATEFUL_LIFETIME = timedelta(days=95)
_ALREADY_BROADCAST_LOG = "tx already in mempool cache"


def chain_error(codespace: str, code: int, raw_log: str) -> ExchangeError:
    """The error the chain would give for this refusal (same code, same plain reason).

    Args:
        codespace: The chain's codespace (``sdk``, ``clob``).
        code: A non-zero ABCI code.
        raw_log: What the logs show.
    """
    error = error_from_chain(codespace, code, raw_log)
    assert error is not None  # only called with non-zero codes
    return error


def already_placed(tx_hash: str, tx_bytes: bytes) -> PlaceResult:
    """The chain's answer to bytes it has seen before (``sdk`` 19): not a refusal."""
    return PlaceResult(
        tx_hash=tx_hash,
        code=19,
        codespace="sdk",
        raw_log=_ALREADY_BROADCAST_LOG,
        tx_bytes=tx_bytes,
        already_placed=True,
    )


def check_grid(request: OrderRequest, info: MarketInfo) -> None:
    """Refuse a size, price or trigger price off the market's grid.

    Raises:
        GridError: An amount is not on the grid.
    """
    grid.check_size(request.size, info)
    grid.check_price(request.price, info)
    if request.trigger_price is not None:
        grid.check_price(request.trigger_price, info)


def validate(
    request: OrderRequest, markets: Mapping[str, MarketInfo], height: int, now: datetime
) -> MarketInfo:
    """The chain's stateless checks of an order, in its codes.

    Args:
        request: The order.
        markets: Every listed market by ticker.
        height: The current (pseudo) block height.
        now: The current time (UTC).

    Returns:
        The order's market.

    Raises:
        PermanentExchangeError: Refused (unlisted or inactive market, off the grid, expiry
            passed or too far, long-term IOC).
        RetryableExchangeError: The short-term expiry block is out of the window.
    """
    info = markets.get(request.market)
    if info is None:
        raise chain_error("clob", 8, "paper: market not listed")
    if not info.is_active:
        raise chain_error("clob", 34, f"paper: market status {info.status}")
    try:
        check_grid(request, info)
    except grid.GridError as exc:
        raise chain_error("clob", 12, f"paper: {exc.reason}") from None
    if request.good_til_block is not None:
        if request.good_til_block <= height:
            raise chain_error("clob", 10, "paper: good_til_block already passed")
        if request.good_til_block > height + CAPABILITIES.short_term_window:
            raise chain_error("clob", 11, "paper: good_til_block beyond the window")
    if request.good_til_block_time is not None:
        if request.good_til_block_time <= now:
            raise chain_error("clob", 3003, "paper: good_til_block_time already passed")
        if request.good_til_block_time > now + MAX_STATEFUL_LIFETIME:
            raise chain_error("clob", 3004, "paper: good_til_block_time too far")
    if request.flags is OrderFlags.LONG_TERM and request.time_in_force is TimeInForce.IOC:
        raise chain_error("clob", 3002, "paper: long-term IOC order")
    return info
