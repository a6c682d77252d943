"""One step towards the invariant for one position (its brackets, oldest first).

In order: brackets whose entry never filled end; a filled leg cancels the sibling of its
own bracket; a flat or flipped position cancels every leg; a smaller position shrinks the
newest brackets (LIFO); what is left is covered by legs sized to its target, a new
generation placed before the old one is cancelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.alerts.schema import Action, AlertOrder
from core.db.base import utcnow
from core.db.models import Bracket, Order
from core.db.uow import UnitOfWork
from core.domain.states import (
    OPEN_ORDER_STATES,
    BracketState,
    OrderPurpose,
    OrderState,
    PositionSide,
)
from core.exchange.errors import ExchangeError
from core.exchange.grid import GridError
from core.exchange.port import Exchange, MarketInfo
from core.runtime.logs import get_logger
from core.services.execution.trader import Trader
from core.services.planning import protective_prices
from core.services.protection.closer import closed_by_whom
from core.services.protection.coverage import Share, shrink_lifo
from core.services.protection.legs import LegDesk
from core.services.protection.renewal import renews
from core.texts import protection as texts

NOTIFY_PROTECTION = "protection"
#: A resting bracket is looked at again this often when nothing calls it sooner (the monitor
#: calls it on every fill; this is the polling fallback).
RESTING_RECHECK = timedelta(seconds=5)
#: Leg states in which the node has not answered yet (settling re-sends their bytes).
_IN_FLIGHT = frozenset({OrderState.SUBMITTING, OrderState.UNKNOWN, OrderState.RECEIVED})


@dataclass
class View:
    """A bracket with its entry and every leg it ever had."""

    bracket: Bracket
    entry: Order
    legs: list[Order] = field(default_factory=list)

    @property
    def sign(self) -> int:
        """+1 for a long bracket, -1 for a short one."""
        return 1 if self.bracket.position_side is PositionSide.LONG else -1

    @property
    def live(self) -> list[Order]:
        """Legs that may still rest or fill."""
        return [leg for leg in self.legs if leg.state in OPEN_ORDER_STATES]

    @property
    def current(self) -> dict[OrderPurpose, Order]:
        """The newest leg of each purpose up to the current generation (a trailing stop's
        move is a generation of its own holding only the new stop-loss; a move the node did
        not accept is above the bracket's generation and so not current)."""
        legs = [leg for leg in self.legs if (leg.generation or 0) <= self.bracket.generation]
        return {leg.purpose: leg for leg in sorted(legs, key=lambda leg: leg.generation or 0)}

    @property
    def share(self) -> Share:
        """Its claim on the position."""
        return Share(
            bracket_id=self.bracket.id,
            entry_filled=self.entry.filled_size,
            legs_filled=sum((leg.filled_size for leg in self.legs), Decimal(0)),
            reduced=self.bracket.reduced_size,
        )


class GroupStep:
    """Advances the brackets of one position with one exchange and one trader.

    Args:
        sessionmaker: Database sessions.
        desk: Places and cancels legs.
        exchange: The trader's venue (paper or live, as the brackets).
        trader: Whose position.
        position: The position's signed size (positive long) as the venue reports it.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        desk: LegDesk,
        exchange: Exchange,
        trader: Trader,
        position: Decimal,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._desk = desk
        self._exchange = exchange
        self._trader = trader
        self._position = position
        self._market: MarketInfo | None = None
        self._log = get_logger(__name__)

    async def run(self, views: list[View]) -> None:
        """One step for every open bracket of the position."""
        active: list[View] = []
        for view in views:
            if view.entry.filled_size <= 0:
                if view.entry.state.is_final:
                    await self._end(
                        view, BracketState.CLOSED, None, texts.LEG_CANCELLED_POSITION_CLOSED
                    )
                continue
            stop = view.current.get(OrderPurpose.STOP_LOSS)
            if stop is not None and stop.state is OrderState.REJECTED:
                await self._fail(view, stop.error or "refused")
                continue
            if view.bracket.state is BracketState.LEG_FILLED or (
                view.share.legs_filled > 0 and view.share.target <= 0
            ):
                others = [v for v in views if v is not view and v.entry.filled_size > 0]
                await self._leg_filled(view, others)
                continue
            active.append(view)
        still: list[View] = []
        for view in active:
            if self._position * view.sign <= 0:
                await self._closed_elsewhere(view)
            else:
                still.append(view)
        cuts = shrink_lifo([view.share for view in still], abs(self._position))
        for view in still:
            cut = cuts.get(view.bracket.id, Decimal(0))
            if cut > 0:
                view.bracket.reduced_size += cut
                if view.share.target <= 0:
                    await self._end(
                        view,
                        BracketState.CLOSED,
                        texts.reduced_text(
                            view.bracket.market,
                            abs(self._position),
                            True,
                            paper=view.bracket.paper,
                        ),
                        texts.LEG_CANCELLED_POSITION_REDUCED,
                        dedupe=f"bracket:{view.bracket.id}:reduced",
                    )
                    continue
            await self._cover(view)

    # ----------------------------------------------------------------------- endings

    async def _leg_filled(self, view: View, others: list[View]) -> None:
        bracket = view.bracket
        resumed = bracket.state is BracketState.LEG_FILLED
        if not resumed:
            async with UnitOfWork(self._sessionmaker) as uow:
                if not await uow.brackets.transition(bracket, BracketState.LEG_FILLED):
                    return
                await uow.commit()
        cancelled = [
            await self._desk.cancel(self._exchange, leg, texts.LEG_CANCELLED_SIBLING_FILLED)
            for leg in view.live
        ]
        # Who got here first (the log context: the monitor's ``via``, a job's or cron's
        # ``job_id``) is what the fill-to-cancel benchmark counts.
        self._log.info("bracket_leg_filled", bracket_id=bracket.id, cancelled=sum(cancelled))
        filled = [leg for leg in view.legs if leg.filled_size > 0]
        take_profit = any(leg.purpose is OrderPurpose.TAKE_PROFIT for leg in filled)
        still = sum((v.share.target for v in others if v.sign == view.sign), Decimal(0))
        text = texts.leg_hit_text(
            bracket.market,
            take_profit=take_profit,
            realized_pnl=sum((leg.realized_pnl for leg in filled), Decimal(0)),
            sibling_cancelled=any(cancelled) or (resumed and self._cancelled_unsaid(view)),
            still_covered=min(still, abs(self._position)),
            paper=bracket.paper,
        )
        if all(cancelled):
            await self._end(
                view, BracketState.CLOSED, text, None, dedupe=f"bracket:{bracket.id}:hit"
            )

    @staticmethod
    def _cancelled_unsaid(view: View) -> bool:
        """Whether a step that died after its sibling cancel reached the chain (settling then
        found the sibling cancelled, with no reason of ours) had cancelled it for this fill."""
        return any(
            leg.state is OrderState.CANCELED
            and leg.filled_size == 0
            and leg.error in (None, texts.LEG_CANCELLED_SIBLING_FILLED)
            for leg in view.current.values()
        )

    async def _closed_elsewhere(self, view: View) -> None:
        closed_by = await closed_by_whom(
            self._sessionmaker, self._exchange, view.bracket, view.entry
        )
        if closed_by is None:
            # Who closed it is said once our order settled; the legs go now.
            cancelled = [
                await self._desk.cancel(self._exchange, leg, texts.LEG_CANCELLED_POSITION_CLOSED)
                for leg in view.live
            ]
            self._log.info(
                "bracket_closer_unsettled", bracket_id=view.bracket.id, cancelled=sum(cancelled)
            )
            await self._save_progress(view)
            return
        current = view.current
        text = texts.closed_text(
            view.bracket.market,
            closed_by,
            take=OrderPurpose.TAKE_PROFIT in current,
            stop=OrderPurpose.STOP_LOSS in current,
            paper=view.bracket.paper,
        )
        await self._end(
            view,
            BracketState.CLOSED,
            text if view.bracket.generation > 0 else None,
            texts.LEG_CANCELLED_POSITION_CLOSED,
            dedupe=f"bracket:{view.bracket.id}:closed",
        )

    async def _fail(self, view: View, reason: str) -> None:
        await self._end(
            view,
            BracketState.FAILED,
            texts.failed_text(view.bracket.market, reason, paper=view.bracket.paper),
            texts.LEG_CANCELLED_PROTECTION_FAILED,
            dedupe=f"bracket:{view.bracket.id}:failed",
            failure_reason=reason,
        )

    async def _end(
        self,
        view: View,
        to: BracketState,
        text: str | None,
        cancel_reason: str | None,
        *,
        dedupe: str | None = None,
        failure_reason: str | None = None,
    ) -> None:
        """Cancel every live leg, then move the bracket to a final state and say why.

        A leg whose cancel was not accepted keeps the bracket open: the next step retries.
        """
        if cancel_reason is not None:
            results = [
                await self._desk.cancel(self._exchange, leg, cancel_reason) for leg in view.live
            ]
            if not all(results):
                await self._save_progress(view)
                return
        async with UnitOfWork(self._sessionmaker) as uow:
            values: dict[str, object] = {
                "closed_at": utcnow(),
                "reduced_size": view.bracket.reduced_size,
            }
            if failure_reason is not None:
                values["failure_reason"] = failure_reason
            if not await uow.brackets.transition(view.bracket, to, **values):
                return
            if text is not None:
                await self._notify(uow, text, dedupe or f"bracket:{view.bracket.id}:{to.value}")
            await uow.commit()

    # ----------------------------------------------------------------------- covering

    async def _cover(self, view: View) -> None:
        bracket = view.bracket
        target = view.share.target
        triggers = await self._triggers(view)
        if triggers is None:
            return
        if not triggers:
            # Nothing a leg could be placed for (only a breakeven was asked).
            await self._end(view, BracketState.CLOSED, None, None)
            return
        current = view.current
        take = current.get(OrderPurpose.TAKE_PROFIT)
        if take is not None and take.state is OrderState.REJECTED and len(triggers) > 1:
            # The stop-loss stands; the refused take-profit is reported, not retried.
            del triggers[OrderPurpose.TAKE_PROFIT]
        covered = all(
            purpose in current
            and current[purpose].state in OPEN_ORDER_STATES
            and current[purpose].size == target
            and current[purpose].trigger_price == triggers[purpose]  # a moved stop: re-place
            for purpose in triggers
        )
        if covered:
            if any(current[purpose].state in _IN_FLIGHT for purpose in triggers):
                await self._save_progress(view)  # settling re-sends; look again soon
                return
            now = utcnow()
            expiring = [p for p in triggers if self._desk.lifetime.expiring(current[p], now)]
            if not expiring:
                await self._rest(view, triggers, target)
                return
            # Renewed before the chain expires them: a new generation, then the old cancelled.
            self._log.info(
                "legs_expiring", bracket_id=bracket.id, purposes=[p.value for p in expiring]
            )
        # Above any leg's: a trailing move the node refused left a leg above the bracket's.
        generation = max([bracket.generation, *(leg.generation or 0 for leg in view.legs)]) + 1
        async with UnitOfWork(self._sessionmaker) as uow:
            if not await uow.brackets.transition(
                bracket,
                BracketState.PLACING,
                generation=generation,
                target_size=target,
                reduced_size=bracket.reduced_size,
                tp_trigger=triggers.get(OrderPurpose.TAKE_PROFIT),
                sl_trigger=triggers.get(OrderPurpose.STOP_LOSS),
                next_check_at=utcnow(),
            ):
                return  # another step moved it: it places the legs
            await uow.commit()
        assert self._market is not None  # set by _triggers
        try:
            placed = await self._desk.place(
                self._exchange, self._trader, bracket, view.entry, self._market, triggers, target
            )
        except (GridError, ExchangeError) as exc:
            self._log.warning("leg_not_signed", bracket_id=bracket.id, error=str(exc))
            await self._fail(view, texts.NOT_PRICED if isinstance(exc, GridError) else str(exc))
            return
        if not placed:
            return
        async with UnitOfWork(self._sessionmaker) as uow:
            view.legs = list(await uow.brackets.legs([bracket.id]))
            uow.detach(*view.legs)
        stop = view.current.get(OrderPurpose.STOP_LOSS)
        if stop is not None and stop.state is OrderState.REJECTED:
            await self._fail(view, stop.error or "refused")
            return
        take = view.current.get(OrderPurpose.TAKE_PROFIT)
        if take is not None and take.state is OrderState.REJECTED and len(triggers) > 1:
            del triggers[OrderPurpose.TAKE_PROFIT]
        if all(view.current[p].state not in _IN_FLIGHT for p in triggers):
            await self._rest(view, triggers, target)

    async def _rest(
        self, view: View, triggers: dict[OrderPurpose, Decimal], target: Decimal
    ) -> None:
        """Every leg of the current generation was accepted: cancel older ones (new before
        old), RESTING, and tell the trader once per generation."""
        bracket = view.bracket
        current = {leg.id for leg in view.current.values()}
        stale = [leg for leg in view.live if leg.id not in current]
        renewed = bracket.state is not BracketState.RESTING and renews(
            view.legs, bracket.generation, triggers, target
        )
        for leg in stale:
            await self._desk.cancel(
                self._exchange, leg, texts.LEG_RENEWED if renewed else texts.LEG_REPLACED
            )
        # Resting already (a trailing move's generation), or the same legs renewed: nothing
        # new to tell.
        told = bracket.state is BracketState.RESTING or renewed
        async with UnitOfWork(self._sessionmaker) as uow:
            moved = await uow.brackets.transition(
                bracket,
                BracketState.RESTING,
                target_size=target,
                reduced_size=bracket.reduced_size,
                next_check_at=utcnow() + self._desk.lifetime.recheck(RESTING_RECHECK),
            )
            if moved and renewed:
                self._log.info(
                    "legs_renewed",
                    bracket_id=bracket.id,
                    generation=bracket.generation,
                    cancelled=len(stale),
                )
            if not moved or told:
                await uow.commit()
                return
            take = view.current.get(OrderPurpose.TAKE_PROFIT)
            before = [leg for leg in view.legs if leg.generation == bracket.generation - 1]
            stop = triggers.get(OrderPurpose.STOP_LOSS)
            if stop is not None and any(
                leg.purpose is OrderPurpose.STOP_LOSS and leg.trigger_price != stop
                for leg in before
            ):
                # The trader (or a trailing rule) moved the stop: say that, not "protected".
                text = texts.stop_moved_text(bracket.market, stop, paper=bracket.paper)
            else:
                text = texts.protected_text(
                    bracket.market,
                    triggers.get(OrderPurpose.TAKE_PROFIT),
                    triggers.get(OrderPurpose.STOP_LOSS),
                    target,
                    # A new generation of the same size is a moved stop, not a resize.
                    resized=any(leg.size != target for leg in before),
                    paper=bracket.paper,
                    take_profit_refused=(
                        take.error or "refused"
                        if take is not None and take.state is OrderState.REJECTED
                        else None
                    ),
                )
            await self._notify(
                uow,
                text,
                f"bracket:{bracket.id}:gen:{bracket.generation}:protected",
            )
            await uow.commit()

    async def _triggers(self, view: View) -> dict[OrderPurpose, Decimal] | None:
        """Trigger prices of the legs the bracket asked for, from its entry's average price
        (None when the market cannot be read now)."""
        bracket = view.bracket
        if self._market is None:
            try:
                self._market = await self._exchange.market(bracket.market)
            except (KeyError, ExchangeError) as exc:
                self._log.warning("protection_market_unreadable", error=str(exc))
                return None
        fixed_stop = bracket.sl_price is not None or bracket.sl_pct is not None
        asked = AlertOrder(
            market=bracket.market,
            action=Action.BUY,
            tp_price=bracket.tp_price,
            tp_pct=bracket.tp_pct,
            sl_price=bracket.sl_price,
            # A trailing stop alone starts trail_pct away from the entry.
            sl_pct=bracket.sl_pct if fixed_stop else bracket.trail_pct,
        )
        try:
            take, stop = protective_prices(
                asked, view.entry.side, view.entry.average_price or Decimal(0), self._market
            )
        except GridError:
            take = stop = None
        if stop is None and bracket.sl_price is not None and self._by_hand(view):
            # A stop the trader set by hand past the entry (e.g. to breakeven) still protects
            # while it is on the right side of the oracle.
            long = bracket.position_side is PositionSide.LONG
            oracle = self._market.oracle_price
            if (bracket.sl_price < oracle) if long else (bracket.sl_price > oracle):
                stop = bracket.sl_price
        moving = bracket.trail_pct is not None or bracket.be_trigger_pct is not None
        if moving and bracket.generation > 0 and bracket.sl_trigger is not None:
            stop = bracket.sl_trigger  # where the trailing service last moved it
        triggers = {
            purpose: price
            for purpose, price in (
                (OrderPurpose.TAKE_PROFIT, take),
                (OrderPurpose.STOP_LOSS, stop),
            )
            if price is not None
        }
        if not triggers and (
            bracket.tp_price or bracket.tp_pct or bracket.sl_price or bracket.sl_pct
        ):
            await self._fail(view, texts.NOT_PRICED)
            return None
        return triggers

    @staticmethod
    def _by_hand(view: View) -> bool:
        """Whether the trader set the bracket's prices from the bot (a moved stop, or
        protection added to a position)."""
        return view.bracket.generation > 0 or view.entry.purpose is OrderPurpose.MANUAL

    # ----------------------------------------------------------------------- plumbing

    async def _save_progress(self, view: View) -> None:
        async with UnitOfWork(self._sessionmaker) as uow:
            await uow.brackets.transition(
                view.bracket,
                view.bracket.state,
                reduced_size=view.bracket.reduced_size,
                next_check_at=utcnow(),
            )
            await uow.commit()

    async def _notify(self, uow: UnitOfWork, text: str, dedupe_key: str) -> None:
        await uow.notifications.enqueue(
            chat_id=self._trader.chat_id,
            user_id=self._trader.user_id,
            kind=NOTIFY_PROTECTION,
            text=text,
            dedupe_key=dedupe_key,
        )
