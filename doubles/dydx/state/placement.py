"""Order placement (``MsgPlaceOrder``): validation, rate limits, stateful delivery."""

from __future__ import annotations

from collections import deque

from v4_proto.dydxprotocol.clob.order_pb2 import Order

from doubles.dydx.keys import is_valid_address
from doubles.dydx.state.constants import (
    CONDITION_UNSPECIFIED,
    MAKER_FEE_RATE,
    MAX_SUBACCOUNT_NUMBER,
    ORDER_FLAG_CONDITIONAL,
    ORDER_FLAG_LONG_TERM,
    ORDER_FLAG_SHORT_TERM,
    ORDER_FLAG_TWAP,
    SHORT_BLOCK_WINDOW,
    SHORT_TERM_RATE_LIMITS,
    SIDE_BUY,
    SIDE_SELL,
    STATEFUL_ORDER_RATE_LIMITS,
    STATEFUL_ORDER_TIME_WINDOW,
    STATUS_BEST_EFFORT_OPENED,
    STATUS_OPEN,
    STATUS_UNTRIGGERED,
    TIF_FOK,
    TIF_IOC,
)
from doubles.dydx.state.errors import (
    ERR_BLOCK_RATE_LIMIT_EXCEEDED,
    ERR_GOOD_TIL_BLOCK_EXCEEDS_SHORT_BLOCK_WINDOW,
    ERR_GOOD_TIL_BLOCK_TIME_EXCEEDS_STATEFUL_ORDER_TIME_WINDOW,
    ERR_HEIGHT_EXCEEDS_GOOD_TIL_BLOCK,
    ERR_IMMEDIATE_EXECUTION_ORDER_ALREADY_FILLED,
    ERR_INVALID_CLOB,
    ERR_INVALID_CONDITION_TYPE,
    ERR_INVALID_CONDITIONAL_ORDER_TRIGGER_SUBTICKS,
    ERR_INVALID_ORDER_FLAG,
    ERR_INVALID_ORDER_GOOD_TIL_BLOCK,
    ERR_INVALID_ORDER_QUANTUMS,
    ERR_INVALID_ORDER_SIDE,
    ERR_INVALID_ORDER_SUBTICKS,
    ERR_INVALID_PLACE_ORDER,
    ERR_INVALID_REPLACEMENT,
    ERR_INVALID_STATEFUL_ORDER_GOOD_TIL_BLOCK_TIME,
    ERR_INVALID_SUBACCOUNT_ID_NUMBER,
    ERR_INVALID_SUBACCOUNT_ID_OWNER,
    ERR_LONG_TERM_ORDERS_CANNOT_REQUIRE_IMMEDIATE_EXECUTION,
    ERR_ORDER_FULLY_FILLED,
    ERR_ORDER_IS_CANCELED,
    ERR_REDUCE_ONLY_DISABLED,
    ERR_REDUCE_ONLY_WOULD_INCREASE_POSITION_SIZE,
    ERR_STATEFUL_ORDER_ALREADY_EXISTS,
    ERR_STATEFUL_ORDER_COLLATERALIZATION_CHECK_FAILED,
    ERR_STATEFUL_ORDER_PREVIOUSLY_CANCELLED,
    ERR_STATEFUL_ORDER_PREVIOUSLY_REMOVED,
    ERR_TIME_EXCEEDS_GOOD_TIL_BLOCK_TIME,
    OK,
    TxResult,
)
from doubles.dydx.state.ids import OrderKey, _sign, order_key, order_uuid
from doubles.dydx.state.markets import Market
from doubles.dydx.state.matching import ChainMatching
from doubles.dydx.state.records import (
    DeliveryFailure,
    OrderRecord,
    PendingStatefulOrder,
    TxLogEntry,
)


class ChainPlacement(ChainMatching):
    """``MsgPlaceOrder`` as CheckTx, and DeliverTx of stateful orders in the next block."""

    # ---------------------------------------------------------------- order placement

    def place_order(self, order: Order) -> TxResult:
        """Process ``MsgPlaceOrder`` as CheckTx (and, for the double, its matching).

        Args:
            order: The v4_proto ``dydxprotocol.clob.Order``; it is copied.

        Returns:
            The CheckTx result with the chain's error code on refusal.
        """
        with self._batch():
            result = self._place_order(order)
        self.tx_log.append(
            TxLogEntry(self.height, "place_order", order_key(order.order_id), result.code)
        )
        return result

    def _place_order(self, order: Order) -> TxResult:
        error = self._validate_basic(order)
        if error is not None:
            return error
        order_id = order.order_id
        flags = order_id.order_flags
        market = self.market_by_clob_pair(order_id.clob_pair_id)
        if market is None:
            return ERR_INVALID_CLOB.result(f"Clob {order_id.clob_pair_id} is not a valid clob")
        limited = self._rate_limit(order_id.subaccount_id.owner, flags != ORDER_FLAG_SHORT_TERM)
        if limited is not None:
            return limited
        if order.subticks % market.subticks_per_tick:
            return ERR_INVALID_PLACE_ORDER.result(
                f"Order subticks {order.subticks} must be a multiple of the ClobPair's "
                f"SubticksPerTick {market.subticks_per_tick}"
            )
        if order.quantums % market.step_base_quantums:
            return ERR_INVALID_PLACE_ORDER.result(
                f"Order Quantums {order.quantums} must be a multiple of the ClobPair's "
                f"StepBaseQuantums {market.step_base_quantums}"
            )
        if flags == ORDER_FLAG_SHORT_TERM:
            error = self._validate_good_til_block(order.good_til_block)
            return error if error is not None else self._place_short_term(order, market)
        return self._place_stateful(order, market)

    def _validate_basic(self, order: Order) -> TxResult | None:
        """``MsgPlaceOrder.ValidateBasic``."""
        sub_id = order.order_id.subaccount_id
        if not is_valid_address(sub_id.owner):
            return ERR_INVALID_SUBACCOUNT_ID_OWNER.result(sub_id.owner)
        if sub_id.number > MAX_SUBACCOUNT_NUMBER:
            return ERR_INVALID_SUBACCOUNT_ID_NUMBER.result(str(sub_id.number))
        if order.side not in (SIDE_BUY, SIDE_SELL):
            return ERR_INVALID_ORDER_SIDE.result(f"Order side {order.side}")
        if order.quantums == 0:
            return ERR_INVALID_ORDER_QUANTUMS.result("Order quantums cannot be 0")
        flags = order.order_id.order_flags
        if flags not in (ORDER_FLAG_SHORT_TERM, ORDER_FLAG_CONDITIONAL, ORDER_FLAG_LONG_TERM):
            detail = (
                "TWAP orders are not supported by the double" if flags == ORDER_FLAG_TWAP else ""
            )
            return ERR_INVALID_ORDER_FLAG.result(detail or f"Order flags {flags}")
        immediate = order.time_in_force in (TIF_IOC, TIF_FOK)
        good_til = order.WhichOneof("good_til_oneof")
        if flags == ORDER_FLAG_SHORT_TERM:
            if good_til != "good_til_block" or order.good_til_block == 0:
                return ERR_INVALID_ORDER_GOOD_TIL_BLOCK.result(
                    "goodTilBlock cannot be 0 for a short-term order"
                )
        else:
            if good_til != "good_til_block_time" or order.good_til_block_time == 0:
                return ERR_INVALID_STATEFUL_ORDER_GOOD_TIL_BLOCK_TIME.result(
                    "stateful orders must have a goodTilBlockTime"
                )
            if flags == ORDER_FLAG_LONG_TERM and immediate:
                return ERR_LONG_TERM_ORDERS_CANNOT_REQUIRE_IMMEDIATE_EXECUTION.result(
                    f"Order: {order_key(order.order_id)}"
                )
        if order.subticks == 0:
            return ERR_INVALID_ORDER_SUBTICKS.result("Order subticks cannot be 0")
        if order.reduce_only and not immediate:
            return ERR_REDUCE_ONLY_DISABLED.result(
                "reduce only orders must be short term IOC orders"
            )
        if flags == ORDER_FLAG_CONDITIONAL:
            if order.condition_type == CONDITION_UNSPECIFIED:
                return ERR_INVALID_CONDITION_TYPE.result(
                    "conditional orders must have a condition type"
                )
            if order.conditional_order_trigger_subticks == 0:
                return ERR_INVALID_CONDITIONAL_ORDER_TRIGGER_SUBTICKS.result(
                    "conditional orders must have trigger subticks"
                )
        else:
            if order.condition_type != CONDITION_UNSPECIFIED:
                return ERR_INVALID_CONDITION_TYPE.result(
                    "non-conditional orders must have an unspecified condition type"
                )
            if order.conditional_order_trigger_subticks != 0:
                return ERR_INVALID_CONDITIONAL_ORDER_TRIGGER_SUBTICKS.result(
                    "non-conditional orders must have zero trigger subticks"
                )
        return None

    def _validate_good_til_block(self, good_til_block: int) -> TxResult | None:
        # The next block is height + 1: it is the first one the order could be included in.
        if good_til_block <= self.height:
            return ERR_HEIGHT_EXCEEDS_GOOD_TIL_BLOCK.result(
                f"GoodTilBlock {good_til_block} is less than the current blockHeight "
                f"{self.height + 1}"
            )
        if good_til_block > self.height + SHORT_BLOCK_WINDOW:
            return ERR_GOOD_TIL_BLOCK_EXCEEDS_SHORT_BLOCK_WINDOW.result(
                f"The GoodTilBlock {good_til_block} exceeds the current blockHeight "
                f"{self.height} plus ShortBlockWindow {SHORT_BLOCK_WINDOW}"
            )
        return None

    def _validate_good_til_block_time(self, good_til_block_time: int) -> TxResult | None:
        now = int(self.block_time.timestamp())
        if good_til_block_time <= now:
            return ERR_TIME_EXCEEDS_GOOD_TIL_BLOCK_TIME.result(
                f"GoodTilBlockTime {good_til_block_time} is less than the previous blockTime {now}"
            )
        end = int((self.block_time + STATEFUL_ORDER_TIME_WINDOW).timestamp())
        if good_til_block_time > end:
            return ERR_GOOD_TIL_BLOCK_TIME_EXCEEDS_STATEFUL_ORDER_TIME_WINDOW.result(
                f"GoodTilBlockTime {good_til_block_time} exceeds the previous blockTime plus "
                f"StatefulOrderTimeWindow {end}"
            )
        return None

    def _rate_limit(self, owner: str, stateful: bool, weight: int = 1) -> TxResult | None:
        """x/clob block rate limits per owner address (stateful orders; short-term places,
        cancels and batch cancels).

        Like ``multiBlockRateLimiter.RateLimitIncrBy`` the message is counted before the
        check, so refused messages count too: retrying while limited prolongs the limit.
        """
        kind = "stateful" if stateful else "short_term"
        limits = STATEFUL_ORDER_RATE_LIMITS if stateful else SHORT_TERM_RATE_LIMITS
        name = (
            "MaxStatefulOrdersPerNBlocks" if stateful else "MaxShortTermOrdersAndCancelsPerNBlocks"
        )
        window = max(blocks for blocks, _ in limits)
        heights = self._rate_counters.setdefault((owner, kind), deque())
        # A message in CheckTx counts towards the next block.
        next_height = self.height + 1
        while heights and heights[0] <= next_height - window:
            heights.popleft()
        heights.extend([next_height] * weight)
        for blocks, limit in limits:
            count = sum(1 for h in heights if h > next_height - blocks)
            if count > limit:
                return ERR_BLOCK_RATE_LIMIT_EXCEEDED.result(
                    f"Rate of {count} exceeds configured block rate limit of "
                    f"{{NumBlocks:{blocks} Limit:{limit}}} for {name} and {owner}"
                )
        return None

    def _live_short_term(self, key: OrderKey) -> OrderRecord | None:
        owner, number, client_id, flags, clob_pair_id = key
        record = self.orders.get(order_uuid(owner, number, client_id, clob_pair_id, flags))
        if record is not None and record.is_live:
            return record
        return None

    def _place_short_term(self, order: Order, market: Market) -> TxResult:
        """memclob ``validateNewOrder`` then placement."""
        key = order_key(order.order_id)
        cancel_until = self._short_term_cancels.get(key)
        if cancel_until is not None and cancel_until >= order.good_til_block:
            return ERR_ORDER_IS_CANCELED.result(
                f"Order: {key}, Cancellation GoodTilBlock: {cancel_until}"
            )
        existing_record = self._live_short_term(key)
        existing = existing_record.order if existing_record else self._matched_this_block.get(key)
        if existing is not None:
            error = self._validate_replacement(existing, order)
            if error is not None:
                return error
        filled, _ = self._short_term_fills.get(key, (0, 0))
        remaining = order.quantums - filled
        if remaining < market.step_base_quantums:
            return ERR_ORDER_FULLY_FILLED.result(
                "Order remaining amount is less than `MinOrderBaseQuantums`. Remaining amount: "
                f"{max(remaining, 0)}. Order: {key}"
            )
        if order.reduce_only:
            position = self.position_size(key[0], key[1], market.ticker)
            direction = 1 if order.side == SIDE_BUY else -1
            if direction * _sign(position) != -1:
                return ERR_REDUCE_ONLY_WOULD_INCREASE_POSITION_SIZE.result()
        if order.time_in_force in (TIF_IOC, TIF_FOK) and remaining < order.quantums:
            if existing_record is not None:
                return ERR_INVALID_REPLACEMENT.result(
                    "Cannot replace partially filled order with IOC order"
                )
            return ERR_IMMEDIATE_EXECUTION_ORDER_ALREADY_FILLED.result(f"Order: {key}")

        record = self._store_order(order, market, STATUS_BEST_EFFORT_OPENED)
        record.filled_quantums = filled
        if self.short_term_fill_next_block:
            self._pending_short_term.append(record.id)
        else:
            self._execute_taker(record)
        return OK

    @staticmethod
    def _validate_replacement(existing: Order, new: Order) -> TxResult | None:
        if new.good_til_block <= existing.good_til_block:
            return ERR_INVALID_REPLACEMENT.result(
                f"Replacement order GoodTilBlock {new.good_til_block} must be greater than the "
                f"existing order's GoodTilBlock {existing.good_til_block}"
            )
        if existing.side != new.side:
            return ERR_INVALID_REPLACEMENT.result(
                "New order cannot change the Side of the existing order"
            )
        if existing.time_in_force != new.time_in_force:
            return ERR_INVALID_REPLACEMENT.result(
                "New order cannot change the TimeInForce of the existing order"
            )
        if existing.reduce_only != new.reduce_only:
            return ERR_INVALID_REPLACEMENT.result(
                "New order cannot change the ReduceOnly field of the existing order"
            )
        return None

    def _place_stateful(self, order: Order, market: Market) -> TxResult:
        """``PlaceStatefulOrder`` in CheckTx (long-term and conditional)."""
        error = self._validate_good_til_block_time(order.good_til_block_time)
        if error is None:
            error = self._stateful_validation(order, market, check_tx=True)
        if error is not None:
            return error
        if self.stateful_orders_next_block:
            copy = Order()
            copy.CopyFrom(order)
            self._pending_stateful.append(
                PendingStatefulOrder(copy, self.current_tx_hash, self.height)
            )
            return OK
        self._add_stateful(order, market)
        return OK

    def _stateful_validation(
        self, order: Order, market: Market, *, check_tx: bool
    ) -> TxResult | None:
        """``PerformStatefulOrderValidation`` (id checks) and the collateral check."""
        key = order_key(order.order_id)
        owner, number, client_id, flags, clob_pair_id = key
        if check_tx and key in self._uncommitted_stateful_cancels:
            return ERR_STATEFUL_ORDER_PREVIOUSLY_CANCELLED.result(
                "An uncommitted stateful order cancellation with this OrderId already exists. "
                f"Order: {key}"
            )
        if not check_tx and key in self._removed_stateful_this_block:
            return ERR_STATEFUL_ORDER_PREVIOUSLY_REMOVED.result(f"PlaceOrder: order ({key})")
        if check_tx and any(order_key(p.order.order_id) == key for p in self._pending_stateful):
            return ERR_STATEFUL_ORDER_ALREADY_EXISTS.result(
                "An uncommitted stateful order with this OrderId already exists and stateful "
                "order replacement is not supported."
            )
        existing = self.orders.get(order_uuid(owner, number, client_id, clob_pair_id, flags))
        if existing is not None and existing.is_live:
            return ERR_STATEFUL_ORDER_ALREADY_EXISTS.result(
                "A stateful order with this OrderId already exists and stateful order "
                "replacement is not supported. Existing order GoodTilBlockTime "
                f"({existing.order.good_til_block_time}), New order GoodTilBlockTime "
                f"({order.good_til_block_time})."
            )
        if (
            flags == ORDER_FLAG_CONDITIONAL
            and order.conditional_order_trigger_subticks % market.subticks_per_tick
        ):
            return ERR_INVALID_PLACE_ORDER.result(
                f"Conditional order trigger subticks {order.conditional_order_trigger_subticks} "
                f"must be a multiple of the ClobPair's SubticksPerTick {market.subticks_per_tick}"
            )
        # Collateral check for the full size at the order's price, to mitigate spam. It runs
        # in CheckTx and again in DeliverTx, against the state of the moment.
        sub = self._subaccount_or_empty(owner, number)
        price = market.price_from_subticks(order.subticks)
        size = market.size_from_quantums(order.quantums)
        delta = size if order.side == SIDE_BUY else -size
        if not self._collateralized_after(sub, market, delta, price, MAKER_FEE_RATE):
            return ERR_STATEFUL_ORDER_COLLATERALIZATION_CHECK_FAILED.result(
                f"PlaceStatefulOrder: order ({key}), result (NewlyUndercollateralized)"
            )
        return None

    def _add_stateful(self, order: Order, market: Market) -> None:
        if order.order_id.order_flags == ORDER_FLAG_CONDITIONAL:
            self._store_order(order, market, STATUS_UNTRIGGERED)
        else:
            self._execute_taker(self._store_order(order, market, STATUS_OPEN))

    def _deliver_pending_stateful(self) -> None:
        """DeliverTx of the stateful orders CheckTx accepted since the last block.

        A failure is only a failed tx result (``GetTx``): the chain emits no Indexer event, so
        the order never shows on the Indexer.
        """
        pending, self._pending_stateful = self._pending_stateful, []
        for item in pending:
            market = self.market_by_clob_pair(item.order.order_id.clob_pair_id)
            assert market is not None  # CheckTx checked the clob pair
            error = self._stateful_validation(item.order, market, check_tx=False)
            if error is None and item.order.good_til_block_time <= int(
                self._previous_block_time.timestamp()
            ):
                error = ERR_TIME_EXCEEDS_GOOD_TIL_BLOCK_TIME.result(
                    f"GoodTilBlockTime {item.order.good_til_block_time} is less than the "
                    "previous blockTime"
                )
            if error is None:
                self._add_stateful(item.order, market)
                continue
            key = order_key(item.order.order_id)
            self.delivery_failures.append(DeliveryFailure(self.height, key, item.tx_hash, error))
            if item.tx_hash is not None:
                self.deliver_results[item.tx_hash] = error
            self.tx_log.append(TxLogEntry(self.height, "deliver_place_order", key, error.code))

    def _store_order(self, order: Order, market: Market, status: str) -> OrderRecord:
        copy = Order()
        copy.CopyFrom(order)
        record = OrderRecord(
            order=copy,
            ticker=market.ticker,
            status=status,
            created_at_height=self.height,
            updated_at=self.block_time,
            updated_at_height=self.height,
        )
        # Same order id → same Indexer row (replacements and reuse after removal).
        self.orders.pop(record.id, None)
        self.orders[record.id] = record
        self._touch_order(record)
        return record
