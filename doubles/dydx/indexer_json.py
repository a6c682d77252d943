"""JSON shapes of the Indexer double: comlink's REST response objects and socks' message
contents, as ``indexer/services/comlink`` (``request-transformer.ts``, ``types.ts``) and the
ender/vulcan websocket message helpers build them. Numbers are strings where the real API uses
strings.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from doubles.dydx.state import (
    CONDITION_STOP_LOSS,
    CONDITION_TAKE_PROFIT,
    TIF_FOK,
    TIF_IOC,
    TIF_POST_ONLY,
    ChainState,
    FillRecord,
    FundingPaymentRecord,
    Market,
    OrderRecord,
    PerpetualPosition,
    PnlTick,
    Subaccount,
    SubaccountUpdate,
    TransferRecord,
    fmt_decimal,
    iso,
    subaccount_uuid,
)


def _optional_iso(moment: datetime | None) -> str | None:
    return iso(moment) if moment is not None else None


def market_json(state: ChainState, market: Market) -> dict[str, Any]:
    """PerpetualMarketResponseObject."""
    now = datetime.now(UTC)
    history = state.oracle_history[market.ticker]
    day_ago = now - timedelta(days=1)
    reference = history[0][1]
    for moment, price in history:
        if moment > day_ago:
            break
        reference = price
    day_fills = [f for f in state.fills if f.ticker == market.ticker and f.created_at > day_ago]
    open_interest = state.open_interest(market.ticker)
    return {
        "clobPairId": str(market.clob_pair_id),
        "ticker": market.ticker,
        "status": market.status,
        "oraclePrice": fmt_decimal(market.oracle_price),
        "priceChange24H": fmt_decimal(market.oracle_price - reference),
        "volume24H": fmt_decimal(sum((f.quote_amount for f in day_fills), Decimal(0))),
        "trades24H": len(day_fills),
        "nextFundingRate": "0",
        "initialMarginFraction": fmt_decimal(market.initial_margin_fraction),
        "maintenanceMarginFraction": fmt_decimal(market.maintenance_margin_fraction),
        "openInterest": fmt_decimal(open_interest),
        "atomicResolution": market.atomic_resolution,
        "quantumConversionExponent": market.quantum_conversion_exponent,
        "tickSize": fmt_decimal(market.tick_size),
        "stepSize": fmt_decimal(market.step_size),
        "stepBaseQuantums": market.step_base_quantums,
        "subticksPerTick": market.subticks_per_tick,
        "marketType": market.market_type,
        "openInterestLowerCap": fmt_decimal(market.open_interest_lower_cap),
        "openInterestUpperCap": fmt_decimal(market.open_interest_upper_cap),
        "baseOpenInterest": fmt_decimal(open_interest),
        "defaultFundingRate1H": "0",
    }


def position_json(state: ChainState, position: PerpetualPosition) -> dict[str, Any]:
    """PerpetualPositionResponseObject."""
    oracle = state.markets[position.ticker].oracle_price
    return {
        "market": position.ticker,
        "status": position.status,
        "side": position.side,
        "size": fmt_decimal(position.size),
        "maxSize": fmt_decimal(position.max_size),
        "entryPrice": fmt_decimal(position.entry_price),
        "exitPrice": None if position.exit_price is None else fmt_decimal(position.exit_price),
        "realizedPnl": fmt_decimal(position.realized_pnl),
        "unrealizedPnl": fmt_decimal(position.unrealized_pnl(oracle)),
        "createdAt": iso(position.created_at),
        "createdAtHeight": str(position.created_at_height),
        "closedAt": _optional_iso(position.closed_at),
        "sumOpen": fmt_decimal(position.sum_open),
        "sumClose": fmt_decimal(position.sum_close),
        "netFunding": fmt_decimal(position.net_funding),
        "subaccountNumber": position.subaccount_number,
    }


def asset_positions_json(sub: Subaccount) -> dict[str, Any]:
    """AssetPositionsMap (USDC only; omitted when zero, like adjustUSDCAssetPosition)."""
    if sub.usdc == 0:
        return {}
    return {
        "USDC": {
            "size": fmt_decimal(abs(sub.usdc)),
            "symbol": "USDC",
            "side": "LONG" if sub.usdc > 0 else "SHORT",
            "assetId": "0",
            "subaccountNumber": sub.number,
        }
    }


def subaccount_json(state: ChainState, sub: Subaccount) -> dict[str, Any]:
    """SubaccountResponseObject."""
    return {
        "address": sub.address,
        "subaccountNumber": sub.number,
        "equity": fmt_decimal(state.equity(sub)),
        "freeCollateral": fmt_decimal(state.free_collateral(sub)),
        "openPerpetualPositions": {
            ticker: position_json(state, p) for ticker, p in sub.positions.items()
        },
        "assetPositions": asset_positions_json(sub),
        "marginEnabled": True,
        "updatedAtHeight": str(sub.updated_at_height),
        "latestProcessedBlockHeight": str(state.height),
    }


def api_order_type(record: OrderRecord) -> str:
    condition = record.order.condition_type
    if condition == CONDITION_STOP_LOSS:
        return "STOP_LIMIT"
    if condition == CONDITION_TAKE_PROFIT:
        return "TAKE_PROFIT"
    return "LIMIT"


def _time_in_force(record: OrderRecord) -> str:
    tif = record.order.time_in_force
    if tif == TIF_IOC:
        return "IOC"
    if tif == TIF_FOK:
        return "FOK"
    return "GTT"


def order_json(state: ChainState, record: OrderRecord) -> dict[str, Any]:
    """OrderResponseObject."""
    market = state.markets[record.ticker]
    order = record.order
    data: dict[str, Any] = {
        "id": record.id,
        "subaccountId": subaccount_uuid(record.address, record.subaccount_number),
        "clientId": str(order.order_id.client_id),
        "clobPairId": str(order.order_id.clob_pair_id),
        "side": "BUY" if record.is_buy else "SELL",
        "size": fmt_decimal(market.size_from_quantums(order.quantums)),
        "totalFilled": fmt_decimal(market.size_from_quantums(record.filled_quantums)),
        "price": fmt_decimal(market.price_from_subticks(order.subticks)),
        "type": api_order_type(record),
        "status": record.status,
        "timeInForce": _time_in_force(record),
        "reduceOnly": order.reduce_only,
        "orderFlags": str(order.order_id.order_flags),
    }
    if order.WhichOneof("good_til_oneof") == "good_til_block":
        data["goodTilBlock"] = str(order.good_til_block)
    else:
        moment = datetime.fromtimestamp(order.good_til_block_time, UTC)
        data["goodTilBlockTime"] = iso(moment)
    data["createdAtHeight"] = str(record.created_at_height)
    data["clientMetadata"] = str(order.client_metadata)
    if order.conditional_order_trigger_subticks:
        trigger = market.price_from_subticks(order.conditional_order_trigger_subticks)
        data["triggerPrice"] = fmt_decimal(trigger)
    data["updatedAt"] = iso(record.updated_at)
    data["updatedAtHeight"] = str(record.updated_at_height)
    data["orderRouterAddress"] = ""
    data["postOnly"] = order.time_in_force == TIF_POST_ONLY
    data["ticker"] = record.ticker
    data["subaccountNumber"] = record.subaccount_number
    return data


def fill_json(fill: FillRecord) -> dict[str, Any]:
    """FillResponseObject."""
    return {
        "id": fill.id,
        "side": fill.side,
        "liquidity": fill.liquidity,
        "type": fill.type,
        "market": fill.ticker,
        "marketType": "PERPETUAL",
        "price": fmt_decimal(fill.price),
        "size": fmt_decimal(fill.size),
        "fee": fmt_decimal(fill.fee),
        "affiliateRevShare": "0",
        "createdAt": iso(fill.created_at),
        "createdAtHeight": str(fill.created_at_height),
        # A liquidation fill has no order (ender stores NULL order id and metadata).
        "orderId": fill.order_id or None,
        "clientMetadata": str(fill.client_metadata) if fill.order_id else None,
        "subaccountNumber": fill.subaccount_number,
    }


def transfer_json(transfer: TransferRecord) -> dict[str, Any]:
    """TransferResponseObject (deposits come from, withdrawals go to, the owner's wallet)."""
    wallet = {"address": transfer.address}
    subaccount = {"address": transfer.address, "subaccountNumber": transfer.subaccount_number}
    deposit = transfer.type == "DEPOSIT"
    return {
        "id": transfer.id,
        "sender": wallet if deposit else subaccount,
        "recipient": subaccount if deposit else wallet,
        "size": fmt_decimal(transfer.size),
        "createdAt": iso(transfer.created_at),
        "createdAtHeight": str(transfer.created_at_height),
        "symbol": "USDC",
        "type": transfer.type,
        "transactionHash": transfer.transaction_hash,
    }


def funding_payment_json(payment: FundingPaymentRecord) -> dict[str, Any]:
    """FundingPaymentResponseObject (comlink ``fundingPaymentsToResponseObject``)."""
    return {
        "subaccountNumber": str(payment.subaccount_number),
        "createdAt": iso(payment.created_at),
        "createdAtHeight": str(payment.created_at_height),
        "perpetualId": str(payment.perpetual_id),
        "ticker": payment.ticker,
        "oraclePrice": fmt_decimal(payment.oracle_price),
        "size": fmt_decimal(payment.size),
        "side": payment.side,
        "rate": fmt_decimal(payment.rate),
        "payment": fmt_decimal(payment.payment),
        "fundingIndex": fmt_decimal(payment.funding_index),
    }


def pnl_json(tick: PnlTick) -> dict[str, Any]:
    """PnlTicksResponseObject."""
    return {
        "id": tick.id,
        "subaccountId": subaccount_uuid(tick.address, tick.subaccount_number),
        "equity": fmt_decimal(tick.equity),
        "totalPnl": fmt_decimal(tick.total_pnl),
        "netTransfers": fmt_decimal(tick.net_transfers),
        "createdAt": iso(tick.created_at),
        "blockHeight": str(tick.block_height),
        "blockTime": iso(tick.block_time),
    }


def ws_order_json(state: ChainState, record: OrderRecord) -> dict[str, Any]:
    """OrderSubaccountMessageContents."""
    data = order_json(state, record)
    del data["orderRouterAddress"]
    del data["subaccountNumber"]
    if record.removal_reason:
        data["removalReason"] = record.removal_reason
    return data


def ws_fill_json(fill: FillRecord) -> dict[str, Any]:
    """FillSubaccountMessageContents."""
    return {
        "id": fill.id,
        "subaccountId": subaccount_uuid(fill.address, fill.subaccount_number),
        "side": fill.side,
        "liquidity": fill.liquidity,
        "type": fill.type,
        "clobPairId": str(fill.clob_pair_id),
        "size": fmt_decimal(fill.size),
        "price": fmt_decimal(fill.price),
        "quoteAmount": fmt_decimal(fill.quote_amount),
        "fee": fmt_decimal(fill.fee),
        "eventId": fill.id.replace("-", ""),
        "transactionHash": fill.id.replace("-", "").upper() * 2,
        "createdAt": iso(fill.created_at),
        "createdAtHeight": str(fill.created_at_height),
        "orderId": fill.order_id or None,
        "ticker": fill.ticker,
        "clientMetadata": str(fill.client_metadata) if fill.order_id else None,
    }


def ws_position_json(state: ChainState, position: PerpetualPosition) -> dict[str, Any]:
    """PerpetualPositionSubaccountMessageContents."""
    oracle = state.markets[position.ticker].oracle_price
    data: dict[str, Any] = {
        "address": position.address,
        "subaccountNumber": position.subaccount_number,
        "positionId": position.id,
        "market": position.ticker,
        "side": position.side,
        "status": position.status,
        "size": fmt_decimal(position.size),
        "maxSize": fmt_decimal(position.max_size),
        "netFunding": fmt_decimal(position.net_funding),
        "entryPrice": fmt_decimal(position.entry_price),
        "sumOpen": fmt_decimal(position.sum_open),
        "sumClose": fmt_decimal(position.sum_close),
        "realizedPnl": fmt_decimal(position.realized_pnl),
        "unrealizedPnl": fmt_decimal(position.unrealized_pnl(oracle)),
    }
    if position.exit_price is not None:
        data["exitPrice"] = fmt_decimal(position.exit_price)
    return data


def ws_subaccount_contents(state: ChainState, update: SubaccountUpdate) -> dict[str, Any]:
    """SubaccountMessageContents plus blockHeight."""
    contents: dict[str, Any] = {}
    if update.positions:
        contents["perpetualPositions"] = [ws_position_json(state, p) for p in update.positions]
    sub = state.get_subaccount(update.address, update.subaccount_number)
    if update.asset_changed and sub is not None:
        contents["assetPositions"] = [
            {
                "address": sub.address,
                "subaccountNumber": sub.number,
                "positionId": str(uuid.uuid5(uuid.NAMESPACE_OID, f"{sub.uuid}-0")),
                "assetId": "0",
                "symbol": "USDC",
                "side": "LONG" if sub.usdc >= 0 else "SHORT",
                "size": fmt_decimal(abs(sub.usdc)),
            }
        ]
    if update.orders:
        contents["orders"] = [ws_order_json(state, o) for o in update.orders]
    if update.fills:
        contents["fills"] = [ws_fill_json(f) for f in update.fills]
    if update.transfers:
        transfer = transfer_json(update.transfers[-1])
        contents["transfers"] = {
            key: transfer[key]
            for key in ("sender", "recipient", "symbol", "size", "type", "transactionHash")
        }
    contents["blockHeight"] = str(update.height)
    return contents
