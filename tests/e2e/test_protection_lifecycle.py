"""Protection over a position's life end to end: legs renewed before the chain expires them
(with a leg lifetime of 30 s, the double's chain clock running in real time), and a position
flipped by an alert. Real web app and arq worker, PostgreSQL, Redis, the dYdX double with the
real dydx-v4-client, and the Telegram double.

Every test asserts the invariant: while a position is open and its owner asked for a
stop-loss, resting reduce-only stop-losses cover its whole size; no leg outlives its position.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from core.db.models import Notification
from core.db.repositories.execution import ExecutionRepository
from core.domain.states import (
    OPEN_ORDER_STATES,
    AlertState,
    BracketState,
    OrderPurpose,
    OrderSide,
    OrderState,
    PositionSide,
)
from core.exchange.port import Exchange
from core.exchange.provider import ExchangeProvider
from core.runtime.config import Settings
from core.services.execution.pipeline import ExecutionService
from doubles.dydx.double import DydxDouble
from doubles.dydx.state import REMOVAL_EXPIRED, REMOVAL_USER_CANCELED
from doubles.telegram import TelegramDouble
from tests.e2e.test_protection import brackets_of, protected_entry, said, texts_of
from tests.protection_checks import MARKET, assert_invariant, holds, protection, until, venue
from tests.trading_stack import (
    Maker,
    Trader,
    add_trader,
    orders_of,
    post_alert,
    running_worker,
    wait_alert,
)

#: The legs' lifetime and renewal margin in the renewal test (the defaults are 28 and 3 days).
LIFETIME = 30
RENEW_BEFORE = 15
#: Every protection message starts with its market after this shield.
SHIELD = "🛡"


def _settings(make_settings: Callable[..., Settings], *env: dict[str, str], **kw: Any) -> Settings:
    merged: dict[str, str] = {}
    for part in env:
        merged.update(part)
    return make_settings(
        **merged,
        webhook_ip_allowlist="*",
        alert_rate_per_token=100_000,
        alert_rate_per_ip=100_000,
        **kw,
    )


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings],
    telegram_env: dict[str, str],
    dydx_env: dict[str, str],
) -> Settings:
    return _settings(make_settings, telegram_env, dydx_env)


@pytest.fixture
def short_lived(
    make_settings: Callable[..., Settings],
    telegram_env: dict[str, str],
    dydx_env: dict[str, str],
) -> Settings:
    """Legs that rest 30 s and are renewed in their last 15 s."""
    return _settings(
        make_settings,
        telegram_env,
        dydx_env,
        protection_leg_lifetime_seconds=str(LIFETIME),
        protection_renew_before_seconds=str(RENEW_BEFORE),
    )


def protection_texts(me: Trader) -> list[str]:
    """Every protection message the trader received."""
    return [text for text in texts_of(me) if SHIELD in text]


async def notification_texts(maker: Maker, me: Trader) -> list[str]:
    """Every protection message queued for the trader (delivered or not)."""
    async with maker() as session:
        rows = await session.scalars(
            select(Notification.text)
            .where(Notification.user_id == me.user_id, Notification.kind == "protection")
            .order_by(Notification.id)
        )
        return list(rows.all())


async def signed_position(exchange: Exchange) -> Decimal:
    """The market's position as the venue reports it (negative short)."""
    for position in await exchange.positions():
        if position.market == MARKET:
            return position.size if position.side is PositionSide.LONG else -position.size
    return Decimal(0)


# ------------------------------------------------------------------ renewal


async def test_legs_are_renewed_before_they_expire_with_no_gap_and_nothing_said(
    short_lived: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    web: TestClient,
) -> None:
    me = await add_trader(live_sessionmaker, short_lived, telegram_double, dydx_double)
    assert me.dydx is not None
    exchange = await venue(exchanges, me)
    async with running_worker(short_lived):
        await protected_entry(live_sessionmaker, web, me, tp_pct="2", sl_pct="1")
        await until(lambda: holds(exchange, Decimal("0.1"), 2))
        placed_at = datetime.now(UTC)
        placed = [o for o in await orders_of(live_sessionmaker, me.user_id) if o.bracket_id]
        assert {o.generation for o in placed} == {1}
        for leg in placed:  # the worker placed them for the configured lifetime
            assert leg.good_til_block_time is not None
            assert leg.good_til_block_time - leg.created_at < timedelta(seconds=LIFETIME + 2)

        # Sample the venue until well past the first legs' expiry: at every moment a resting
        # reduce-only stop-loss covers the position (during a renewal both generations rest).
        samples: list[tuple[Decimal, Decimal]] = []
        deadline = placed_at + timedelta(seconds=LIFETIME + 10)
        while datetime.now(UTC) < deadline:
            held, stops, _ = await protection(exchange)
            samples.append((held, stops))
            await asyncio.sleep(0.2)
        assert len(samples) > 100
        assert all(held == Decimal("0.1") for held, _ in samples)
        uncovered = [stops for _, stops in samples if stops < Decimal("0.1")]
        assert not uncovered, f"{len(uncovered)} samples without a stop-loss covering 0.1"

        # Renewed (new before old), never expired on the chain: every generation's legs were
        # cancelled by us once the next one rested.
        async def settled() -> bool:
            (row,) = await brackets_of(live_sessionmaker, me.user_id)
            return row.state is BracketState.RESTING and await holds(exchange, Decimal("0.1"), 2)

        await until(settled, within=15)
        await assert_invariant(exchange)
        legs = [o for o in await orders_of(live_sessionmaker, me.user_id) if o.bracket_id]
        first = [leg for leg in legs if leg.generation == 1]
        resting = [leg for leg in legs if leg.state in OPEN_ORDER_STATES]
        assert {leg.state for leg in first} == {OrderState.CANCELED}
        assert len(resting) == 2
        assert min(leg.generation or 0 for leg in resting) >= 2
        assert sorted((leg.purpose, leg.size, leg.trigger_price) for leg in resting) == sorted(
            (leg.purpose, leg.size, leg.trigger_price) for leg in first
        )
        (bracket,) = await brackets_of(live_sessionmaker, me.user_id)
        assert bracket.target_size == Decimal("0.1")
        chain = {
            record.order.order_id.client_id: record.removal_reason
            for record in dydx_double.call(dydx_double.state.orders_of, me.dydx.owner_address, 0)
        }
        replaced = [leg for leg in legs if leg.state is OrderState.CANCELED]
        assert {chain[leg.client_id] for leg in replaced} == {REMOVAL_USER_CANCELED}
        assert REMOVAL_EXPIRED not in chain.values(), "a leg expired before it was renewed"

        # The trader heard "Protected" once, and nothing else about protection.
        await asyncio.sleep(3)  # past a notification delivery round
        assert [t for t in protection_texts(me)] == [await said(me, "Protected")]
        assert not any("Not filled" in t for t in texts_of(me)), texts_of(me)


# ------------------------------------------------------------------ a flip by an alert


async def _flip_to_short(
    live_sessionmaker: Maker,
    web: TestClient,
    me: Trader,
    exchange: Exchange,
    **fields: str,
) -> None:
    """Long 0.1 protected, then an alert that sells past zero."""
    await protected_entry(live_sessionmaker, web, me, tp_pct="2", sl_pct="1")
    await until(lambda: holds(exchange, Decimal("0.1"), 2))
    await said(me, "Protected")
    answer = await post_alert(web, me, action="sell", **fields)
    assert (await wait_alert(live_sessionmaker, answer["id"])).state is AlertState.EXECUTED

    async def short() -> bool:
        return await signed_position(exchange) == Decimal("-0.1")

    await until(short, within=30)


async def test_an_alert_that_flips_the_position_ends_the_long_legs_and_protects_the_short(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    web: TestClient,
) -> None:
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    exchange = await venue(exchanges, me)
    async with running_worker(settings):
        # What a trader sends to reverse: sell twice the long, with the short's protection.
        await _flip_to_short(
            live_sessionmaker, web, me, exchange, size="0.2", tp_pct="2", sl_pct="1"
        )
        text = await said(me, "was closed (or flipped) by an alert")
        assert "take-profit and stop-loss orders were cancelled" in text

        async def settled() -> bool:
            brackets = await brackets_of(live_sessionmaker, me.user_id)
            return [b.state for b in brackets] == [BracketState.CLOSED, BracketState.RESTING]

        await until(settled, within=30)
        # Only the short's own legs rest: a buy stop-loss and take-profit of 0.1, not 0.2.
        await until(lambda: holds(exchange, Decimal("0.1"), 2), within=30)
        await assert_invariant(exchange)
        resting = [o for o in await exchange.open_orders() if o.market == MARKET]
        assert {(o.side, o.size, o.reduce_only) for o in resting} == {
            (OrderSide.BUY, Decimal("0.1"), True)
        }
        long, short = await brackets_of(live_sessionmaker, me.user_id)
        assert (short.target_size, short.reduced_size) == (Decimal("0.1"), Decimal("0.1"))
        legs = [o for o in await orders_of(live_sessionmaker, me.user_id) if o.bracket_id]
        assert {o.state for o in legs if o.bracket_id == long.id} == {OrderState.CANCELED}
        shorts = {o.purpose: o for o in legs if o.bracket_id == short.id}
        assert {(o.side, o.size, o.reduce_only) for o in shorts.values()} == {
            (OrderSide.BUY, Decimal("0.1"), True)
        }
        stop = shorts[OrderPurpose.STOP_LOSS].trigger_price
        take = shorts[OrderPurpose.TAKE_PROFIT].trigger_price
        assert stop is not None
        assert take is not None
        assert take < Decimal(3000) < stop  # a short's: take-profit below, stop above
        protected = await said(me, "Legs placed for 0.1 ETH-USD")
        assert "Protected" in protected
        await asyncio.sleep(3)  # past a notification delivery round
        # The long's "Protected", its removal, the short's "Protected"; nothing "not filled".
        assert len(protection_texts(me)) == 3, protection_texts(me)
        assert not any("Not filled" in t for t in texts_of(me)), texts_of(me)


async def test_a_flip_without_protection_ends_the_long_legs_and_leaves_nothing_resting(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    web: TestClient,
) -> None:
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    exchange = await venue(exchanges, me)
    async with running_worker(settings):
        # A strategy's reversal: the alert names the side it is now on.
        await _flip_to_short(live_sessionmaker, web, me, exchange, size="0.1", position="short")

        # The short asked for no protection: nothing may rest, the long's legs least of all.
        async def bare() -> bool:
            return await protection(exchange) == (Decimal("0.1"), Decimal(0), 0)

        await until(bare, within=30)
        text = await said(me, "was closed (or flipped) by an alert")
        assert "take-profit and stop-loss orders were cancelled" in text
        (bracket,) = await brackets_of(live_sessionmaker, me.user_id)
        assert bracket.state is BracketState.CLOSED
        legs = [o for o in await orders_of(live_sessionmaker, me.user_id) if o.bracket_id]
        assert {o.state for o in legs} == {OrderState.CANCELED}
        await asyncio.sleep(3)  # past a notification delivery round: still nothing rests
        assert await protection(exchange) == (Decimal("0.1"), Decimal(0), 0)
        assert len(protection_texts(me)) == 2, protection_texts(me)
        assert not any("Not filled" in t for t in texts_of(me)), texts_of(me)


async def test_a_flip_the_venue_shows_before_its_job_recorded_it_is_told_as_an_alerts(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    web: TestClient,
) -> None:
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    exchange = await venue(exchanges, me)
    hot = ExecutionRepository(settings.database_url.get_secret_value())
    execution = ExecutionService(
        live_sessionmaker, exchanges, hot, max_lag=timedelta(seconds=60), settle_timeout=5.0
    )
    try:
        first = await post_alert(web, me, tp_pct="2", sl_pct="1")
        await execution.execute_alert(first["id"])

        async def protected() -> bool:
            await execution.protection.advance_due()
            return await holds(exchange, Decimal("0.1"), 2)

        await until(protected)
        (bracket,) = await brackets_of(live_sessionmaker, me.user_id)
        # The node takes the flip and fills it, but answers its job only after the job's
        # deadline: meanwhile the ledger does not know the flip filled.
        dydx_double.node.hang(30, process_first=True)
        flip = await post_alert(web, me, action="sell", size="0.2")
        job = asyncio.create_task(execution.execute_alert(flip["id"]))

        async def flipped() -> bool:
            return await signed_position(exchange) == Decimal("-0.1")

        await until(flipped, within=2.5)
        (entry,) = [o for o in await orders_of(live_sessionmaker, me.user_id) if o.id > 3]
        assert entry.filled_size == 0  # not recorded yet
        # A step now (the cron's, the monitor's) cancels the legs at once ...
        await execution.protection.advance(bracket.id)
        assert await protection(exchange) == (Decimal("0.1"), Decimal(0), 0)
        # ... but does not yet say who closed the long: the flip is not settled.
        assert not [t for t in await notification_texts(live_sessionmaker, me) if "removed" in t]
        assert not job.done()

        await job
        await execution.protection.advance(bracket.id)
        (bracket,) = await brackets_of(live_sessionmaker, me.user_id)
        assert bracket.state is BracketState.CLOSED
        (removed,) = [t for t in await notification_texts(live_sessionmaker, me) if "removed" in t]
        assert "was closed (or flipped) by an alert" in removed
        assert "take-profit and stop-loss orders were cancelled" in removed
    finally:
        await hot.close()
