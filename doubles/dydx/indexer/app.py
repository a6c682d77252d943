"""The Indexer double: comlink REST and socks WebSocket over one aiohttp app."""

from __future__ import annotations

import asyncio
from collections import Counter

from aiohttp import web

from doubles.dydx.indexer.connections import Handler, _BlockedError, _Connection
from doubles.dydx.indexer.constants import INDEXER_COMPLIANCE_BLOCKED_PAYLOAD
from doubles.dydx.indexer.params import _BadRequestError, _errors, _NotFoundError
from doubles.dydx.indexer.websocket import IndexerWebSocket
from doubles.dydx.lag import IndexerLag
from doubles.dydx.state import ChainState


class IndexerDouble(IndexerWebSocket):
    """comlink + socks over one aiohttp app reading a :class:`ChainState`.

    Args:
        state: The exchange state; the app must run on the state's loop.

    Attributes:
        app: The aiohttp application (REST under ``/v4``, WebSocket at ``/v4/ws``).
    """

    def __init__(self, state: ChainState) -> None:
        self.state = state
        self._lag = IndexerLag(state)
        #: Hide removed, never-filled short-term orders from REST like the real Indexer does.
        #: Off by default: existing tests read such orders back as CANCELED.
        self.forget_unfilled_short_term = False
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # built outside a loop (the app then runs on the state's loop)
            self._loop = None
        self._compliance: dict[str, dict[str, str]] = {}
        self._down_status: int | None = None
        #: REST requests served, by route (``/v4/fills``, ...): what a client asked for.
        self.requests: Counter[str] = Counter()
        self._connections: dict[str, _Connection] = {}
        self._unsubscribe = state.subscribe(self._on_event)
        self.app = self._build_app()

    # ---------------------------------------------------------------- app

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        routes: list[tuple[str, Handler]] = [
            ("/v4/height", self._height),
            ("/v4/time", self._time),
            ("/v4/perpetualMarkets", self._perpetual_markets),
            ("/v4/addresses/{address}", self._address),
            ("/v4/addresses/{address}/subaccountNumber/{number}", self._subaccount),
            ("/v4/perpetualPositions", self._perpetual_positions),
            ("/v4/assetPositions", self._asset_positions),
            ("/v4/orders", self._orders),
            ("/v4/orders/{order_id}", self._order),
            ("/v4/fills", self._fills),
            ("/v4/transfers", self._transfers),
            ("/v4/historical-pnl", self._historical_pnl),
            ("/v4/fundingPayments", self._funding_payments),
            ("/v4/candles/perpetualMarkets/{ticker}", self._candles),
            ("/v4/orderbooks/perpetualMarket/{ticker}", self._orderbook),
            ("/v4/trades/perpetualMarket/{ticker}", self._trades),
            ("/v4/compliance/screen/{address}", self._compliance_screen),
            ("/v4/screen", self._screen),
            ("/v4/ws", self._websocket),
        ]
        for path, handler in routes:
            app.router.add_get(path, handler)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self._down_status is not None:
            return _errors(self._down_status, "Service Unavailable")
        resource = request.match_info.route.resource
        self.requests[resource.canonical if resource is not None else request.path] += 1
        try:
            return await handler(request)
        except _BadRequestError as exc:
            return web.json_response(exc.body, status=400)
        except _NotFoundError as exc:
            return _errors(404, str(exc))
        except _BlockedError:
            return _errors(403, INDEXER_COMPLIANCE_BLOCKED_PAYLOAD, code="COMPLIANCE_BLOCKED")
