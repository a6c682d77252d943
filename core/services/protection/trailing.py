"""Trailing stops and breakeven: which protective stops must move as the oracle moves.

Pure and venue-neutral (no I/O, no clock). Per market, two sorted indexes (longs; shorts with
negated keys) hold each bracket under the oracle price at which it next needs work: a tick is a
bisect plus the brackets crossed. Fixed stops are not indexed. For a long (shorts mirror it):

- *Trailing*: target = ``anchor × (1 − trail)`` (anchor: highest oracle evaluated) rounded
  **down** to a tick, due once it would rise by ``max(tick, stop × min_step)`` (each move is
  a rate-limited order). Rounding away from the price never shortens the room the trader
  granted, so the stop never triggers before the rule does (at most one tick more room).
- *Breakeven*: once the oracle reaches ``entry × (1 + be_trigger)``, the stop moves once to
  ``entry × (1 + fee) / (1 − fee)`` (no loss after the entry's and the stop's taker fees),
  rounded **up**: a floor rounds towards profit. A trigger within the fees is refused.
- The tighter target wins; a move never goes backwards, and a target the last oracle already
  crossed (it would trigger at once) is held until the oracle is back. One pending move per
  bracket (ticks coalesce into the latest target) and one in flight.
- Moves are handed out per owner address within the stateful-order rate limits
  (:data:`DYDX_STATEFUL_ORDER_LIMITS`), the stop furthest behind its target first. The old
  leg's cancel is free (not rate-limited); a refused move is not refunded (the chain counts it).

The API (percentages in percent like the alert fields; ``fee_rate`` a fraction)::

    tracker = StopTracker(min_step=Decimal("0.001"))
    tracker.set_market("BTC-USD", market_info)   # its tick grid, once per market
    tracker.add(StopSpec(...))                   # also update(spec), remove(bracket_id)
    tracker.on_oracle("BTC-USD", price, height)  # -> the pending moves this tick changed
    for owner in tracker.waiting_owners():       # every block
        for move in tracker.take_due(owner, height):  # budget, most urgent first
            ...  # place the new leg, then cancel the old one, and:
            tracker.confirm(move)  # or tracker.reject(move, retry_from=height + n)
    tracker.record_stateful_order(owner, height)  # the owner's other stateful orders
    tracker.snapshot(bracket_id)  # -> the StopSpec to persist, and to add after a restart
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum

from core.domain.states import PositionSide
from core.exchange.grid import GridParams, check_price, require_decimal, round_price_to_tick

HUNDRED = Decimal(100)
DEFAULT_MIN_STEP = Decimal("0.001")  # 0.1 % of the stop: smaller trail steps are not placed
_INF = Decimal("Infinity")
_DUE_NOW = Decimal("-Infinity")  # a signed key every oracle reaches


class MoveReason(StrEnum):
    """What set a move's target."""

    TRAIL = "TRAIL"
    BREAKEVEN = "BREAKEVEN"


@dataclass(frozen=True, slots=True)
class BlockRateLimit:
    """At most ``limit`` stateful orders per owner in any ``num_blocks`` consecutive blocks."""

    num_blocks: int
    limit: int


# dYdX genesis values, kept by v5.0.0; governance can change them (query clob/block_rate).
DYDX_STATEFUL_ORDER_LIMITS = (BlockRateLimit(1, 2), BlockRateLimit(100, 20))


def _check_height(height: int) -> None:
    if isinstance(height, bool) or not isinstance(height, int) or height < 0:
        raise ValueError(f"bad block height {height!r}")


class StatefulOrderBudget:
    """The stateful orders each owner address may still place, per the block rate limits."""

    def __init__(self, limits: Sequence[BlockRateLimit] = DYDX_STATEFUL_ORDER_LIMITS) -> None:
        """Keep the limits (at least one, all positive; ValueError otherwise)."""
        if not limits or any(lim.num_blocks < 1 or lim.limit < 1 for lim in limits):
            raise ValueError("bad rate limits")
        self.limits = tuple(limits)
        self._span = max(limit.num_blocks for limit in self.limits)
        self._spent: dict[str, list[int]] = {}  # owner -> heights of its recent orders

    def available(self, owner: str, height: int) -> int:
        """How many stateful orders ``owner`` may place at ``height`` under every limit."""
        _check_height(height)
        kept = [h for h in self._spent.pop(owner, ()) if height - self._span < h]
        if kept:
            self._spent[owner] = kept
        used = (sum(height - lim.num_blocks < h <= height for h in kept) for lim in self.limits)
        return max(0, min(lim.limit - n for lim, n in zip(self.limits, used, strict=True)))

    def spend(self, owner: str, height: int) -> None:
        """Count one stateful order of ``owner`` at ``height`` (refused ones count too)."""
        _check_height(height)
        self._spent.setdefault(owner, []).append(height)


def _positive(value: Decimal | None, name: str, below: Decimal | None = None) -> None:
    if value is not None:
        require_decimal(value, name)
        if value <= 0 or (below is not None and value >= below):
            raise ValueError(f"{name} out of range")


@dataclass(frozen=True, slots=True)
class StopSpec:
    """A bracket's stop as the protection service knows it.

    Attributes:
        owner: The owner address whose rate limits its orders use.
        stop: The resting stop's trigger price (on the tick grid), None if none rests yet.
        trail_pct: Trailing distance in percent, ``0 < trail_pct < 100``; None: no trail.
        be_trigger_pct: Move to breakeven once the oracle moved this many percent in favour.
        fee_rate: Taker fee rate as a fraction, ``0 <= fee_rate < 1``.
        anchor: The best oracle seen (a restart passes the stored one); default the entry.
        breakeven_done: The stop moved to breakeven already.
    """

    bracket_id: int
    owner: str
    market: str
    side: PositionSide
    entry_price: Decimal
    stop: Decimal | None
    trail_pct: Decimal | None = None
    be_trigger_pct: Decimal | None = None
    fee_rate: Decimal = Decimal(0)
    anchor: Decimal | None = None
    breakeven_done: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.side, PositionSide):
            raise TypeError("side must be a PositionSide")
        if not self.owner or not self.market:
            raise ValueError("owner and market are required")
        require_decimal(self.entry_price, "entry_price")
        for name in ("entry_price", "stop", "anchor"):
            _positive(getattr(self, name), name)
        _positive(self.trail_pct, "trail_pct", HUNDRED)
        short = self.side is PositionSide.SHORT
        _positive(self.be_trigger_pct, "be_trigger_pct", HUNDRED if short else None)
        require_decimal(self.fee_rate, "fee_rate")
        if not 0 <= self.fee_rate < 1:
            raise ValueError("fee_rate out of range")


@dataclass(frozen=True, slots=True)
class StopMove:
    """Replace a bracket's stop: place a leg at ``to_trigger``, then cancel the old one.

    Attributes:
        from_trigger: The stop resting when the move was handed out (None: none rests).
        to_trigger: The new trigger price, on the tick grid.
        reason: What set the target.
        oracle: The oracle price that set the target, at block ``height``.
        seq: Unique per move; ``confirm``/``reject`` match on it.
    """

    bracket_id: int
    owner: str
    market: str
    side: PositionSide
    from_trigger: Decimal | None
    to_trigger: Decimal
    reason: MoveReason
    oracle: Decimal
    height: int
    seq: int


@dataclass(slots=True, eq=False)
class _Stop:
    spec: StopSpec
    long: bool
    trail: Decimal | None  # fraction
    be_trigger: Decimal | None  # the oracle price that arms breakeven
    be_stop: Decimal | None  # the breakeven stop on the grid; None once it landed
    anchor: Decimal
    armed: bool
    be_done: bool
    stop: Decimal | None
    pending: StopMove | None = None
    inflight: StopMove | None = None
    retry_from: int = 0
    key: Decimal | None = None  # signed key in its index, None when not indexed


def _tighter(long: bool, a: Decimal, b: Decimal | None) -> bool:
    """Whether stop ``a`` is tighter (closer to the price) than ``b`` (None: no stop)."""
    return b is None or (a > b if long else a < b)


def _reaches(long: bool, price: Decimal, level: Decimal) -> bool:
    return price >= level if long else price <= level


class _Index:
    """Ascending keys with their bracket ids; due once the signed oracle reaches the key."""

    __slots__ = ("ids", "keys")

    def __init__(self) -> None:
        self.keys: list[Decimal] = []
        self.ids: list[int] = []

    def add(self, key: Decimal, bracket_id: int) -> None:
        at = bisect_right(self.keys, key)
        self.keys.insert(at, key)
        self.ids.insert(at, bracket_id)

    def remove(self, key: Decimal, bracket_id: int) -> None:
        at = bisect_left(self.keys, key)
        while self.ids[at] != bracket_id:  # equal keys: a few at most
            at += 1
        del self.keys[at], self.ids[at]

    def pop_due(self, signed_oracle: Decimal) -> list[int]:
        end = bisect_right(self.keys, signed_oracle)
        due = self.ids[:end]
        del self.keys[:end], self.ids[:end]
        return due


class StopTracker:
    """Per-market indexes of trailing and breakeven stops, their moves and their budget."""

    def __init__(
        self, *, min_step: Decimal = DEFAULT_MIN_STEP, budget: StatefulOrderBudget | None = None
    ) -> None:
        """Start empty.

        Args:
            min_step: Smallest trail step worth an order, a fraction of the stop in ``[0, 1)``
                (at least one tick always).
            budget: The owners' stateful-order budget (default: dYdX's limits).
        """
        require_decimal(min_step, "min_step")
        if not 0 <= min_step < 1:
            raise ValueError("min_step out of range")
        self.min_step = min_step
        self.budget = budget if budget is not None else StatefulOrderBudget()
        self._grids: dict[str, GridParams] = {}
        self._indexes: dict[str, tuple[_Index, _Index]] = {}  # (longs, shorts)
        self._oracle: dict[str, Decimal] = {}
        self._stops: dict[int, _Stop] = {}
        self._waiting: dict[str, set[int]] = {}  # owner -> brackets with a pending move
        self._seq = 0

    def set_market(self, market: str, grid: GridParams) -> None:
        """Register (or re-grid) a market; needed before its brackets are added."""
        _positive(grid.tick_size, "tick_size")
        self._grids[market] = grid
        self._indexes.setdefault(market, (_Index(), _Index()))

    def add(self, spec: StopSpec) -> None:
        """Track a bracket's stop (ValueError: tracked already, unknown market, stop off the
        tick grid, or a breakeven trigger within the fees)."""
        if spec.bracket_id in self._stops:
            raise ValueError(f"bracket {spec.bracket_id} is tracked already")
        stop = self._build(spec, None)
        self._stops[spec.bracket_id] = stop
        self._index(stop)

    def update(self, spec: StopSpec) -> None:
        """Replace a tracked bracket's spec (ValueError as :meth:`add`, or if not tracked).

        Anchor and breakeven progress are kept; a pending move is dropped (the next tick
        proposes one afresh); a move in flight stays, to be confirmed or rejected."""
        old = self._stops.get(spec.bracket_id)
        if old is None:
            raise ValueError(f"bracket {spec.bracket_id} is not tracked")
        new = self._build(spec, old)
        self.remove(spec.bracket_id)
        new.inflight, new.retry_from = old.inflight, old.retry_from
        self._stops[spec.bracket_id] = new
        self._index(new)

    def remove(self, bracket_id: int) -> bool:
        """Stop tracking a bracket (closed, or its stop is gone); False if not tracked."""
        stop = self._stops.pop(bracket_id, None)
        if stop is None:
            return False
        self._unindex(stop)
        self._drop_pending(stop)
        return True

    def on_oracle(self, market: str, price: Decimal, height: int) -> list[StopMove]:
        """Evaluate an oracle price: the pending moves this tick created or tightened.

        Only the brackets whose key the price reached are touched; the moves wait for
        :meth:`take_due`. A market without brackets only records the price."""
        _positive(price, "oracle price")
        _check_height(height)
        self._oracle[market] = price
        indexes = self._indexes.get(market)
        if indexes is None:
            return []
        moves: list[StopMove] = []
        for index, signed in ((indexes[0], price), (indexes[1], -price)):
            for bracket_id in index.pop_due(signed):
                stop = self._stops[bracket_id]
                stop.key = None
                move = self._evaluate(stop, price, height)
                if move is not None:
                    moves.append(move)
                self._index(stop)
        return moves

    def take_due(self, owner: str, height: int) -> list[StopMove]:
        """The moves of ``owner`` to place now, within its budget, most urgent first.

        Urgency is how far a stop lags its target, relative to the target (no stop at all
        first). Each move handed out is counted at ``height`` and is in flight until
        :meth:`confirm` or :meth:`reject`. Held back: brackets with a move in flight, moves
        before their retry height, targets the last oracle crossed (they would trigger).
        """
        _check_height(height)
        waiting = self._waiting.get(owner)
        free = self.budget.available(owner, height) if waiting else 0
        if not waiting or free == 0:
            return []
        ready = [
            stop
            for stop in (self._stops[bracket_id] for bracket_id in waiting)
            if stop.pending is not None
            and stop.inflight is None
            and stop.retry_from <= height
            and self._placeable(stop, stop.pending.to_trigger)
        ]
        ready.sort(key=lambda stop: (-self._lag(stop), stop.spec.bracket_id))
        taken: list[StopMove] = []
        for stop in ready[:free]:
            assert stop.pending is not None
            move = replace(stop.pending, from_trigger=stop.stop)
            stop.inflight = move
            self._drop_pending(stop)
            self.budget.spend(owner, height)
            taken.append(move)
        return taken

    def confirm(self, move: StopMove) -> bool:
        """The node accepted the move's leg: it is the stop now. False if the move is stale."""
        stop = self._in_flight(move)
        if stop is None:
            return False
        long, stop.stop, stop.inflight = stop.long, move.to_trigger, None
        if stop.armed and stop.be_stop is not None and not _tighter(long, stop.be_stop, stop.stop):
            stop.be_done, stop.be_stop = True, None  # breakeven moves once
        if stop.pending is not None and not _tighter(long, stop.pending.to_trigger, stop.stop):
            self._drop_pending(stop)
        self._unindex(stop)
        self._index(stop)
        return True

    def reject(self, move: StopMove, *, retry_from: int = 0) -> bool:
        """The move was refused (the old stop still rests): retry from block ``retry_from``,
        unless a newer pending move replaces it. Not refunded. False if the move is stale."""
        _check_height(retry_from)
        stop = self._in_flight(move)
        if stop is None:
            return False
        stop.inflight, stop.retry_from = None, retry_from
        if stop.pending is None:
            stop.pending = move
            self._waiting.setdefault(move.owner, set()).add(move.bracket_id)
        self._unindex(stop)
        self._index(stop)
        return True

    def record_stateful_order(self, owner: str, height: int) -> None:
        """Count another stateful order of ``owner`` (an entry, a take-profit, a first stop)."""
        self.budget.spend(owner, height)

    def waiting_owners(self) -> frozenset[str]:
        """Owners with a move waiting to be taken (some may be held back)."""
        return frozenset(self._waiting)

    def snapshot(self, bracket_id: int) -> StopSpec | None:
        """What to persist (stop, anchor, breakeven_done), None if not tracked; ``add`` takes it
        back after a restart. Moves pending or in flight are not in it."""
        s = self._stops.get(bracket_id)
        if s is None:
            return None
        return replace(s.spec, stop=s.stop, anchor=s.anchor, breakeven_done=s.be_done)

    def _build(self, spec: StopSpec, old: _Stop | None) -> _Stop:
        grid = self._grids.get(spec.market)
        if grid is None:
            raise ValueError(f"unknown market {spec.market!r}")
        if spec.stop is not None:
            check_price(spec.stop, grid)
        long = spec.side is PositionSide.LONG
        entry, fee = spec.entry_price, spec.fee_rate
        be_trigger = be_stop = None
        if spec.be_trigger_pct is not None:
            move = spec.be_trigger_pct / HUNDRED
            be_trigger = entry * (1 + move) if long else entry * (1 - move)
            even = entry * (1 + fee) / (1 - fee) if long else entry * (1 - fee) / (1 + fee)
            be_stop = round_price_to_tick(even, grid, up=long)
            if not _tighter(long, be_trigger, be_stop):
                raise ValueError("be_trigger_pct is within the fees")
        anchor = spec.anchor if spec.anchor is not None else entry
        if old is not None and _tighter(long, old.anchor, anchor):
            anchor = old.anchor
        armed = be_trigger is not None and (
            _reaches(long, anchor, be_trigger) or spec.breakeven_done or bool(old and old.armed)
        )
        done = spec.breakeven_done or bool(old and old.be_done)
        trail = None if spec.trail_pct is None else spec.trail_pct / HUNDRED
        be_stop = None if done else be_stop
        return _Stop(spec, long, trail, be_trigger, be_stop, anchor, armed, done, spec.stop)

    def _base(self, stop: _Stop) -> Decimal | None:
        """The stop the bracket will have once its in-flight and pending moves land."""
        base = stop.stop
        for move in (stop.inflight, stop.pending):
            if move is not None and _tighter(stop.long, move.to_trigger, base):
                base = move.to_trigger
        return base

    def _key(self, stop: _Stop) -> Decimal | None:
        """The signed oracle price at which ``stop`` next needs work (None: never)."""
        long, base = stop.long, self._base(stop)
        keys: list[Decimal] = []
        if stop.trail is not None and base is None:
            keys.append(_DUE_NOW)
        elif stop.trail is not None and base is not None:
            step = max(self._grids[stop.spec.market].tick_size, base * self.min_step)
            nearer = base + step if long else base - step
            if nearer > 0:
                key = nearer / (1 - stop.trail) if long else nearer / (1 + stop.trail)
                # A restored anchor may be past it already: evaluate at the next tick.
                keys.append(_DUE_NOW if _reaches(long, stop.anchor, key) else key)
        be_trigger, be_stop = stop.be_trigger, stop.be_stop
        if be_trigger is not None and be_stop is not None and _tighter(long, be_stop, base):
            keys.append(_DUE_NOW if stop.armed else be_trigger)
        signed = [key if long or key == _DUE_NOW else -key for key in keys]
        return min(signed) if signed else None

    def _evaluate(self, stop: _Stop, price: Decimal, height: int) -> StopMove | None:
        long, spec = stop.long, stop.spec
        if _tighter(long, price, stop.anchor):
            stop.anchor = price
        if stop.be_trigger is not None and _reaches(long, price, stop.be_trigger):
            stop.armed = True
        target: Decimal | None = None
        reason = MoveReason.TRAIL
        if stop.trail is not None:
            exact = stop.anchor * (1 - stop.trail) if long else stop.anchor * (1 + stop.trail)
            target = round_price_to_tick(exact, self._grids[spec.market], up=not long)
        if stop.armed and stop.be_stop is not None and _tighter(long, stop.be_stop, target):
            target, reason = stop.be_stop, MoveReason.BREAKEVEN
        if target is None or not _tighter(long, target, self._base(stop)):
            return None
        self._seq += 1
        who = (spec.bracket_id, spec.owner, spec.market, spec.side)
        stop.pending = StopMove(*who, stop.stop, target, reason, price, height, self._seq)
        self._waiting.setdefault(spec.owner, set()).add(spec.bracket_id)
        return stop.pending

    def _placeable(self, stop: _Stop, target: Decimal) -> bool:
        """A stop on the right side of the last oracle (else it would trigger at once)."""
        last = self._oracle.get(stop.spec.market)
        return last is None or _tighter(stop.long, last, target)

    @staticmethod
    def _lag(stop: _Stop) -> Decimal:
        assert stop.pending is not None
        target = stop.pending.to_trigger
        return _INF if stop.stop is None else abs(target - stop.stop) / target

    def _in_flight(self, move: StopMove) -> _Stop | None:
        stop = self._stops.get(move.bracket_id)
        if stop is None or stop.inflight is None or stop.inflight.seq != move.seq:
            return None
        return stop

    def _index(self, stop: _Stop) -> None:
        stop.key = self._key(stop)
        if stop.key is not None:
            side = 0 if stop.long else 1
            self._indexes[stop.spec.market][side].add(stop.key, stop.spec.bracket_id)

    def _unindex(self, stop: _Stop) -> None:
        if stop.key is not None:
            side = 0 if stop.long else 1
            self._indexes[stop.spec.market][side].remove(stop.key, stop.spec.bracket_id)
            stop.key = None

    def _drop_pending(self, stop: _Stop) -> None:
        stop.pending = None
        waiting = self._waiting.get(stop.spec.owner)
        if waiting is not None:
            waiting.discard(stop.spec.bracket_id)
            if not waiting:
                del self._waiting[stop.spec.owner]
