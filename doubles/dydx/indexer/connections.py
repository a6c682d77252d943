"""WebSocket connections of the Indexer double and the errors its handlers raise."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

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


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
