"""The venue-neutral port to an account's history on the venue: equity over time and the
funding payments a subaccount paid or received. Read-only and public (no key needed)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol


@dataclass(frozen=True, slots=True)
class EquityPoint:
    """The subaccount's equity at one moment.

    Attributes:
        at: When it was measured (UTC).
        equity: Equity in USD.
        total_pnl: P&L since the subaccount began (equity less net transfers).
        net_transfers: Deposits less withdrawals so far.
    """

    at: datetime
    equity: Decimal
    total_pnl: Decimal
    net_transfers: Decimal


@dataclass(frozen=True, slots=True)
class FundingEvent:
    """A funding payment of one market at one funding tick.

    Attributes:
        at: When it was paid (UTC).
        height: The block of the tick (with the market, its identity for a subaccount).
        market: Market ticker.
        payment: Received (positive) or paid (negative), in USD.
        rate: The funding rate applied.
        position_size: The position it was paid on (negative: short).
        oracle_price: The oracle price used.
    """

    at: datetime
    height: int
    market: str
    payment: Decimal
    rate: Decimal
    position_size: Decimal
    oracle_price: Decimal


class AccountHistory(Protocol):
    """Reads an account's history from the venue."""

    async def equity(
        self, owner: str, subaccount: int, since: datetime | None
    ) -> list[EquityPoint]:
        """Equity snapshots since ``since`` (all when ``None``), oldest first.

        Raises:
            ExchangeError: The venue did not answer.
        """
        ...

    async def funding(
        self, owner: str, subaccount: int, since: datetime | None
    ) -> list[FundingEvent]:
        """Funding payments since ``since`` (all when ``None``), oldest first.

        Raises:
            ExchangeError: The venue did not answer.
        """
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
