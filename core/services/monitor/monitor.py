"""``PositionMonitor``: keeps the leased subaccounts subscribed and their listener told.

Every ``interval`` seconds (at most a third of the lease lifetime) one tick:

1. reads the wanted subaccounts (the watch list) and claims leases on them;
2. makes the stream carry exactly the held ones;
3. catches up over REST each held subaccount whose subscription is down (every
   ``poll_interval``) or that was last caught up ``catch_up_interval`` ago.

The stream's events and (re)subscriptions arrive in between (the monitor is its
:class:`~core.exchange.stream.StreamSink`). Work per subaccount is queued and coalesced: one
listener call at a time per subaccount, at most ``concurrency`` subaccounts at once, and a
slow listener never stalls the WebSocket reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from core.exchange.errors import ExchangeError
from core.exchange.stream import (
    OraclePrice,
    SubaccountEvent,
    SubaccountRef,
    SubaccountStream,
)
from core.runtime.logs import get_logger
from core.services.monitor.lease import SubaccountLeases
from core.services.monitor.listener import OracleListener, SubaccountListener

DEFAULT_POLL_INTERVAL = 3.0
DEFAULT_CATCH_UP_INTERVAL = 60.0
#: Seconds a stopping monitor lets running listener calls finish before cancelling them.
STOP_GRACE = 2.0


class WatchList(Protocol):
    """Which subaccounts need watching."""

    async def watched(self) -> frozenset[SubaccountRef]:
        """Every subaccount that needs watching now (by any worker)."""
        ...


@dataclass(slots=True)
class _Work:
    events: list[SubaccountEvent] = field(default_factory=list)
    catch_up: bool = False


class PositionMonitor:
    """Watches the subaccounts this worker holds a lease on.

    Args:
        stream: The venue's stream (the monitor starts and closes it).
        watchlist: Which subaccounts need watching.
        leases: This worker's leases.
        listener: Told about each subaccount's changes.
        oracle_listener: Told about oracle prices; without one, markets are not subscribed.
        interval: Seconds between ticks (capped at a third of the lease lifetime by the
            caller).
        poll_interval: Seconds between REST polls of a subaccount whose subscription is down.
        catch_up_interval: Seconds between REST catch-ups of a subscribed subaccount.
        concurrency: Subaccounts handled at once.
    """

    def __init__(
        self,
        *,
        stream: SubaccountStream,
        watchlist: WatchList,
        leases: SubaccountLeases,
        listener: SubaccountListener,
        oracle_listener: OracleListener | None = None,
        interval: float = 1.0,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        catch_up_interval: float = DEFAULT_CATCH_UP_INTERVAL,
        concurrency: int = 8,
    ) -> None:
        self._stream = stream
        self._watchlist = watchlist
        self._leases = leases
        self._listener = listener
        self._oracle_listener = oracle_listener
        self._interval = interval
        self._poll_interval = poll_interval
        self._catch_up_interval = catch_up_interval
        self._slots = asyncio.Semaphore(concurrency)
        self._held: frozenset[SubaccountRef] = frozenset()
        self._last_look: dict[SubaccountRef, float] = {}
        self._pending: dict[SubaccountRef, _Work] = {}
        self._running: dict[SubaccountRef, asyncio.Task[None]] = {}
        self._prices: dict[str, OraclePrice] = {}
        self._oracle_task: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._log = get_logger(__name__)

    @property
    def stream(self) -> SubaccountStream:
        """The venue's stream this monitor drives."""
        return self._stream

    @property
    def held(self) -> frozenset[SubaccountRef]:
        """The subaccounts this monitor watches and still holds the lease on (none once the
        last claim is nearly a lease lifetime old: another worker may take them soon)."""
        return self._held & self._leases.held

    async def start(self) -> None:
        """Start the stream and the tick loop (returns at once)."""
        await self._stream.start(self)
        self._task = asyncio.create_task(self._run(), name="position-monitor")

    async def stop(self) -> None:
        """Stop ticking, let running listener calls finish, close the stream and give the
        leases back."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # Nothing held any more before a lease is given back: whoever follows ``held`` (the
        # trailing service) stops before another worker can take over.
        self._held = frozenset()
        self._pending.clear()
        running = list(self._running.values())
        if running:
            # Listener calls are idempotent: one cut short is redone by the next holder.
            _, late = await asyncio.wait(running, timeout=STOP_GRACE)
            for straggler in late:
                straggler.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._oracle_task is not None:
            self._oracle_task.cancel()
            await asyncio.gather(self._oracle_task, return_exceptions=True)
        await self._stream.close()
        await self._leases.release_all()

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bad tick must not end the monitor
                self._log.exception("monitor_tick_failed")
            await asyncio.sleep(self._interval)

    async def tick(self) -> None:
        """One round: watch list, leases, subscriptions, due polls and catch-ups."""
        wanted = await self._watchlist.watched()
        held = await self._leases.claim(wanted)
        gained, lost = held - self._held, self._held - held
        self._held = held
        for ref in lost:
            self._last_look.pop(ref, None)
            self._pending.pop(ref, None)
        if gained or lost:
            self._log.info("monitor_watching", held=len(held), gained=len(gained), lost=len(lost))
        await self._stream.watch(held, markets=self._oracle_listener is not None)
        now = time.monotonic()
        for ref in sorted(held):
            last = self._last_look.get(ref)
            every = self._catch_up_interval if self._stream.is_live(ref) else self._poll_interval
            if last is None or now - last >= every:
                self._submit(ref, (), catch_up=True)

    # ---------------------------------------------------------------- the stream's sink

    async def on_events(self, ref: SubaccountRef, events: Sequence[SubaccountEvent]) -> None:
        """Queue a watched subaccount's updates for its listener."""
        if ref in self._held:
            self._submit(ref, events, catch_up=False)

    async def on_oracle(self, prices: Sequence[OraclePrice]) -> None:
        """Keep the latest price per market and hand them to the oracle listener."""
        if self._oracle_listener is None:
            return
        for price in prices:
            self._prices[price.market] = price
        if self._oracle_task is None or self._oracle_task.done():
            self._oracle_task = asyncio.create_task(self._drain_oracle(self._oracle_listener))

    async def on_live(self, refs: Sequence[SubaccountRef]) -> None:
        """(Re)subscribed: catch up over REST on what happened meanwhile."""
        for ref in refs:
            if ref in self._held:
                self._submit(ref, (), catch_up=True)

    async def on_down(self, refs: Sequence[SubaccountRef]) -> None:
        """Subscriptions lost: the next tick polls them."""
        self._log.warning("monitor_subscriptions_down", count=len(refs))
        for ref in refs:
            self._last_look.pop(ref, None)

    # ---------------------------------------------------------------- per-subaccount work

    def _submit(
        self, ref: SubaccountRef, events: Sequence[SubaccountEvent], *, catch_up: bool
    ) -> None:
        work = self._pending.setdefault(ref, _Work())
        work.events.extend(events)
        work.catch_up = work.catch_up or catch_up
        if catch_up:
            self._last_look[ref] = time.monotonic()
        if ref not in self._running:
            self._running[ref] = asyncio.create_task(self._drain(ref))

    async def _drain(self, ref: SubaccountRef) -> None:
        try:
            while (work := self._pending.pop(ref, None)) is not None:
                async with self._slots:
                    await self._handle(ref, work)
        finally:
            self._running.pop(ref, None)

    async def _handle(self, ref: SubaccountRef, work: _Work) -> None:
        events = work.events
        if work.catch_up:
            try:
                events = events + await self._stream.snapshot(ref)
            except ExchangeError as exc:
                self._log.warning("monitor_catch_up_failed", subaccount=ref.key, error=str(exc))
                self._last_look.pop(ref, None)  # try again at the next tick
                if not events:
                    return
        try:
            await self._listener.subaccount_changed(ref, events, catch_up=work.catch_up)
        except asyncio.CancelledError:
            raise
        except Exception:
            self._log.exception("monitor_listener_failed", subaccount=ref.key)
            self._last_look.pop(ref, None)  # the next tick catches up on it

    async def _drain_oracle(self, listener: OracleListener) -> None:
        while self._prices:
            prices, self._prices = list(self._prices.values()), {}
            try:
                await listener.oracle_changed(prices)
            except Exception:
                self._log.exception("monitor_oracle_listener_failed")
