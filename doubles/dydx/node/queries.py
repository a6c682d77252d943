"""gRPC query servicers of the node double: clob, prices, perpetuals and subaccounts."""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal
from typing import Any

import grpc
from v4_proto.dydxprotocol.clob import clob_pair_pb2
from v4_proto.dydxprotocol.clob import query_pb2 as clob_query
from v4_proto.dydxprotocol.clob import query_pb2_grpc as clob_grpc
from v4_proto.dydxprotocol.perpetuals import perpetual_pb2
from v4_proto.dydxprotocol.perpetuals import query_pb2 as perp_query
from v4_proto.dydxprotocol.perpetuals import query_pb2_grpc as perp_grpc
from v4_proto.dydxprotocol.prices import market_price_pb2
from v4_proto.dydxprotocol.prices import query_pb2 as prices_query
from v4_proto.dydxprotocol.prices import query_pb2_grpc as prices_grpc
from v4_proto.dydxprotocol.subaccounts import (
    asset_position_pb2,
    perpetual_position_pb2,
    subaccount_pb2,
)
from v4_proto.dydxprotocol.subaccounts import query_pb2 as sub_query
from v4_proto.dydxprotocol.subaccounts import query_pb2_grpc as sub_grpc

from doubles.dydx.node.codec import _quantums, _serializable_int
from doubles.dydx.node.records import (
    _CLOB_PAIR_STATUS,
    _PRICE_EXPONENTS,
    USDC_ASSET_ID,
    USDC_ATOMIC_RESOLUTION,
)
from doubles.dydx.node.services import _gated, _Servicer


def _clob_pair(market: Any) -> clob_pair_pb2.ClobPair:
    return clob_pair_pb2.ClobPair(
        id=market.clob_pair_id,
        perpetual_clob_metadata=clob_pair_pb2.PerpetualClobMetadata(
            perpetual_id=market.clob_pair_id
        ),
        step_base_quantums=market.step_base_quantums,
        subticks_per_tick=market.subticks_per_tick,
        quantum_conversion_exponent=market.quantum_conversion_exponent,
        status=_CLOB_PAIR_STATUS.get(market.status, clob_pair_pb2.ClobPair.Status.STATUS_ACTIVE),
    )


def _market_price(market: Any) -> market_price_pb2.MarketPrice:
    exponent = _PRICE_EXPONENTS.get(market.ticker, -9)
    price = int(Decimal(market.oracle_price).scaleb(-exponent).to_integral_value(ROUND_FLOOR))
    return market_price_pb2.MarketPrice(id=market.market_id, exponent=exponent, price=price)


class _ClobQuery(_Servicer, clob_grpc.QueryServicer):
    @_gated("ClobPair")
    async def ClobPair(
        self, request: clob_query.QueryGetClobPairRequest, context: grpc.aio.ServicerContext
    ) -> clob_query.QueryClobPairResponse:
        market = self.state.market_by_clob_pair(request.id)
        if market is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "not found")
        return clob_query.QueryClobPairResponse(clob_pair=_clob_pair(market))

    @_gated("ClobPairAll")
    async def ClobPairAll(
        self, request: clob_query.QueryAllClobPairRequest, context: grpc.aio.ServicerContext
    ) -> clob_query.QueryClobPairAllResponse:
        markets = sorted(self.state.markets.values(), key=lambda m: m.clob_pair_id)
        return clob_query.QueryClobPairAllResponse(clob_pair=[_clob_pair(m) for m in markets])


class _PricesQuery(_Servicer, prices_grpc.QueryServicer):
    def _by_market_id(self, market_id: int) -> Any:
        return next((m for m in self.state.markets.values() if m.market_id == market_id), None)

    @_gated("MarketPrice")
    async def MarketPrice(
        self, request: prices_query.QueryMarketPriceRequest, context: grpc.aio.ServicerContext
    ) -> prices_query.QueryMarketPriceResponse:
        market = self._by_market_id(request.id)
        if market is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "not found")
        return prices_query.QueryMarketPriceResponse(market_price=_market_price(market))

    @_gated("AllMarketPrices")
    async def AllMarketPrices(
        self, request: prices_query.QueryAllMarketPricesRequest, context: grpc.aio.ServicerContext
    ) -> prices_query.QueryAllMarketPricesResponse:
        markets = sorted(self.state.markets.values(), key=lambda m: m.market_id)
        return prices_query.QueryAllMarketPricesResponse(
            market_prices=[_market_price(m) for m in markets]
        )


class _PerpetualsQuery(_Servicer, perp_grpc.QueryServicer):
    def _perpetual(self, market: Any) -> perpetual_pb2.Perpetual:
        open_interest = _quantums(self.state.open_interest(market.ticker), market.atomic_resolution)
        market_type = (
            perpetual_pb2.PerpetualMarketType.PERPETUAL_MARKET_TYPE_ISOLATED
            if market.market_type == "ISOLATED"
            else perpetual_pb2.PerpetualMarketType.PERPETUAL_MARKET_TYPE_CROSS
        )
        return perpetual_pb2.Perpetual(
            params=perpetual_pb2.PerpetualParams(
                id=market.clob_pair_id,
                ticker=market.ticker,
                market_id=market.market_id,
                atomic_resolution=market.atomic_resolution,
                market_type=market_type,
            ),
            funding_index=_serializable_int(0),
            open_interest=_serializable_int(open_interest),
        )

    @_gated("Perpetual")
    async def Perpetual(
        self, request: perp_query.QueryPerpetualRequest, context: grpc.aio.ServicerContext
    ) -> perp_query.QueryPerpetualResponse:
        market = self.state.market_by_clob_pair(request.id)
        if market is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "not found")
        return perp_query.QueryPerpetualResponse(perpetual=self._perpetual(market))

    @_gated("AllPerpetuals")
    async def AllPerpetuals(
        self, request: perp_query.QueryAllPerpetualsRequest, context: grpc.aio.ServicerContext
    ) -> perp_query.QueryAllPerpetualsResponse:
        markets = sorted(self.state.markets.values(), key=lambda m: m.clob_pair_id)
        return perp_query.QueryAllPerpetualsResponse(
            perpetual=[self._perpetual(m) for m in markets]
        )


class _SubaccountsQuery(_Servicer, sub_grpc.QueryServicer):
    def _subaccount(self, owner: str, number: int) -> subaccount_pb2.Subaccount:
        result = subaccount_pb2.Subaccount(
            id=subaccount_pb2.SubaccountId(owner=owner, number=number), margin_enabled=True
        )
        sub = self.state.get_subaccount(owner, number)
        if sub is None:
            # x/subaccounts answers an empty subaccount for an id it has never seen.
            return result
        usdc = _quantums(sub.usdc, USDC_ATOMIC_RESOLUTION)
        if usdc:
            result.asset_positions.append(
                asset_position_pb2.AssetPosition(
                    asset_id=USDC_ASSET_ID, quantums=_serializable_int(usdc)
                )
            )
        for ticker, position in sorted(sub.positions.items()):
            market = self.state.markets[ticker]
            quantums = _quantums(position.size, market.atomic_resolution)
            if quantums == 0:
                continue
            result.perpetual_positions.append(
                perpetual_position_pb2.PerpetualPosition(
                    perpetual_id=market.clob_pair_id,
                    quantums=_serializable_int(quantums),
                    funding_index=_serializable_int(0),
                    quote_balance=_serializable_int(0),
                )
            )
        return result

    @_gated("Subaccount")
    async def Subaccount(
        self, request: sub_query.QueryGetSubaccountRequest, context: grpc.aio.ServicerContext
    ) -> sub_query.QuerySubaccountResponse:
        return sub_query.QuerySubaccountResponse(
            subaccount=self._subaccount(request.owner, request.number)
        )

    @_gated("SubaccountAll")
    async def SubaccountAll(
        self, request: sub_query.QueryAllSubaccountRequest, context: grpc.aio.ServicerContext
    ) -> sub_query.QuerySubaccountAllResponse:
        keys = sorted(self.state.subaccounts)
        return sub_query.QuerySubaccountAllResponse(
            subaccount=[self._subaccount(owner, number) for owner, number in keys]
        )
