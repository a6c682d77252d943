"""Brackets against the real PostgreSQL and the dYdX double (real dydx-v4-client): committed
with their entry, one transition function, leg uniqueness, a late fill of a limit entry, a
leg the chain refuses. The execution service and the protection service are driven
directly (no worker), so each step is deterministic.

Every scenario asserts the invariant: while a position is open and its owner asked for a
stop-loss, resting reduce-only stop-losses cover its whole size; no leg outlives its position.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.models import Alert, Bracket, Notification, Order
from core.db.repositories.execution import (
    DuplicateLegError,
    ExecutionRepository,
    NewBracket,
    NewOrder,
)
from core.db.uow import UnitOfWork
from core.domain.states import (
    AlertState,
    BracketState,
    IllegalTransitionError,
    OrderPurpose,
    OrderState,
    PositionSide,
)
from core.exchange.factory import create_exchange_provider
from core.exchange.provider import ExchangeProvider
from core.runtime.config import Settings
from core.services.execution.outcome import Outcome
from core.services.execution.pipeline import ExecutionService
from core.services.protection.renewal import LegLifetime
from core.texts import protection as texts
from doubles.dydx.double import DydxDouble
from doubles.telegram import TelegramDouble
from tests.protection_checks import assert_invariant, holds, protection, until, venue
from tests.trading_stack import Maker, add_trader, post_alert, running_web

Sessions = async_sessionmaker[AsyncSession]
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


# ------------------------------------------------------------------ the ledger alone


async def _user_and_alert(maker: Sessions) -> tuple[int, int]:
    async with UnitOfWork(maker) as uow:
        user = await uow.users.get_or_create(telegram_id=4242)
        await uow.commit()
        user_id = user.id
    async with maker() as session:
        alert = Alert(
            user_id=user_id,
            body_hash="h",
            dedupe_key="d",
            market="ETH-USD",
            fields={},
            state=AlertState.ACCEPTED,
        )
        session.add(alert)
        await session.commit()
        return user_id, alert.id


def _order(user_id: int, alert_id: int | None, client_id: int, **kw: Any) -> NewOrder:
    values: dict[str, Any] = {
        "user_id": user_id,
        "alert_id": alert_id,
        "parent_order_id": None,
        "purpose": OrderPurpose.ENTRY.value,
        "paper": False,
        "market": "ETH-USD",
        "owner_address": "dydx1owner",
        "subaccount_number": 0,
        "client_id": client_id,
        "order_flags": 0,
        "side": "BUY",
        "order_type": "MARKET",
        "size": Decimal("0.1"),
        "price": Decimal(3030),
        "trigger_price": None,
        "reduce_only": False,
        "time_in_force": "IOC",
        "good_til_block": 10,
        "good_til_block_time": None,
        "tx_bytes": b"tx",
        "tx_hash": f"{client_id:064x}",
        "reference_price": Decimal(3000),
        "position_before": Decimal(0),
        "entry_before": None,
        "signed_at": NOW,
    }
    values.update(kw)
    return NewOrder(**values)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[ExecutionRepository]:
    repository = ExecutionRepository(database_url)
    yield repository
    await repository.close()


async def test_the_bracket_commits_in_the_entrys_statement_and_only_when_asked(
    live_sessionmaker: Sessions, store: ExecutionRepository
) -> None:
    sessionmaker = live_sessionmaker
    user_id, alert_id = await _user_and_alert(sessionmaker)
    asked = NewBracket(
        position_side=PositionSide.LONG.value,
        tp_pct=Decimal(2),
        sl_price=Decimal(2900),
        trail_pct=Decimal(1),
    )
    entry_id = await store.insert_order(_order(user_id, alert_id, 1), picked_up=NOW, bracket=asked)
    plain_id = await store.insert_order(_order(user_id, None, 2), picked_up=None)
    async with sessionmaker() as session:
        (bracket,) = (await session.scalars(select(Bracket))).all()
        entry_state = await session.scalar(select(Order.state).where(Order.id == entry_id))
        alert_state = await session.scalar(select(Alert.state).where(Alert.id == alert_id))
    assert bracket.entry_order_id == entry_id != plain_id
    assert bracket.state is BracketState.REQUESTED
    assert (bracket.user_id, bracket.market, bracket.owner_address) == (
        user_id,
        "ETH-USD",
        "dydx1owner",
    )
    assert (bracket.tp_pct, bracket.sl_price, bracket.trail_pct) == (
        Decimal(2),
        Decimal(2900),
        Decimal(1),
    )
    assert (bracket.generation, bracket.target_size, bracket.version) == (0, Decimal(0), 0)
    assert (entry_state, alert_state) == (OrderState.SUBMITTING, AlertState.PROCESSING)

    # A second entry for the alert fails as a whole: no bracket without its entry.
    with pytest.raises(Exception, match="uq_orders_alert_id_purpose"):
        await store.insert_order(_order(user_id, alert_id, 3), picked_up=NOW, bracket=asked)
    async with sessionmaker() as session:
        assert len((await session.scalars(select(Bracket))).all()) == 1


async def test_a_leg_generation_is_placed_once_and_entries_stay_one_per_alert(
    live_sessionmaker: Sessions, store: ExecutionRepository
) -> None:
    sessionmaker = live_sessionmaker
    user_id, alert_id = await _user_and_alert(sessionmaker)
    asked = NewBracket(position_side=PositionSide.LONG.value, sl_pct=Decimal(1))
    entry_id = await store.insert_order(_order(user_id, alert_id, 1), picked_up=NOW, bracket=asked)
    async with UnitOfWork(sessionmaker) as uow:
        bracket = await uow.brackets.for_entry(entry_id)
        assert bracket is not None
        bracket_id = bracket.id
    stop = {"purpose": OrderPurpose.STOP_LOSS.value, "reduce_only": True, "order_flags": 32}
    await store.insert_order(
        _order(user_id, alert_id, 2, bracket_id=bracket_id, generation=1, **stop), picked_up=None
    )
    # A retried step cannot place a second leg of the same generation...
    with pytest.raises(DuplicateLegError):
        await store.insert_order(
            _order(user_id, alert_id, 3, bracket_id=bracket_id, generation=1, **stop),
            picked_up=None,
        )
    # ...a resized leg is a new generation, a new row, for the same alert and purpose.
    await store.insert_order(
        _order(user_id, alert_id, 4, bracket_id=bracket_id, generation=2, **stop), picked_up=None
    )
    async with UnitOfWork(sessionmaker) as uow:
        legs = await uow.brackets.legs([bracket_id])
        assert [(leg.generation, leg.client_id) for leg in legs] == [(1, 2), (2, 4)]
        assert [o.id for o in await uow.orders.for_alert(alert_id, legs=False)] == [entry_id]


async def test_a_bracket_moves_only_through_its_state_machine_and_version(
    live_sessionmaker: Sessions, store: ExecutionRepository
) -> None:
    sessionmaker = live_sessionmaker
    user_id, alert_id = await _user_and_alert(sessionmaker)
    asked = NewBracket(position_side=PositionSide.SHORT.value, sl_pct=Decimal(1))
    entry_id = await store.insert_order(_order(user_id, alert_id, 1), picked_up=NOW, bracket=asked)
    async with UnitOfWork(sessionmaker) as uow:
        first = await uow.brackets.for_entry(entry_id)
        assert first is not None
        uow.detach(first)
    async with UnitOfWork(sessionmaker) as uow:
        stale = await uow.brackets.get(first.id)
        assert stale is not None
        uow.detach(stale)
    async with UnitOfWork(sessionmaker) as uow:
        with pytest.raises(IllegalTransitionError):
            await uow.brackets.transition(first, BracketState.LEG_FILLED)
        assert await uow.brackets.transition(first, BracketState.PLACING, generation=1)
        await uow.commit()
    assert (first.state, first.version, first.generation) == (BracketState.PLACING, 1, 1)
    async with UnitOfWork(sessionmaker) as uow:
        # Someone else moved it since this copy was read: nothing changes.
        assert not await uow.brackets.transition(stale, BracketState.CLOSED)
        assert await uow.brackets.transition(first, BracketState.FAILED, failure_reason="no")
        await uow.commit()
    async with UnitOfWork(sessionmaker) as uow:
        row = await uow.brackets.get(first.id)
        assert row is not None
        assert (row.state, row.version, row.failure_reason) == (BracketState.FAILED, 2, "no")
        with pytest.raises(IllegalTransitionError):
            await uow.brackets.transition(row, BracketState.PLACING)


# ------------------------------------------------------------------ against the double


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings],
    telegram_env: dict[str, str],
    dydx_env: dict[str, str],
) -> Settings:
    return make_settings(
        **telegram_env,
        **dydx_env,
        webhook_ip_allowlist="*",
        alert_rate_per_token=100_000,
        alert_rate_per_ip=100_000,
    )


@pytest.fixture
async def web(
    settings: Settings, live_sessionmaker: Maker, redis: Any
) -> AsyncIterator[TestClient]:
    async with running_web(settings) as client:
        yield client


@pytest.fixture
async def exchanges(
    settings: Settings, live_sessionmaker: Maker
) -> AsyncIterator[ExchangeProvider]:
    provider = create_exchange_provider(live_sessionmaker, settings)
    yield provider
    await provider.close()


@pytest.fixture
async def execution(
    settings: Settings, live_sessionmaker: Maker, exchanges: ExchangeProvider
) -> AsyncIterator[ExecutionService]:
    hot = ExecutionRepository(settings.database_url.get_secret_value())
    yield ExecutionService(
        live_sessionmaker, exchanges, hot, max_lag=timedelta(seconds=60), settle_timeout=1.0
    )
    await hot.close()


async def _protection_texts(maker: Maker, user_id: int) -> list[str]:
    async with maker() as session:
        rows = await session.scalars(
            select(Notification.text)
            .where(Notification.user_id == user_id, Notification.kind == "protection")
            .order_by(Notification.id)
        )
        return list(rows.all())


async def _bracket(maker: Maker, user_id: int) -> Bracket:
    async with maker() as session:
        (row,) = (await session.scalars(select(Bracket).where(Bracket.user_id == user_id))).all()
        return row


async def test_a_limit_entry_that_fills_after_its_job_gets_legs_sized_to_the_fill(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    execution: ExecutionService,
    web: TestClient,
) -> None:
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    exchange = await venue(exchanges, me)
    answer = await post_alert(
        web, me, size="0.2", order_type="limit", price="2990", tp_pct="2", sl_pct="1"
    )
    # The job waits its (short) while: the limit order rests, nothing is protected yet.
    assert await execution.execute_alert(answer["id"]) is Outcome.OPEN
    assert (await _bracket(live_sessionmaker, me.user_id)).state is BracketState.REQUESTED
    assert await protection(exchange) == (Decimal(0), Decimal(0), 0)

    dydx_double.set_oracle_price("ETH-USD", "2985")  # the resting entry fills, late

    async def protected() -> bool:
        await execution.protection.advance_due()
        return await holds(exchange, Decimal("0.2"), 2)

    await until(protected, within=30)
    await assert_invariant(exchange)
    bracket = await _bracket(live_sessionmaker, me.user_id)
    assert (bracket.state, bracket.target_size) == (BracketState.RESTING, Decimal("0.2"))
    assert bracket.sl_trigger == Decimal("2960.1")  # 1 % under the 2990 fill, on the tick
    (text,) = await _protection_texts(live_sessionmaker, me.user_id)
    assert "Legs placed for 0.2 ETH-USD" in text


async def test_a_leg_the_chain_refuses_fails_the_bracket_and_says_what_to_do(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    execution: ExecutionService,
    web: TestClient,
) -> None:
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    exchange = await venue(exchanges, me)
    answer = await post_alert(web, me, tp_pct="2", sl_pct="1")
    job = asyncio.create_task(execution.execute_alert(answer["id"]))

    async def entry_processed() -> bool:
        broadcasts = dydx_double.node.broadcasts
        return bool(broadcasts) and broadcasts[0].processed

    await until(entry_processed)
    # The stop-loss (placed first) hits the equity tier's open-order limit (clob 10001).
    dydx_double.node.reject_next(1, code=10001, log="open stateful order limit exceeded")
    await job
    bracket = await _bracket(live_sessionmaker, me.user_id)
    assert bracket.state is BracketState.FAILED
    assert bracket.failure_reason
    (text,) = await _protection_texts(live_sessionmaker, me.user_id)
    assert "Protection failed" in text
    assert bracket.failure_reason in text
    assert "/close ETH-USD" in text
    # Nothing was placed after the refused stop-loss, so no leg is left behind; the
    # position is unprotected, and the trader was told so with what to do.
    assert await protection(exchange) == (Decimal("0.1"), Decimal(0), 0)
    async with live_sessionmaker() as session:
        legs = (await session.scalars(select(Order).where(Order.bracket_id == bracket.id))).all()
    assert [(leg.purpose, leg.state) for leg in legs] == [
        (OrderPurpose.STOP_LOSS, OrderState.REJECTED)
    ]
    await execution.protection.advance_due()  # a final bracket is left alone
    assert (await _bracket(live_sessionmaker, me.user_id)).version == bracket.version


async def _legs(maker: Maker, bracket_id: int) -> list[Order]:
    async with maker() as session:
        rows = await session.scalars(
            select(Order).where(Order.bracket_id == bracket_id).order_by(Order.id)
        )
        return list(rows.all())


async def test_legs_are_renewed_within_the_margin_of_their_expiry_and_not_before(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    execution: ExecutionService,
    web: TestClient,
) -> None:
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    exchange = await venue(exchanges, me)
    hot = ExecutionRepository(settings.database_url.get_secret_value())
    # Legs placed to rest 60 s, renewed in their last 20 s.
    minute = ExecutionService(
        live_sessionmaker,
        exchanges,
        hot,
        max_lag=timedelta(seconds=60),
        settle_timeout=1.0,
        leg_lifetime=LegLifetime.of_seconds(60, 20),
    )
    try:
        answer = await post_alert(web, me, tp_pct="2", sl_pct="1")
        await minute.execute_alert(answer["id"])

        async def protected() -> bool:
            await minute.protection.advance_due()
            return await holds(exchange, Decimal("0.1"), 2) and (
                (await _bracket(live_sessionmaker, me.user_id)).state is BracketState.RESTING
            )

        await until(protected, within=30)
        bracket = await _bracket(live_sessionmaker, me.user_id)
        first = await _legs(live_sessionmaker, bracket.id)
        assert bracket.generation == 1
        for leg in first:
            assert leg.good_til_block_time is not None
            assert abs(leg.good_til_block_time - leg.created_at - timedelta(seconds=60)) < (
                timedelta(seconds=2)
            )
        # A resting bracket is looked at again well within the 20 s margin.
        assert bracket.next_check_at is not None
        assert bracket.next_check_at - datetime.now(UTC) <= timedelta(seconds=10)

        # 40 s or more from expiry: outside the margin, nothing is placed.
        await minute.protection.advance(bracket.id)
        assert [leg.id for leg in await _legs(live_sessionmaker, bracket.id)] == [
            leg.id for leg in first
        ]
        assert (await _bracket(live_sessionmaker, me.user_id)).generation == 1

        # The same legs seen with a margin of 100 s: within it, so renewed (new before old)
        # for the service's own lifetime.
        renewing = ExecutionService(
            live_sessionmaker,
            exchanges,
            hot,
            max_lag=timedelta(seconds=60),
            settle_timeout=1.0,
            leg_lifetime=LegLifetime.of_seconds(600, 100),
        )

        async def renewed() -> bool:
            await renewing.protection.advance(bracket.id)
            row = await _bracket(live_sessionmaker, me.user_id)
            return row.generation == 2 and row.state is BracketState.RESTING

        await until(renewed, within=30)
        await until(lambda: holds(exchange, Decimal("0.1"), 2), within=10)
        await assert_invariant(exchange)
        legs = await _legs(live_sessionmaker, bracket.id)
        old = [leg for leg in legs if leg.generation == 1]
        new = [leg for leg in legs if leg.generation == 2]
        assert {(leg.state, leg.error) for leg in old} == {(OrderState.CANCELED, texts.LEG_RENEWED)}
        assert sorted((leg.purpose, leg.size, leg.trigger_price) for leg in new) == sorted(
            (leg.purpose, leg.size, leg.trigger_price) for leg in old
        )
        for leg in new:
            assert leg.good_til_block_time is not None
            assert leg.good_til_block_time - leg.created_at > timedelta(seconds=590)
        # Once renewed, not again: 600 s away is outside the 100 s margin.
        await renewing.protection.advance(bracket.id)
        assert (await _bracket(live_sessionmaker, me.user_id)).generation == 2
        # Protection did not change: the trader heard "Protected" once, at the placement.
        (text,) = await _protection_texts(live_sessionmaker, me.user_id)
        assert "Protected" in text
    finally:
        await hot.close()
