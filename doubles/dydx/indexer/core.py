"""Fields and test controls of the Indexer double (lag, compliance, outages, sockets)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from doubles.dydx.indexer.connections import _BlockedError, _Connection
from doubles.dydx.indexer.constants import COMPLIANCE_STATUSES, WS_CLOSE_CODE_SERVICE_RESTART
from doubles.dydx.lag import IndexerLag
from doubles.dydx.state import ChainState, OrderRecord, iso

log = logging.getLogger("doubles.dydx.indexer")  # the module this code was split from


class IndexerCore:
    """Fields and test controls of :class:`~doubles.dydx.indexer.IndexerDouble`.

    The REST routes (:mod:`~doubles.dydx.indexer.rest_markets`,
    :mod:`~doubles.dydx.indexer.rest_accounts`) and the WebSocket channels
    (:mod:`~doubles.dydx.indexer.websocket`) build on this class;
    :class:`~doubles.dydx.indexer.IndexerDouble` sets the fields and builds the app.
    """

    state: ChainState
    _lag: IndexerLag
    forget_unfilled_short_term: bool
    _loop: asyncio.AbstractEventLoop | None
    _compliance: dict[str, dict[str, str]]
    _down_status: int | None
    requests: Counter[str]
    _connections: dict[str, _Connection]
    _unsubscribe: Callable[[], None]
    app: web.Application

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

    def _check_compliance(self, address: str) -> None:
        entry = self._compliance.get(address)
        if entry is not None and entry["status"] == "BLOCKED":
            raise _BlockedError


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


async def _as_coroutine(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)
