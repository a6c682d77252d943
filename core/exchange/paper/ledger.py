"""One user's paper ledger in the ``paper_*`` tables, through the unit of work.

Every method is one :class:`~core.db.uow.UnitOfWork`; a write first locks the user's
``paper_accounts`` row (created with the starting balance on first use), which serializes
concurrent operations of one user across processes, and commits at its end. Nothing here
reads the network or the clock: the venue passes the markets, the height and the time in,
read before the lock, so the lock is never held across a network call.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.models import PaperAccount
from core.db.repositories.paper import LIVE_STATUSES, PaperRepository
from core.db.uow import UnitOfWork
from core.exchange.orders import OrderFlags, OrderRequest
from core.exchange.paper import rows, rules
from core.exchange.paper.book import Book, cancel, cancel_live, ledger, status
from core.exchange.paper.codec import CancelTx
from core.exchange.port import Account, Fill, MarketInfo, OpenOrder, Position


class PaperLedger:
    """The paper account, orders, fills and positions of one user.

    Args:
        sessionmaker: Session factory of the units of work.
        user_id: The trader (``users.id``).
        starting_balance: Virtual USDC of a new paper account.
        taker_fee: Fee rate on the notional of every fill.
        slippage: Fraction fills trade away from the oracle, against the trader.
        log: The venue's logger.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        user_id: int,
        *,
        starting_balance: Decimal,
        taker_fee: Decimal,
        slippage: Decimal,
        log: Any,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._user_id = user_id
        self._starting_balance = starting_balance
        self._taker_fee = taker_fee
        self._slippage = slippage
        self._log = log

    @staticmethod
    async def users_with_live_orders(sessionmaker: async_sessionmaker[AsyncSession]) -> list[int]:
        """Ids of the users with open or untriggered paper orders."""
        async with UnitOfWork(sessionmaker, read_only=True) as uow:
            return await uow.paper.users_with_live_orders()

    # ------------------------------------------------------------------ reads

    async def account(self, markets: Mapping[str, MarketInfo]) -> Account:
        """Equity and free collateral at these markets' oracle prices."""
        async with UnitOfWork(self._sessionmaker) as uow:
            row = await uow.paper.get_account(self._user_id)
            balance = self._starting_balance if row is None else row.balance
            return rows.account(balance, await uow.paper.positions(self._user_id), markets)

    async def positions(self, markets: Mapping[str, MarketInfo]) -> list[Position]:
        """Open positions, unrealized PnL at these markets' oracle prices."""
        async with UnitOfWork(self._sessionmaker) as uow:
            return rows.positions(await uow.paper.positions(self._user_id), markets)

    async def open_orders(self, market: str | None, height: int, now: datetime) -> list[OpenOrder]:
        """Open and untriggered orders not expired at ``height`` / ``now``, oldest first."""
        async with UnitOfWork(self._sessionmaker) as uow:
            live = await uow.paper.live_orders(self._user_id, market)
            orders = [rows.open_order(row, height, now) for row in live]
        return [order for order in orders if order.status in LIVE_STATUSES]

    async def fills(self, market: str | None, limit: int) -> list[Fill]:
        """Latest fills, newest first."""
        async with UnitOfWork(self._sessionmaker) as uow:
            made = await uow.paper.fills(self._user_id, market, limit)
            return [rows.fill(row) for row in made]

    async def find_order(
        self, market: str, client_id: int, flags: OrderFlags, height: int, now: datetime
    ) -> OpenOrder | None:
        """The order with this id in any status, or None when it was never accepted."""
        async with UnitOfWork(self._sessionmaker) as uow:
            row = await uow.paper.find_order(self._user_id, market, client_id, int(flags))
            return None if row is None else rows.open_order(row, height, now)

    async def knows_tx(self, tx_hash: str) -> bool:
        """Whether an order was placed by the transaction with this hash."""
        async with UnitOfWork(self._sessionmaker) as uow:
            return await uow.paper.order_by_tx_hash(tx_hash) is not None

    # ------------------------------------------------------------------ writes

    async def execute(
        self,
        tx: OrderRequest | CancelTx,
        tx_hash: str,
        markets: Mapping[str, MarketInfo],
        height: int,
        now: datetime,
    ) -> bool:
        """Execute a decoded transaction in one unit of work (all of it or nothing).

        Returns:
            False when an order's bytes were already broadcast (nothing changed), else True.

        Raises:
            PermanentExchangeError: Refused, as :meth:`PaperExchange.broadcast` lists.
            RetryableExchangeError: The short-term expiry block is out of the window.
        """
        async with UnitOfWork(self._sessionmaker) as uow:
            account = await uow.paper.lock_account(self._user_id, self._starting_balance)
            if isinstance(tx, CancelTx):
                order = await uow.paper.find_order(
                    self._user_id, tx.market, tx.client_id, int(tx.flags)
                )
                cancel(order, tx.flags, height, now, self._log)
            elif await uow.paper.order_by_tx_hash(tx_hash) is not None:
                self._log.info("paper_tx_already_broadcast", tx_hash=tx_hash)
                await uow.commit()  # as any write: a first use keeps its new account
                return False
            else:
                book = await self._book(uow.paper, account, markets)
                await self._place(uow.paper, book, tx, tx_hash, height, now)
            await uow.commit()
        return True

    async def match(
        self, markets: Mapping[str, MarketInfo], height: int, now: datetime
    ) -> list[Fill]:
        """Expire, trigger and fill the user's live orders (see :meth:`Book.match`).

        Returns:
            The fills made, oldest first.
        """
        async with UnitOfWork(self._sessionmaker) as uow:
            account = await uow.paper.lock_account(self._user_id, self._starting_balance)
            orders = await uow.paper.live_orders(self._user_id)
            if not orders:
                await uow.commit()  # as any write: a first use keeps its new account
                return []
            book = await self._book(uow.paper, account, markets)
            fills = []
            for order in orders:
                fill = book.match(order, height, now)
                if fill is not None:
                    fills.append(fill)
            for row in book.staged:
                uow.paper.add(row)
            await uow.paper.flush()  # assigns the fills' ids
            made = [rows.fill(fill) for fill in fills]
            await uow.commit()
        return made

    async def reset(self, balance: Decimal, now: datetime) -> None:
        """Cancel live orders, drop positions and set the balance (a positive amount)."""
        async with UnitOfWork(self._sessionmaker) as uow:
            account = await uow.paper.lock_account(self._user_id, balance)
            for order in await uow.paper.live_orders(self._user_id):
                cancel_live(order, now, "reset", self._log)
            await uow.paper.delete_positions(self._user_id)
            account.balance = ledger(balance)
            await uow.commit()

    async def _book(
        self, repo: PaperRepository, account: PaperAccount, markets: Mapping[str, MarketInfo]
    ) -> Book:
        return Book(
            account,
            await repo.positions(self._user_id),
            markets,
            taker_fee=self._taker_fee,
            slippage=self._slippage,
            log=self._log,
        )

    async def _place(
        self,
        repo: PaperRepository,
        book: Book,
        request: OrderRequest,
        tx_hash: str,
        height: int,
        now: datetime,
    ) -> None:
        info = rules.validate(request, book.markets, height, now)
        existing = await repo.find_order(
            self._user_id, request.market, request.client_id, int(request.flags)
        )
        if existing is not None:
            code = {"FILLED": 24, "CANCELED": 3008}.get(status(existing, height, now), 3005)
            raise rules.chain_error("clob", code, "paper: client id already used")
        order = rows.new_order(self._user_id, request, tx_hash, now)
        if request.reduce_only and book.reducible(order) == 0:
            raise rules.chain_error("clob", 2001, "paper: reduce-only order with nothing to reduce")
        repo.add(order)
        await repo.flush()  # the fill rows need the order's id
        book.accept(order, info, now)
        for row in book.staged:
            repo.add(row)
