"""The paper-trading venue: an :class:`~core.exchange.port.Exchange` that never sends anything
to a node.

Orders fill at the live oracle price (read from the Indexer through a :class:`MarketSource`)
by the rules of :mod:`core.exchange.paper.book`; each user has a virtual USDC balance.
Everything is persisted in the ``paper_*`` tables by :class:`~core.exchange.paper.ledger.
PaperLedger` through the unit of work, so the venue survives restarts and several processes
can share it: every write is one unit of work that first locks the user's ``paper_accounts``
row, which serializes concurrent operations of one user.

Transactions are encoded by :mod:`core.exchange.paper.codec`: a second broadcast of the same
bytes answers ``sdk`` 19 (already broadcast), exactly like the chain.
"""

from __future__ import annotations

import time
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.base import utcnow
from core.exchange.dydx.constants import CAPABILITIES
from core.exchange.orders import (
    CancelResult,
    OrderFlags,
    OrderRequest,
    PlaceResult,
    SignedTx,
    TxResult,
)
from core.exchange.paper import codec, rows, rules
from core.exchange.paper.ledger import PaperLedger
from core.exchange.port import Account, Fill, MarketInfo, OpenOrder, Position, VenueCapabilities
from core.runtime.logs import get_logger

DEFAULT_STARTING_BALANCE = Decimal("10000")
DEFAULT_TAKER_FEE = Decimal("0.0005")
DEFAULT_SLIPPAGE = Decimal("0.0005")


class MarketSource(Protocol):
    """Where the paper venue reads markets and live oracle prices (the Indexer in production:
    :class:`core.exchange.dydx.indexer.IndexerClient`)."""

    async def market(self, ticker: str) -> MarketInfo:
        """One market with a fresh oracle price.

        Raises:
            KeyError: The market is not listed.
            ExchangeUnavailableError: The source could not answer.
        """
        ...

    async def markets(self) -> dict[str, MarketInfo]:
        """Every listed market by ticker.

        Raises:
            ExchangeUnavailableError: The source could not answer.
        """
        ...


class PaperExchange:
    """The simulated venue of one user (``owner_address`` ``paper:<user id>``, subaccount 0).

    Implements :class:`core.exchange.port.Exchange`. Each write is one unit of work that locks
    the user's ``paper_accounts`` row first (created with ``starting_balance`` on first use).

    Args:
        sessionmaker: Session factory of the venue's units of work (it commits its writes).
        user_id: The trader (``users.id``).
        markets: Markets and live oracle prices (the Indexer client in production).
        starting_balance: Virtual USDC of a new paper account.
        taker_fee: Fee rate on the notional of every fill.
        slippage: Fraction fills trade away from the oracle, against the trader.

    Raises:
        ValueError: A negative fee, a slippage outside ``[0, 1)`` or a non-positive balance.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        user_id: int,
        markets: MarketSource,
        *,
        starting_balance: Decimal = DEFAULT_STARTING_BALANCE,
        taker_fee: Decimal = DEFAULT_TAKER_FEE,
        slippage: Decimal = DEFAULT_SLIPPAGE,
    ) -> None:
        if starting_balance <= 0:
            raise ValueError("the starting balance must be positive")
        if taker_fee < 0:
            raise ValueError("the taker fee cannot be negative")
        if not 0 <= slippage < 1:
            raise ValueError("the slippage must be at least 0 and below 1")
        self._user_id = user_id
        self._markets = markets
        self._starting_balance = starting_balance
        # The package's name, not this module's: one logger for the whole venue.
        self._log = get_logger("core.exchange.paper", user_id=user_id, paper=True)
        self._ledger = PaperLedger(
            sessionmaker,
            user_id,
            starting_balance=starting_balance,
            taker_fee=taker_fee,
            slippage=slippage,
            log=self._log,
        )

    # ------------------------------------------------------------------ identity

    @property
    def is_paper(self) -> bool:
        """Always True: nothing is ever sent to a node."""
        return True

    @property
    def capabilities(self) -> VenueCapabilities:
        """dYdX's capabilities: the paper venue mimics that chain."""
        return CAPABILITIES

    @property
    def owner_address(self) -> str:
        """``paper:<user id>``."""
        return f"paper:{self._user_id}"

    @property
    def subaccount_number(self) -> int:
        """Always 0."""
        return 0

    @property
    def user_id(self) -> int:
        """The trader whose venue this is."""
        return self._user_id

    @staticmethod
    async def users_with_live_orders(sessionmaker: async_sessionmaker[AsyncSession]) -> list[int]:
        """Ids of the users with open or untriggered paper orders (for the trigger cron).

        Args:
            sessionmaker: Session factory.
        """
        return await PaperLedger.users_with_live_orders(sessionmaker)

    # ------------------------------------------------------------------ reads

    async def block_height(self) -> int:
        """A pseudo block height derived from the clock (two per second, like dYdX)."""
        return rows.pseudo_height(time.time())

    async def indexer_height(self) -> int:
        """The paper venue's own height: its reads are never behind its writes."""
        return await self.block_height()

    async def tx_result(self, tx_hash: str) -> TxResult | None:
        """A paper transaction that placed an order succeeded at once; else None."""
        if not await self._ledger.knows_tx(tx_hash.upper()):
            return None
        return TxResult(tx_hash=tx_hash.upper(), height=await self.block_height())

    async def market(self, ticker: str) -> MarketInfo:
        """One market with a fresh oracle price.

        Raises:
            KeyError: The market is not listed.
            ExchangeUnavailableError: The Indexer could not answer.
        """
        return await self._markets.market(ticker)

    async def markets(self) -> dict[str, MarketInfo]:
        """Every listed market by ticker.

        Raises:
            ExchangeUnavailableError: The Indexer could not answer.
        """
        return await self._markets.markets()

    async def account(self) -> Account:
        """Equity (balance plus unrealized PnL at the oracle) and free collateral (equity
        minus initial margin).

        Raises:
            ExchangeUnavailableError: The Indexer could not answer.
        """
        return await self._ledger.account(await self._markets.markets())

    async def positions(self) -> list[Position]:
        """Open positions, unrealized PnL at the oracle.

        Raises:
            ExchangeUnavailableError: The Indexer could not answer.
        """
        return await self._ledger.positions(await self._markets.markets())

    async def open_orders(self, market: str | None = None) -> list[OpenOrder]:
        """Open and untriggered orders (expired ones excluded), oldest first."""
        height, now = await self.block_height(), utcnow()
        return await self._ledger.open_orders(market, height, now)

    async def fills(self, market: str | None = None, limit: int = 100) -> list[Fill]:
        """Latest fills, newest first (all taker fills)."""
        return await self._ledger.fills(market, limit)

    async def find_order(self, market: str, client_id: int, flags: OrderFlags) -> OpenOrder | None:
        """The order with this id in any status (OPEN, UNTRIGGERED, FILLED, CANCELED), or None
        when it was never accepted."""
        height, now = await self.block_height(), utcnow()
        return await self._ledger.find_order(market, client_id, flags, height, now)

    # ------------------------------------------------------------------ signing

    async def sign_order(self, request: OrderRequest) -> SignedTx:
        """Encode an order canonically (deterministic bytes, SHA-256 hash).

        Raises:
            GridError: Size, price or trigger price is not on the market's grid.
            KeyError: The market is not listed.
            ExchangeUnavailableError: The Indexer could not answer.
        """
        rules.check_grid(request, await self._markets.market(request.market))
        return codec.encode_order(request, self.owner_address)

    async def sign_cancel(
        self,
        market: str,
        client_id: int,
        flags: OrderFlags,
        *,
        good_til_block: int | None = None,
        good_til_block_time: datetime | None = None,
    ) -> SignedTx:
        """Encode the cancel of one of our orders.

        Raises:
            KeyError: The market is not listed.
            ExchangeUnavailableError: The Indexer could not answer.
            ValueError: ``good_til_block_time`` is naive.
        """
        await self._markets.market(market)
        if good_til_block_time is not None and good_til_block_time.tzinfo is None:
            raise ValueError("good_til_block_time must be timezone-aware")
        tx = codec.CancelTx(
            market, client_id, OrderFlags(flags), good_til_block, good_til_block_time
        )
        return codec.encode_cancel(tx, self.owner_address)

    # ------------------------------------------------------------------ writes

    async def place_order(self, request: OrderRequest) -> PlaceResult:
        """Sign and broadcast an order (see :meth:`broadcast`).

        Raises:
            GridError: Size or price is not on the market's grid (nothing stored).
            PermanentExchangeError: Refused; ``reason`` tells the trader what to change.
            RetryableExchangeError: The short-term expiry block is out of the window.
            ExchangeUnavailableError: The Indexer could not answer.
        """
        return await self.broadcast(await self.sign_order(request))

    async def cancel_order(
        self,
        market: str,
        client_id: int,
        flags: OrderFlags,
        *,
        good_til_block: int | None = None,
        good_til_block_time: datetime | None = None,
    ) -> CancelResult:
        """Sign and broadcast the cancel of a resting order.

        Raises:
            PermanentExchangeError: The order does not exist or no longer rests (``clob`` 2
                for short-term orders, 3006 for stateful ones).
            ExchangeUnavailableError: The Indexer could not answer.
        """
        signed = await self.sign_cancel(
            market,
            client_id,
            flags,
            good_til_block=good_til_block,
            good_til_block_time=good_til_block_time,
        )
        result = await self.broadcast(signed)
        return CancelResult(
            tx_hash=result.tx_hash,
            code=result.code,
            codespace=result.codespace,
            raw_log=result.raw_log,
            tx_bytes=result.tx_bytes,
            already_placed=result.already_placed,
        )

    async def broadcast(self, signed: SignedTx) -> PlaceResult:
        """Execute signed paper bytes (an order or a cancel); nothing leaves the process.

        The hash is recomputed from the bytes. Bytes already broadcast answer ``sdk`` 19
        (:attr:`PlaceResult.already_placed`) and change nothing.

        Raises:
            PermanentExchangeError: Unreadable bytes (``sdk`` 2), a reused client id
                (``clob`` 3005, or 24 / 3008 once that order filled / was cancelled), nothing
                to reduce (``clob`` 2001), not enough collateral (``clob`` 3007), a post-only
                order that would trade (``clob`` 2003), an order or cancel of an unknown or
                finished order, and the chain's expiry and market-status refusals; reasons
                as :func:`core.exchange.dydx.errors.error_from_chain` gives them.
            RetryableExchangeError: The short-term expiry block is out of the window.
            ExchangeUnavailableError: The Indexer could not answer.
        """
        try:
            decoded = codec.decode(signed.tx_bytes, self.owner_address)
        except codec.MalformedTxError as exc:
            self._log.warning("paper_tx_refused", error=str(exc))
            raise rules.chain_error("sdk", 2, f"paper: {exc}") from None
        tx_hash = codec.tx_hash(signed.tx_bytes)
        # Read prices before locking: the lock is never held across a network call.
        markets = await self._markets.markets()
        now, height = utcnow(), await self.block_height()
        if not await self._ledger.execute(decoded, tx_hash, markets, height, now):
            return rules.already_placed(tx_hash, signed.tx_bytes)
        return PlaceResult(
            tx_hash=tx_hash, code=0, codespace="", raw_log="", tx_bytes=signed.tx_bytes
        )

    async def check_triggers(self) -> list[Fill]:
        """Run the venue's matching for this user: expire stale orders, trigger conditional
        orders whose trigger the oracle crossed, and fill resting orders the oracle reached.

        A sell STOP triggers at ``oracle <= trigger`` and a sell TAKE_PROFIT at
        ``oracle >= trigger`` (mirrored for buys). A worker cron calls this periodically for
        :meth:`users_with_live_orders`.

        Returns:
            The fills made, oldest first.

        Raises:
            ExchangeUnavailableError: The Indexer could not answer (nothing changed).
        """
        markets = await self._markets.markets()
        now, height = utcnow(), await self.block_height()
        return await self._ledger.match(markets, height, now)

    async def reset(self, balance: Decimal | None = None) -> None:
        """Restart the paper account: cancel live orders, drop positions (and their realized
        PnL), set the balance. Orders and fills stay as history.

        Args:
            balance: The new virtual balance; the starting balance when None.

        Raises:
            ValueError: ``balance`` is not positive.
        """
        new_balance = self._starting_balance if balance is None else balance
        if not new_balance.is_finite() or new_balance <= 0:
            raise ValueError("the paper balance must be positive")
        await self._ledger.reset(new_balance, utcnow())
        self._log.info("paper_account_reset", balance=str(new_balance))
