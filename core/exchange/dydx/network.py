"""Per-process dYdX v4 resources shared by every trader: the node channel, the Indexer session,
the chain id and small caches.

What the alert→order path reads is cached just long enough to stay correct: a market's grid
(tick, step, clob pair) for a minute, its oracle price for about a second, the block height
for about a second (a short-term order's ``good_til_block`` window tolerates far more) and
account numbers forever (they never change). Concurrent misses for the same key share one
request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from core.exchange.dydx.indexer import DEFAULT_TIMEOUT as INDEXER_TIMEOUT
from core.exchange.dydx.indexer import IndexerClient
from core.exchange.dydx.market import DydxMarket
from core.exchange.dydx.node import DEFAULT_BROADCAST_TIMEOUT, NodeReader
from core.exchange.dydx.node import DEFAULT_TIMEOUT as NODE_TIMEOUT
from core.exchange.port import Account, MarketInfo, Position
from core.runtime.config import DydxEndpoints
from core.runtime.logs import get_logger

T = TypeVar("T")

#: Oldest oracle price :meth:`DydxNetwork.market` returns, in seconds.
ORACLE_MAX_AGE = 1.0
#: Oldest market grid (tick, step, clob pair) used to sign, in seconds.
METADATA_MAX_AGE = 60.0
#: Oldest block height :meth:`DydxNetwork.block_height` returns, in seconds.
HEIGHT_MAX_AGE = 1.0


class DydxNetwork:
    """The dYdX v4 network as one process sees it; traders are built on it by
    :class:`~core.exchange.dydx.venue.DydxVenue`.

    Create it inside the running event loop (its channel, session and cache tasks belong to
    it) and :meth:`close` it on shutdown.

    Args:
        node: gRPC client of the full node.
        indexer: Indexer REST client.
        chain_id: Chain id transactions are signed for.
        oracle_max_age: Oldest oracle price returned by :meth:`market`, in seconds.
        metadata_max_age: Oldest market grid returned by :meth:`market_metadata`, in seconds.
        height_max_age: Oldest block height returned by :meth:`block_height`, in seconds.
    """

    def __init__(
        self,
        *,
        node: NodeReader,
        indexer: IndexerClient,
        chain_id: str,
        oracle_max_age: float = ORACLE_MAX_AGE,
        metadata_max_age: float = METADATA_MAX_AGE,
        height_max_age: float = HEIGHT_MAX_AGE,
    ) -> None:
        self.node = node
        self.indexer = indexer
        self.chain_id = chain_id
        self._oracle_max_age = oracle_max_age
        self._metadata_max_age = max(metadata_max_age, oracle_max_age)
        self._height_max_age = height_max_age
        self._markets: dict[str, tuple[DydxMarket, float]] = {}
        self._all_markets_at: float | None = None
        self._height: tuple[int, float] | None = None
        self._account_numbers: dict[str, int] = {}
        self._flights: dict[Hashable, asyncio.Task[Any]] = {}
        self._log = get_logger(__name__, chain_id=chain_id)

    @classmethod
    def from_endpoints(
        cls,
        endpoints: DydxEndpoints,
        *,
        node_timeout: float = NODE_TIMEOUT,
        broadcast_timeout: float = DEFAULT_BROADCAST_TIMEOUT,
        indexer_timeout: float = INDEXER_TIMEOUT,
        oracle_max_age: float = ORACLE_MAX_AGE,
        metadata_max_age: float = METADATA_MAX_AGE,
        height_max_age: float = HEIGHT_MAX_AGE,
    ) -> DydxNetwork:
        """The network configured in ``settings.dydx``.

        Example:
            >>> network = DydxNetwork.from_endpoints(settings.dydx)  # doctest: +SKIP
            >>> venue = DydxVenue(network)  # doctest: +SKIP
        """
        return cls(
            node=NodeReader.from_endpoints(
                endpoints, timeout=node_timeout, broadcast_timeout=broadcast_timeout
            ),
            indexer=IndexerClient.from_endpoints(endpoints, timeout=indexer_timeout),
            chain_id=endpoints.chain_id,
            oracle_max_age=oracle_max_age,
            metadata_max_age=metadata_max_age,
            height_max_age=height_max_age,
        )

    async def warm_up(self) -> None:
        """Open the node channel and the Indexer session and load the markets, so the first
        order does not pay for connection setup.

        Raises:
            ExchangeUnavailableError: The node or the Indexer did not answer.
        """
        await asyncio.gather(self.block_height(), self.markets())

    async def close(self) -> None:
        """Cancel pending cache refreshes and close the channel and the session."""
        flights = list(self._flights.values())
        self._flights.clear()
        for task in flights:
            task.cancel()
        await asyncio.gather(*flights, return_exceptions=True)
        await self.node.close()
        await self.indexer.close()

    # ---------------------------------------------------------------- shared requests

    async def _once(self, key: Hashable, fetch: Callable[[], Awaitable[T]]) -> T:
        """Run ``fetch`` once for every concurrent caller asking for ``key``.

        A caller that is cancelled does not cancel the request the others wait for.
        """
        task = self._flights.get(key)
        if task is None:
            task = asyncio.ensure_future(fetch())
            self._flights[key] = task

            def done(finished: asyncio.Task[Any], key: Hashable = key) -> None:
                if self._flights.get(key) is finished:
                    del self._flights[key]
                if not finished.cancelled():
                    finished.exception()  # retrieved: every waiter may have gone

            task.add_done_callback(done)
        result: T = await asyncio.shield(task)
        return result

    # ---------------------------------------------------------------- markets

    async def market(self, ticker: str) -> MarketInfo:
        """A market with an oracle price at most ``oracle_max_age`` old (one Indexer round
        trip when it is older).

        Raises:
            KeyError: The market is not listed.
            ExchangeUnavailableError: The Indexer did not answer.
        """
        cached = self._markets.get(ticker)
        if cached is not None and time.monotonic() - cached[1] <= self._oracle_max_age:
            return cached[0].info
        return (await self._once(("market", ticker), lambda: self._fetch_market(ticker))).info

    async def market_metadata(self, ticker: str) -> DydxMarket:
        """A market whose grid (clob pair, tick, step) is at most ``metadata_max_age`` old;
        its oracle price may be as old (use :meth:`market` for prices).

        Raises:
            KeyError: The market is not listed.
            ExchangeUnavailableError: The Indexer did not answer.
        """
        cached = self._markets.get(ticker)
        if cached is not None and time.monotonic() - cached[1] <= self._metadata_max_age:
            return cached[0]
        return await self._once(("market", ticker), lambda: self._fetch_market(ticker))

    async def _fetch_market(self, ticker: str) -> DydxMarket:
        asked_at = time.monotonic()  # the price is at least as old as the question
        try:
            market = await self.indexer.dydx_market(ticker)
        except KeyError:
            self._markets.pop(ticker, None)
            raise
        self._markets[ticker] = (market, asked_at)
        return market

    async def markets(self) -> dict[str, MarketInfo]:
        """Every listed market, with oracle prices at most ``oracle_max_age`` old.

        Raises:
            ExchangeUnavailableError: The Indexer did not answer.
        """
        fetched_at = self._all_markets_at
        if fetched_at is not None and time.monotonic() - fetched_at <= self._oracle_max_age:
            return {ticker: market.info for ticker, (market, _) in self._markets.items()}
        return await self._once("markets", self._fetch_markets)

    async def _fetch_markets(self) -> dict[str, MarketInfo]:
        asked_at = time.monotonic()
        markets = await self.indexer.dydx_markets()
        self._markets = {ticker: (market, asked_at) for ticker, market in markets.items()}
        self._all_markets_at = asked_at
        return {ticker: market.info for ticker, market in markets.items()}

    # ---------------------------------------------------------------- chain

    async def subaccount(self, owner: str, number: int) -> tuple[Account, list[Position]]:
        """Collateral and open positions of a subaccount, never cached: callers asking while a
        request is on its way share it (ten alerts of one trader on one bar close make one
        request, not ten), and a call after it answered asks again.

        Raises:
            ExchangeUnavailableError: The Indexer did not answer.
        """
        return await self._once(
            ("subaccount", owner, number), lambda: self.indexer.subaccount(owner, number)
        )

    async def block_height(self) -> int:
        """The latest block height, at most ``height_max_age`` old (one node round trip when
        it is older).

        Raises:
            ExchangeUnavailableError: The node did not answer.
        """
        cached = self._height
        if cached is not None and time.monotonic() - cached[1] <= self._height_max_age:
            return cached[0]
        return await self._once("height", self._fetch_height)

    async def _fetch_height(self) -> int:
        asked_at = time.monotonic()
        height = await self.node.latest_height()
        previous = self._height
        # Nodes behind a load balancer may lag each other: never step back.
        if previous is not None and previous[0] > height:
            height = previous[0]
        self._height = (height, asked_at)
        return height

    async def account_number(self, address: str) -> int:
        """The x/auth account number of ``address`` (cached: it never changes).

        Raises:
            ExchangeUnavailableError: The node did not answer or the account does not exist.
        """
        cached = self._account_numbers.get(address)
        if cached is not None:
            return cached
        return await self._once(("account", address), lambda: self._fetch_account(address))

    async def _fetch_account(self, address: str) -> int:
        number = await self.node.account_number(address)
        self._account_numbers[address] = number
        return number
