"""Market REST routes of the Indexer double: height, time, markets, candles, books."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aiohttp import web

from doubles.dydx.indexer.constants import CANDLE_RESOLUTIONS, DEFAULT_LIMIT, MAX_CANDLES
from doubles.dydx.indexer.core import IndexerCore
from doubles.dydx.indexer.params import (
    _BadRequestError,
    _errors,
    _int_param,
    _iso_param,
    _NotFoundError,
    _required,
)
from doubles.dydx.indexer_json import market_json
from doubles.dydx.state import FillRecord, Market, fmt_decimal, iso


class IndexerMarketRoutes(IndexerCore):
    """``/v4/height``, ``/v4/time``, markets, candles, orderbooks, trades and screening."""

    # ---------------------------------------------------------------- REST handlers

    async def _height(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"height": str(self.view.height), "time": iso(self.view.block_time)}
        )

    async def _time(self, request: web.Request) -> web.Response:
        now = datetime.now(UTC)
        return web.json_response({"iso": iso(now), "epoch": round(now.timestamp(), 3)})

    async def _perpetual_markets(self, request: web.Request) -> web.Response:
        query = request.query
        ticker = query.get("ticker")
        market_param = query.get("market")
        if ticker and market_param:
            return _errors(400, "Only one of ticker or market may be provided")
        identifier = ticker or market_param
        if identifier is not None:
            market = self.view.markets.get(identifier)
            if market is None:
                raise _NotFoundError(f"{identifier} not found in markets of type PERPETUAL")
            return web.json_response({"markets": {identifier: market_json(self.view, market)}})
        limit = _int_param(query, "limit", default=DEFAULT_LIMIT, minimum=1, maximum=DEFAULT_LIMIT)
        markets = list(self.view.markets.values())[:limit]
        return web.json_response(
            {"markets": {m.ticker: market_json(self.view, m) for m in markets}}
        )

    async def _candles(self, request: web.Request) -> web.Response:
        ticker = request.match_info["ticker"]
        market = self.view.markets.get(ticker)
        if market is None:
            raise _BadRequestError("ticker", ticker, "ticker must be a valid ticker")
        resolution = request.query.get("resolution")
        if resolution not in CANDLE_RESOLUTIONS:
            raise _BadRequestError(
                "resolution",
                resolution,
                f"resolution must be one of {','.join(CANDLE_RESOLUTIONS)}",
            )
        limit = _int_param(request.query, "limit", default=MAX_CANDLES, minimum=1)
        assert limit is not None
        start = _iso_param(request.query, "fromISO")
        end = _iso_param(request.query, "toISO")
        candles = self._build_candles(market, resolution, start, end)
        return web.json_response({"candles": candles[: min(limit, MAX_CANDLES)]})

    def _build_candles(
        self, market: Market, resolution: str, start: datetime | None, end: datetime | None
    ) -> list[dict[str, Any]]:
        seconds = CANDLE_RESOLUTIONS[resolution]

        def bucket(moment: datetime) -> int:
            epoch = int(moment.timestamp())
            return epoch - epoch % seconds

        prices: dict[int, list[Decimal]] = {}
        for moment, price in self.view.oracle_history[market.ticker]:
            prices.setdefault(bucket(moment), []).append(price)
        # The current period always has a candle at the latest price.
        prices.setdefault(bucket(datetime.now(UTC)), []).append(market.oracle_price)
        volumes: dict[int, list[FillRecord]] = {}
        for fill in self.view.fills:
            if fill.ticker == market.ticker:
                volumes.setdefault(bucket(fill.created_at), []).append(fill)
        open_interest = fmt_decimal(self.view.open_interest(market.ticker))
        candles = []
        for started in sorted(prices, reverse=True):
            moment = datetime.fromtimestamp(started, UTC)
            if (start is not None and moment < start) or (end is not None and moment > end):
                continue
            series = prices[started]
            fills = volumes.get(started, [])
            candles.append(
                {
                    "startedAt": iso(moment),
                    "ticker": market.ticker,
                    "resolution": resolution,
                    "low": fmt_decimal(min(series)),
                    "high": fmt_decimal(max(series)),
                    "open": fmt_decimal(series[0]),
                    "close": fmt_decimal(series[-1]),
                    "baseTokenVolume": fmt_decimal(sum((f.size for f in fills), Decimal(0))),
                    "usdVolume": fmt_decimal(sum((f.quote_amount for f in fills), Decimal(0))),
                    "trades": len(fills),
                    "startingOpenInterest": open_interest,
                    "orderbookMidPriceOpen": fmt_decimal(series[0]),
                    "orderbookMidPriceClose": fmt_decimal(series[-1]),
                }
            )
        return candles

    async def _orderbook(self, request: web.Request) -> web.Response:
        ticker = request.match_info["ticker"]
        market = self.view.markets.get(ticker)
        if market is None:
            raise _NotFoundError(f"{ticker} not found in markets of type PERPETUAL")
        return web.json_response(self._book(market))

    def _book(self, market: Market) -> dict[str, list[dict[str, str]]]:
        """A synthetic book around the oracle plus the users' resting orders."""
        depth = market.step_size * 100
        bids: dict[Decimal, Decimal] = {}
        asks: dict[Decimal, Decimal] = {}
        # Strictly around the oracle, so the book is never crossed or locked.
        best_bid = market.round_to_tick(market.oracle_price, up=False)
        best_ask = market.round_to_tick(market.oracle_price, up=True)
        if best_bid == market.oracle_price:
            best_bid -= market.tick_size
        if best_ask == market.oracle_price:
            best_ask += market.tick_size
        for level in range(5):
            bids[best_bid - level * market.tick_size] = depth
            asks[best_ask + level * market.tick_size] = depth
        for record in self.view.orders.values():
            if record.ticker != market.ticker or record.status != "OPEN":
                continue
            if record.is_conditional and record.triggered_at_height is None:
                continue
            price = market.price_from_subticks(record.order.subticks)
            size = market.size_from_quantums(record.remaining_quantums)
            side = bids if record.is_buy else asks
            side[price] = side.get(price, Decimal(0)) + size
        return {
            "bids": [
                {"price": fmt_decimal(p), "size": fmt_decimal(s)}
                for p, s in sorted(bids.items(), reverse=True)
                if p > 0
            ],
            "asks": [
                {"price": fmt_decimal(p), "size": fmt_decimal(s)} for p, s in sorted(asks.items())
            ],
        }

    async def _trades(self, request: web.Request) -> web.Response:
        ticker = request.match_info["ticker"]
        if ticker not in self.view.markets:
            raise _NotFoundError(f"{ticker} not found in markets of type PERPETUAL")
        limit = _int_param(
            request.query, "limit", default=DEFAULT_LIMIT, minimum=1, maximum=DEFAULT_LIMIT
        )
        trades = [
            {
                "id": f.id.replace("-", ""),
                "side": f.side,
                "size": fmt_decimal(f.size),
                "price": fmt_decimal(f.price),
                "type": "LIMIT",
                "createdAt": iso(f.created_at),
                "createdAtHeight": str(f.created_at_height),
            }
            for f in reversed(self.view.fills)
            if f.ticker == ticker and f.liquidity == "TAKER"
        ]
        return web.json_response({"trades": trades[:limit]})

    async def _compliance_screen(self, request: web.Request) -> web.Response:
        address = request.match_info["address"]
        entry = self._compliance.get(address)
        return web.json_response(dict(entry) if entry else {"status": "COMPLIANT"})

    async def _screen(self, request: web.Request) -> web.Response:
        address = _required(request.query, "address")
        entry = self._compliance.get(address)
        if entry is not None and entry["status"] == "BLOCKED":
            return web.json_response(
                {"restricted": True, "reason": entry.get("reason", "COMPLIANCE_PROVIDER")}
            )
        return web.json_response({"restricted": False})
