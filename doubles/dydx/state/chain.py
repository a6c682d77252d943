"""The whole in-memory dYdX v4 exchange: :class:`ChainState`."""

from __future__ import annotations

from datetime import datetime, timedelta

from doubles.dydx.state.cancels import ChainCancels
from doubles.dydx.state.events import BlockUpdate


class ChainState(ChainCancels):
    """The whole exchange: chain state (x/auth, x/accountplus, x/clob, x/subaccounts) and what
    the Indexer derives from it.

    Args:
        chain_id: Chain id reported by the node.
        height: Height of the last committed block at start.
        clock: Source of wall-clock time for block times (UTC, tz-aware).
        markets: Markets to list; defaults to :func:`default_markets`.
        pnl_interval_blocks: Record a historical-pnl tick every this many blocks (0 disables).
        short_term_fill_next_block: If True, short-term orders are accepted as
            ``BEST_EFFORT_OPENED`` and only matched at the next block, like a real proposer.
        stateful_orders_next_block: If True, stateful orders that pass CheckTx are only
            placed by DeliverTx in the next block, which repeats the stateful validation and
            the collateral check and may fail (see :attr:`delivery_failures`). False places
            them at once, as before.
    """

    def advance_block(self, block_time: datetime | None = None) -> int:
        """Commit the next block and run the EndBlocker work.

        Order of work: DeliverTx of the stateful orders CheckTx accepted (when
        ``stateful_orders_next_block``), execute conditional orders triggered in the previous
        block, match
        pending short-term orders, fill resting orders the oracle crossed, expire short-term
        orders past their good_til_block and stateful orders past their good_til_block_time,
        trigger conditional orders, and record a historical-pnl tick every
        ``pnl_interval_blocks`` blocks.

        Args:
            block_time: Time of the new block; defaults to the clock (never before the
                previous block).

        Returns:
            The new height.
        """
        with self._batch():
            self.height += 1
            self._previous_block_time = self.block_time
            candidate = block_time or self._clock()
            self.block_time = max(candidate, self.block_time + timedelta(microseconds=1))
            self._matched_this_block.clear()
            # Removals since the last delivery belong to this block's proposed operations,
            # which DeliverTx of a stateful placement checks (ErrStatefulOrderPreviouslyRemoved).
            self._deliver_pending_stateful()
            self._removed_stateful_this_block.clear()
            self._uncommitted_stateful_cancels.clear()

            triggered, self._triggered_pending = self._triggered_pending, []
            for order_id in triggered:
                record = self.orders.get(order_id)
                if record is not None and record.is_live:
                    self._execute_taker(record)

            pending, self._pending_short_term = self._pending_short_term, []
            for order_id in pending:
                record = self.orders.get(order_id)
                if record is not None and record.is_live:
                    self._execute_taker(record)

            self._match_resting_orders()
            self._expire_orders()
            self._trigger_conditional_orders()
            if self.pnl_interval_blocks and self.height % self.pnl_interval_blocks == 0:
                self.record_pnl_snapshot()
            self._emit(BlockUpdate(self.height, self.block_time))
        return self.height

    def advance_blocks(self, n: int) -> int:
        """Commit ``n`` blocks; returns the new height."""
        for _ in range(n):
            self.advance_block()
        return self.height
