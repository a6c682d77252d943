"""Indexer lag: the Indexer double serving the chain as it was ``seconds`` ago.

The real Indexer trails the chain: ender processes a block after it is committed, then comlink
(REST) and socks (WebSocket) serve it. Under load that gap grows to many seconds. With
``IndexerLag.seconds > 0`` the Indexer double

* answers REST (including ``/v4/height``) and the initial contents of a subscription from a
  snapshot of the :class:`~doubles.dydx.state.ChainState` taken at least ``seconds`` ago;
* delivers every WebSocket update ``seconds`` after the change, in order; an update is routed
  to the connections subscribed when it is delivered, so a subscription made during the lag
  gets the old snapshot and then every later change exactly once.

Changing ``seconds`` at run time keeps the updates already queued in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from doubles.dydx.state import ChainState


def snapshot_state(state: ChainState) -> ChainState:
    """A frozen copy of what the Indexer reads from ``state`` (not a working chain).

    Positions are shared between subaccounts and the position history, so they are copied
    together to keep that sharing.
    """
    clone = copy.copy(state)
    clone.subaccounts, clone.positions, clone.orders, clone.markets = copy.deepcopy(
        (state.subaccounts, state.positions, state.orders, state.markets)
    )
    clone.fills = list(state.fills)
    clone.transfers = list(state.transfers)
    clone.pnl_ticks = list(state.pnl_ticks)
    clone.funding_payments = list(state.funding_payments)
    clone.oracle_history = {
        ticker: deque(history, maxlen=history.maxlen)
        for ticker, history in state.oracle_history.items()
    }
    clone._listeners = []
    clone._pending_updates = {}
    clone._outbox = []
    return clone


@dataclass(frozen=True)
class _Snapshot:
    at: float
    revision: int
    state: ChainState


class IndexerLag:
    """Snapshots and a delayed delivery queue; lives on the double's loop.

    Args:
        state: The live chain state.
        clock: Monotonic seconds (injectable for tests).
    """

    def __init__(self, state: ChainState, clock: Callable[[], float] = time.monotonic) -> None:
        self.state = state
        self._clock = clock
        self._seconds = 0.0
        self._snapshots: deque[_Snapshot] = deque()
        self._queue: deque[tuple[float, Callable[[], None]]] = deque()
        self._wake: asyncio.Event | None = None
        self._pump: asyncio.Task[None] | None = None

    @property
    def seconds(self) -> float:
        """Current lag in seconds (0 = live)."""
        return self._seconds

    def set(self, seconds: float) -> None:
        """Set the lag; must run on the double's loop.

        Raises:
            ValueError: Negative lag.
        """
        if seconds < 0:
            raise ValueError("the Indexer lag cannot be negative")
        if seconds > 0 and self._seconds == 0:
            self._snapshots.clear()
            self.capture(force=True)  # what the Indexer shows from now on, until it catches up
        self._seconds = float(seconds)
        if seconds == 0:
            self._snapshots.clear()
        if self._wake is not None:
            self._wake.set()

    @property
    def active(self) -> bool:
        """True while lagging or while delayed updates are still queued."""
        return self._seconds > 0 or bool(self._queue)

    def capture(self, *, force: bool = False) -> None:
        """Snapshot the state if it changed since the last snapshot (only while lagging)."""
        if self._seconds == 0 and not force:
            return
        if not force and self._snapshots and self._snapshots[-1].revision == self.state.revision:
            return
        self._snapshots.append(
            _Snapshot(self._clock(), self.state.revision, snapshot_state(self.state))
        )
        self._prune()

    def _prune(self) -> None:
        # Keep the newest snapshot that is old enough and everything after it.
        cutoff = self._clock() - self._seconds
        while len(self._snapshots) > 1 and self._snapshots[1].at <= cutoff:
            self._snapshots.popleft()

    def view(self) -> ChainState:
        """The state the Indexer serves now: live, or the newest snapshot old enough.

        Right after the lag is raised the oldest snapshot kept may be younger than the lag;
        the Indexer then shows that one until time catches up.
        """
        if self._seconds == 0 or not self._snapshots:
            return self.state
        self._prune()
        return self._snapshots[0].state

    def deliver(self, send: Callable[[], None]) -> None:
        """Run ``send`` now, or ``seconds`` from now behind the updates already queued."""
        if not self.active:
            send()
            return
        self._queue.append((self._clock() + self._seconds, send))
        self._ensure_pump()

    def _ensure_pump(self) -> None:
        if self._pump is None or self._pump.done():
            self._wake = asyncio.Event()
            self._pump = asyncio.get_running_loop().create_task(self._run_pump())
        elif self._wake is not None:
            self._wake.set()

    async def _run_pump(self) -> None:
        assert self._wake is not None
        while self._queue:
            due, send = self._queue[0]
            wait = due - self._clock()
            if wait > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=wait)
                if self._seconds == 0:
                    # Caught up at once: flush the queue in order.
                    self._queue = deque((min(d, self._clock()), s) for d, s in self._queue)
                continue
            self._queue.popleft()
            send()

    async def close(self) -> None:
        """Stop the pump and drop queued updates."""
        self._queue.clear()
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
