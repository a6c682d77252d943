"""The real-time position monitor against the dYdX double's real Indexer WebSocket and REST,
with real PostgreSQL and Redis: fills and order states recorded idempotently, reconnects,
sharding, leases shared by two monitors, polling while the WebSocket is down, malformed
messages skipped, and the fill → listener latency (printed)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.models import Fill, Order
from core.db.repositories.execution import ExecutionRepository
from core.db.uow import UnitOfWork
from core.domain.states import OrderPurpose, OrderSide, OrderState
from core.exchange.factory import (
    create_exchange_provider,
    create_key_verifier,
    create_subaccount_stream,
)
from core.exchange.provider import ExchangeProvider
from core.exchange.stream import (
    FillEvent,
    OraclePrice,
    OrderEvent,
    PositionEvent,
    SubaccountEvent,
    SubaccountRef,
)
from core.runtime.config import DydxEndpoints, Settings
from core.services.credentials import CredentialService
from core.services.execution.pipeline import ExecutionService
from core.services.execution.settle import OrderSettler
from core.services.monitor.lease import SubaccountLeases
from core.services.monitor.monitor import PositionMonitor
from core.services.monitor.recording import LedgerRecorder
from core.services.monitor.watchlist import LedgerWatchList
from core.services.notifications import NotificationService
from doubles.dydx.accounts import FundedTrader, make_funded_trader
from doubles.dydx.double import DydxDouble
from doubles.dydx.orders import build_order
from doubles.dydx.state import ORDER_FLAG_LONG_TERM, TIF_UNSPECIFIED, ChainState
from workers.monitor import start_monitor, stop_monitor

Maker = async_sessionmaker[AsyncSession]
ETH = "ETH-USD"
ETH_CLOB_PAIR = 1


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


@dataclass
class Call:
    at: float
    ref: SubaccountRef
    events: list[SubaccountEvent]
    catch_up: bool


@dataclass
class Spy:
    """A listener that records each call, then hands it to ``inner`` (when given)."""

    inner: LedgerRecorder | None = None
    calls: list[Call] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def subaccount_changed(
        self, ref: SubaccountRef, events: Sequence[SubaccountEvent], *, catch_up: bool
    ) -> None:
        self.calls.append(Call(time.perf_counter(), ref, list(events), catch_up))
        self.changed.set()
        if self.inner is not None:
            await self.inner.subaccount_changed(ref, events, catch_up=catch_up)

    def fills_seen(self, fill_ids: set[str] | None = None) -> list[tuple[Call, FillEvent]]:
        return [
            (call, event)
            for call in self.calls
            for event in call.events
            if isinstance(event, FillEvent) and (fill_ids is None or event.fill_id in fill_ids)
        ]


@dataclass
class FixedWatchList:
    """The watch list as a set the test controls."""

    refs: frozenset[SubaccountRef]

    async def watched(self) -> frozenset[SubaccountRef]:
        return self.refs


async def eventually(check: Callable[[], Any], *, within: float = 30.0, step: float = 0.05) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s")
        await asyncio.sleep(step)


def rest_buy(double: DydxDouble, owner: str, client_id: int, *, price: str = "2900") -> None:
    """A long-term limit buy of 0.1 ETH resting on the double."""

    def place(state: ChainState) -> None:
        order = build_order(
            state.markets[ETH],
            owner,
            client_id,
            buy=True,
            size="0.1",
            price=price,
            flags=ORDER_FLAG_LONG_TERM,
            time_in_force=TIF_UNSPECIFIED,
            good_til_block_time=int((state.block_time + timedelta(hours=1)).timestamp()),
        )
        result = state.place_order(order)
        assert result.ok, result.log

    double.call(place, double.state)


def fill_resting(double: DydxDouble, price: str) -> None:
    """Move the oracle through resting buys and commit the block that fills them."""
    double.set_oracle_price(ETH, price)
    double.advance_block()


@dataclass
class Stack:
    settings: Settings
    maker: Maker
    redis: Redis
    double: DydxDouble
    exchanges: ExchangeProvider
    settler: OrderSettler

    def recorder(self) -> LedgerRecorder:
        # No job follows the orders these tests make: the monitor settles them at once.
        return LedgerRecorder(self.maker, self.settler.settle, job_follows=timedelta(0))

    async def trader(self) -> tuple[int, FundedTrader]:
        """A user with a funded dYdX owner and a stored API trading key."""
        async with UnitOfWork(self.maker) as uow:
            user = await uow.users.get_or_create(uuid.uuid4().int % 2**40)
            await uow.commit()
            user_id = user.id
        funded = make_funded_trader(self.double)
        credentials = CredentialService(
            self.maker, self.settings.keyring, create_key_verifier(self.settings.dydx)
        )
        try:
            await credentials.add_key(user_id, funded.owner_address, funded.api_private_key_hex)
        finally:
            await credentials.close()
        return user_id, funded

    async def resting_order(
        self, user_id: int, owner: str, client_id: int, *, price: str = "2900"
    ) -> int:
        """A resting buy on the double and its ledger row (SUBMITTED)."""
        rest_buy(self.double, owner, client_id, price=price)
        async with UnitOfWork(self.maker) as uow:
            order = Order(
                user_id=user_id,
                purpose=OrderPurpose.ENTRY,
                market=ETH,
                owner_address=owner,
                subaccount_number=0,
                client_id=client_id,
                clob_pair_id=ETH_CLOB_PAIR,
                order_flags=ORDER_FLAG_LONG_TERM,
                side=OrderSide.BUY,
                order_type="LIMIT",
                size=Decimal("0.1"),
                price=Decimal(price),
                time_in_force="GTT",
                state=OrderState.SUBMITTED,
                position_before=Decimal(0),
            )
            uow.orders.add(order)
            await uow.commit()
            return order.id

    async def order(self, order_id: int) -> Order:
        async with UnitOfWork(self.maker) as uow:
            row = await uow.orders.get(order_id)
            assert row is not None
            uow.detach(row)
            return row

    async def fill_count(self, order_id: int) -> int:
        async with self.maker() as session:
            return int(
                await session.scalar(
                    select(func.count()).select_from(Fill).where(Fill.order_id == order_id)
                )
                or 0
            )

    def monitor(
        self,
        listener: Spy,
        *,
        watchlist: Any = None,
        prefix: str = "test:monitor",
        lease_seconds: float = 1.5,
        endpoints: DydxEndpoints | None = None,
        max_per_connection: int = 256,
    ) -> PositionMonitor:
        return PositionMonitor(
            stream=create_subaccount_stream(
                endpoints or self.settings.dydx,
                backoff_initial=0.2,
                backoff_max=1.0,
                max_per_connection=max_per_connection,
            ),
            watchlist=watchlist or LedgerWatchList(self.maker),
            leases=SubaccountLeases(self.redis, ttl=lease_seconds, prefix=prefix),
            listener=listener,
            interval=min(lease_seconds / 3, 0.25),
            poll_interval=0.5,
            catch_up_interval=60.0,
        )


@pytest.fixture
async def stack(
    dydx_double: DydxDouble,
    live_sessionmaker: Maker,
    redis: Redis,
    make_settings: Callable[..., Settings],
    database_url: str,
) -> AsyncIterator[Stack]:
    dydx_double.pause_clock()
    settings = make_settings(
        **dydx_double.env(), monitor_lease_seconds="1.5", monitor_poll_seconds="0.5"
    )
    exchanges = create_exchange_provider(live_sessionmaker, settings)
    store = ExecutionRepository(database_url)
    try:
        yield Stack(
            settings,
            live_sessionmaker,
            redis,
            dydx_double,
            exchanges,
            ExecutionService(
                live_sessionmaker, exchanges, store, max_lag=timedelta(seconds=60)
            ).settler,
        )
    finally:
        await exchanges.close()
        await store.close()


# --------------------------------------------------------------------------------------------
# Fills and order states, idempotently; latency
# --------------------------------------------------------------------------------------------


async def test_a_fill_seen_on_the_websocket_is_recorded_once_and_the_latency_printed(
    stack: Stack,
) -> None:
    user_id, trader = await stack.trader()
    owner = trader.owner_address
    ref = SubaccountRef(owner, 0)
    spy = Spy(stack.recorder())
    monitor = stack.monitor(spy)
    await monitor.start()
    latencies: list[float] = []
    recorded: list[float] = []
    try:
        order_ids: list[int] = []
        for round_number in range(5):
            client_id = 100 + round_number
            order_id = await stack.resting_order(user_id, owner, client_id)
            order_ids.append(order_id)
            stream = monitor.stream
            await eventually(lambda s=stream: ref in monitor.held and s.is_live(ref))
            await eventually(lambda: not monitor._running)  # the catch-up is done
            seen = len(spy.calls)

            def pushed(seen: int = seen) -> list[tuple[Call, FillEvent]]:
                # The first call that carries the fill: the WebSocket's, or on a loaded machine
                # a REST catch-up that got there first (the connection may have been renewed).
                found = [
                    (call, event)
                    for call, event in spy.fills_seen()
                    if spy.calls.index(call) >= seen
                ]
                return found[:1]

            started = time.perf_counter()
            fill_resting(stack.double, "2850")
            ((call, fill),) = await eventually(pushed, step=0.001)
            assert (fill.order_client_id, fill.market, fill.side) == (client_id, ETH, "BUY")
            assert (fill.size, fill.price, fill.liquidation) == (Decimal("0.1"), 2900, False)
            latencies.append((call.at - started) * 1000)

            async def filled(order_id: int = order_id) -> bool:
                return (await stack.order(order_id)).state is OrderState.FILLED

            await eventually(filled, step=0.002)
            recorded.append((time.perf_counter() - started) * 1000)
            fill_resting(stack.double, "3000")  # back above the next resting buy
        order = await stack.order(order_ids[0])
        assert (order.filled_size, order.average_price) == (Decimal("0.1"), Decimal("2900"))
        # The same events again, and a catch-up, through the same path: still one fill each.
        for call in list(spy.calls):
            await spy.inner.subaccount_changed(ref, call.events, catch_up=call.catch_up)  # type: ignore[union-attr]
        for order_id in order_ids:
            assert await stack.fill_count(order_id) == 1
        positions = [e for c in spy.calls for e in c.events if isinstance(e, PositionEvent)]
        assert positions
        assert positions[-1].market == ETH
    finally:
        await monitor.stop()
    print(
        f"\nfill on the double -> listener called (WebSocket up): "
        f"p50 {statistics.median(latencies):.1f} ms, max {max(latencies):.1f} ms, "
        f"samples {[round(x, 1) for x in latencies]}; "
        f"-> order FILLED in PostgreSQL: p50 {statistics.median(recorded):.1f} ms"
    )


async def test_two_recorders_racing_on_the_same_fill_write_it_once(stack: Stack) -> None:
    user_id, trader = await stack.trader()
    owner = trader.owner_address
    ref = SubaccountRef(owner, 0)
    order_id = await stack.resting_order(user_id, owner, 7)
    fill_resting(stack.double, "2850")
    stream = create_subaccount_stream(stack.settings.dydx)
    try:
        events = await stream.snapshot(ref)
    finally:
        await stream.close()
    fills = [e for e in events if isinstance(e, FillEvent)]
    assert [f.order_client_id for f in fills] == [7]
    assert any(isinstance(e, OrderEvent) and e.status == "FILLED" for e in events)
    recorder = stack.recorder()
    await asyncio.gather(
        recorder.subaccount_changed(ref, events, catch_up=False),
        recorder.subaccount_changed(ref, events, catch_up=True),
        stack.recorder().subaccount_changed(ref, events, catch_up=False),
    )
    assert (await stack.order(order_id)).state is OrderState.FILLED
    assert await stack.fill_count(order_id) == 1


# --------------------------------------------------------------------------------------------
# Reconnect and polling
# --------------------------------------------------------------------------------------------


async def test_a_websocket_drop_during_a_fill_reconnects_resubscribes_and_catches_up(
    stack: Stack,
) -> None:
    user_id, trader = await stack.trader()
    owner = trader.owner_address
    ref = SubaccountRef(owner, 0)
    order_id = await stack.resting_order(user_id, owner, 11)
    # Still resting after the fill: the subaccount stays watched.
    await stack.resting_order(user_id, owner, 12, price="2000")
    spy = Spy(stack.recorder())
    monitor = stack.monitor(spy)
    await monitor.start()
    try:
        stream = monitor.stream
        await eventually(lambda: stream.is_live(ref))

        async def drop_and_fill() -> None:
            # On the double's loop: the fill happens while no connection is open.
            await stack.double.indexer.drop_websockets(abrupt=True)
            stack.double.state.set_oracle_price(ETH, Decimal("2850"))
            stack.double.state.advance_block()

        await stack.double.acall(drop_and_fill)

        async def filled() -> bool:
            return (await stack.order(order_id)).state is OrderState.FILLED

        await eventually(filled)
        await eventually(lambda: stream.is_live(ref))
        assert stream.connection_count == 1
        assert stack.double.call(lambda: stack.double.indexer.websocket_count) == 1
        assert await stack.fill_count(order_id) == 1
        # It was a REST catch-up that saw the fill, not a WebSocket message.
        ((call, _),) = spy.fills_seen()[:1]
        assert call.catch_up
    finally:
        await monitor.stop()


async def test_with_the_websocket_unreachable_polling_records_the_fill_within_seconds(
    stack: Stack,
) -> None:
    user_id, trader = await stack.trader()
    owner = trader.owner_address
    order_id = await stack.resting_order(user_id, owner, 21)
    # The discard port refuses connections: the WebSocket never comes up.
    dead = dataclasses.replace(stack.settings.dydx, indexer_ws_url="ws://127.0.0.1:9/v4/ws")
    spy = Spy(stack.recorder())
    monitor = stack.monitor(spy, endpoints=dead)
    await monitor.start()
    try:
        await eventually(lambda: SubaccountRef(owner, 0) in monitor.held)
        fill_resting(stack.double, "2850")

        async def filled() -> bool:
            return (await stack.order(order_id)).state is OrderState.FILLED

        # Polling (every 0.5 s here) records it; the next catch-up is a minute away.
        await eventually(filled, within=15)
        assert monitor.stream.connection_count == 0
        assert await stack.fill_count(order_id) == 1
    finally:
        await monitor.stop()


# --------------------------------------------------------------------------------------------
# Sharding and leases
# --------------------------------------------------------------------------------------------


class Collect:
    """A stream sink that only records."""

    def __init__(self) -> None:
        self.live: set[SubaccountRef] = set()
        self.down: set[SubaccountRef] = set()

    async def on_events(self, ref: SubaccountRef, events: Sequence[SubaccountEvent]) -> None:
        """Events are not what these tests look at."""

    async def on_oracle(self, prices: Sequence[OraclePrice]) -> None:
        """Prices are not what these tests look at."""

    async def on_live(self, refs: Sequence[SubaccountRef]) -> None:
        self.live.update(refs)

    async def on_down(self, refs: Sequence[SubaccountRef]) -> None:
        self.down.update(refs)


def many_refs(n: int) -> frozenset[SubaccountRef]:
    owners = [f"dydx1test{index:04d}" for index in range(n // 100 + 1)]
    return frozenset(SubaccountRef(owners[i // 100], i % 100) for i in range(n))


async def test_300_subaccounts_are_sharded_over_two_connections(stack: Stack) -> None:
    stream = create_subaccount_stream(stack.settings.dydx)
    sink = Collect()
    refs = many_refs(300)
    await stream.start(sink)
    try:
        await stream.watch(refs)
        await eventually(lambda: sink.live == refs, within=20)
        assert stream.connection_count == 2
        assert stack.double.call(lambda: stack.double.indexer.websocket_count) == 2
        # Fewer again: the second connection is closed once it carries nothing.
        await stream.watch(frozenset(sorted(refs)[:200]))
        await eventually(lambda: stream.connection_count == 1)
        assert all(stream.is_live(ref) for ref in sorted(refs)[:200])
    finally:
        await stream.close()


async def test_two_monitors_share_the_subaccounts_and_one_takes_over_from_a_dead_one(
    stack: Stack,
) -> None:
    refs = many_refs(12)
    watchlist = FixedWatchList(refs)
    first = stack.monitor(Spy(), watchlist=watchlist, lease_seconds=1.5)
    second = stack.monitor(Spy(), watchlist=watchlist, lease_seconds=1.5)
    await first.start()
    await second.start()
    try:
        await eventually(lambda: first.held | second.held == refs and not first.held & second.held)
        await eventually(lambda: len(first.held) == len(second.held) == 6)
        # Held means watched by that monitor alone, leases and subscriptions agree.
        for monitor in (first, second):
            await eventually(lambda m=monitor: all(m.stream.is_live(r) for r in m.held))
        assert stack.double.call(lambda: stack.double.indexer.websocket_count) == 2
        # The first dies without handing anything back: its leases run out.
        assert first._task is not None
        first._task.cancel()
        await first.stream.close()
        died = time.monotonic()
        await eventually(lambda: second.held == refs, within=30)
        took_over = time.monotonic() - died
        assert took_over < 30
        print(f"\ntake-over of a dead monitor's subaccounts: {took_over:.2f} s (lease 1.5 s)")
    finally:
        await second.stop()
        await first.stop()


# --------------------------------------------------------------------------------------------
# Malformed messages, through a small scripted Indexer
# --------------------------------------------------------------------------------------------


async def test_malformed_messages_are_skipped_and_the_stream_keeps_going() -> None:
    ref = SubaccountRef("dydx1scripted", 0)
    good_fill = {
        "id": "fill-1",
        "side": "SELL",
        "liquidity": "TAKER",
        "type": "LIQUIDATED",
        "size": "0.5",
        "price": "2800",
        "fee": "0.1",
        "createdAt": "2026-01-01T00:00:00.000Z",
        "orderId": None,
        "ticker": ETH,
    }

    async def socks(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"type": "connected", "connection_id": "c", "message_id": 0})
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                break
            body = json.loads(message.data)
            if body.get("type") != "subscribe":
                continue
            base = {"connection_id": "c", "channel": "v4_subaccounts", "id": ref.key}
            await ws.send_json({"type": "subscribed", "message_id": 1, **base, "contents": {}})
            for bad in (
                "not json at all",
                "[1, 2, 3]",
                json.dumps({"type": "surprise"}),
                json.dumps({"type": "channel_data", **base, "contents": "nope"}),
                json.dumps({"type": "channel_data", **base, "id": "bad id", "contents": {}}),
                json.dumps({"type": "channel_data", **base, "contents": {"fills": "no"}}),
                json.dumps(
                    {
                        "type": "channel_data",
                        **base,
                        "contents": {"fills": [{**good_fill, "size": "NaN"}]},
                    }
                ),
                json.dumps({"type": "error", "message": "Internal error"}),
            ):
                await ws.send_str(bad)
            await ws.send_json(
                {"type": "channel_batch_data", **base, "contents": [{"fills": [good_fill]}]}
            )
        return ws

    app = web.Application()
    app.router.add_get("/v4/ws", socks)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    endpoints = DydxEndpoints(
        network="custom",
        indexer_url=f"http://127.0.0.1:{port}",
        indexer_ws_url=f"ws://127.0.0.1:{port}/v4/ws",
        node_url="127.0.0.1:9",
        node_tls=False,
        chain_id="scripted",
    )
    received: list[SubaccountEvent] = []

    class Sink(Collect):
        async def on_events(self, ref: SubaccountRef, events: Sequence[SubaccountEvent]) -> None:
            received.extend(events)

    stream = create_subaccount_stream(endpoints)
    await stream.start(Sink())
    try:
        await stream.watch([ref])
        await eventually(lambda: received)
        (fill,) = received
        assert isinstance(fill, FillEvent)
        assert (fill.fill_id, fill.liquidation, fill.order_client_id) == ("fill-1", True, None)
        assert stream.is_live(ref)
    finally:
        await stream.close()
        await runner.cleanup()


# --------------------------------------------------------------------------------------------
# The worker's wiring
# --------------------------------------------------------------------------------------------


async def test_the_worker_starts_the_monitor_unless_disabled(
    stack: Stack, make_settings: Callable[..., Settings], database_url: str
) -> None:
    store = ExecutionRepository(database_url)
    try:
        ctx: dict[str, Any] = {
            "settings": stack.settings,
            "sessionmaker": stack.maker,
            "redis": stack.redis,
            "exchanges": stack.exchanges,
            "execution_store": store,
            "execution": ExecutionService(
                stack.maker, stack.exchanges, store, max_lag=timedelta(seconds=60)
            ),
            "notifications": NotificationService(stack.maker),
        }
        await start_monitor(ctx)
        monitor = ctx["monitor"]
        assert isinstance(monitor, PositionMonitor)
        await stop_monitor(ctx)
        assert "monitor" not in ctx

        off = make_settings(**stack.double.env(), monitor_enabled="false")
        ctx["settings"] = off
        await start_monitor(ctx)
        assert "monitor" not in ctx
        await stop_monitor(ctx)
    finally:
        await store.close()


async def test_leases_are_exclusive_shared_fairly_and_dropped_without_redis(
    redis: Redis,
) -> None:
    refs = many_refs(4)
    first = SubaccountLeases(redis, ttl=5, prefix="test:lease")
    second = SubaccountLeases(redis, ttl=5, prefix="test:lease")
    assert await first.claim(refs) == refs  # alone: everything
    assert await second.claim(refs) == frozenset()  # held by the first: nothing
    half = await first.claim(refs)  # two workers now: the first hands back the excess
    assert len(half) == 2
    assert await second.claim(refs) == refs - half
    assert await first.claim(refs) == half  # renewed, not taken again
    # A subaccount no longer wanted is released at once.
    fewer = frozenset(sorted(half)[:1])
    assert await first.claim(fewer) == fewer
    await first.release_all()
    assert await second.claim(refs) == refs

    unreachable = Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=0.2)
    try:
        lonely = SubaccountLeases(unreachable, ttl=5, prefix="test:lease")
        assert await lonely.claim(refs) == frozenset()
    finally:
        await unreachable.aclose()


async def test_an_entry_its_job_still_follows_is_left_to_the_job(stack: Stack) -> None:
    """In a burst, the worker settles each new order once (its job), not twice: the monitor
    leaves entries younger than the job's window alone, and settles them once older."""
    user_id, trader = await stack.trader()
    owner = trader.owner_address
    ref = SubaccountRef(owner, 0)
    order_id = await stack.resting_order(user_id, owner, 300)
    fill_resting(stack.double, "2850")
    followed = LedgerRecorder(stack.maker, stack.settler.settle)  # the production window
    await followed.subaccount_changed(ref, [], catch_up=True)
    assert (await stack.order(order_id)).state is not OrderState.FILLED
    stale = LedgerRecorder(stack.maker, stack.settler.settle, job_follows=timedelta(0))
    await stale.subaccount_changed(ref, [], catch_up=True)
    assert (await stack.order(order_id)).state is OrderState.FILLED
