"""A small asynchronous dYdX Indexer REST client: one shared session, a timeout on every call.

Every answer is outside input: it is parsed strictly into the exchange port's Decimal DTOs
(JSON numbers are read as :class:`~decimal.Decimal`, never ``float``) and an answer that does
not have the Indexer's shape is refused with :class:`ExchangeUnavailableError` rather than
guessed at.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import aiohttp

from core.domain.compliance import ComplianceStatus
from core.exchange.dydx.market import DydxMarket
from core.exchange.dydx.parsing import (
    MalformedAnswerError,
    _int,
    _list,
    _obj,
    parse_fill,
    parse_market,
    parse_order,
    parse_subaccount,
)
from core.exchange.errors import ExchangeUnavailableError
from core.exchange.port import Account, Fill, MarketInfo, OpenOrder, Position
from core.runtime.config import DydxEndpoints
from core.runtime.logs import get_logger

DEFAULT_TIMEOUT = 5.0  # seconds


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"non-finite JSON number {name}")


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------


class IndexerClient:
    """Indexer REST queries, parsed into the exchange port's DTOs.

    The HTTP session opens on first use (it belongs to the running event loop) and is reused
    (keep-alive: one loopback round trip per call).

    Args:
        base_url: Indexer REST base URL, without a trailing slash.
        timeout: Total time allowed per request, in seconds.
    """

    def __init__(self, base_url: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._log = get_logger(__name__, indexer=self._base_url)

    @classmethod
    def from_endpoints(
        cls, endpoints: DydxEndpoints, *, timeout: float = DEFAULT_TIMEOUT
    ) -> IndexerClient:
        """A client of the Indexer configured in ``settings.dydx``."""
        return cls(endpoints.indexer_url, timeout=timeout)

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, headers={"Accept": "application/json"}
            )
        return self._session

    async def close(self) -> None:
        """Close the session (a later call opens a new one)."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def _get_json(
        self,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        not_found_ok: bool = False,
    ) -> Any:
        """GET a JSON answer; None for an Indexer 404 when ``not_found_ok``.

        Raises:
            ExchangeUnavailableError: Unreachable, timed out, an error status, or a body that
                is not JSON (a 404 must carry the Indexer's ``errors`` body to count as one).
        """
        try:
            async with self._open().get(f"{self._base_url}{path}", params=params) as response:
                status = response.status
                text = await response.text()
        except (TimeoutError, aiohttp.ClientError, UnicodeDecodeError) as exc:
            self._log.warning("indexer_call_failed", path=path, error=type(exc).__name__)
            raise ExchangeUnavailableError("the dYdX Indexer is unreachable") from None
        if status != 200 and not (status == 404 and not_found_ok):
            self._log.warning("indexer_call_failed", path=path, status=status)
            raise ExchangeUnavailableError(f"the dYdX Indexer answered {status}")
        try:
            # Decimal for every JSON number with a fraction: money never goes through float.
            body = json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)
        except ValueError:
            self._log.warning("indexer_not_json", path=path, status=status)
            raise ExchangeUnavailableError(
                "the dYdX Indexer gave an answer that is not JSON"
            ) from None
        if status == 404:
            # Only the Indexer's own "not found" counts, not a proxy's or a wrong base URL's.
            if isinstance(body, dict) and isinstance(body.get("errors"), list):
                return None
            self._log.warning("indexer_call_failed", path=path, status=status)
            raise ExchangeUnavailableError("the dYdX Indexer answered 404")
        return body

    async def get_json(self, path: str, params: Mapping[str, str]) -> Any:
        """GET an Indexer answer as JSON (numbers with a fraction as ``Decimal``).

        Raises:
            ExchangeUnavailableError: Unreachable, timed out, an error status, not JSON.
        """
        return await self._get_json(path, params)

    def malformed(self, path: str, exc: MalformedAnswerError) -> ExchangeUnavailableError:
        """The error for an answer without the Indexer's shape (logged)."""
        return self._malformed(path, exc)

    def _malformed(self, path: str, exc: MalformedAnswerError) -> ExchangeUnavailableError:
        self._log.warning("indexer_malformed_answer", path=path, problem=str(exc))
        return ExchangeUnavailableError("the dYdX Indexer gave a malformed answer")

    async def compliance_screen(self, address: str) -> ComplianceStatus:
        """Screen an address (``GET /v4/compliance/screen/{address}``).

        Raises:
            ExchangeUnavailableError: Unreachable, timed out, an error status, or an answer this
                version does not understand (refusing is safer than guessing).
        """
        body = await self._get_json(f"/v4/compliance/screen/{quote(address, safe='')}")
        status = body.get("status") if isinstance(body, dict) else None
        try:
            return ComplianceStatus(str(status))
        except ValueError:
            self._log.warning("indexer_unknown_compliance_status", status=str(status)[:32])
            raise ExchangeUnavailableError(
                "the dYdX Indexer gave an unknown compliance status"
            ) from None

    async def dydx_markets(self) -> dict[str, DydxMarket]:
        """Every listed perpetual market with its chain parameters
        (``GET /v4/perpetualMarkets``).

        A single market the Indexer describes inconsistently is left out (and logged) rather
        than failing every market; an answer without any valid market is refused.

        Raises:
            ExchangeUnavailableError: Unreachable, an error status or a malformed answer.
        """
        path = "/v4/perpetualMarkets"
        body = await self._get_json(path)
        try:
            raw = _obj(_obj(body, "answer").get("markets"), "markets")
        except MalformedAnswerError as exc:
            raise self._malformed(path, exc) from None
        markets: dict[str, DydxMarket] = {}
        for ticker, item in raw.items():
            try:
                market = parse_market(item)
                if market.ticker != ticker:
                    raise MalformedAnswerError("a market is filed under another ticker")
            except MalformedAnswerError as exc:
                self._log.warning(
                    "indexer_market_skipped", ticker=str(ticker)[:32], problem=str(exc)
                )
                continue
            markets[ticker] = market
        if raw and not markets:
            raise self._malformed(path, MalformedAnswerError("no valid market"))
        return markets

    async def dydx_market(self, ticker: str) -> DydxMarket:
        """One market with its chain parameters and current oracle price
        (``GET /v4/perpetualMarkets?ticker=``).

        Raises:
            KeyError: The market is not listed.
            ExchangeUnavailableError: Unreachable, an error status or a malformed answer.
        """
        path = "/v4/perpetualMarkets"
        body = await self._get_json(path, {"ticker": ticker}, not_found_ok=True)
        if body is None:
            raise KeyError(ticker)
        try:
            raw = _obj(_obj(body, "answer").get("markets"), "markets")
            if ticker not in raw:
                raise KeyError(ticker)
            market = parse_market(raw[ticker])
            if market.ticker != ticker:
                raise MalformedAnswerError("the market is filed under another ticker")
        except MalformedAnswerError as exc:
            raise self._malformed(path, exc) from None
        return market

    async def markets(self) -> dict[str, MarketInfo]:
        """Every listed perpetual market (see :meth:`dydx_markets`).

        Raises:
            ExchangeUnavailableError: Unreachable, an error status or a malformed answer.
        """
        return {ticker: market.info for ticker, market in (await self.dydx_markets()).items()}

    async def market(self, ticker: str) -> MarketInfo:
        """One market with its current oracle price (see :meth:`dydx_market`).

        Raises:
            KeyError: The market is not listed.
            ExchangeUnavailableError: Unreachable, an error status or a malformed answer.
        """
        return (await self.dydx_market(ticker)).info

    async def subaccount(self, owner: str, number: int) -> tuple[Account, list[Position]]:
        """Collateral and open positions of a subaccount.

        A subaccount that was never funded does not exist for the Indexer (404): zero equity,
        no position.

        Raises:
            ExchangeUnavailableError: Unreachable, an error status or a malformed answer.
        """
        path = f"/v4/addresses/{quote(owner, safe='')}/subaccountNumber/{int(number)}"
        body = await self._get_json(path, not_found_ok=True)
        if body is None:
            return Account(equity=Decimal(0), free_collateral=Decimal(0)), []
        try:
            return parse_subaccount(_obj(body, "answer").get("subaccount"))
        except MalformedAnswerError as exc:
            raise self._malformed("/v4/addresses/…/subaccountNumber", exc) from None

    async def orders(
        self,
        owner: str,
        number: int,
        *,
        ticker: str | None = None,
        statuses: tuple[str, ...] | None = None,
        limit: int = 100,
    ) -> list[OpenOrder]:
        """Orders of a subaccount (``GET /v4/orders``, a bare array), every status by default.

        Args:
            owner: Subaccount owner.
            number: Subaccount number.
            ticker: Only this market.
            statuses: Only these statuses (e.g. :data:`LIVE_ORDER_STATUSES`).
            limit: At most this many (1-1000).

        Raises:
            ExchangeUnavailableError: Unreachable, an error status or a malformed answer.
        """
        params = {"address": owner, "subaccountNumber": str(int(number)), "limit": str(limit)}
        if ticker is not None:
            params["ticker"] = ticker
        if statuses:
            params["status"] = ",".join(statuses)
        body = await self._get_json("/v4/orders", params)
        try:
            return [parse_order(item) for item in _list(body, "answer")]
        except MalformedAnswerError as exc:
            raise self._malformed("/v4/orders", exc) from None

    async def order(self, order_id: str) -> OpenOrder | None:
        """One order by its Indexer id (``GET /v4/orders/{id}``), None if the Indexer has never
        seen it.

        Raises:
            ExchangeUnavailableError: Unreachable, an error status or a malformed answer.
        """
        path = f"/v4/orders/{quote(order_id, safe='')}"
        body = await self._get_json(path, not_found_ok=True)
        if body is None:
            return None
        try:
            order = parse_order(body)
        except MalformedAnswerError as exc:
            raise self._malformed("/v4/orders/{id}", exc) from None
        if order.order_id != order_id:
            raise self._malformed("/v4/orders/{id}", MalformedAnswerError("another order"))
        return order

    async def fills(
        self, owner: str, number: int, *, market: str | None = None, limit: int = 100
    ) -> list[Fill]:
        """Latest fills of a subaccount, newest first (``GET /v4/fills``).

        Raises:
            ExchangeUnavailableError: Unreachable, an error status or a malformed answer.
        """
        params = {"address": owner, "subaccountNumber": str(int(number)), "limit": str(limit)}
        if market is not None:
            params["market"] = market
            params["marketType"] = "PERPETUAL"  # required with market
        body = await self._get_json("/v4/fills", params)
        try:
            return [parse_fill(item) for item in _list(_obj(body, "answer").get("fills"), "fills")]
        except MalformedAnswerError as exc:
            raise self._malformed("/v4/fills", exc) from None

    async def height(self) -> int:
        """The latest block height the Indexer has processed (``GET /v4/height``).

        Raises:
            ExchangeUnavailableError: Unreachable, an error status or a malformed answer.
        """
        body = await self._get_json("/v4/height")
        try:
            height = _int(_obj(body, "answer"), "height")
        except MalformedAnswerError as exc:
            raise self._malformed("/v4/height", exc) from None
        if height < 0:
            raise self._malformed("/v4/height", MalformedAnswerError("negative height"))
        return height
