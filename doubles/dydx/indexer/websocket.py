"""WebSocket channels of the Indexer double (socks): subscriptions and updates."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import WSMsgType, web

from doubles.dydx.indexer.connections import _BlockedError, _Connection, _UnavailableError
from doubles.dydx.indexer.constants import (
    ALL_CHANNELS,
    CANDLE_RESOLUTIONS,
    CHANNEL_BLOCK_HEIGHT,
    CHANNEL_CONNECTION_LIMITS,
    CHANNEL_MARKETS,
    CHANNEL_ORDERBOOK,
    CHANNEL_PARENT_SUBACCOUNTS,
    CHANNEL_SUBACCOUNTS,
    CHANNEL_TRADES,
    INDEXER_COMPLIANCE_BLOCKED_PAYLOAD,
    MESSAGE_VERSIONS,
    WS_CLOSE_TIMEOUT,
)
from doubles.dydx.indexer.rest_accounts import IndexerAccountRoutes
from doubles.dydx.indexer_json import (
    market_json,
    order_json,
    subaccount_json,
    ws_subaccount_contents,
)
from doubles.dydx.state import (
    MAX_SUBACCOUNT_NUMBER,
    BlockUpdate,
    ChainEvent,
    OraclePriceUpdate,
    SubaccountUpdate,
    fmt_decimal,
    iso,
)


class IndexerWebSocket(IndexerAccountRoutes):
    """The socks WebSocket: subscribe, unsubscribe, initial contents and chain events."""

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
