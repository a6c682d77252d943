"""``DydxStream``: the :class:`~core.exchange.stream.SubaccountStream` over the dYdX Indexer
WebSocket (socks), on aiohttp.

- Subaccounts are sharded over connections of at most 256 ``v4_subaccounts`` subscriptions
  each (socks ``CHANNEL_CONNECTION_LIMITS``); a subaccount stays on its connection, new ones
  fill the first connection with room; ``v4_markets`` rides on the first connection.
- socks allows 2 subscribes per second per connection, channel and id
  (``subscribeRateLimiter`` keyed on ``channel + id``; a violation closes with 1008): the
  pacer never sends a third within a second.
- A dropped connection is reopened with exponential back-off and jitter and everything it
  carried is subscribed again; the sink hears :meth:`StreamSink.on_down` at the drop and
  :meth:`StreamSink.on_live` for each subaccount once it is subscribed again.
- A subscribe neither confirmed nor refused within ``confirm_timeout`` is sent again.
- Every message is untrusted: one that does not parse is logged once and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Awaitable, Collection
from dataclasses import dataclass, field

import aiohttp

from core.exchange.dydx.indexer import IndexerClient
from core.exchange.dydx.parsing import MalformedAnswerError
from core.exchange.dydx.stream_parsing import (
    CHANNEL_MARKETS,
    CHANNEL_SUBACCOUNTS,
    Envelope,
    fill_event_of,
    order_event_of,
    parse_envelope,
    parse_initial_orders,
    parse_oracle_prices,
    parse_subaccount_update,
    position_event_of,
    subaccount_ref,
)
from core.exchange.stream import StreamSink, SubaccountEvent, SubaccountRef
from core.runtime.logs import get_logger

#: socks ``v4_subaccounts`` subscriptions per connection.
MAX_SUBACCOUNTS_PER_CONNECTION = 256
#: socks subscribes per second per connection, channel and id.
SUBSCRIBES_PER_SECOND = 2
#: Client ids remembered per subaccount (to name the order of a fill).
_CLIENT_IDS_KEPT = 1024


class SubscribePacer:
    """At most ``limit`` subscribes per ``window`` seconds for one key (channel and id)."""

    def __init__(self, limit: int = SUBSCRIBES_PER_SECOND, window: float = 1.0) -> None:
        self._limit = limit
        self._window = window
        self._sent: dict[str, deque[float]] = {}

    def delay(self, key: str, now: float) -> float:
        """Seconds to wait before ``key`` may be subscribed again (0 when it may now)."""
        sent = self._sent.get(key)
        if sent is None:
            return 0.0
        while sent and now - sent[0] >= self._window:
            sent.popleft()
        if len(sent) < self._limit:
            return 0.0
        return sent[0] + self._window - now

    def record(self, key: str, now: float) -> None:
        """``key`` was just subscribed."""
        self._sent.setdefault(key, deque()).append(now)

    def forget(self, keys: Collection[str]) -> None:
        """Drop the history of keys on a connection that is gone."""
        for key in keys:
            self._sent.pop(key, None)


@dataclass(eq=False)
class _Shard:
    """One WebSocket connection and the subscriptions it should carry."""

    number: int
    refs: set[SubaccountRef] = field(default_factory=set)
    markets: bool = False
    subscribed: set[str] = field(default_factory=set)  # confirmed on the open connection
    pending: dict[str, float] = field(default_factory=dict)  # sent, not yet confirmed
    ws: aiohttp.ClientWebSocketResponse | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    pacer: SubscribePacer = field(default_factory=SubscribePacer)
    task: asyncio.Task[None] | None = None

    def wanted(self) -> set[str]:
        keys = {ref.key for ref in self.refs}
        if self.markets:
            keys.add(CHANNEL_MARKETS)
        return keys


class DydxStream:
    """Indexer WebSocket subscriptions of subaccounts (and oracle prices), sharded and kept up.

    Create it inside the running event loop and :meth:`close` it on shutdown.

    Args:
        ws_url: The Indexer WebSocket URL (``wss://…/v4/ws``).
        indexer: The Indexer REST client (snapshots); closed with the stream.
        max_per_connection: ``v4_subaccounts`` subscriptions per connection.
        backoff_initial: First reconnect delay, in seconds (doubles per failed attempt).
        backoff_max: Longest reconnect delay, in seconds.
        heartbeat: Seconds between WebSocket pings (a missing pong drops the connection).
        connect_timeout: Seconds allowed to connect and receive ``connected``.
        confirm_timeout: Seconds after which an unanswered subscribe is sent again.
        rng: Randomness for the jitter (tests pass a seeded one).
    """

    def __init__(
        self,
        ws_url: str,
        indexer: IndexerClient,
        *,
        max_per_connection: int = MAX_SUBACCOUNTS_PER_CONNECTION,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        heartbeat: float = 20.0,
        connect_timeout: float = 10.0,
        confirm_timeout: float = 10.0,
        rng: random.Random | None = None,
    ) -> None:
        if not 1 <= max_per_connection <= MAX_SUBACCOUNTS_PER_CONNECTION:
            raise ValueError("max_per_connection must be within 1..256")
        self._url = ws_url
        self._indexer = indexer
        self._max = max_per_connection
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._heartbeat = heartbeat
        self._connect_timeout = connect_timeout
        self._confirm_timeout = confirm_timeout
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._shards: list[_Shard] = []
        self._sink: StreamSink | None = None
        self._session: aiohttp.ClientSession | None = None
        self._client_ids: dict[SubaccountRef, dict[str, int]] = {}
        self._closed = False
        self._log = get_logger(__name__)

    # ---------------------------------------------------------------- the port

    async def start(self, sink: StreamSink) -> None:
        """Deliver to ``sink`` from now on."""
        self._sink = sink
        if self._session is None:
            self._session = aiohttp.ClientSession()

    async def watch(self, refs: Collection[SubaccountRef], *, markets: bool = False) -> None:
        """Subscribe exactly ``refs`` (and ``v4_markets`` when ``markets``)."""
        if self._closed or self._sink is None:
            raise RuntimeError("the stream is not started")
        wanted = set(refs)
        for shard in self._shards:
            gone = shard.refs - wanted
            if gone:
                shard.refs -= gone
                shard.wake.set()
                for ref in gone:
                    self._client_ids.pop(ref, None)
            wanted -= shard.refs
        for ref in sorted(wanted):
            target = next((s for s in self._shards if len(s.refs) < self._max), None)
            if target is None:
                target = _Shard(number=len(self._shards))
                self._shards.append(target)
            target.refs.add(ref)
        if markets and not self._shards:
            self._shards.append(_Shard(number=0))
        if self._shards:
            self._shards[0].markets = markets
        for shard in self._shards:
            shard.wake.set()
            if (shard.refs or shard.markets) and (shard.task is None or shard.task.done()):
                shard.task = asyncio.create_task(self._run(shard), name=f"dydx-ws-{shard.number}")

    def is_live(self, ref: SubaccountRef) -> bool:
        """Whether ``ref`` is subscribed on an open connection."""
        return any(ref.key in s.subscribed and ref in s.refs for s in self._shards)

    @property
    def connection_count(self) -> int:
        """Open WebSocket connections."""
        return sum(1 for s in self._shards if s.ws is not None and not s.ws.closed)

    async def snapshot(self, ref: SubaccountRef) -> list[SubaccountEvent]:
        """Latest orders (any status) and fills and the open positions, over REST.

        Raises:
            ExchangeUnavailableError: The Indexer could not answer.
        """
        owner, number = ref.owner_address, ref.subaccount_number
        orders, fills, (_, positions) = await asyncio.gather(
            self._indexer.orders(owner, number, limit=100),
            self._indexer.fills(owner, number, limit=100),
            self._indexer.subaccount(owner, number),
        )
        known = self._remember(ref)
        for order in orders:
            known[order.order_id] = order.client_id
        events: list[SubaccountEvent] = [order_event_of(o) for o in orders]
        events += [fill_event_of(f, known) for f in reversed(fills)]  # oldest first
        events += [position_event_of(p) for p in positions]
        return events

    async def close(self) -> None:
        """Close every connection and the REST client."""
        self._closed = True
        tasks = [s.task for s in self._shards if s.task is not None]
        for shard in self._shards:
            shard.wake.set()
            if shard.ws is not None:
                with contextlib.suppress(Exception):
                    await shard.ws.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._shards.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self._indexer.close()

    # ---------------------------------------------------------------- one connection

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self._backoff_max, self._backoff_initial * float(2**attempt))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)  # "equal jitter"

    async def _run(self, shard: _Shard) -> None:
        attempt = 0
        while not self._closed and (shard.refs or shard.markets):
            started = time.monotonic()
            try:
                await self._connection(shard)
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
                # The first failure of a streak is worth a WARNING; its retries are routine.
                log = self._log.warning if attempt == 0 else self._log.debug
                log("ws_connection_failed", shard=shard.number, error=repr(exc), attempt=attempt)
            except Exception:  # never let one bad frame kill the monitor's stream
                self._log.exception("ws_connection_crashed", shard=shard.number)
            finally:
                await self._went_down(shard)
            if self._closed or not (shard.refs or shard.markets):
                return
            if time.monotonic() - started > 60:
                attempt = 0  # it stayed up: the next drop starts the back-off again
            delay = self._backoff(attempt)
            attempt += 1
            self._log.debug("ws_reconnect_scheduled", shard=shard.number, delay=round(delay, 2))
            await asyncio.sleep(delay)

    async def _went_down(self, shard: _Shard) -> None:
        lost = [ref for ref in shard.refs if ref.key in shard.subscribed]
        shard.pacer.forget(shard.subscribed | set(shard.pending))
        shard.subscribed.clear()
        shard.pending.clear()
        ws, shard.ws = shard.ws, None
        if ws is not None and not ws.closed:
            with contextlib.suppress(Exception):
                await ws.close()
        if lost and self._sink is not None and not self._closed:
            await self._deliver_safely(self._sink.on_down(sorted(lost)))

    async def _connection(self, shard: _Shard) -> None:
        session = self._session
        if session is None:
            raise RuntimeError("the stream is not started")
        ws = await session.ws_connect(
            self._url,
            heartbeat=self._heartbeat,
            timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
            max_msg_size=8 * 1024 * 1024,
        )
        shard.ws = ws
        first = await ws.receive(timeout=self._connect_timeout)
        if first.type != aiohttp.WSMsgType.TEXT or self._envelope(first.data).type != "connected":
            raise ConnectionError("the Indexer did not say connected")
        self._log.info("ws_connected", shard=shard.number, subaccounts=len(shard.refs))
        shard.wake.set()
        syncer = asyncio.create_task(self._sync(shard, ws))
        try:
            async for message in ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    await self._on_message(shard, message.data)
                elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
                    break
            self._log.warning(
                "ws_closed", shard=shard.number, code=ws.close_code, error=repr(ws.exception())
            )
        finally:
            syncer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await syncer

    async def _sync(self, shard: _Shard, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Send the subscribes and unsubscribes that make the connection carry what the shard
        wants, paced; wakes when the wanted set changes."""
        while not ws.closed:
            await shard.wake.wait()
            shard.wake.clear()
            wanted = shard.wanted()
            if not wanted:
                await ws.close()  # nothing left to carry: the shard's task ends
                return
            for key in sorted((shard.subscribed | set(shard.pending)) - wanted):
                shard.subscribed.discard(key)
                shard.pending.pop(key, None)
                await ws.send_json(_subscription("unsubscribe", key))
            now = time.monotonic()
            stale = {k for k, at in shard.pending.items() if now - at > self._confirm_timeout}
            for key in sorted(wanted - shard.subscribed - (set(shard.pending) - stale)):
                delay = shard.pacer.delay(key, time.monotonic())
                if delay > 0:
                    await asyncio.sleep(delay)
                if key not in shard.wanted() or ws.closed:
                    continue
                shard.pacer.record(key, time.monotonic())
                shard.pending[key] = time.monotonic()
                await ws.send_json(_subscription("subscribe", key))
            if shard.pending:
                # Look again once the oldest unanswered subscribe is due to be sent again.
                oldest = min(shard.pending.values())
                wait = max(0.1, oldest + self._confirm_timeout - time.monotonic() + 0.01)
                asyncio.get_running_loop().call_later(wait, shard.wake.set)

    # ---------------------------------------------------------------- messages

    def _envelope(self, text: str) -> Envelope:
        try:
            return parse_envelope(text)
        except MalformedAnswerError as exc:
            self._log.warning("ws_message_malformed", problem=str(exc))
            return Envelope("malformed")

    async def _on_message(self, shard: _Shard, text: str) -> None:
        envelope = self._envelope(text)
        kind = envelope.type
        if kind == "error":
            self._log.warning("ws_error_message", shard=shard.number, message=envelope.message)
            return
        if kind not in ("subscribed", "channel_data", "channel_batch_data"):
            return
        sink = self._sink
        if sink is None:
            return
        if envelope.channel == CHANNEL_MARKETS:
            if kind == "subscribed":
                shard.pending.pop(CHANNEL_MARKETS, None)
                shard.subscribed.add(CHANNEL_MARKETS)
            prices = []
            for contents in envelope.contents:
                oracle = parse_oracle_prices(contents)
                if oracle.problems:
                    self._log.warning("ws_oracle_skipped", problems=oracle.problems[:5])
                prices += oracle.prices
            if prices:
                await self._deliver_safely(sink.on_oracle(prices))
            return
        if envelope.channel != CHANNEL_SUBACCOUNTS:
            return
        try:
            ref = subaccount_ref(envelope.id)
        except MalformedAnswerError as exc:
            self._log.warning("ws_message_malformed", problem=str(exc))
            return
        if ref not in shard.refs:
            return  # unsubscribed since, or not ours
        known = self._remember(ref)
        if kind == "subscribed":
            shard.pending.pop(ref.key, None)
            shard.subscribed.add(ref.key)
            for contents in envelope.contents:
                parse_initial_orders(contents, known)
            await self._deliver_safely(sink.on_live([ref]))
            return
        events: list[SubaccountEvent] = []
        for contents in envelope.contents:
            parsed = parse_subaccount_update(contents, known)
            if parsed.problems:
                self._log.warning(
                    "ws_items_skipped", subaccount=ref.key, problems=parsed.problems[:5]
                )
            events += parsed.events
        if len(known) > _CLIENT_IDS_KEPT:
            for order_id in list(known)[: len(known) - _CLIENT_IDS_KEPT]:
                del known[order_id]
        if events:
            await self._deliver_safely(sink.on_events(ref, events))

    def _remember(self, ref: SubaccountRef) -> dict[str, int]:
        return self._client_ids.setdefault(ref, {})

    async def _deliver_safely(self, call: Awaitable[None]) -> None:
        """Await a sink call; a failing sink is logged, never the end of the connection."""
        try:
            await call
        except asyncio.CancelledError:
            raise
        except Exception:
            self._log.exception("ws_sink_failed")


def _subscription(kind: str, key: str) -> dict[str, object]:
    if key == CHANNEL_MARKETS:
        return {"type": kind, "channel": CHANNEL_MARKETS, "batched": False}
    return {"type": kind, "channel": CHANNEL_SUBACCOUNTS, "id": key}
