"""Settling an order: ask the exchange what became of it until it is final (steps 2 and 3).

An order the exchange knows is recorded as it reports it, fills and all. One it has not
shown yet:

* **short-term**: re-broadcast byte for byte while it can still land, and declared expired
  only once the exchange's *reads* (the Indexer) processed past its ``good_til_block``
  without it, never from the node's height alone (the Indexer can trail it by many blocks);
* **stateful**: the node is asked for the transaction's block result. Failed at block
  execution → REJECTED with the chain's reason. Included → placed, the Indexer will show it.
  Not included: re-broadcast byte for byte while its timestamp nonce is valid; once the
  nonce is too old (or the chain said so) the bytes can never land, so the order is known
  not placed and is signed again with a fresh nonce, committed before it is sent, a bounded
  number of times within :data:`PLACE_DEADLINE`; then it fails with a plain reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.base import utcnow
from core.db.models import Order
from core.db.uow import UnitOfWork
from core.domain.preferences import Preferences
from core.domain.states import OrderPurpose, OrderState
from core.exchange.errors import (
    ExchangeUnavailableError,
    OrderAlreadyKnownError,
    PermanentExchangeError,
    RetryableExchangeError,
    StaleSignatureError,
    UnknownOutcomeError,
)
from core.exchange.orders import OrderKind, OrderRequest, SignedTx, TimeInForce
from core.exchange.port import Exchange, Fill, OpenOrder
from core.exchange.provider import ExchangeProvider, TradingNotReadyError
from core.runtime.logs import get_logger
from core.services.execution.follow import FollowedOrders
from core.services.execution.outcome import Outcome, outcome_of
from core.services.execution.protect import Protector
from core.services.execution.record import OrderRecorder
from core.services.execution.streamed import StreamedEnd, streamed_end
from core.services.execution.trader import flags_of
from core.services.priority import PlacementGate
from core.texts import trade as texts

#: How long the job waits for a short-term order's outcome before leaving it to the cron.
DEFAULT_SETTLE_TIMEOUT = 20.0
#: Indexer polling interval while waiting for an outcome (blocks are ~0.5 s).
DEFAULT_POLL_INTERVAL = 0.25
#: Blocks the Indexer must have processed past a short-term order's ``good_til_block``
#: before an order it has not shown is known not to exist.
EXPIRY_MARGIN_BLOCKS = 2
#: A timestamp nonce passes the chain's check within ±30 s of the block time.
NONCE_WINDOW = timedelta(seconds=30)
#: Identical bytes are re-broadcast only while their nonce is this young (room for the
#: chain's clock and the block the transaction waits for).
REBROADCAST_WITHIN = timedelta(seconds=25)
#: Signed bytes no block included this long after signing can never be included.
STALE_AFTER = NONCE_WINDOW + timedelta(seconds=5)
#: An accepted stateful order the Indexer has not shown after this (a few blocks): ask the
#: node for its block result.
CONFIRM_AFTER = timedelta(seconds=1.5)
#: A stateful order not placed this long after it was committed fails (bounds re-signing
#: across restarts).
PLACE_DEADLINE = timedelta(seconds=120)
#: Signatures refused as out of date in a row (in one process) before the order fails.
MAX_RESIGNS = 3
#: An Indexer this close to the node's height has processed every block a transaction
#: signed before the nonce window could have landed in.
CAUGHT_UP_BLOCKS = 2
#: Fills asked of the Indexer for an order, newest first: a short page, then a long one.
FILLS_PAGES = (10, 100)
#: Indexer statuses after which an order can no longer fill.
_DONE_STATUSES = frozenset({"FILLED", "CANCELED"})


class _NotFound(Enum):
    """The caught-up Indexer does not show the order."""

    NOT_FOUND = "not found"


_NOT_FOUND = _NotFound.NOT_FOUND


class _Sent(Enum):
    """What sending an order's bytes (again) came to."""

    OPEN = "open"  # accepted, or outcome still open: keep following it
    FINAL = "final"  # refused for good: recorded as final
    STALE = "stale"  # the signature's nonce is out of date: these bytes can never land


def _request_of(order: Order) -> OrderRequest | None:
    """The request a stateful order was signed from (to sign it again), None if the row
    lacks a field."""
    if order.price is None or order.good_til_block_time is None:
        return None
    return OrderRequest(
        market=order.market,
        side=order.side,
        size=order.size,
        kind=OrderKind(order.order_type),
        price=order.price,
        client_id=order.client_id,
        trigger_price=order.trigger_price,
        reduce_only=order.reduce_only,
        time_in_force=TimeInForce(order.time_in_force),
        good_til_block_time=order.good_til_block_time,
    )


class OrderSettler:
    """Follows orders to their outcome.

    Args:
        sessionmaker: Database sessions.
        exchanges: Builds each trader's exchange.
        recorder: Records what the exchange reports.
        protector: Cancels the protective siblings of an order that closed a position.
        settle_timeout: How long a waiting caller polls for an order's outcome.
        poll_interval: Indexer polling interval while waiting.
        gate: Each look yields to alerts being placed in this process (placing first).
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        exchanges: ExchangeProvider,
        recorder: OrderRecorder,
        protector: Protector,
        *,
        settle_timeout: float = DEFAULT_SETTLE_TIMEOUT,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        gate: PlacementGate | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._gate = gate or PlacementGate()
        self._exchanges = exchanges
        self._recorder = recorder
        self._protector = protector
        self._settle_timeout = settle_timeout
        self._poll_interval = poll_interval
        self._resigns: Counter[int] = Counter()
        self.followed = FollowedOrders()
        # Orders this settler just recorded final, with what it recorded (see _final_outcome).
        self._recorded: dict[int, tuple[OrderState, Decimal]] = {}
        self._log = get_logger(__name__)

    async def settle(
        self, order_id: int, *, exchange: Exchange | None = None, wait: bool = False
    ) -> Outcome:
        """Find out what became of an order and record it (idempotent).

        Args:
            order_id: Our order id.
            exchange: The trader's exchange (built if not given).
            wait: Keep polling until the order is final or ``settle_timeout`` passes.
        """
        deadline = time.monotonic() + (self._settle_timeout if wait else 0)
        last_broadcast = 0.0
        followed = False
        follow = contextlib.ExitStack()
        try:
            while True:
                await self._gate.yield_to_placing()
                async with UnitOfWork(self._sessionmaker, read_only=True) as uow:
                    order = await uow.orders.get(order_id)
                    if order is None:
                        return Outcome.MISSING
                    uow.detach(order)
                    # The trader's settings are needed only to build their exchange.
                    user = None if exchange is not None else await uow.users.get(order.user_id)
                    prefs = Preferences.from_json(user.settings) if user is not None else None
                if wait and not followed and not order.state.is_final:
                    # The monitor leaves what this caller records to it (see is_followed).
                    follow.enter_context(
                        self.followed.following(
                            order.owner_address, order.subaccount_number, order.client_id
                        )
                    )
                    followed = True
                if order.state.is_final:
                    return outcome_of(order)
                if exchange is None:
                    if prefs is None:
                        return Outcome.MISSING
                    try:
                        exchange = await self._exchanges.for_user(order.user_id, prefs)
                    except TradingNotReadyError:
                        return Outcome.OPEN
                    if exchange.is_paper != order.paper:
                        # The trader switched paper mode since; follow the order where it lives.
                        exchange = await self._exchanges.for_user(
                            order.user_id, prefs.updated(paper=order.paper)
                        )
                if followed and (end := self._streamed(order)) is not None:
                    return await self._record_streamed(order, end)
                try:
                    found = await exchange.find_order(
                        order.market, order.client_id, flags_of(order)
                    )
                    if found is not None:
                        final = await self._apply(exchange, order, found)
                        if await self._protection_moves(order, found, final=final, wait=wait):
                            await self._protector.step_position(order_id)
                        if final:
                            return await self._final_outcome(order_id)
                    elif order.good_til_block is None:
                        if time.monotonic() - last_broadcast >= 1.0:
                            last_broadcast = time.monotonic()
                            if await self._follow_unseen_stateful(exchange, order):
                                return await self._final_outcome(order_id)
                    elif order.state in (OrderState.SUBMITTING, OrderState.UNKNOWN):
                        if time.monotonic() - last_broadcast >= 1.0:
                            last_broadcast = time.monotonic()
                            if await self._rebroadcast_or_expire(exchange, order):
                                return await self._final_outcome(order_id)
                    elif await self._expired_unseen(exchange, order):
                        return await self._final_outcome(order_id)
                except ExchangeUnavailableError as exc:
                    self._log.warning(
                        "settle_exchange_unavailable", order_id=order_id, error=str(exc)
                    )
                if time.monotonic() >= deadline:
                    return Outcome.OPEN
                if followed:
                    await self.followed.next_look(
                        order.owner_address,
                        order.subaccount_number,
                        order.client_id,
                        within=self._poll_interval,
                    )
                else:
                    await asyncio.sleep(self._poll_interval)
        finally:
            follow.close()

    async def _protection_moves(
        self, order: Order, found: OpenOrder, *, final: bool, wait: bool
    ) -> bool:
        """Whether what was just recorded of ``order`` calls for a protection step now.

        A leg, close or manual order that traded and is final: its position's legs change.
        An entry whose recorded fill grew (a partial fill, or a limit entry filling after its
        job left it): its legs grow with it at once, rather than at the next poll; except
        when it is final under a waiting caller, the job, which steps right after.
        """
        if order.purpose is not OrderPurpose.ENTRY:
            return final and found.filled_size > 0
        if (final and wait) or found.filled_size <= order.filled_size:
            return False
        # The Indexer may show the total before every fill: only a recorded fill counts.
        async with UnitOfWork(self._sessionmaker, read_only=True) as uow:
            row = await uow.orders.get(order.id)
            return row is not None and row.filled_size > order.filled_size

    def _streamed(self, order: Order) -> StreamedEnd | None:
        """The order's end as the stream told this follower, when it tells all of it."""
        news = self.followed.news(order.owner_address, order.subaccount_number, order.client_id)
        if not news:
            return None
        short_term = order.good_til_block is not None
        return streamed_end(order.client_id, order.market, news, short_term=short_term)

    async def _record_streamed(self, order: Order, end: StreamedEnd) -> Outcome:
        """Record an end the stream told in full: no Indexer request (see
        :mod:`.streamed`); the job that waits steps an entry's protection itself."""
        recorded = await self._recorder.record_fills(
            order.id, end.fills, final=True, positions=end.positions
        )
        if recorded is not None:
            self._recorded[order.id] = recorded
        if order.purpose is not OrderPurpose.ENTRY and end.filled_size > 0:
            await self._protector.step_position(order.id)
        return await self._final_outcome(order.id)

    async def _final_outcome(self, order_id: int) -> Outcome:
        recorded = self._recorded.pop(order_id, None)
        if recorded is not None:
            _state, filled = recorded  # FILLED or CANCELED, just written by record_fills
            return Outcome.FILLED if filled > 0 else Outcome.UNFILLED
        async with UnitOfWork(self._sessionmaker, read_only=True) as uow:
            order = await uow.orders.get(order_id)
            uow.detach(order)
        return outcome_of(order) if order is not None else Outcome.MISSING

    async def _rebroadcast_or_expire(self, exchange: Exchange, order: Order) -> bool:
        """A short-term order the exchange has not seen: send its bytes again, or declare it
        expired.

        Returns:
            Whether the order reached a final state.
        """
        if await self._expired_unseen(exchange, order):
            return True
        if order.tx_bytes is None or order.tx_hash is None:
            return False
        return await self._send_again(exchange, order) is _Sent.FINAL

    async def _send_again(self, exchange: Exchange, order: Order) -> _Sent:
        """Broadcast the order's committed bytes and record what the node said."""
        if order.tx_bytes is None or order.tx_hash is None:
            return _Sent.OPEN  # nothing committed to send
        signed = SignedTx(order.tx_bytes, order.tx_hash)
        sent_at = utcnow()
        try:
            result = await exchange.broadcast(signed)
        except OrderAlreadyKnownError:
            # The venue knows this order id: it was placed after all.
            await self._recorder.transition(order.id, OrderState.SUBMITTED)
            return _Sent.OPEN
        except PermanentExchangeError as exc:
            await self._recorder.reject(order.id, exc, sent_at)
            return _Sent.FINAL
        except UnknownOutcomeError:
            await self._recorder.transition(order.id, OrderState.UNKNOWN)
            return _Sent.OPEN
        except StaleSignatureError as exc:
            self._log.warning("order_signature_stale", order_id=order.id, reason=str(exc))
            return _Sent.STALE
        except RetryableExchangeError as exc:
            self._log.warning("order_rebroadcast_retry", order_id=order.id, reason=str(exc))
            return _Sent.OPEN
        self._log.info("order_rebroadcast", order_id=order.id, already=result.already_placed)
        await self._recorder.transition(
            order.id,
            OrderState.SUBMITTED,
            submitted_at=order.submitted_at or sent_at,
            accepted_at=utcnow(),
            tx_hash=order.tx_hash,
        )
        return _Sent.OPEN

    async def _expired_unseen(self, exchange: Exchange, order: Order) -> bool:
        """Mark a short-term order the exchange never saw as expired once it cannot land.

        Decided on the height the exchange's reads (the Indexer) have processed: a fill of
        a block the Indexer has not processed yet is invisible, whatever the node's height.
        """
        if order.good_til_block is None:
            return False
        height = await exchange.indexer_height()
        if height < order.good_til_block + EXPIRY_MARGIN_BLOCKS:
            return False
        # One last look: the Indexer may have caught up since the caller asked.
        found = await exchange.find_order(order.market, order.client_id, flags_of(order))
        if found is not None:
            return await self._apply(exchange, order, found)
        await self._recorder.expire_unseen(order.id)
        return True

    async def _follow_unseen_stateful(self, exchange: Exchange, order: Order) -> bool:
        """A stateful order the Indexer has not shown: ask the node, then wait, send the same
        bytes again, sign it anew, or fail it.

        Returns:
            Whether the order reached a final state.
        """
        now = utcnow()
        age = now - (order.signed_at or order.created_at)
        if order.state is OrderState.SUBMITTED and age < CONFIRM_AFTER:
            return False  # accepted moments ago: the Indexer shows it within a few blocks
        result = await exchange.tx_result(order.tx_hash) if order.tx_hash else None
        if result is not None and result.error is None:
            # A block placed it; the Indexer has not caught up yet.
            await self._recorder.transition(order.id, OrderState.SUBMITTED, or_already=True)
            return False
        if result is not None and isinstance(result.error, PermanentExchangeError):
            # Passed the broadcast's check, failed in its block: never on the book.
            self._log.warning(
                "order_failed_in_block",
                order_id=order.id,
                code=result.error.code,
                codespace=result.error.codespace,
            )
            await self._recorder.reject(order.id, result.error, order.submitted_at or now)
            return True
        # Not in any block (or refused there for its nonce, which changed nothing).
        stale = result is not None or age >= STALE_AFTER
        if not stale:
            if age >= REBROADCAST_WITHIN or order.tx_bytes is None:
                return False  # too close to the nonce's end to tell yet: look again soon
            sent = await self._send_again(exchange, order)
            if sent is not _Sent.STALE:
                return sent is _Sent.FINAL
            # The chain refused the nonce; no block has the bytes (asked just above).
        if result is None:
            # "Not found" is not proof: a node without a transaction index never finds
            # anything, and a refused nonce may be our own, already used. Sign again only
            # when an Indexer that has processed every block the bytes could have landed in
            # still does not show the order: the same id placed, filled and removed, then
            # placed again, would be a second order.
            found = await self._seen_by_caught_up_indexer(exchange, order)
            if found is None:
                return False
            if found is not _NOT_FOUND:
                return await self._apply(exchange, order, found)
        return await self._sign_again(exchange, order, now)

    async def _seen_by_caught_up_indexer(
        self, exchange: Exchange, order: Order
    ) -> OpenOrder | _NotFound | None:
        """What an Indexer within :data:`CAUGHT_UP_BLOCKS` of the node says of the order.

        Returns:
            None while the Indexer lags (nothing can be concluded yet), the order if it
            shows it, else :data:`_NOT_FOUND`.
        """
        indexer, node = await asyncio.gather(exchange.indexer_height(), exchange.block_height())
        if indexer < node - CAUGHT_UP_BLOCKS:
            return None
        found = await exchange.find_order(order.market, order.client_id, flags_of(order))
        return _NOT_FOUND if found is None else found

    async def _sign_again(self, exchange: Exchange, order: Order, now: datetime) -> bool:
        """Sign an order known not placed with a fresh nonce, commit, then send it.

        The same order id is reused: it never existed on chain. Fails the order once
        :data:`PLACE_DEADLINE` passed or :data:`MAX_RESIGNS` signatures in a row were refused.

        Returns:
            Whether the order reached a final state.
        """
        if self._resigns[order.id] >= MAX_RESIGNS:
            self._resigns.pop(order.id, None)
            await self._recorder.reject(
                order.id, PermanentExchangeError(texts.SIGNATURE_KEPT_STALE), now
            )
            return True
        request = _request_of(order)
        if now - order.created_at >= PLACE_DEADLINE or request is None:
            self._resigns.pop(order.id, None)
            await self._recorder.expire_unseen(order.id, texts.NOT_PLACED_IN_TIME)
            return True
        signed = await exchange.sign_order(request)
        if not await self._recorder.resign(order.id, order.tx_hash, signed):
            return False  # someone else signed it again (or it settled) first
        self._resigns[order.id] += 1
        order.tx_bytes, order.tx_hash = signed.tx_bytes, signed.tx_hash
        sent = await self._send_again(exchange, order)
        return sent is _Sent.FINAL

    async def _apply(self, exchange: Exchange, order: Order, found: OpenOrder) -> bool:
        """Record what the exchange says about the order.

        Returns:
            Whether the order is now final.
        """
        status = found.status
        short_term = order.good_til_block is not None
        done = status in _DONE_STATUSES or (short_term and status == "BEST_EFFORT_CANCELED")
        fills: list[Fill] = []
        if found.filled_size > 0:
            # Newest first: a just-filled order's fills are among the latest few; only an
            # order filled in many pieces, or long ago, needs the longer page.
            for limit in FILLS_PAGES:
                fills = [
                    fill
                    for fill in await exchange.fills(order.market, limit=limit)
                    if fill.order_id == found.order_id
                ]
                if sum((f.size for f in fills), Decimal(0)) >= found.filled_size:
                    break
            else:
                # The Indexer has the order's total but not yet every fill: look again soon.
                return False
        if not done:
            if fills:
                await self._recorder.transition(order.id, OrderState.PARTIALLY_FILLED)
                await self._recorder.record_fills(order.id, fills, final=False)
            else:
                # Still resting: re-marking it keeps the reconciler away while a job watches.
                await self._recorder.transition(order.id, OrderState.SUBMITTED, or_already=True)
            return False
        positions = await exchange.positions()
        recorded = await self._recorder.record_fills(
            order.id, fills, final=True, positions=positions
        )
        if recorded is not None:
            # What was just recorded: the caller's outcome needs no second read.
            self._recorded[order.id] = recorded
        return True
