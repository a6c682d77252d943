"""Events the chain state delivers to its listeners (the Indexer WebSocket)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from doubles.dydx.state.records import FillRecord, OrderRecord, PerpetualPosition, TransferRecord


@dataclass(frozen=True)
class SubaccountUpdate:
    """Changes to one subaccount produced by one operation (one ``v4_subaccounts`` message)."""

    address: str
    subaccount_number: int
    height: int
    orders: tuple[OrderRecord, ...] = ()
    fills: tuple[FillRecord, ...] = ()
    positions: tuple[PerpetualPosition, ...] = ()
    asset_changed: bool = False
    transfers: tuple[TransferRecord, ...] = ()


@dataclass(frozen=True)
class OraclePriceUpdate:
    """A new oracle price (``v4_markets`` ``oraclePrices``)."""

    ticker: str
    market_id: int
    price: Decimal
    effective_at: datetime
    effective_at_height: int


@dataclass(frozen=True)
class BlockUpdate:
    """A committed block (``v4_block_height``)."""

    height: int
    time: datetime


ChainEvent = SubaccountUpdate | OraclePriceUpdate | BlockUpdate
Listener = Callable[[ChainEvent], None]


@dataclass
class _UpdateBuilder:
    orders: dict[str, OrderRecord] = field(default_factory=dict)
    fills: list[FillRecord] = field(default_factory=list)
    positions: dict[str, PerpetualPosition] = field(default_factory=dict)
    asset_changed: bool = False
    transfers: list[TransferRecord] = field(default_factory=list)
