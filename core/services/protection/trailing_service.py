"""Trailing stops and breakeven on real orders: the :class:`~.trailing.StopTracker` fed by
the oracle, its moves placed through the protection service's legs.

The ledger is the truth. At start (and every ``resync_interval`` after) the tracker is built
from the RESTING live brackets that trail or break even: their stop (``sl_trigger``), best
oracle seen (``trail_anchor``) and ``breakeven_done``; brackets that reached RESTING since
are added, ones that left it (a leg filled, the position closed) removed, and ones a protection
step changed (a resize) updated. Only brackets whose subaccount lease this process holds are
tracked (:mod:`.keepers`): each bracket is moved by one worker, and each owner's stateful-order
budget lives in one process. A lease gained or lost is followed at once (the next round reads
the ledger again); a new holder resumes from the stored anchor and stop. A move, under the
position's advisory lock (so a move and a protection step, with its one-cancels-other, never
race):

1. commits the new stop-loss leg one generation above any the bracket has, then broadcasts it
   (commit-then-broadcast, :meth:`~.legs.LegDesk.place`);
2. once the node accepted it, writes the tracker's snapshot to the bracket (new generation,
   ``sl_trigger``, ``trail_anchor``, ``breakeven_done``) and only then cancels the old stop:
   the new stop rests before the old one goes, so the position is never uncovered;
3. a refusal leaves the bracket and its old stop as they were (the refused leg sits above the
   bracket's generation and is never current); the move is retried a few blocks later, after
   the rate limit's window when the node was busy (``clob`` 5001).

The trader hears of the moves in one message per ``notify_interval`` at most, per trader.
Without a venue fee schedule, the breakeven stop uses :data:`DEFAULT_TAKER_FEE_RATE`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.base import utcnow
from core.db.models import Bracket, Order
from core.db.uow import UnitOfWork
from core.domain.preferences import Preferences
from core.domain.states import (
    OPEN_ORDER_STATES,
    BracketState,
    OrderPurpose,
    OrderState,
    PositionSide,
)
from core.exchange.errors import ExchangeError
from core.exchange.grid import GridError
from core.exchange.port import Exchange
from core.exchange.provider import ExchangeProvider, TradingNotReadyError
from core.exchange.stream import OraclePrice, SubaccountRef
from core.runtime.logs import get_logger
from core.services.execution.trader import Trader
from core.services.protection.keepers import HeldSubaccounts, keepers
from core.services.protection.service import ProtectionService
from core.services.protection.step import NOTIFY_PROTECTION
from core.services.protection.trailing import MoveReason, StopMove, StopSpec, StopTracker
from core.texts import exchange as exchange_texts
from core.texts import protection as texts

#: dYdX's base-tier taker fee (5 bps); the breakeven stop covers the entry's and its own.
DEFAULT_TAKER_FEE_RATE = Decimal("0.0005")
#: Blocks before a move the node refused is tried again.
REFUSED_RETRY_BLOCKS = 5
#: Blocks before a move the node did not take (rate limit, busy) is tried again, doubled
#: for each refusal in a row (refused orders count towards the limit too) up to the window.
BUSY_RETRY_BLOCKS = 2
BUSY_RETRY_MAX_BLOCKS = 100
#: Blocks before a move that found its position busy (a protection step) is tried again.
LOCKED_RETRY_BLOCKS = 1


@dataclass(slots=True)
class _Outbox:
    chat_id: int
    paper: bool
    moves: list[texts.StopMoved] = field(default_factory=list)
    sent_at: float = float("-inf")


class TrailingService:
    """Moves trailing and breakeven stop-losses as the oracle moves (an
    :class:`~core.services.monitor.listener.OracleListener`).

    Args:
        sessionmaker: Database sessions.
        protection: The protection service (its leg desk and per-position lock).
        exchanges: Each trader's venue, and the markets' grids.
        held: The subaccounts whose brackets this process moves (the position monitor's
            leases).
        tracker: The evaluator (default: dYdX's stateful-order limits).
        fee_rate: Taker fee rate as a fraction, for the breakeven stop.
        notify_interval: Seconds between two "stop moved" messages to one trader.
        resync_interval: Seconds between two reads of the ledger.
        retry_interval: Seconds between two looks at moves held back (no oracle update).
        nudge: Called after messages were queued (delivers them sooner).
        clock: Monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        protection: ProtectionService,
        exchanges: ExchangeProvider,
        *,
        held: HeldSubaccounts,
        tracker: StopTracker | None = None,
        fee_rate: Decimal = DEFAULT_TAKER_FEE_RATE,
        notify_interval: float = 3.0,
        resync_interval: float = 1.0,
        retry_interval: float = 0.5,
        nudge: Callable[[], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._protection = protection
        self._exchanges = exchanges
        self._held = held
        self.tracker = tracker if tracker is not None else StopTracker()
        self._fee_rate = fee_rate
        self._notify_interval = notify_interval
        self._resync_interval = resync_interval
        self._retry_interval = retry_interval
        self._nudge = nudge
        self._clock = clock
        self._shapes: dict[int, tuple[object, ...]] = {}  # tracked bracket -> its stop as read
        self._keepers: dict[int, SubaccountRef] = {}  # tracked bracket -> the lease it needs
        self._held_seen: frozenset[SubaccountRef] = frozenset()  # held at the last resync
        self._markets: set[str] = set()
        self._prices: dict[str, Decimal] = {}  # the last oracle price per market
        self._busy: dict[int, int] = {}  # bracket -> moves the node did not take in a row
        self._synced_at = float("-inf")
        self._height = 0  # the chain's, read from a venue before moves are handed out
        self._outboxes: dict[int, _Outbox] = {}  # user -> moves not told yet
        self._lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None
        self._log = get_logger(__name__)

    async def start(self) -> None:
        """Build the tracker from the ledger; start retrying held-back moves and telling
        traders of moves."""
        await self.resync()
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Stop; moves not told yet are queued now."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self.flush(force=True)

    async def oracle_changed(self, prices: Sequence[OraclePrice]) -> None:
        """Evaluate the prices and place the moves that are due (the monitor calls this)."""
        async with self._lock:
            if self._resync_due():
                await self.resync()
            for price in prices:
                self._prices[price.market] = price.price
                self.tracker.on_oracle(price.market, price.price, self._height)
            await self._place_due()
        await self.flush()

    # ----------------------------------------------------------------------- the ledger

    def _resync_due(self) -> bool:
        return (
            self._clock() - self._synced_at >= self._resync_interval
            or self._held_now() != self._held_seen
        )

    def _held_now(self) -> frozenset[SubaccountRef]:
        held: Collection[SubaccountRef] = self._held()
        return held if isinstance(held, frozenset) else frozenset(held)

    async def resync(self) -> None:
        """Track exactly the RESTING live brackets that trail or break even, of the
        subaccounts this process holds."""
        self._synced_at = self._clock()
        async with UnitOfWork(self._sessionmaker, read_only=True) as uow:
            everyone = list(await uow.brackets.resting_moving())
            uow.detach(*everyone)
        # Read after the ledger: a lease lost meanwhile is not acted on.
        held = self._held_seen = self._held_now()
        keeper = keepers(everyone)
        rows = [bracket for bracket in everyone if keeper[bracket.id] in held]
        current = {bracket.id: bracket for bracket in rows}
        before = set(self._keepers)
        for bracket_id in [b for b in self._shapes if b not in current]:
            self._forget(bracket_id)
        self._keepers = {bracket_id: keeper[bracket_id] for bracket_id in current}
        if before != current.keys():
            self._log.info(
                "trailing_tracking",
                brackets=len(current),
                gained=len(current.keys() - before),
                lost=len(before - current.keys()),
            )
        changed = {
            bracket.market
            for bracket in rows
            if self._shapes.get(bracket.id) != _shape(bracket) and await self._track(bracket)
        }
        for market in changed & self._prices.keys():
            # New or changed brackets meet the last price now, not at the next update.
            self.tracker.on_oracle(market, self._prices[market], self._height)

    async def _track(self, bracket: Bracket) -> bool:
        """(Re)track a bracket as the ledger has it; False if it cannot be tracked."""
        if bracket.market not in self._markets:
            try:
                self.tracker.set_market(
                    bracket.market, await self._exchanges.venue.market(bracket.market)
                )
            except (KeyError, ExchangeError) as exc:
                self._log.warning("trailing_market_unreadable", error=str(exc))
                return False
            self._markets.add(bracket.market)
        async with UnitOfWork(self._sessionmaker, read_only=True) as uow:
            entry = await uow.orders.get(bracket.entry_order_id)
            entry_price = entry.average_price if entry is not None else None
        if entry_price is None or bracket.sl_trigger is None:
            return False
        spec = StopSpec(
            bracket_id=bracket.id,
            owner=bracket.owner_address,
            market=bracket.market,
            side=bracket.position_side,
            entry_price=entry_price,
            stop=bracket.sl_trigger,
            trail_pct=bracket.trail_pct,
            be_trigger_pct=bracket.be_trigger_pct,
            fee_rate=self._fee_rate,
            anchor=bracket.trail_anchor,
            breakeven_done=bracket.breakeven_done,
        )
        tracked = self._shapes.pop(bracket.id, None) is not None
        try:
            self.tracker.update(spec) if tracked else self.tracker.add(spec)
        except ValueError as exc:
            # A breakeven trigger within the fees (or a stop off the grid): trail only.
            self._log.warning("trailing_spec_refused", bracket_id=bracket.id, error=str(exc))
            self.tracker.remove(bracket.id)
            if spec.trail_pct is None:
                return False
            try:
                self.tracker.add(replace(spec, be_trigger_pct=None))
            except ValueError:
                return False
        self._shapes[bracket.id] = _shape(bracket)
        return True

    # ----------------------------------------------------------------------- moves

    async def _place_due(self) -> None:
        owners = self.tracker.waiting_owners()
        if not owners:
            return
        # The chain's height, whoever's move comes first: a move held back (a busy position)
        # waits for a later block, and without a height of its own the service would never
        # see that block come.
        with contextlib.suppress(ExchangeError):
            self._height = max(self._height, await self._exchanges.venue.block_height())
        for owner in sorted(owners):
            exchange: Exchange | None = None
            for move in self.tracker.take_due(owner, self._height):
                exchange = await self._move(move, exchange)

    async def _move(self, move: StopMove, exchange: Exchange | None) -> Exchange | None:
        """Place one move; returns the owner's venue for the next move of that owner."""
        async with UnitOfWork(self._sessionmaker) as uow:
            bracket = await uow.brackets.get(move.bracket_id)
            if bracket is not None:
                uow.detach(bracket)
        if bracket is None or bracket.state is not BracketState.RESTING:
            self._forget(move.bracket_id)
            return exchange
        if self._keepers.get(bracket.id) not in self._held_now():
            # The lease went to another worker since the last read: it moves this one now.
            self._forget(move.bracket_id)
            self._synced_at = float("-inf")
            return exchange
        async with self._protection.hold((bracket.user_id, bracket.paper, bracket.market)) as held:
            if not held:
                self.tracker.reject(move, retry_from=self._height + LOCKED_RETRY_BLOCKS)
                return exchange
            return await self._move_held(move, exchange)

    async def _move_held(self, move: StopMove, exchange: Exchange | None) -> Exchange | None:
        async with UnitOfWork(self._sessionmaker) as uow:
            bracket = await uow.brackets.get(move.bracket_id)
            user = await uow.users.get(bracket.user_id) if bracket is not None else None
            entry = await uow.orders.get(bracket.entry_order_id) if bracket is not None else None
            legs = list(await uow.brackets.legs([move.bracket_id]))
            uow.detach(*[row for row in (bracket, user, entry) if row is not None], *legs)
        if bracket is None or user is None or entry is None:
            self._forget(move.bracket_id)
            return exchange
        if bracket.state is not BracketState.RESTING or _shape(bracket) != self._shapes.get(
            bracket.id
        ):
            # A step changed it meanwhile: read it again before moving anything.
            self.tracker.reject(move, retry_from=self._height + LOCKED_RETRY_BLOCKS)
            self._synced_at = float("-inf")
            return exchange
        prefs = Preferences.from_json(user.settings)
        trader = Trader.of_user(user, prefs)
        try:
            if exchange is None:
                exchange = await self._exchanges.for_user(user.id, prefs.updated(paper=False))
            self._height = max(self._height, await exchange.block_height())
            market = await exchange.market(bracket.market)
        except (TradingNotReadyError, ExchangeError, KeyError) as exc:
            self._log.warning("trailing_venue_unreachable", user_id=user.id, error=str(exc))
            self.tracker.reject(move, retry_from=self._height + BUSY_RETRY_BLOCKS)
            return exchange
        old = [
            leg
            for leg in legs
            if leg.purpose is OrderPurpose.STOP_LOSS
            and leg.state in OPEN_ORDER_STATES
            and (leg.generation or 0) <= bracket.generation
        ]
        generation = max([bracket.generation, *(leg.generation or 0 for leg in legs)]) + 1
        triggers = {OrderPurpose.STOP_LOSS: move.to_trigger}
        try:
            placed = await self._protection.desk.place(
                exchange,
                trader,
                bracket,
                entry,
                market,
                triggers,
                bracket.target_size,
                generation=generation,
            )
        except (GridError, ExchangeError) as exc:
            self._log.warning("trailing_leg_not_signed", bracket_id=bracket.id, error=str(exc))
            self.tracker.reject(move, retry_from=self._height + REFUSED_RETRY_BLOCKS)
            return exchange
        leg = await self._leg(bracket.id, generation) if placed else None
        if leg is None or leg.state is not OrderState.SUBMITTED:
            await self._not_taken(move, leg)
            return exchange
        self.tracker.confirm(move)
        self._busy.pop(move.bracket_id, None)
        await self._save(bracket, generation)
        for stale in old:
            await self._protection.desk.cancel(exchange, stale, texts.LEG_STOP_MOVED)
        self._log.info(
            "trailing_stop_moved",
            bracket_id=bracket.id,
            generation=generation,
            from_trigger=str(move.from_trigger),
            to_trigger=str(move.to_trigger),
        )
        self._queue_told(bracket, trader, move)
        return exchange

    async def _leg(self, bracket_id: int, generation: int) -> Order | None:
        async with UnitOfWork(self._sessionmaker) as uow:
            legs = await uow.brackets.legs([bracket_id])
            found = [
                leg
                for leg in legs
                if leg.generation == generation and leg.purpose is OrderPurpose.STOP_LOSS
            ]
            uow.detach(*found)
        return found[0] if found else None

    async def _not_taken(self, move: StopMove, leg: Order | None) -> None:
        """The node refused the leg, or did not take it (rate limit, busy, no answer)."""
        if leg is not None and leg.state is OrderState.SUBMITTING:
            # Nothing landed (a retryable refusal such as the block rate limit): the leg is
            # given up so settling never sends its bytes; the move is tried afresh later.
            async with UnitOfWork(self._sessionmaker) as uow:
                await uow.orders.transition(
                    leg.id,
                    OrderState.REJECTED,
                    among=(OrderState.SUBMITTING,),
                    error=exchange_texts.RATE_LIMITED,
                    closed_at=utcnow(),
                )
                await uow.commit()
            busy = self._busy.get(move.bracket_id, 0)
            self._busy[move.bracket_id] = busy + 1
            wait = min(BUSY_RETRY_BLOCKS << busy, BUSY_RETRY_MAX_BLOCKS)
            self.tracker.reject(move, retry_from=self._height + wait)
            return
        # Refused, or no answer (UNKNOWN: a protection step cancels it should it land).
        self.tracker.reject(move, retry_from=self._height + REFUSED_RETRY_BLOCKS)

    async def _save(self, bracket: Bracket, generation: int) -> None:
        """The node accepted the new stop: the bracket follows (new generation, snapshot)."""
        snap = self.tracker.snapshot(bracket.id)
        if snap is None:
            return
        async with UnitOfWork(self._sessionmaker) as uow:
            moved = await uow.brackets.transition(
                bracket,
                BracketState.RESTING,
                generation=generation,
                sl_trigger=snap.stop,
                trail_anchor=snap.anchor,
                breakeven_done=snap.breakeven_done,
            )
            await uow.commit()
        if moved:
            self._shapes[bracket.id] = _shape(bracket)
        else:
            # A step moved it first: its next look cancels the leg this move left.
            self._log.warning("trailing_bracket_moved_meanwhile", bracket_id=bracket.id)
            self._synced_at = float("-inf")

    def _forget(self, bracket_id: int) -> None:
        self.tracker.remove(bracket_id)
        self._busy.pop(bracket_id, None)
        self._shapes.pop(bracket_id, None)
        self._keepers.pop(bracket_id, None)

    # ----------------------------------------------------------------------- telling

    def _queue_told(self, bracket: Bracket, trader: Trader, move: StopMove) -> None:
        outbox = self._outboxes.setdefault(trader.user_id, _Outbox(trader.chat_id, bracket.paper))
        outbox.moves.append(
            texts.StopMoved(
                market=move.market,
                long=bracket.position_side is PositionSide.LONG,
                from_trigger=move.from_trigger,
                to_trigger=move.to_trigger,
                breakeven=move.reason is MoveReason.BREAKEVEN,
            )
        )

    async def flush(self, *, force: bool = False) -> None:
        """Queue one "stop moved" message per trader whose last one is old enough."""
        now = self._clock()
        due: list[tuple[int, int, bool, list[texts.StopMoved]]] = []
        for user_id, outbox in self._outboxes.items():
            if outbox.moves and (force or now - outbox.sent_at >= self._notify_interval):
                # Taken before any await: a concurrent flush never sends them twice.
                due.append((user_id, outbox.chat_id, outbox.paper, outbox.moves))
                outbox.moves, outbox.sent_at = [], now
        if not due:
            return
        async with UnitOfWork(self._sessionmaker) as uow:
            for user_id, chat_id, paper, moves in due:
                await uow.notifications.enqueue(
                    chat_id=chat_id,
                    user_id=user_id,
                    kind=NOTIFY_PROTECTION,
                    text=texts.stops_moved_text(moves, paper=paper),
                    dedupe_key=f"stops-moved:{user_id}:{utcnow().isoformat()}",
                )
            await uow.commit()
        if self._nudge is not None:
            await self._nudge()

    async def _loop(self) -> None:
        """Retry held-back moves (a busy position, a back-off) between oracle updates, and
        tell traders of moves once their message is due."""
        while True:
            await asyncio.sleep(self._retry_interval)
            try:
                async with self._lock:
                    if self._resync_due():
                        await self.resync()
                    await self._place_due()
                await self.flush()
            except Exception:  # the next round tries again
                self._log.exception("trailing_round_failed")


def _shape(bracket: Bracket) -> tuple[object, ...]:
    """What of a bracket the tracker follows (a protection step's recheck changes none)."""
    return (
        bracket.generation,
        bracket.sl_trigger,
        bracket.target_size,
        bracket.trail_anchor,
        bracket.breakeven_done,
    )
