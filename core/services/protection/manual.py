"""What a trader changes by hand on a position's protection from the bot: move the stop-loss,
remove the take-profit (issue #11 item 6).

Each change waits for the position's advisory lock (the one every step takes), writes the
new intent on the position's brackets, then runs the ordinary step under the same lock: a
moved stop is a new generation of legs, placed (committed, then broadcast) before the old
one is cancelled. Asking twice for the same thing changes nothing the second time.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.base import utcnow
from core.db.models import Bracket
from core.db.repositories.brackets import GroupKey
from core.db.uow import UnitOfWork
from core.domain.preferences import Preferences
from core.domain.states import BracketState, OrderPurpose, OrderState, PositionSide
from core.exchange.grid import check_price, round_price_to_tick
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


def _lock_key(key: GroupKey) -> int:
    # The service module imports this one: take its key at call time (one key per position).
    from core.services.protection.service import _lock_key as service_key

    return service_key(key)


class ManualProtection:
    """The trader's own changes, mixed into :class:`~.service.ProtectionService` (which
    provides the attributes and the step below)."""

    _sessionmaker: async_sessionmaker[AsyncSession]
    _exchanges: ExchangeProvider
    _desk: LegDesk

    async def _step_held(self, key: GroupKey) -> int:  # provided by ProtectionService
        raise NotImplementedError

    @contextlib.asynccontextmanager
    async def _wait_for(self, key: GroupKey) -> AsyncIterator[None]:
        """Hold the position's advisory lock for the block, waiting for a running step."""
        async with self._sessionmaker() as session, session.begin():
            await session.execute(select(func.pg_advisory_xact_lock(_lock_key(key))))
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
        async with UnitOfWork(self._sessionmaker) as uow:
            legs = await uow.brackets.legs([b.id for b in brackets])
        current = {(b.id, b.generation) for b in brackets}
        stops = [
            leg
            for leg in legs
            if leg.purpose is OrderPurpose.STOP_LOSS and (leg.bracket_id, leg.generation) in current
        ]
        return bool(stops) and all(
            leg.state is OrderState.SUBMITTED and leg.trigger_price == trigger for leg in stops
        )

    async def _valid_stop(self, key: GroupKey, stop: StopInput) -> Decimal:
        user_id, paper, market = key
        async with UnitOfWork(self._sessionmaker) as uow:
            user = await uow.users.get(user_id)
            prefs = Preferences.from_json(user.settings if user is not None else {})
        exchange = await self._exchanges.for_user(user_id, prefs.updated(paper=paper))
        position = next((p for p in await exchange.positions() if p.market == market), None)
        if position is None or position.size <= 0:
            raise ProtectionInputError(texts.nothing_to_move(market))
        info = await exchange.market(market)
        long = position.side is PositionSide.LONG
        if stop.pct is not None:
            raw = position.entry_price * (
                1 - stop.pct / HUNDRED if long else 1 + stop.pct / HUNDRED
            )
            # Towards the price, as an alert's sl_pct (never more loss than asked).
            trigger = round_price_to_tick(raw, info, up=long)
        else:
            assert stop.price is not None
            trigger = stop.price
            try:
                check_price(trigger, info)
            except ValueError:
                raise ProtectionInputError(texts.stop_off_grid(trigger, info.tick_size)) from None
        if (trigger >= info.oracle_price) if long else (trigger <= info.oracle_price):
            raise ProtectionInputError(
                texts.stop_wrong_side(market, trigger, info.oracle_price, long=long)
            )
        return trigger

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
