"""Fields of the chain state, event batching and delivery, markets and the oracle."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal

from v4_proto.dydxprotocol.clob.order_pb2 import Order

from doubles.dydx.state.errors import TxResult
from doubles.dydx.state.events import (
    ChainEvent,
    Listener,
    OraclePriceUpdate,
    SubaccountUpdate,
    _UpdateBuilder,
)
from doubles.dydx.state.ids import OrderKey, SubaccountKey
from doubles.dydx.state.markets import Market, default_markets
from doubles.dydx.state.records import (
    Account,
    AuthenticatorRecord,
    DeliveryFailure,
    FillRecord,
    FundingPaymentRecord,
    OrderRecord,
    PendingStatefulOrder,
    PerpetualPosition,
    PnlTick,
    Subaccount,
    TransferRecord,
    TxLogEntry,
)

log = logging.getLogger("doubles.dydx.state")  # the module this code was split from


class ChainCore:
    """Fields of :class:`~doubles.dydx.state.ChainState`, its event delivery and oracle.

    The layers in :mod:`doubles.dydx.state.ledger`, ``matching``, ``placement`` and
    ``cancels`` build on this class; see :class:`~doubles.dydx.state.ChainState` for the
    arguments.
    """

    def __init__(
        self,
        *,
        chain_id: str = "localdydxprotocol",
        height: int = 1000,
        clock: Callable[[], datetime] | None = None,
        markets: dict[str, Market] | None = None,
        pnl_interval_blocks: int = 10,
        short_term_fill_next_block: bool = False,
        stateful_orders_next_block: bool = False,
    ) -> None:
        self.chain_id = chain_id
        self.height = height
        self._clock = clock or (lambda: datetime.now(UTC))
        self.block_time: datetime = self._clock()
        self._previous_block_time = self.block_time
        self.markets: dict[str, Market] = markets if markets is not None else default_markets()
        for market in self.markets.values():
            market.oracle_effective_at = self.block_time
            market.oracle_effective_height = height
        self.pnl_interval_blocks = pnl_interval_blocks
        self.short_term_fill_next_block = short_term_fill_next_block
        self.stateful_orders_next_block = stateful_orders_next_block
        #: Bumped by every delivered batch of events (lets the Indexer snapshot only changes).
        self.revision = 0
        #: Hash of the transaction being checked, set by the node around a clob message.
        self.current_tx_hash: str | None = None
        #: DeliverTx results of failed stateful placements by tx hash (GetTx shows them).
        self.deliver_results: dict[str, TxResult] = {}
        self.delivery_failures: list[DeliveryFailure] = []
        self._pending_stateful: list[PendingStatefulOrder] = []
        # Stateful cancels CheckTx accepted since the last block (uncommitted cancellations).
        self._uncommitted_stateful_cancels: set[OrderKey] = set()
        # Stateful orders removed in the block being built (ProcessProposerMatchesEvents).
        self._removed_stateful_this_block: set[OrderKey] = set()

        self.accounts: dict[str, Account] = {}
        self._next_account_number = 1
        self._authenticators: dict[str, dict[int, AuthenticatorRecord]] = {}
        self._next_authenticator_id = 0

        self.subaccounts: dict[SubaccountKey, Subaccount] = {}
        self.orders: dict[str, OrderRecord] = {}
        self.fills: list[FillRecord] = []
        self.positions: list[PerpetualPosition] = []
        self.transfers: list[TransferRecord] = []
        self.pnl_ticks: list[PnlTick] = []
        self.funding_payments: list[FundingPaymentRecord] = []
        self._funding_index: dict[str, Decimal] = {}
        self.tx_log: list[TxLogEntry] = []
        self.oracle_history: dict[str, deque[tuple[datetime, Decimal]]] = {
            ticker: deque([(self.block_time, m.oracle_price)], maxlen=10_000)
            for ticker, m in self.markets.items()
        }

        # Memclob bookkeeping for short-term orders.
        self._short_term_cancels: dict[OrderKey, int] = {}
        self._short_term_fills: dict[OrderKey, tuple[int, int]] = {}
        self._matched_this_block: dict[OrderKey, Order] = {}
        self._pending_short_term: list[str] = []
        self._triggered_pending: list[str] = []
        self._rate_counters: dict[tuple[str, str], deque[int]] = {}
        self._serial = 0

        self._listeners: list[Listener] = []
        self._batch_depth = 0
        self._pending_updates: dict[SubaccountKey, _UpdateBuilder] = {}
        self._outbox: list[ChainEvent] = []

    # ---------------------------------------------------------------- time, blocks, events

    def _next_serial(self) -> int:
        self._serial += 1
        return self._serial

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with every :data:`ChainEvent`; returns an unsubscribe function."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    @contextmanager
    def _batch(self) -> Iterator[None]:
        """Collect the events of one operation and deliver them when it ends."""
        self._batch_depth += 1
        try:
            yield
        finally:
            self._batch_depth -= 1
            if self._batch_depth == 0:
                self._flush()

    def _emit(self, event: ChainEvent) -> None:
        self._drain_updates()
        self._outbox.append(event)

    def _drain_updates(self) -> None:
        for (address, number), b in self._pending_updates.items():
            self._outbox.append(
                SubaccountUpdate(
                    address=address,
                    subaccount_number=number,
                    height=self.height,
                    orders=tuple(b.orders.values()),
                    fills=tuple(b.fills),
                    positions=tuple(b.positions.values()),
                    asset_changed=b.asset_changed,
                    transfers=tuple(b.transfers),
                )
            )
        self._pending_updates.clear()

    def _flush(self) -> None:
        self._drain_updates()
        if self._outbox:
            self.revision += 1
        outbox, self._outbox = self._outbox, []
        for event in outbox:
            for listener in list(self._listeners):
                try:
                    listener(event)
                except Exception:  # a broken listener must not corrupt the chain
                    log.exception("dYdX double: event listener failed")

    def _update(self, key: SubaccountKey) -> _UpdateBuilder:
        return self._pending_updates.setdefault(key, _UpdateBuilder())

    def _touch_order(self, record: OrderRecord) -> None:
        record.updated_at = self.block_time
        record.updated_at_height = self.height
        self._update((record.address, record.subaccount_number)).orders[record.id] = record

    # ---------------------------------------------------------------- markets and oracle

    def market_by_clob_pair(self, clob_pair_id: int) -> Market | None:
        """The market whose CLOB pair id is ``clob_pair_id``."""
        for market in self.markets.values():
            if market.clob_pair_id == clob_pair_id:
                return market
        return None

    def set_oracle_price(self, ticker: str, price: Decimal) -> None:
        """Set a market's oracle price; crossings take effect at the next block.

        Raises:
            KeyError: Unknown ticker.
            ValueError: Price not positive.
        """
        market = self.markets[ticker]
        price = Decimal(price)
        if price <= 0:
            raise ValueError("Oracle price must be > 0.")
        with self._batch():
            market.oracle_price = price
            market.oracle_effective_at = self.block_time
            market.oracle_effective_height = self.height
            self.oracle_history[ticker].append((self._clock(), price))
            self._emit(
                OraclePriceUpdate(ticker, market.market_id, price, self.block_time, self.height)
            )

    # ---------------------------------------------------------------- accounts
