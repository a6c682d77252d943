"""Indexer double: the comlink REST API and the socks WebSocket over one aiohttp app.

Shapes follow ``indexer/services/comlink`` (controllers, ``request-transformer.ts``, ``types.ts``)
and ``indexer/services/socks`` (``helpers/message.ts``, ``lib/subscription.ts``,
``websocket/index.ts``); numbers are strings where the real API uses strings. The app reads the
:class:`~doubles.dydx.state.ChainState` directly, so it must run on the state's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aiohttp import WSMsgType, web

from doubles.dydx.indexer_json import (
    api_order_type,
    asset_positions_json,
    fill_json,
    funding_payment_json,
    market_json,
    order_json,
    pnl_json,
    position_json,
    subaccount_json,
    transfer_json,
    ws_subaccount_contents,
)
from doubles.dydx.lag import IndexerLag
from doubles.dydx.state import (
    MAX_SUBACCOUNT_NUMBER,
    BlockUpdate,
    ChainEvent,
    ChainState,
    FillRecord,
    Market,
    OraclePriceUpdate,
    OrderRecord,
    SubaccountUpdate,
    fmt_decimal,
    iso,
)

log = logging.getLogger(__name__)

INDEXER_COMPLIANCE_BLOCKED_PAYLOAD = (
    "Because this address appears to be a resident of, or trading from, a jurisdiction that "
    "violates our terms of use, or has engaged in activity that violates our terms of use, this "
    "address has been blocked."
)
COMPLIANCE_STATUSES = frozenset(
    {"COMPLIANT", "FIRST_STRIKE_CLOSE_ONLY", "FIRST_STRIKE", "CLOSE_ONLY", "BLOCKED"}
)
ORDER_STATUSES = (
    "OPEN",
    "FILLED",
    "CANCELED",
    "BEST_EFFORT_CANCELED",
    "UNTRIGGERED",
    "BEST_EFFORT_OPENED",
)
ORDER_TYPES = (
    "LIMIT",
    "MARKET",
    "STOP_LIMIT",
    "STOP_MARKET",
    "TRAILING_STOP",
    "TAKE_PROFIT",
    "TAKE_PROFIT_MARKET",
)
POSITION_STATUSES = ("OPEN", "CLOSED", "LIQUIDATED")
CANDLE_RESOLUTIONS = {
    "1MIN": 60,
    "5MINS": 300,
    "15MINS": 900,
    "30MINS": 1800,
    "1HOUR": 3600,
    "4HOURS": 14400,
    "1DAY": 86400,
}
DEFAULT_LIMIT = 1000
MAX_CANDLES = 100

CHANNEL_SUBACCOUNTS = "v4_subaccounts"
CHANNEL_MARKETS = "v4_markets"
CHANNEL_BLOCK_HEIGHT = "v4_block_height"
CHANNEL_ORDERBOOK = "v4_orderbook"
CHANNEL_TRADES = "v4_trades"
CHANNEL_CANDLES = "v4_candles"
CHANNEL_PARENT_SUBACCOUNTS = "v4_parent_subaccounts"
ALL_CHANNELS = (
    CHANNEL_ORDERBOOK,
    CHANNEL_SUBACCOUNTS,
    CHANNEL_TRADES,
    CHANNEL_MARKETS,
    CHANNEL_CANDLES,
    CHANNEL_PARENT_SUBACCOUNTS,
    CHANNEL_BLOCK_HEIGHT,
)
#: kafka/src/constants.ts
MESSAGE_VERSIONS = {
    CHANNEL_SUBACCOUNTS: "2.4.0",
    CHANNEL_MARKETS: "1.0.0",
    CHANNEL_BLOCK_HEIGHT: "1.0.0",
    CHANNEL_ORDERBOOK: "1.0.0",
    CHANNEL_TRADES: "2.1.0",
    CHANNEL_CANDLES: "1.0.0",
}
#: Per-connection subscription limits (socks ``lib/subscription.ts CHANNEL_CONNECTION_LIMITS``,
#: defaults of ``config.ts``); v4_block_height allows one.
CHANNEL_CONNECTION_LIMITS = {
    CHANNEL_SUBACCOUNTS: 256,
    CHANNEL_PARENT_SUBACCOUNTS: 256,
    CHANNEL_BLOCK_HEIGHT: 1,
    CHANNEL_CANDLES: 32,
    CHANNEL_MARKETS: 32,
    CHANNEL_ORDERBOOK: 32,
    CHANNEL_TRADES: 32,
}
#: Service-restart close code socks uses when it drops connections.
WS_CLOSE_CODE_SERVICE_RESTART = 1012
WS_CLOSE_TIMEOUT = 0.5


# --------------------------------------------------------------------------------------------
# Request validation
# --------------------------------------------------------------------------------------------


class _BadRequestError(Exception):
    def __init__(self, param: str, value: Any, msg: str = "Invalid value") -> None:
        super().__init__(msg)
        self.body = {"errors": [{"value": value, "msg": msg, "param": param, "location": "query"}]}


class _NotFoundError(Exception):
    """The resource does not exist (answered 404)."""


def _required(query: Any, name: str) -> str:
    value = query.get(name)
    if value is None or value == "":
        raise _BadRequestError(name, value, f"{name} is required")
    return str(value)


def _int_param(
    query: Any,
    name: str,
    *,
    default: int | None = None,
    minimum: int = 0,
    maximum: int | None = None,
) -> int | None:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _BadRequestError(name, raw) from None
    if value < minimum or (maximum is not None and value > maximum):
        raise _BadRequestError(name, raw)
    return value


def _subaccount_number(raw: Any, name: str = "subaccountNumber") -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise _BadRequestError(name, raw, f"{name} must be a non-negative integer") from None
    if not 0 <= value <= MAX_SUBACCOUNT_NUMBER:
        raise _BadRequestError(name, raw, f"{name} must be a non-negative integer")
    return value


def _bool_param(query: Any, name: str) -> bool | None:
    raw = query.get(name)
    if raw is None:
        return None
    # express-validator isBoolean() is strict: only "true", "false", "1", "0".
    if raw in ("true", "1"):
        return True
    if raw in ("false", "0"):
        return False
    raise _BadRequestError(name, raw)


def _list_param(query: Any, name: str, allowed: tuple[str, ...]) -> list[str] | None:
    raw = query.get(name)
    if raw is None:
        return None
    values = [v for v in str(raw).split(",") if v]
    if not values or any(v not in allowed for v in values):
        raise _BadRequestError(name, raw, f"{name} must be one of {','.join(allowed)}")
    return values


def _iso_param(query: Any, name: str) -> datetime | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        return datetime.fromisoformat(str(raw).replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        raise _BadRequestError(name, raw) from None


def _errors(status: int, msg: str, **extra: str) -> web.Response:
    return web.json_response({"errors": [{**extra, "msg": msg}]}, status=status)


# --------------------------------------------------------------------------------------------
# WebSocket connections
# --------------------------------------------------------------------------------------------


@dataclass
class _Connection:
    ws: web.WebSocketResponse
    request: web.Request
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    message_id: int = 0
    subscriptions: dict[tuple[str, str], bool] = field(default_factory=dict)
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    writer: asyncio.Task[None] | None = None

    def send(self, message: dict[str, Any]) -> None:
        self.queue.put_nowait(json.dumps(message))

    def next_id(self) -> int:
        self.message_id += 1
        return self.message_id

    def error(self, message: str, message_id: int | None = None) -> None:
        self.send(
            {
                "type": "error",
                "message": message,
                "connection_id": self.id,
                "message_id": self.message_id if message_id is None else message_id,
            }
        )

    async def run_writer(self) -> None:
        while True:
            text = await self.queue.get()
            if text is None:
                return
            try:
                await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return


class _BlockedError(Exception):
    """The address is compliance-blocked (answered 403)."""


class _UnavailableError(Exception):
    """The Indexer is switched down by a test (answered 5xx)."""


# --------------------------------------------------------------------------------------------
# The Indexer
# --------------------------------------------------------------------------------------------


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class IndexerDouble:
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

    # ---------------------------------------------------------------- test controls

    @property
    def lag(self) -> float:
        """Seconds the Indexer trails the chain (REST, ``/v4/height`` and WebSocket updates).

        Settable from any thread, e.g. ``double.indexer.lag = 20.0``; 0 is live. See
        :mod:`doubles.dydx.lag`.
        """
        return self._lag.seconds

    @lag.setter
    def lag(self, seconds: float) -> None:
        loop = self._loop
        if loop is None or not loop.is_running() or _on_loop(loop):
            self._lag.set(seconds)
            return
        # Run on the double's loop, FIFO with every later control call and request.
        asyncio.run_coroutine_threadsafe(_as_coroutine(self._lag.set, seconds), loop).result(10)

    def _unindexed(self, record: OrderRecord) -> bool:
        """A short-term order that left the book without a fill is gone from the Indexer.

        vulcan keeps short-term orders in Redis only (``order-place-handler.ts`` never writes
        Postgres) and drops them on removal; ender writes the order row only with a fill. So
        comlink (``orders-controller.ts getOrder``) finds neither and answers 404.
        """
        return (
            self.forget_unfilled_short_term
            and record.is_short_term
            and not record.is_live
            and record.filled_quantums == 0
        )

    @property
    def view(self) -> ChainState:
        """The state REST answers from: live, or a snapshot ``lag`` seconds old."""
        return self._lag.view()

    def set_compliance(self, address: str, status: str, reason: str | None = None) -> None:
        """Set what ``/v4/compliance/screen/{address}`` answers.

        ``BLOCKED`` also makes address-scoped endpoints answer 403 COMPLIANCE_BLOCKED, like a
        blocked row in the compliance table.

        Raises:
            ValueError: Unknown status.
        """
        if status not in COMPLIANCE_STATUSES:
            raise ValueError(f"unknown compliance status {status!r}")
        if status == "COMPLIANT" and reason is None:
            self._compliance.pop(address, None)
            return
        entry = {"status": status, "updatedAt": iso(datetime.now(UTC))}
        if reason is not None:
            entry["reason"] = reason
        self._compliance[address] = entry

    def set_down(self, status: int | None = 503) -> None:
        """Answer every request (and WebSocket upgrade) with ``status``; None restores."""
        self._down_status = status

    async def drop_websockets(self, *, abrupt: bool = False) -> int:
        """Close every WebSocket connection; returns how many were open.

        Args:
            abrupt: Abort the TCP connection without a close frame (a network drop) instead
                of closing with 1012 "Service restarting".
        """
        connections = list(self._connections.values())
        self._connections.clear()

        async def drop(connection: _Connection) -> None:
            connection.queue.put_nowait(None)
            transport = connection.request.transport
            if abrupt and transport is not None:
                transport.abort()
                return
            with contextlib.suppress(ConnectionError, RuntimeError):
                await connection.ws.close(
                    code=WS_CLOSE_CODE_SERVICE_RESTART,
                    message=json.dumps({"message": "Service restarting"}).encode(),
                )

        await asyncio.gather(*(drop(c) for c in connections))
        return len(connections)

    @property
    def websocket_count(self) -> int:
        """Open WebSocket connections."""
        return len(self._connections)

    def subscribed(self, channel: str, channel_id: str) -> bool:
        """Whether a WebSocket client subscribes ``channel`` for ``channel_id`` now."""
        return any((channel, channel_id) in c.subscriptions for c in self._connections.values())

    async def close(self) -> None:
        """Stop listening to the state and close every WebSocket."""
        self._unsubscribe()
        await self._lag.close()
        await self.drop_websockets()

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

    def _check_compliance(self, address: str) -> None:
        entry = self._compliance.get(address)
        if entry is not None and entry["status"] == "BLOCKED":
            raise _BlockedError

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

    async def _address(self, request: web.Request) -> web.Response:
        address = request.match_info["address"]
        self._check_compliance(address)
        subs = [s for s in self.view.subaccounts.values() if s.address == address]
        if not subs:
            raise _NotFoundError(f"No subaccounts found for address {address}")
        return web.json_response(
            {
                "subaccounts": [subaccount_json(self.view, s) for s in subs],
                "totalTradingRewards": "0",
            }
        )

    async def _subaccount(self, request: web.Request) -> web.Response:
        address = request.match_info["address"]
        number = _subaccount_number(request.match_info["number"])
        self._check_compliance(address)
        sub = self.view.get_subaccount(address, number)
        if sub is None:
            raise _NotFoundError(
                f"No subaccount found with address {address} and subaccountNumber {number}"
            )
        return web.json_response({"subaccount": subaccount_json(self.view, sub)})

    def _subaccount_query(self, request: web.Request) -> tuple[str, int]:
        address = _required(request.query, "address")
        number = _subaccount_number(_required(request.query, "subaccountNumber"))
        self._check_compliance(address)
        return address, number

    async def _perpetual_positions(self, request: web.Request) -> web.Response:
        address, number = self._subaccount_query(request)
        statuses = _list_param(request.query, "status", POSITION_STATUSES)
        limit = _int_param(
            request.query, "limit", default=DEFAULT_LIMIT, minimum=1, maximum=DEFAULT_LIMIT
        )
        max_height = _int_param(request.query, "createdBeforeOrAtHeight")
        positions = [
            p
            for p in reversed(self.view.positions_of(address, number))
            if (statuses is None or p.status in statuses)
            and (max_height is None or p.created_at_height <= max_height)
        ]
        return web.json_response(
            {"positions": [position_json(self.view, p) for p in positions[:limit]]}
        )

    async def _asset_positions(self, request: web.Request) -> web.Response:
        address, number = self._subaccount_query(request)
        sub = self.view.get_subaccount(address, number)
        positions = list(asset_positions_json(sub).values()) if sub is not None else []
        return web.json_response({"positions": positions})

    async def _orders(self, request: web.Request) -> web.Response:
        query = request.query
        address, number = self._subaccount_query(request)
        limit = _int_param(query, "limit", default=DEFAULT_LIMIT, minimum=1, maximum=DEFAULT_LIMIT)
        ticker = query.get("ticker")
        side = query.get("side")
        if side is not None and side not in ("BUY", "SELL"):
            raise _BadRequestError("side", side, "side must be one of BUY,SELL")
        order_type = query.get("type")
        if order_type is not None and order_type not in ORDER_TYPES:
            raise _BadRequestError(
                "type", order_type, f"type must be one of {','.join(ORDER_TYPES)}"
            )
        statuses = _list_param(query, "status", ORDER_STATUSES)
        gtb_max = _int_param(query, "goodTilBlockBeforeOrAt", minimum=1)
        gtbt_max = _iso_param(query, "goodTilBlockTimeBeforeOrAt")
        latest = _bool_param(query, "returnLatestOrders")

        records = []
        for record in self.view.orders_of(address, number):
            order = record.order
            is_gtb = order.WhichOneof("good_til_oneof") == "good_til_block"
            if self._unindexed(record):
                continue
            if ticker is not None and record.ticker != ticker:
                continue
            if side is not None and side != ("BUY" if record.is_buy else "SELL"):
                continue
            if order_type is not None and order_type != api_order_type(record):
                continue
            if statuses is not None and record.status not in statuses:
                continue
            if gtb_max is not None and (not is_gtb or order.good_til_block > gtb_max):
                continue
            if gtbt_max is not None and (
                is_gtb or order.good_til_block_time > gtbt_max.timestamp()
            ):
                continue
            records.append(record)

        def sort_key(record: OrderRecord) -> tuple[int, int]:
            # Orders with goodTilBlock sort before those with goodTilBlockTime (ascending).
            order = record.order
            if order.WhichOneof("good_til_oneof") == "good_til_block":
                return (0, order.good_til_block)
            return (1, order.good_til_block_time)

        records.sort(key=sort_key, reverse=latest is not False)
        return web.json_response([order_json(self.view, r) for r in records[:limit]])

    async def _order(self, request: web.Request) -> web.Response:
        order_id = request.match_info["order_id"]
        try:
            uuid.UUID(order_id)
        except ValueError:
            raise _BadRequestError("orderId", order_id) from None
        record = self.view.orders.get(order_id)
        if record is None or self._unindexed(record):
            raise _NotFoundError(f"Unable to find order id {order_id}")
        return web.json_response(order_json(self.view, record))

    def _page(self, request: web.Request, items: list[Any]) -> tuple[list[Any], dict[str, int]]:
        limit = _int_param(
            request.query, "limit", default=DEFAULT_LIMIT, minimum=1, maximum=DEFAULT_LIMIT
        )
        assert limit is not None
        page = _int_param(request.query, "page", minimum=1)
        if page is None:
            return items[:limit], {}
        offset = (page - 1) * limit
        meta = {"pageSize": limit, "totalResults": len(items), "offset": offset}
        return items[offset : offset + limit], meta

    def _created_filters(self, request: web.Request, moment: datetime, height: int) -> bool:
        query = request.query
        max_height = _int_param(query, "createdBeforeOrAtHeight")
        max_time = _iso_param(query, "createdBeforeOrAt")
        min_height = _int_param(query, "createdOnOrAfterHeight")
        min_time = _iso_param(query, "createdOnOrAfter")
        return (
            (max_height is None or height <= max_height)
            and (max_time is None or moment <= max_time)
            and (min_height is None or height >= min_height)
            and (min_time is None or moment >= min_time)
        )

    async def _fills(self, request: web.Request) -> web.Response:
        address, number = self._subaccount_query(request)
        market = request.query.get("market")
        market_type = request.query.get("marketType")
        if (market is None) != (market_type is None):
            missing = "market" if market is None else "marketType"
            other = "marketType" if market is None else "market"
            raise _BadRequestError(
                missing, None, f"{missing} must be provided if {other} is provided"
            )
        if market_type is not None and market_type not in ("PERPETUAL", "SPOT"):
            raise _BadRequestError(
                "marketType", market_type, "marketType must be a valid market type (PERPETUAL/SPOT)"
            )
        if market is not None and market not in self.view.markets:
            raise _NotFoundError(f"{market} not found in markets of type {market_type}")
        fills = [
            f
            for f in reversed(self.view.fills_of(address, number))
            if (market is None or f.ticker == market)
            and self._created_filters(request, f.created_at, f.created_at_height)
        ]
        page, meta = self._page(request, fills)
        return web.json_response({"fills": [fill_json(f) for f in page], **meta})

    async def _transfers(self, request: web.Request) -> web.Response:
        address, number = self._subaccount_query(request)
        transfers = [
            t
            for t in reversed(self.view.transfers)
            if t.address == address
            and t.subaccount_number == number
            and self._created_filters(request, t.created_at, t.created_at_height)
        ]
        page, meta = self._page(request, transfers)
        return web.json_response({"transfers": [transfer_json(t) for t in page], **meta})

    async def _historical_pnl(self, request: web.Request) -> web.Response:
        address, number = self._subaccount_query(request)
        ticks = [
            t
            for t in reversed(self.view.pnl_ticks)
            if t.address == address
            and t.subaccount_number == number
            and self._created_filters(request, t.created_at, t.block_height)
        ]
        page, meta = self._page(request, ticks)
        return web.json_response({"historicalPnl": [pnl_json(t) for t in page], **meta})

    async def _funding_payments(self, request: web.Request) -> web.Response:
        """comlink ``funding-payments-controller``: ``address``, ``subaccountNumber``,
        ``limit``, ``ticker``, ``afterOrAt`` and ``page``; newest first, with the page meta."""
        address, number = self._subaccount_query(request)
        ticker = request.query.get("ticker")
        after = _iso_param(request.query, "afterOrAt")
        payments = [
            p
            for p in reversed(self.view.funding_payments)
            if p.address == address
            and p.subaccount_number == number
            and (ticker is None or p.ticker == ticker)
            and (after is None or p.created_at >= after)
        ]
        limit = _int_param(
            request.query, "limit", default=DEFAULT_LIMIT, minimum=1, maximum=DEFAULT_LIMIT
        )
        assert limit is not None
        page = _int_param(request.query, "page", minimum=1) or 1
        offset = (page - 1) * limit
        return web.json_response(
            {
                "fundingPayments": [
                    funding_payment_json(p) for p in payments[offset : offset + limit]
                ],
                "pageSize": limit,
                "totalResults": len(payments),
                "offset": offset,
            }
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

    # ---------------------------------------------------------------- WebSocket

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        # A short close timeout keeps stop() fast even if a client never answers the close.
        ws = web.WebSocketResponse(autoping=True, timeout=WS_CLOSE_TIMEOUT)
        await ws.prepare(request)
        connection = _Connection(ws, request)
        self._connections[connection.id] = connection
        connection.writer = asyncio.create_task(connection.run_writer())
        connection.send({"type": "connected", "connection_id": connection.id, "message_id": 0})
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._on_ws_message(connection, message.data)
                elif message.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            self._connections.pop(connection.id, None)
            connection.queue.put_nowait(None)
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await asyncio.wait_for(connection.writer, timeout=1)
        return ws

    def _on_ws_message(self, connection: _Connection, text: str) -> None:
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            connection.error("Invalid message: could not parse")
            return
        if not isinstance(parsed, dict) or not parsed.get("type"):
            connection.error("Invalid message: type is required")
            return
        kind = parsed["type"]
        if kind == "subscribe":
            self._on_subscribe(connection, parsed)
        elif kind == "unsubscribe":
            self._on_unsubscribe(connection, parsed)
        elif kind == "ping":
            pong: dict[str, Any] = {
                "type": "pong",
                "connection_id": connection.id,
                "message_id": connection.next_id(),
            }
            if parsed.get("id") is not None:
                pong["id"] = parsed["id"]
            connection.send(pong)
        else:
            connection.error(f"Invalid message type: {kind}")

    @staticmethod
    def _validate_subscription_message(connection: _Connection, message: dict[str, Any]) -> bool:
        channel = message.get("channel")
        if not channel:
            connection.error("Invalid subscribe message: channel is required")
            return False
        if channel not in ALL_CHANNELS:
            connection.error(f"Invalid channel: {channel}")
            return False
        sub_id = message.get("id")
        if channel not in (CHANNEL_MARKETS, CHANNEL_BLOCK_HEIGHT) and not isinstance(sub_id, str):
            connection.error(f"Invalid id: {'undefined' if sub_id is None else sub_id}")
            return False
        return True

    def _valid_subscription_id(self, channel: str, sub_id: str | None) -> bool:
        if channel in (CHANNEL_MARKETS, CHANNEL_BLOCK_HEIGHT):
            return True
        if sub_id is None:
            return False
        if channel in (CHANNEL_SUBACCOUNTS, CHANNEL_PARENT_SUBACCOUNTS):
            parts = sub_id.split("/")
            if len(parts) != 2:
                return False
            try:
                number = float(parts[1])
            except ValueError:
                return False
            limit = MAX_SUBACCOUNT_NUMBER if channel == CHANNEL_SUBACCOUNTS else 128
            return number < limit
        if channel in (CHANNEL_ORDERBOOK, CHANNEL_TRADES):
            return sub_id in self.view.markets
        ticker, _, resolution = sub_id.partition("/")
        return ticker in self.view.markets and resolution in CANDLE_RESOLUTIONS

    @staticmethod
    def _normalize_id(channel: str, sub_id: str | None) -> str:
        if sub_id is not None:
            return sub_id
        return CHANNEL_BLOCK_HEIGHT if channel == CHANNEL_BLOCK_HEIGHT else CHANNEL_MARKETS

    def _on_subscribe(self, connection: _Connection, message: dict[str, Any]) -> None:
        if not self._validate_subscription_message(connection, message):
            return
        channel: str = message["channel"]
        raw_id = message.get("id")
        message_id = connection.next_id()
        if not self._valid_subscription_id(channel, raw_id):
            connection.error(
                f"Invalid subscription id for channel: ({channel}-{raw_id})", message_id
            )
            return
        limit = CHANNEL_CONNECTION_LIMITS[channel]
        active = sum(1 for c, _ in connection.subscriptions if c == channel)
        if active + 1 > limit:
            connection.error(
                f"Per-connection subscription limit reached for {channel} (limit={limit}).",
                message_id,
            )
            return
        sub_id = self._normalize_id(channel, raw_id)
        try:
            contents = self._initial_contents(channel, sub_id)
        except _BlockedError:
            connection.error(INDEXER_COMPLIANCE_BLOCKED_PAYLOAD, message_id)
            return
        except _UnavailableError:
            connection.error(
                f"Internal error, could not fetch data for subscription: {channel}.", message_id
            )
            return
        if (channel, sub_id) in connection.subscriptions:
            connection.error(
                f"Invalid subscribe message: already subscribed ({channel}-{sub_id})", message_id
            )
            return
        connection.subscriptions[(channel, sub_id)] = bool(message.get("batched"))
        subscribed: dict[str, Any] = {
            "type": "subscribed",
            "connection_id": connection.id,
            "message_id": message_id,
            "channel": channel,
        }
        if channel != CHANNEL_MARKETS:
            subscribed["id"] = sub_id
        subscribed["contents"] = contents
        connection.send(subscribed)

    def _on_unsubscribe(self, connection: _Connection, message: dict[str, Any]) -> None:
        if not self._validate_subscription_message(connection, message):
            return
        channel: str = message["channel"]
        sub_id = self._normalize_id(channel, message.get("id"))
        connection.subscriptions.pop((channel, sub_id), None)
        unsubscribed: dict[str, Any] = {
            "type": "unsubscribed",
            "connection_id": connection.id,
            "message_id": connection.next_id(),
            "channel": channel,
        }
        if channel != CHANNEL_MARKETS:
            unsubscribed["id"] = sub_id
        connection.send(unsubscribed)

    def _initial_contents(self, channel: str, sub_id: str) -> dict[str, Any]:
        if self._down_status is not None:
            raise _UnavailableError
        state = self.view
        if channel == CHANNEL_MARKETS:
            return {"markets": {t: market_json(state, m) for t, m in state.markets.items()}}
        if channel == CHANNEL_BLOCK_HEIGHT:
            return {"height": str(state.height), "time": iso(state.block_time)}
        if channel in (CHANNEL_SUBACCOUNTS, CHANNEL_PARENT_SUBACCOUNTS):
            address, number_text = sub_id.split("/")
            self._check_compliance(address)
            sub = state.get_subaccount(address, int(float(number_text)))
            if sub is None:
                # A 404 from comlink: subscribe anyway, updates arrive once indexed.
                return {}
            live = [
                order_json(state, r)
                for r in state.orders_of(sub.address, sub.number)
                if r.status in ("OPEN", "UNTRIGGERED", "BEST_EFFORT_OPENED", "BEST_EFFORT_CANCELED")
            ]
            return {
                "subaccount": subaccount_json(state, sub),
                "orders": live,
                "blockHeight": str(state.height),
            }
        if channel == CHANNEL_ORDERBOOK:
            return self._book(state.markets[sub_id])
        if channel == CHANNEL_TRADES:
            return {"trades": []}
        ticker, _, resolution = sub_id.partition("/")
        return {"candles": self._build_candles(state.markets[ticker], resolution, None, None)}

    def _on_event(self, event: ChainEvent) -> None:
        """Forward a chain event to the subscribed connections (after the lag, if any).

        Contents are built now, from the state as of the event; routing happens at delivery.
        """
        self._lag.capture()
        if isinstance(event, OraclePriceUpdate):
            contents: dict[str, Any] = {
                "oraclePrices": {
                    event.ticker: {
                        "oraclePrice": fmt_decimal(event.price),
                        "effectiveAt": iso(event.effective_at),
                        "effectiveAtHeight": str(event.effective_at_height),
                        "marketId": event.market_id,
                    }
                }
            }
            self._send_later(CHANNEL_MARKETS, CHANNEL_MARKETS, contents)
        elif isinstance(event, BlockUpdate):
            contents = {"blockHeight": str(event.height), "time": iso(event.time)}
            self._send_later(CHANNEL_BLOCK_HEIGHT, CHANNEL_BLOCK_HEIGHT, contents)
        elif isinstance(event, SubaccountUpdate):
            sub_id = f"{event.address}/{event.subaccount_number}"
            if self._lag.active or any(
                (CHANNEL_SUBACCOUNTS, sub_id) in c.subscriptions for c in self._connections.values()
            ):
                contents = ws_subaccount_contents(self.state, event)
                self._send_later(CHANNEL_SUBACCOUNTS, sub_id, contents)

    def _send_later(self, channel: str, sub_id: str, contents: dict[str, Any]) -> None:
        self._lag.deliver(lambda: self._broadcast(channel, sub_id, contents))

    def _broadcast(self, channel: str, sub_id: str, contents: dict[str, Any]) -> None:
        for connection in self._connections.values():
            batched = connection.subscriptions.get((channel, sub_id))
            if batched is None:
                continue
            message: dict[str, Any] = {
                "type": "channel_batch_data" if batched else "channel_data",
                "connection_id": connection.id,
                "message_id": connection.next_id(),
            }
            if channel != CHANNEL_MARKETS:
                message["id"] = sub_id
            message["channel"] = channel
            message["version"] = MESSAGE_VERSIONS[channel]
            message["contents"] = [contents] if batched else contents
            connection.send(message)


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


async def _as_coroutine(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)
