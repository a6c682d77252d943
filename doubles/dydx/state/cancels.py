"""Order cancels (``MsgCancelOrder``, ``MsgBatchCancel``) and the Indexer's queries."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from v4_proto.dydxprotocol.clob.order_pb2 import OrderId
from v4_proto.dydxprotocol.clob.tx_pb2 import OrderBatch
from v4_proto.dydxprotocol.subaccounts.subaccount_pb2 import SubaccountId

from doubles.dydx.keys import is_valid_address
from doubles.dydx.state.constants import (
    BATCH_CANCEL_RATE_LIMIT_WEIGHT,
    MAX_SUBACCOUNT_NUMBER,
    ORDER_FLAG_CONDITIONAL,
    ORDER_FLAG_LONG_TERM,
    ORDER_FLAG_SHORT_TERM,
    REMOVAL_USER_CANCELED,
    STATUS_CANCELED,
)
from doubles.dydx.state.errors import (
    ERR_BATCH_CANCEL_FAILED,
    ERR_INVALID_BATCH_CANCEL,
    ERR_INVALID_CLOB,
    ERR_INVALID_ORDER_FLAG,
    ERR_INVALID_ORDER_GOOD_TIL_BLOCK,
    ERR_INVALID_STATEFUL_ORDER_GOOD_TIL_BLOCK_TIME,
    ERR_INVALID_SUBACCOUNT_ID_NUMBER,
    ERR_INVALID_SUBACCOUNT_ID_OWNER,
    ERR_MEMCLOB_CANCEL_ALREADY_EXISTS,
    ERR_STATEFUL_ORDER_DOES_NOT_EXIST,
    OK,
    TxResult,
)
from doubles.dydx.state.ids import OrderKey, order_key, order_uuid
from doubles.dydx.state.placement import ChainPlacement
from doubles.dydx.state.records import FillRecord, OrderRecord, PerpetualPosition, TxLogEntry


class ChainCancels(ChainPlacement):
    """``MsgCancelOrder`` and ``MsgBatchCancel``, and the per-subaccount queries."""

    # ---------------------------------------------------------------- cancels

    def cancel_order(
        self, order_id: OrderId, good_til_block: int = 0, good_til_block_time: int = 0
    ) -> TxResult:
        """Process ``MsgCancelOrder``.

        Short-term cancels need a good_til_block in the short block window; they are
        remembered until that block, so re-placing the id with an equal or lower
        good_til_block answers ErrOrderIsCanceled (7). Stateful cancels need a
        good_til_block_time and a live order (else ErrStatefulOrderDoesNotExist, 3006).
        """
        with self._batch():
            result = self._cancel_order(order_id, good_til_block, good_til_block_time)
        self.tx_log.append(
            TxLogEntry(self.height, "cancel_order", order_key(order_id), result.code)
        )
        return result

    def _cancel_order(
        self, order_id: OrderId, good_til_block: int, good_til_block_time: int
    ) -> TxResult:
        sub_id = order_id.subaccount_id
        if not is_valid_address(sub_id.owner):
            return ERR_INVALID_SUBACCOUNT_ID_OWNER.result(sub_id.owner)
        if sub_id.number > MAX_SUBACCOUNT_NUMBER:
            return ERR_INVALID_SUBACCOUNT_ID_NUMBER.result(str(sub_id.number))
        flags = order_id.order_flags
        if flags not in (ORDER_FLAG_SHORT_TERM, ORDER_FLAG_CONDITIONAL, ORDER_FLAG_LONG_TERM):
            return ERR_INVALID_ORDER_FLAG.result(f"Order flags {flags}")
        if self.market_by_clob_pair(order_id.clob_pair_id) is None:
            return ERR_INVALID_CLOB.result(f"Clob {order_id.clob_pair_id} is not a valid clob")
        key = order_key(order_id)
        if flags == ORDER_FLAG_SHORT_TERM:
            if good_til_block == 0:
                return ERR_INVALID_ORDER_GOOD_TIL_BLOCK.result(
                    "cancellation goodTilBlock cannot be 0"
                )
            limited = self._rate_limit(sub_id.owner, stateful=False)
            if limited is not None:
                return limited
            return self._cancel_short_term(key, good_til_block)
        if good_til_block_time == 0:
            return ERR_INVALID_STATEFUL_ORDER_GOOD_TIL_BLOCK_TIME.result(
                "stateful order cancellation must have a goodTilBlockTime"
            )
        error = self._validate_good_til_block_time(good_til_block_time)
        if error is not None:
            return error
        owner, number, client_id, _, clob_pair_id = key
        record = self.orders.get(order_uuid(owner, number, client_id, clob_pair_id, flags))
        if record is None or not record.is_live:
            return ERR_STATEFUL_ORDER_DOES_NOT_EXIST.result(
                f"Stateful order id {key} does not exist in state"
            )
        self._remove(record, STATUS_CANCELED, REMOVAL_USER_CANCELED)
        # Until the next block the cancel is uncommitted: re-placing the id answers 3008.
        self._uncommitted_stateful_cancels.add(key)
        return OK

    def _cancel_short_term(self, key: OrderKey, good_til_block: int) -> TxResult:
        error = self._validate_good_til_block(good_til_block)
        if error is not None:
            return error
        existing_cancel = self._short_term_cancels.get(key)
        if existing_cancel is not None and existing_cancel >= good_til_block:
            return ERR_MEMCLOB_CANCEL_ALREADY_EXISTS.result(
                f"Existing cancel GoodTilBlock {existing_cancel}, new {good_til_block}"
            )
        self._short_term_cancels[key] = good_til_block
        record = self._live_short_term(key)
        if record is not None and record.order.good_til_block <= good_til_block:
            self._remove(record, STATUS_CANCELED, REMOVAL_USER_CANCELED)
        return OK

    def batch_cancel(
        self,
        subaccount_id: SubaccountId,
        short_term_cancels: Iterable[OrderBatch],
        good_til_block: int,
    ) -> TxResult:
        """Process ``MsgBatchCancel`` (short-term orders only).

        Succeeds if at least one cancel succeeded; ErrBatchCancelFailed (46) if all failed.
        """
        batches = list(short_term_cancels)
        with self._batch():
            result = self._batch_cancel(subaccount_id, batches, good_til_block)
        key = (subaccount_id.owner, subaccount_id.number)
        self.tx_log.append(TxLogEntry(self.height, "batch_cancel", key, result.code))
        return result

    def _batch_cancel(
        self, subaccount_id: SubaccountId, batches: list[OrderBatch], good_til_block: int
    ) -> TxResult:
        if not is_valid_address(subaccount_id.owner):
            return ERR_INVALID_SUBACCOUNT_ID_OWNER.result(subaccount_id.owner)
        total = sum(len(b.client_ids) for b in batches)
        if total == 0 or total > 100:
            return ERR_INVALID_BATCH_CANCEL.result(
                f"Batch cancel cannot have zero orders or more than 100 orders, got {total}"
            )
        seen_pairs: set[int] = set()
        for batch in batches:
            if batch.clob_pair_id in seen_pairs or len(set(batch.client_ids)) != len(
                batch.client_ids
            ):
                return ERR_INVALID_BATCH_CANCEL.result("Batch cancel has duplicate entries")
            seen_pairs.add(batch.clob_pair_id)
        if good_til_block == 0:
            return ERR_INVALID_ORDER_GOOD_TIL_BLOCK.result("batch cancel goodTilBlock cannot be 0")
        error = self._validate_good_til_block(good_til_block)
        if error is not None:
            return error
        limited = self._rate_limit(
            subaccount_id.owner, stateful=False, weight=BATCH_CANCEL_RATE_LIMIT_WEIGHT
        )
        if limited is not None:
            return limited
        succeeded = 0
        for batch in batches:
            if self.market_by_clob_pair(batch.clob_pair_id) is None:
                continue
            for client_id in batch.client_ids:
                key = (
                    subaccount_id.owner,
                    subaccount_id.number,
                    client_id,
                    ORDER_FLAG_SHORT_TERM,
                    batch.clob_pair_id,
                )
                if self._cancel_short_term(key, good_til_block).ok:
                    succeeded += 1
        if succeeded == 0:
            return ERR_BATCH_CANCEL_FAILED.result("all cancels failed")
        return OK

    # ---------------------------------------------------------------- queries for the Indexer

    def orders_of(self, address: str, number: int) -> list[OrderRecord]:
        """All orders of a subaccount (latest state per order id)."""
        return [
            r
            for r in self.orders.values()
            if r.address == address and r.subaccount_number == number
        ]

    def fills_of(self, address: str, number: int) -> list[FillRecord]:
        """All fills of a subaccount, oldest first."""
        return [f for f in self.fills if f.address == address and f.subaccount_number == number]

    def positions_of(self, address: str, number: int) -> list[PerpetualPosition]:
        """All positions (open and closed) of a subaccount, oldest first."""
        return [p for p in self.positions if p.address == address and p.subaccount_number == number]

    def open_interest(self, ticker: str) -> Decimal:
        """Sum of long open sizes in ``ticker``."""
        return sum(
            (
                p.size
                for sub in self.subaccounts.values()
                for p in sub.positions.values()
                if p.ticker == ticker and p.size > 0
            ),
            Decimal(0),
        )
