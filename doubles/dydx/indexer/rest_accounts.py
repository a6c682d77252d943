"""Account REST routes of the Indexer double: subaccounts, orders, fills, pnl."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from aiohttp import web

from doubles.dydx.indexer.constants import (
    DEFAULT_LIMIT,
    ORDER_STATUSES,
    ORDER_TYPES,
    POSITION_STATUSES,
)
from doubles.dydx.indexer.params import (
    _BadRequestError,
    _bool_param,
    _int_param,
    _iso_param,
    _list_param,
    _NotFoundError,
    _required,
    _subaccount_number,
)
from doubles.dydx.indexer.rest_markets import IndexerMarketRoutes
from doubles.dydx.indexer_json import (
    api_order_type,
    asset_positions_json,
    fill_json,
    funding_payment_json,
    order_json,
    pnl_json,
    position_json,
    subaccount_json,
    transfer_json,
)
from doubles.dydx.state import OrderRecord


class IndexerAccountRoutes(IndexerMarketRoutes):
    """Addresses, subaccounts, positions, orders, fills, transfers, pnl and funding."""

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
