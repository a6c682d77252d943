"""Recording what became of an order: its state moves, its fills and realized P&L, and, in
the transaction that makes it final, its alert's end and the trader's message."""

from __future__ import annotations

import contextlib
from collections.abc import Collection
from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.base import utcnow
from core.db.models import Order
from core.db.uow import UnitOfWork
from core.domain.preferences import Preferences
from core.domain.states import OrderState
from core.exchange.errors import PermanentExchangeError
from core.exchange.orders import SignedTx
from core.exchange.port import Fill, Position
from core.runtime.logs import get_logger
from core.services.execution.alerts import finish_alert
from core.services.execution.notice import Notice, final_notice, finishes_alert
from core.services.execution.pnl import realize_all
from core.services.execution.record_final import FinalRecorder, UnsuitedError
from core.services.execution.trader import chat_of, day_start
from core.texts import trade as texts

NOTIFY_PAUSED = "trading_paused"


class OrderRecorder:
    """Writes order outcomes, each in its own transaction.

    Args:
        sessionmaker: Database sessions.
        final: Records an order's final outcome in two round trips (the common case);
            without it, every outcome goes through the unit of work.
    """

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], final: FinalRecorder | None = None
    ) -> None:
        self._sessionmaker = sessionmaker
        self._final = final
        self._log = get_logger(__name__)

    async def transition(
        self,
        order_id: int,
        to: OrderState,
        *,
        among: Collection[OrderState] | None = None,
        or_already: bool = False,
        **values: object,
    ) -> bool:
        """Move an order optimistically, committed (see
        :meth:`~core.db.repositories.orders.OrderRepository.transition`)."""
        async with UnitOfWork(self._sessionmaker) as uow:
            moved = await uow.orders.transition(
                order_id, to, among=among, or_already=or_already, **values
            )
            await uow.commit()
        return moved

    async def touch(self, order_id: int) -> None:
        """Move an order still open to the back of the reconciliation line."""
        async with UnitOfWork(self._sessionmaker) as uow:
            await uow.orders.touch(order_id, utcnow())
            await uow.commit()

    async def reject(self, order_id: int, exc: PermanentExchangeError, sent_at: datetime) -> None:
        """The exchange refused the order for good: REJECTED, with the exchange's reason."""
        async with UnitOfWork(self._sessionmaker) as uow:
            order = await uow.orders.get(order_id, lock=True)
            if order is None or not await uow.orders.transition(
                order,
                OrderState.REJECTED,
                exchange_code=exc.code,
                codespace=exc.codespace[:32],
                error=exc.reason,
                submitted_at=order.submitted_at or sent_at,
                closed_at=utcnow(),
            ):
                return
            await self._after_final(uow, order, fills=[])
            await uow.commit()
        self._log.warning(
            "order_rejected", order_id=order_id, code=exc.code, codespace=exc.codespace
        )

    async def expire_unseen(self, order_id: int, reason: str = texts.EXPIRED_BEFORE_BOOK) -> None:
        """An order the exchange never saw and that can no longer land: EXPIRED, with
        ``reason`` told to the trader."""
        async with UnitOfWork(self._sessionmaker) as uow:
            row = await uow.orders.get(order_id, lock=True)
            if row is None or not await uow.orders.transition(
                row,
                OrderState.EXPIRED,
                error=reason,
                closed_at=utcnow(),
            ):
                return
            await self._after_final(uow, row, fills=[])
            await uow.commit()
        self._log.warning("order_expired_unseen", order_id=order_id)

    async def resign(self, order_id: int, replaced_hash: str | None, signed: SignedTx) -> bool:
        """Record a new signature of an order known not placed, before it is sent (step 1 of
        commit-then-broadcast again); the order keeps its state and client id.

        Args:
            order_id: Our order id.
            replaced_hash: The hash the caller found known not placed: whoever re-signed
                first wins, a second caller changes nothing.
            signed: The new signed transaction.

        Returns:
            Whether the new bytes were recorded (then, and only then, send them).
        """
        async with UnitOfWork(self._sessionmaker) as uow:
            row = await uow.orders.get(order_id, lock=True)
            if row is None or row.state.is_final or row.tx_hash != replaced_hash:
                return False
            await uow.orders.transition(
                row,
                row.state,
                or_already=True,
                tx_bytes=signed.tx_bytes,
                tx_hash=signed.tx_hash,
                signed_at=utcnow(),
            )
            await uow.commit()
        self._log.info("order_resigned", order_id=order_id, tx_hash=signed.tx_hash)
        return True

    async def record_fills(
        self,
        order_id: int,
        fills: list[Fill],
        *,
        final: bool,
        positions: list[Position] | None = None,
    ) -> tuple[OrderState, Decimal] | None:
        """Write fills, totals and (when final) the outcome, the position and the message.

        Returns:
            The order's state and filled size as recorded, None if it was already final
            (recorded by someone else) or is unknown.
        """
        if final and self._final is not None:
            with contextlib.suppress(UnsuitedError):
                return await self._final.record(order_id, fills, positions)
        async with UnitOfWork(self._sessionmaker) as uow:
            order = await uow.orders.get(order_id, lock=True)
            if order is None or order.state.is_final:
                return None
            realized = realize_all(order.position_before, order.entry_before, fills)
            for fill, pnl in realized.fills:
                await uow.fills.add(
                    user_id=order.user_id,
                    order_id=order.id,
                    paper=order.paper,
                    exchange_fill_id=fill.fill_id[:64],
                    market=fill.market,
                    side=fill.side,
                    size=fill.size,
                    price=fill.price,
                    fee=fill.fee,
                    liquidity=fill.liquidity[:8],
                    realized_pnl=pnl,
                    filled_at=fill.created_at,
                )
            total_size = realized.size
            order.filled_size = total_size
            order.fee = realized.fee
            order.realized_pnl = realized.pnl
            order.average_price = realized.average_price
            if total_size:
                order.filled_at = order.filled_at or max(f.created_at for f in fills)
            if final:
                done = OrderState.FILLED if total_size >= order.size else OrderState.CANCELED
                await uow.orders.transition(order, done, closed_at=utcnow())
                if positions is not None:
                    current = next((p for p in positions if p.market == order.market), None)
                    await uow.positions.record(
                        user_id=order.user_id,
                        paper=order.paper,
                        market=order.market,
                        side=current.side if current else None,
                        size=current.size if current else Decimal(0),
                        entry_price=current.entry_price if current else None,
                        at=utcnow(),
                    )
                await self._after_final(uow, order, fills=fills, positions=positions)
            await uow.commit()
        if final:
            self._log.info(
                "order_settled",
                order_id=order_id,
                filled=str(total_size),
                average_price=str(order.average_price),
            )
        return order.state, total_size

    async def _after_final(
        self,
        uow: UnitOfWork,
        order: Order,
        *,
        fills: list[Fill],
        positions: list[Position] | None = None,
    ) -> None:
        """In the transaction that makes an order final: the alert's state and the message."""
        user, alert = await uow.users.with_alert(order.user_id, order.alert_id)
        if user is None:
            return
        chat = chat_of(user)
        notice = final_notice(
            order,
            alert_id=alert.id if alert is not None else None,
            strategy=alert.strategy if alert is not None else None,
            positions=positions,
            has_notify_chat=user.notify_chat_id is not None,
        )
        if notice.speaks:
            await uow.notifications.enqueue(
                chat_id=chat,
                user_id=user.id,
                kind=notice.kind,
                text=notice.text,
                dedupe_key=Notice.dedupe_key(order.id),
            )
        if alert is not None and finishes_alert(order):
            finish_alert(uow, alert, notice.alert_state, order.error)
        prefs = Preferences.from_json(user.settings)
        if order.realized_pnl < 0 and prefs.daily_loss_limit_usd is not None and not user.paused:
            realized = await uow.fills.realized_since(
                user.id, day_start(utcnow(), prefs), paper=order.paper
            )
            if realized <= -prefs.daily_loss_limit_usd:
                user.paused = True
                await uow.notifications.enqueue(
                    chat_id=chat,
                    user_id=user.id,
                    kind=NOTIFY_PAUSED,
                    text=texts.paused_for_loss_text(-realized, prefs.daily_loss_limit_usd),
                    dedupe_key=f"order:{order.id}:paused",
                )
