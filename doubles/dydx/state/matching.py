"""Matching against the oracle-priced counterparty: fills, positions, expiry, triggers."""

from __future__ import annotations

import uuid
from decimal import Decimal

from doubles.dydx.state.constants import (
    CONDITION_STOP_LOSS,
    INDEXER_UUID_NAMESPACE,
    MAKER_FEE_RATE,
    POSITION_CLOSED,
    REMOVAL_EXPIRED,
    REMOVAL_INVALID_REDUCE_ONLY,
    REMOVAL_IOC_WOULD_REST,
    REMOVAL_POST_ONLY_WOULD_CROSS,
    REMOVAL_REDUCE_ONLY_RESIZE,
    REMOVAL_UNDERCOLLATERALIZED,
    STATUS_CANCELED,
    STATUS_FILLED,
    STATUS_OPEN,
    STATUS_UNTRIGGERED,
    TAKER_FEE_RATE,
    TIF_POST_ONLY,
)
from doubles.dydx.state.ids import _round_usdc_up, _sign
from doubles.dydx.state.ledger import ChainLedger
from doubles.dydx.state.markets import Market
from doubles.dydx.state.records import FillRecord, OrderRecord, PerpetualPosition, Subaccount


class ChainMatching(ChainLedger):
    """Order execution, resting orders, expiry, conditional triggers, fills and positions."""

    # ---------------------------------------------------------------- matching

    def _execute_taker(self, record: OrderRecord) -> None:
        """Match a new (or just triggered) order against the oracle-priced counterparty."""
        market = self.markets[record.ticker]
        limit = market.price_from_subticks(record.order.subticks)
        fill_price = market.round_to_tick(market.oracle_price, up=record.is_buy)
        crosses = fill_price <= limit if record.is_buy else fill_price >= limit
        if not crosses:
            if record.requires_immediate_execution:
                self._remove(record, STATUS_CANCELED, REMOVAL_IOC_WOULD_REST)
            else:
                self._rest(record, market)
            return
        if record.order.time_in_force == TIF_POST_ONLY:
            self._remove(record, STATUS_CANCELED, REMOVAL_POST_ONLY_WOULD_CROSS)
            return
        quantums = record.remaining_quantums
        if record.order.reduce_only:
            position = self.position_size(record.address, record.subaccount_number, record.ticker)
            direction = 1 if record.is_buy else -1
            if direction * _sign(position) != -1:
                # Only reachable for triggered conditional orders: validated when they execute.
                self._remove(record, STATUS_CANCELED, REMOVAL_INVALID_REDUCE_ONLY)
                return
            quantums = min(quantums, market.quantums_from_size(abs(position)))
        if not self._fill(record, market, quantums, fill_price, "TAKER"):
            self._remove(record, STATUS_CANCELED, REMOVAL_UNDERCOLLATERALIZED)
            return
        if record.is_short_term:
            self._matched_this_block[record.key] = record.order
        if record.remaining_quantums == 0:
            self._mark_filled(record)
        elif record.requires_immediate_execution:
            reason = (
                REMOVAL_REDUCE_ONLY_RESIZE if record.order.reduce_only else REMOVAL_IOC_WOULD_REST
            )
            self._remove(record, STATUS_CANCELED, reason)
        else:
            self._rest(record, market)

    def _rest(self, record: OrderRecord, market: Market) -> None:
        """Put an order on the book if the subaccount could afford it at its limit price."""
        sub = self._subaccount_or_empty(record.address, record.subaccount_number)
        size = market.size_from_quantums(record.remaining_quantums)
        price = market.price_from_subticks(record.order.subticks)
        if not self._collateralized_after(
            sub, market, size if record.is_buy else -size, price, MAKER_FEE_RATE
        ):
            self._remove(record, STATUS_CANCELED, REMOVAL_UNDERCOLLATERALIZED)
            return
        record.status = STATUS_OPEN
        self._touch_order(record)

    def _match_resting_orders(self) -> None:
        for record in list(self.orders.values()):
            if record.status != STATUS_OPEN or (
                record.is_conditional and record.triggered_at_height is None
            ):
                continue
            market = self.markets[record.ticker]
            limit = market.price_from_subticks(record.order.subticks)
            oracle = market.oracle_price
            if (record.is_buy and oracle <= limit) or (not record.is_buy and oracle >= limit):
                if not self._fill(record, market, record.remaining_quantums, limit, "MAKER"):
                    self._remove(record, STATUS_CANCELED, REMOVAL_UNDERCOLLATERALIZED)
                    continue
                self._mark_filled(record)

    def _expire_orders(self) -> None:
        # RemoveExpiredStatefulOrders iterates expirations strictly before the block time.
        now = self.block_time.timestamp()
        for record in list(self.orders.values()):
            if not record.is_live:
                continue
            if record.is_short_term:
                if record.order.good_til_block <= self.height:
                    self._remove(record, STATUS_CANCELED, REMOVAL_EXPIRED)
            elif record.order.good_til_block_time < now:
                self._remove(record, STATUS_CANCELED, REMOVAL_EXPIRED)
        self._short_term_cancels = {
            k: gtb for k, gtb in self._short_term_cancels.items() if gtb > self.height
        }
        self._short_term_fills = {
            k: v for k, v in self._short_term_fills.items() if v[1] > self.height
        }

    def _trigger_conditional_orders(self) -> None:
        for record in list(self.orders.values()):
            if record.status != STATUS_UNTRIGGERED:
                continue
            market = self.markets[record.ticker]
            trigger = market.price_from_subticks(record.order.conditional_order_trigger_subticks)
            oracle = market.oracle_price
            stop_loss = record.order.condition_type == CONDITION_STOP_LOSS
            # order.proto: a sell stop-loss triggers at oracle <= trigger, a sell take-profit
            # at oracle >= trigger; buys are the mirror image.
            hit = oracle >= trigger if record.is_buy == stop_loss else oracle <= trigger
            if hit:
                record.status = STATUS_OPEN
                record.triggered_at_height = self.height
                self._touch_order(record)
                self._triggered_pending.append(record.id)

    def _mark_filled(self, record: OrderRecord) -> None:
        record.status = STATUS_FILLED
        if not record.is_short_term:  # a fully filled stateful order leaves the state
            self._removed_stateful_this_block.add(record.key)
        self._touch_order(record)

    def _remove(self, record: OrderRecord, status: str, reason: str) -> None:
        record.status = status
        record.removal_reason = reason
        if not record.is_short_term:
            self._removed_stateful_this_block.add(record.key)
        self._touch_order(record)

    def _collateralized_after(
        self, sub: Subaccount, market: Market, delta: Decimal, price: Decimal, fee_rate: Decimal
    ) -> bool:
        """Would the subaccount still meet initial margin after trading ``delta`` at ``price``?

        Like the chain, an update that only shrinks an existing position is always allowed.
        """
        current = sub.positions.get(market.ticker)
        old = current.size if current else Decimal(0)
        new = old + delta
        if old != 0 and abs(new) < abs(old) and _sign(new) in (0, _sign(old)):
            return True
        fee = _round_usdc_up(abs(delta) * price * fee_rate)
        usdc = sub.usdc - delta * price - fee
        equity = usdc
        margin = Decimal(0)
        sizes = {t: p.size for t, p in sub.positions.items()}
        sizes[market.ticker] = new
        for ticker, size in sizes.items():
            m = self.markets[ticker]
            equity += size * m.oracle_price
            margin += abs(size) * m.oracle_price * m.initial_margin_fraction
        return equity >= margin and (equity > 0 or margin == 0)

    def _fill(
        self, record: OrderRecord, market: Market, quantums: int, price: Decimal, liquidity: str
    ) -> bool:
        """Fill ``quantums`` of ``record`` at ``price``; False if undercollateralized."""
        if quantums <= 0:
            return True
        sub = self._subaccount(record.address, record.subaccount_number)
        size = market.size_from_quantums(quantums)
        delta = size if record.is_buy else -size
        fee_rate = TAKER_FEE_RATE if liquidity == "TAKER" else MAKER_FEE_RATE
        if not self._collateralized_after(sub, market, delta, price, fee_rate):
            return False
        fee = _round_usdc_up(size * price * fee_rate)
        sub.usdc -= delta * price + fee
        sub.updated_at_height = self.height
        self._apply_position_delta(sub, market, delta, price)
        record.filled_quantums += quantums
        if record.is_short_term:
            self._short_term_fills[record.key] = (
                record.filled_quantums,
                record.order.good_til_block,
            )
        fill = FillRecord(
            id=str(uuid.uuid5(INDEXER_UUID_NAMESPACE, f"fill-{self._next_serial()}")),
            address=record.address,
            subaccount_number=record.subaccount_number,
            ticker=market.ticker,
            clob_pair_id=market.clob_pair_id,
            side="BUY" if record.is_buy else "SELL",
            liquidity=liquidity,
            price=price,
            size=size,
            fee=fee,
            created_at=self.block_time,
            created_at_height=self.height,
            order_id=record.id,
            client_metadata=record.order.client_metadata,
        )
        self.fills.append(fill)
        update = self._update(sub.key)
        update.fills.append(fill)
        update.asset_changed = True
        self._touch_order(record)
        return True

    def _apply_position_delta(
        self, sub: Subaccount, market: Market, delta: Decimal, price: Decimal
    ) -> None:
        """Update the position like the Indexer's ender (VWAP entry/exit, close, flip)."""
        position = sub.positions.get(market.ticker)
        if position is None:
            self._open_position(sub, market, delta, price)
            return
        if _sign(delta) == _sign(position.size):
            amount = abs(delta)
            position.entry_price = (position.entry_price * position.sum_open + price * amount) / (
                position.sum_open + amount
            )
            position.sum_open += amount
            position.size += delta
            if abs(position.size) > abs(position.max_size):
                position.max_size = position.size
            self._update(sub.key).positions[position.id] = position
            return
        closing = min(abs(delta), abs(position.size))
        previous_exit = position.exit_price if position.exit_price is not None else Decimal(0)
        position.exit_price = (previous_exit * position.sum_close + price * closing) / (
            position.sum_close + closing
        )
        position.sum_close += closing
        position.size += _sign(delta) * closing
        self._update(sub.key).positions[position.id] = position
        if position.size == 0:
            position.status = POSITION_CLOSED
            position.closed_at = self.block_time
            position.closed_at_height = self.height
            del sub.positions[market.ticker]
        rest = abs(delta) - closing
        if rest > 0:
            self._open_position(sub, market, _sign(delta) * rest, price)

    def _open_position(
        self, sub: Subaccount, market: Market, delta: Decimal, price: Decimal
    ) -> None:
        position = PerpetualPosition(
            id=str(
                uuid.uuid5(
                    INDEXER_UUID_NAMESPACE, f"{sub.uuid}-{market.ticker}-{self._next_serial()}"
                )
            ),
            address=sub.address,
            subaccount_number=sub.number,
            ticker=market.ticker,
            side="LONG" if delta > 0 else "SHORT",
            size=delta,
            max_size=delta,
            entry_price=price,
            sum_open=abs(delta),
            created_at=self.block_time,
            created_at_height=self.height,
        )
        sub.positions[market.ticker] = position
        self.positions.append(position)
        self._update(sub.key).positions[position.id] = position
