"""A raw Indexer WebSocket client (aiohttp) for the double's tests: JSON in, JSON out."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

Message = dict[str, Any]
WAIT = 5.0


class RawSocket:
    """One connection to ``/v4/ws``; keeps every message it has read."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.seen: list[Message] = []
        self._backlog: list[Message] = []

    async def send(self, **message: Any) -> None:
        """Send one JSON message."""
        await self.ws.send_str(json.dumps(message))

    async def subscribe(self, channel: str, sub_id: str | None = None, **extra: Any) -> Message:
        """Subscribe and return the ``subscribed`` answer (fails on ``error``)."""
        message: dict[str, Any] = {"type": "subscribe", "channel": channel, **extra}
        if sub_id is not None:
            message["id"] = sub_id
        await self.send(**message)
        answer = await self.next(lambda m: m["type"] in ("subscribed", "error"))
        assert answer["type"] == "subscribed", answer
        return answer

    async def _read(self, wait: float) -> Message | None:
        try:
            raw = await self.ws.receive(timeout=wait)
        except TimeoutError:
            return None
        if raw.type != aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"WebSocket closed: {raw.type} {raw.data!r}")
        message: Message = json.loads(raw.data)
        self.seen.append(message)
        return message

    async def next(self, predicate: Callable[[Message], bool], wait: float = WAIT) -> Message:
        """The next message matching ``predicate`` (earlier non-matching ones are kept)."""
        for index, message in enumerate(self._backlog):
            if predicate(message):
                del self._backlog[index]
                return message
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            message = await self._read(left)
            if message is None:
                break
            if predicate(message):
                return message
            self._backlog.append(message)
        raise AssertionError(f"no matching WebSocket message within {wait}s")

    async def nothing(self, predicate: Callable[[Message], bool], within: float) -> None:
        """Assert no matching message arrives within ``within`` seconds."""
        with_match: list[Message] = []
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0:
            message = await self._read(left)
            if message is None:
                break
            if predicate(message):
                with_match.append(message)
            else:
                self._backlog.append(message)
        assert not with_match, with_match

    async def closed(self, wait: float = WAIT) -> aiohttp.WSMessage:
        """Wait for the server to close the connection; returns the close message."""
        return await asyncio.wait_for(self.ws.receive(), wait)


@asynccontextmanager
async def raw_socket(url: str) -> AsyncIterator[RawSocket]:
    """Connect, read the ``connected`` message, yield the socket."""
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, autoclose=False) as ws,
    ):
        socket = RawSocket(ws)
        connected = await socket.next(lambda m: m["type"] == "connected")
        assert connected["message_id"] == 0
        yield socket


def subaccount_data(sub_id: str, key: str | None = None) -> Callable[[Message], bool]:
    """Predicate: a ``v4_subaccounts`` update for ``sub_id`` (with ``key`` in its contents)."""

    def match(message: Message) -> bool:
        if message["type"] not in ("channel_data", "channel_batch_data"):
            return False
        if message.get("channel") != "v4_subaccounts" or message.get("id") != sub_id:
            return False
        contents = message["contents"]
        items = contents if isinstance(contents, list) else [contents]
        return key is None or any(key in item for item in items)

    return match


def order_update(sub_id: str, order_id: str, status: str) -> Callable[[Message], bool]:
    """Predicate: a ``v4_subaccounts`` update carrying ``order_id`` with ``status``."""
    has_orders = subaccount_data(sub_id, "orders")

    def match(message: Message) -> bool:
        return has_orders(message) and any(
            o["id"] == order_id and o["status"] == status for o in message["contents"]["orders"]
        )

    return match
