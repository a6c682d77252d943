"""The exchange's real-time stream, venue-neutral: what the position monitor watches.

A venue's stream (:func:`core.exchange.factory.create_subaccount_stream` builds the configured
one) keeps WebSocket subscriptions to a set of subaccounts, turns the venue's messages into
the events below and hands them to a :class:`StreamSink`. It also answers a REST
:meth:`SubaccountStream.snapshot` of one subaccount in the same events, for catching up after
a reconnect and for polling while the WebSocket is down.

Every amount is a :class:`~decimal.Decimal` in human units, every time UTC-aware, as in
:mod:`core.exchange.port`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from core.domain.states import OrderSide, PositionSide


@dataclass(frozen=True, slots=True, order=True)
class SubaccountRef:
    """One subaccount on the venue.

    Attributes:
        owner_address: The owner (``dydx1…``).
        subaccount_number: The subaccount number.
    """

    owner_address: str
    subaccount_number: int

    @property
    def key(self) -> str:
        """``"<owner>/<number>"``: the venue's subscription id and our lease key."""
        return f"{self.owner_address}/{self.subaccount_number}"


@dataclass(frozen=True, slots=True)
class FillEvent:
    """One fill of the subaccount (ours, the owner's in the web app, or a liquidation).

    Attributes:
        fill_id: The venue's fill id (unique).
        order_id: The venue's order id; None for a liquidation or deleveraging.
        order_client_id: Our uint32 client id of the order when the venue told it, else None.
        market: Ticker.
        side: BUY or SELL.
        size: Filled size in base units (positive).
        price: Fill price in USD (positive).
        fee: Fee in USD (negative for a rebate).
        liquidation: Whether the subaccount was liquidated by this fill.
        at: When it happened.
        liquidity: ``MAKER`` or ``TAKER`` when the venue said, else empty.
        height: The fill's block when the venue said.
    """

    fill_id: str
    order_id: str | None
    order_client_id: int | None
    market: str
    side: OrderSide
    size: Decimal
    price: Decimal
    fee: Decimal
    liquidation: bool
    at: datetime
    liquidity: str = ""
    height: int | None = None


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """A change of one order of the subaccount.

    Attributes:
        order_id: The venue's order id.
        client_id: The order's uint32 client id.
        market: Ticker.
        status: ``OPEN``, ``FILLED``, ``CANCELED``, ``BEST_EFFORT_CANCELED``,
            ``BEST_EFFORT_OPENED`` or ``UNTRIGGERED`` (the values of
            :attr:`core.exchange.port.OpenOrder.status`).
        filled_size: Size filled so far, when the venue said.
        size: Total size, when the venue said.
        removal_reason: Why the venue removed the order (e.g. expired), when it did.
    """

    order_id: str
    client_id: int
    market: str
    status: str
    filled_size: Decimal | None = None
    size: Decimal | None = None
    removal_reason: str | None = None


@dataclass(frozen=True, slots=True)
class PositionEvent:
    """The subaccount's position in one market after a change.

    Attributes:
        market: Ticker.
        side: LONG or SHORT; None once the position is closed.
        size: Absolute size in base units (0 when closed).
        entry_price: Average entry price in USD; None when closed.
    """

    market: str
    side: PositionSide | None
    size: Decimal
    entry_price: Decimal | None


@dataclass(frozen=True, slots=True)
class OraclePrice:
    """An oracle price update.

    Attributes:
        market: Ticker.
        price: Oracle price in USD.
        at: When it took effect.
    """

    market: str
    price: Decimal
    at: datetime


#: What happened to a subaccount.
SubaccountEvent = FillEvent | OrderEvent | PositionEvent


class StreamSink(Protocol):
    """Receives what a :class:`SubaccountStream` sees. Calls must return quickly: the stream
    awaits them between reads."""

    async def on_events(self, ref: SubaccountRef, events: Sequence[SubaccountEvent]) -> None:
        """Updates of a watched subaccount, in the venue's order."""
        ...

    async def on_oracle(self, prices: Sequence[OraclePrice]) -> None:
        """Oracle price updates (only when markets are watched)."""
        ...

    async def on_live(self, refs: Sequence[SubaccountRef]) -> None:
        """These subaccounts are (again) subscribed: what happened while they were not is
        only known over REST (catch up)."""
        ...

    async def on_down(self, refs: Sequence[SubaccountRef]) -> None:
        """These subaccounts lost their subscription (connection dropped): poll them until
        :meth:`on_live`."""
        ...


class SubaccountStream(Protocol):
    """A venue's real-time stream of subaccounts (and oracle prices)."""

    async def start(self, sink: StreamSink) -> None:
        """Start delivering to ``sink`` (connections open as subaccounts are watched)."""
        ...

    async def watch(self, refs: Collection[SubaccountRef], *, markets: bool = False) -> None:
        """Subscribe exactly these subaccounts (and the oracle when ``markets``): new ones are
        subscribed, missing ones unsubscribed."""
        ...

    def is_live(self, ref: SubaccountRef) -> bool:
        """Whether ``ref`` is subscribed on an open connection right now."""
        ...

    @property
    def connection_count(self) -> int:
        """Open WebSocket connections."""
        ...

    async def snapshot(self, ref: SubaccountRef) -> list[SubaccountEvent]:
        """The subaccount's current orders, latest fills and positions over REST.

        Raises:
            ExchangeUnavailableError: The venue could not answer.
        """
        ...

    async def close(self) -> None:
        """Close every connection; nothing is delivered afterwards."""
        ...
