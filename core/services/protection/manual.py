"""What a trader changes by hand on a position's protection from the bot: move the stop-loss,
remove the take-profit (issue #11 item 6).

Each change waits for the position's advisory lock (the one every step takes), writes the
new intent on the position's brackets, then runs the ordinary step under the same lock: a
moved stop is a new generation of legs, placed (committed, then broadcast) before the old
one is cancelled. Asking twice for the same thing changes nothing the second time.
"""

from __future__ import annotations

import abc
import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.base import utcnow
from core.db.models import Bracket, Order
from core.db.repositories.brackets import GroupKey, position_lock_key
from core.db.uow import UnitOfWork
from core.domain.preferences import Preferences
from core.domain.states import BracketState, OrderPurpose, OrderSide, OrderState, PositionSide
from core.exchange.grid import check_price, round_price_to_tick
from core.exchange.orders import OrderKind, TimeInForce
from core.exchange.port import Exchange, MarketInfo, Position
from core.exchange.provider import ExchangeProvider
from core.services.protection.legs import LegDesk
from core.texts import protection as texts

HUNDRED = Decimal(100)


class ProtectionInputError(ValueError):
    """A trader's protection change that cannot be done; the message says why in plain
    words and nothing was changed."""


@dataclass(frozen=True, slots=True)
class StopMove:
    """What moving a stop-loss did.

    Attributes:
        trigger: The stop-loss trigger price now asked for.
        resting: Whether the new stop-losses already rest (the old ones cancelled).
    """

    trigger: Decimal
    resting: bool


@dataclass(frozen=True, slots=True)
class StopInput:
    """A stop-loss as the trader typed it: a price, or a percentage from the entry."""

    price: Decimal | None = None
    pct: Decimal | None = None


def parse_stop(text: str) -> StopInput:
    """``2950`` / ``$2,950`` → a price; ``1.5%`` → 1.5 % from the entry.

    Raises:
        ProtectionInputError: Not a positive number.
    """
    cleaned = text.strip().replace("$", "").replace(",", "").replace(" ", "")
    pct = cleaned.endswith("%")
    try:
        value = Decimal(cleaned.rstrip("%"))
    except ArithmeticError:
        raise ProtectionInputError(texts.not_a_price(text)) from None
    if not value.is_finite() or value <= 0 or (pct and value >= HUNDRED):
        raise ProtectionInputError(texts.not_a_price(text))
    return StopInput(pct=value) if pct else StopInput(price=value)


def _trigger(position: Position, info: MarketInfo, given: StopInput, *, stop_loss: bool) -> Decimal:
    """A stop-loss or take-profit trigger the trader typed, checked against the oracle (a
    stop-loss on the losing side of it, a take-profit on the winning side) and the grid; a
    percentage is taken from the entry and rounded towards the price, as an alert's.

    Raises:
        ProtectionInputError: Off the grid, or on the wrong side of the oracle.
    """
    long = position.side is PositionSide.LONG
    below = long if stop_loss else not long  # the trigger must be below the oracle
    if given.pct is not None:
        raw = position.entry_price * (1 - given.pct / HUNDRED if below else 1 + given.pct / HUNDRED)
        trigger = round_price_to_tick(raw, info, up=below)
    else:
        assert given.price is not None
        trigger = given.price
        try:
            check_price(trigger, info)
        except ValueError:
            raise ProtectionInputError(texts.stop_off_grid(trigger, info.tick_size)) from None
    oracle = info.oracle_price
    if (trigger >= oracle) if below else (trigger <= oracle):
        raise ProtectionInputError(
            texts.wrong_side(position.market, trigger, oracle, below=below, stop_loss=stop_loss)
        )
    return trigger


class ManualProtection(abc.ABC):
    """The trader's own changes, mixed into :class:`~.service.ProtectionService` (which
    provides the attributes and the step below)."""

    _sessionmaker: async_sessionmaker[AsyncSession]
    _exchanges: ExchangeProvider
    _desk: LegDesk

    @abc.abstractmethod
    async def _step_held(self, key: GroupKey) -> int:
        """One protection step of the position, under its lock (:class:`ProtectionService`)."""

    @contextlib.asynccontextmanager
    async def _wait_for(self, key: GroupKey) -> AsyncIterator[None]:
        """Hold the position's advisory lock for the block, waiting for a running step."""
        async with self._sessionmaker() as session, session.begin():
            await session.execute(select(func.pg_advisory_xact_lock(position_lock_key(key))))
            yield

    async def _brackets(self, key: GroupKey) -> list[Bracket]:
        user_id, paper, market = key
        async with UnitOfWork(self._sessionmaker) as uow:
            brackets = list(await uow.brackets.open_in_group(user_id, paper, market))
            uow.detach(*brackets)
        return brackets

    async def _key(self, user_id: int, market: str) -> GroupKey:
        async with UnitOfWork(self._sessionmaker) as uow:
            user = await uow.users.get(user_id)
            paper = Preferences.from_json(user.settings).paper if user is not None else False
        return (user_id, paper, market.strip().upper())

    async def check_change(
        self, user_id: int, market: str, stop: StopInput, take: StopInput | None, *, adding: bool
    ) -> None:
        """Check a protection change against the position and the market without placing
        anything: the bot, which cannot sign, answers a wrong price at once and queues the
        change for the worker, which checks again when it does it.

        Raises:
            ProtectionInputError: No position or protection, or a price is not valid.
            TradingNotReadyError: The trader cannot trade.
            ExchangeError: The venue could not be asked.
        """
        key = await self._key(user_id, market)
        position, info, _ = await self._position(key)
        _trigger(position, info, stop, stop_loss=True)
        if take is not None:
            _trigger(position, info, take, stop_loss=False)
        brackets = await self._brackets(key)
        if adding and any(b.sl_price is not None or b.sl_pct is not None for b in brackets):
            raise ProtectionInputError(texts.already_protected(key[2]))
        if not adding and not brackets:
            raise ProtectionInputError(texts.nothing_to_move(key[2]))

    async def move_stop(self, user_id: int, market: str, stop: StopInput) -> StopMove:
        """Move the stop-loss of every bracket of the position to one trigger price.

        The price is checked against the oracle (a long's stop below it, a short's above)
        and the tick grid; a percentage is taken from the position's entry price and rounded
        away from the price by less than a tick. The new legs are placed before the old ones
        are cancelled (the step's generations).

        Returns:
            The trigger asked for, and whether every stop-loss already rests there (if not,
            the cron finishes the move and the trader gets the protection message).

        Raises:
            ProtectionInputError: No protection to move, or the price is not valid.
            TradingNotReadyError: The trader cannot trade.
            ExchangeError: The venue could not be asked.
        """
        key = await self._key(user_id, market)
        trigger = await self._valid_stop(key, stop)
        async with self._wait_for(key):
            brackets = await self._brackets(key)
            if not brackets:
                raise ProtectionInputError(texts.nothing_to_move(key[2]))
            async with UnitOfWork(self._sessionmaker) as uow:
                for bracket in brackets:
                    if bracket.sl_price == trigger and bracket.sl_pct is None:
                        continue  # asked already: idempotent
                    await uow.brackets.transition(
                        bracket,
                        bracket.state,
                        sl_price=trigger,
                        sl_pct=None,
                        next_check_at=utcnow(),
                    )
                await uow.commit()
            await self._step_held(key)
        return StopMove(trigger, await self._stops_rest_at(key, trigger))

    async def _stops_rest_at(self, key: GroupKey, trigger: Decimal) -> bool:
        brackets = await self._brackets(key)
        current = {(b.id, b.generation) for b in brackets}
        async with UnitOfWork(self._sessionmaker) as uow:
            stops = [
                (leg.state, leg.trigger_price)
                for leg in await uow.brackets.legs([b.id for b in brackets])
                if leg.purpose is OrderPurpose.STOP_LOSS
                and (leg.bracket_id, leg.generation) in current
            ]
        return bool(stops) and all(
            state is OrderState.SUBMITTED and price == trigger for state, price in stops
        )

    async def _valid_stop(self, key: GroupKey, stop: StopInput) -> Decimal:
        position, info, _ = await self._position(key)
        return _trigger(position, info, stop, stop_loss=True)

    async def _position(self, key: GroupKey) -> tuple[Position, MarketInfo, Exchange]:
        """The open position, its market and the trader's venue (as the key's paper flag).

        Raises:
            ProtectionInputError: No open position there.
        """
        user_id, paper, market = key
        async with UnitOfWork(self._sessionmaker) as uow:
            user = await uow.users.get(user_id)
            prefs = Preferences.from_json(user.settings if user is not None else {})
        exchange = await self._exchanges.for_user(user_id, prefs.updated(paper=paper))
        position = next((p for p in await exchange.positions() if p.market == market), None)
        if position is None or position.size <= 0:
            raise ProtectionInputError(texts.nothing_to_move(market))
        return position, await exchange.market(market), exchange

    async def protect_position(
        self, user_id: int, market: str, stop: StopInput, take: StopInput | None
    ) -> StopMove:
        """Protect a position that has no stop-loss: a bracket for its current size, with
        the stop-loss (and take-profit) given, advanced at once.

        The bracket's entry is a ledger row standing for the position as it is (purpose
        MANUAL, already FILLED, never sent: it has no bytes and a negative client id no
        venue uses), so coverage, LIFO and one-cancels-other work as for an alert's entry.

        Returns:
            The stop-loss trigger, and whether the legs already rest.

        Raises:
            ProtectionInputError: No position, a stop-loss rests already, or a price is
                not valid.
            TradingNotReadyError: The trader cannot trade.
            ExchangeError: The venue could not be asked.
        """
        key = await self._key(user_id, market)
        position, info, exchange = await self._position(key)
        sl = _trigger(position, info, stop, stop_loss=True)
        tp = _trigger(position, info, take, stop_loss=False) if take is not None else None
        async with self._wait_for(key):
            for bracket in await self._brackets(key):
                if bracket.sl_price is not None or bracket.sl_pct is not None:
                    raise ProtectionInputError(texts.already_protected(key[2]))
            long = position.side is PositionSide.LONG
            now = utcnow()
            async with UnitOfWork(self._sessionmaker) as uow:
                entry = Order(
                    user_id=user_id,
                    purpose=OrderPurpose.MANUAL,
                    paper=key[1],
                    market=key[2],
                    owner_address=exchange.owner_address,
                    subaccount_number=exchange.subaccount_number,
                    client_id=-(secrets.randbelow(2**31) + 1),
                    order_flags=0,
                    side=OrderSide.BUY if long else OrderSide.SELL,
                    order_type=OrderKind.MARKET.value,
                    size=position.size,
                    price=position.entry_price,
                    reduce_only=False,
                    time_in_force=TimeInForce.IOC.value,
                    state=OrderState.FILLED,
                    filled_size=position.size,
                    average_price=position.entry_price,
                    error=texts.ADOPTED_ENTRY,
                    filled_at=now,
                    closed_at=now,
                )
                uow.orders.add(entry)
                await uow.session.flush()
                uow.brackets.add(
                    Bracket(
                        entry_order_id=entry.id,
                        user_id=user_id,
                        paper=key[1],
                        market=key[2],
                        owner_address=exchange.owner_address,
                        subaccount_number=exchange.subaccount_number,
                        position_side=position.side,
                        sl_price=sl,
                        tp_price=tp,
                        state=BracketState.REQUESTED,
                        next_check_at=now,
                    )
                )
                await uow.commit()
            await self._step_held(key)
        return StopMove(sl, await self._stops_rest_at(key, sl))

    async def remove_take_profit(self, user_id: int, market: str) -> int:
        """Cancel the take-profit legs of the position and ask for none any more; the
        stop-losses stay. A bracket that asked for nothing else ends.

        Returns:
            How many take-profit legs were cancelled (0 when there was none: idempotent).

        Raises:
            TradingNotReadyError: The trader cannot trade.
            ExchangeError: The venue could not be asked.
        """
        key = await self._key(user_id, market)
        user_id, paper, _ = key
        async with UnitOfWork(self._sessionmaker) as uow:
            user = await uow.users.get(user_id)
            prefs = Preferences.from_json(user.settings if user is not None else {})
        exchange = await self._exchanges.for_user(user_id, prefs.updated(paper=paper))
        cancelled = 0
        async with self._wait_for(key):
            brackets = await self._brackets(key)
            async with UnitOfWork(self._sessionmaker) as uow:
                legs = list(await uow.brackets.legs([b.id for b in brackets]))
                uow.detach(*legs)
            for leg in legs:
                if leg.purpose is OrderPurpose.TAKE_PROFIT and not leg.state.is_final:
                    cancelled += await self._desk.cancel(exchange, leg, texts.LEG_REMOVED_BY_TRADER)
            async with UnitOfWork(self._sessionmaker) as uow:
                for bracket in brackets:
                    stop_asked = bracket.sl_price is not None or bracket.sl_pct is not None
                    if not stop_asked:
                        await uow.brackets.transition(
                            bracket,
                            BracketState.CLOSED,
                            tp_price=None,
                            tp_pct=None,
                            closed_at=utcnow(),
                        )
                    elif bracket.tp_price is not None or bracket.tp_pct is not None:
                        await uow.brackets.transition(
                            bracket,
                            bracket.state,
                            tp_price=None,
                            tp_pct=None,
                            next_check_at=utcnow(),
                        )
                await uow.commit()
            await self._step_held(key)
        return cancelled


__all__ = [
    "ManualProtection",
    "ProtectionInputError",
    "StopInput",
    "StopMove",
    "parse_stop",
]
