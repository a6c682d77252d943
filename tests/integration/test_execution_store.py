"""The execution hot path's repository against real PostgreSQL: an alert's load allocates the
client id its order will carry (one round trip less before the broadcast), and only when an
order may follow."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.models import Alert, Credential, Order, SubaccountCounter, User
from core.db.repositories.execution import ExecutionRepository
from core.domain.states import AlertState, OrderPurpose, OrderSide, OrderState

Maker = async_sessionmaker[AsyncSession]
OWNER = "dydx1owner000000000000000000000000000000"


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[ExecutionRepository]:
    repository = ExecutionRepository(database_url)
    yield repository
    await repository.close()


async def _trader(
    maker: Maker, *, key: bool = True, paused: bool = False, owner: str = OWNER
) -> int:
    async with maker() as session:
        user = User(telegram_id=secrets.randbelow(10**9), paused=paused)
        session.add(user)
        await session.flush()
        if key:
            session.add(
                Credential(
                    user_id=user.id,
                    owner_address=owner,
                    subaccount_number=0,
                    key_address="dydx1key",
                    authenticator_id=7,
                    key_id="x:test",
                    ciphertext=b"sealed",
                )
            )
        await session.commit()
        return user.id


async def _alert(maker: Maker, user_id: int, state: AlertState = AlertState.ACCEPTED) -> int:
    async with maker() as session:
        alert = Alert(
            user_id=user_id,
            body_hash=secrets.token_hex(32),
            market="ETH-USD",
            fields={"action": "buy", "market": "ETH-USD"},
            state=state,
        )
        session.add(alert)
        await session.commit()
        return alert.id


async def _counter(maker: Maker, owner: str = OWNER) -> int | None:
    async with maker() as session:
        return await session.scalar(
            select(SubaccountCounter.next_client_id).where(SubaccountCounter.owner_address == owner)
        )


async def test_an_open_alert_is_loaded_with_the_next_client_id_of_its_subaccount(
    live_sessionmaker: Maker, store: ExecutionRepository
) -> None:
    user_id = await _trader(live_sessionmaker)
    first = await store.load(await _alert(live_sessionmaker, user_id))
    second = await store.load(await _alert(live_sessionmaker, user_id))
    assert first is not None
    assert second is not None
    assert first.reserved_client_id == (OWNER, 0, 1)
    assert second.reserved_client_id == (OWNER, 0, 2)
    # An order placed outside an alert (a leg, a /close) takes the next one.
    assert await store.allocate_client_id(OWNER, 0) == 3
    assert await _counter(live_sessionmaker) == 4


async def test_a_burst_of_one_traders_alerts_gets_distinct_client_ids(
    live_sessionmaker: Maker, store: ExecutionRepository
) -> None:
    user_id = await _trader(live_sessionmaker)
    alert_ids = [await _alert(live_sessionmaker, user_id) for _ in range(10)]
    loaded = await asyncio.gather(*(store.load(alert_id) for alert_id in alert_ids))
    ids = [alert.client_id for alert in loaded if alert is not None]
    assert sorted(ids) == list(range(1, 11))


@pytest.mark.parametrize("case", ["no key", "paused", "already has an order", "finished"])
async def test_no_client_id_is_taken_when_no_order_can_follow(
    live_sessionmaker: Maker, store: ExecutionRepository, case: str
) -> None:
    user_id = await _trader(live_sessionmaker, key=case != "no key", paused=case == "paused")
    state = AlertState.EXECUTED if case == "finished" else AlertState.PROCESSING
    alert_id = await _alert(live_sessionmaker, user_id, state)
    if case == "already has an order":
        async with live_sessionmaker() as session:
            session.add(
                Order(
                    user_id=user_id,
                    alert_id=alert_id,
                    purpose=OrderPurpose.ENTRY,
                    market="ETH-USD",
                    owner_address=OWNER,
                    subaccount_number=0,
                    client_id=99,
                    order_flags=0,
                    side=OrderSide.BUY,
                    order_type="MARKET",
                    size=1,
                    time_in_force="IOC",
                    state=OrderState.SUBMITTING,
                )
            )
            await session.commit()
    loaded = await store.load(alert_id)
    assert loaded is not None
    assert loaded.client_id is None
    assert loaded.reserved_client_id is None
    assert await _counter(live_sessionmaker) is None


async def test_only_the_orders_insert_waits_for_the_disk(store: ExecutionRepository) -> None:
    # Commit-then-broadcast needs the order on disk before its bytes leave; an allocation
    # or a SUBMITTED mark a crash forgets is harmless (see ExecutionRepository).
    durable = await store._open()
    relaxed = await store._open(relaxed=True)
    assert await durable.fetchval("SHOW synchronous_commit") == "on"
    assert await relaxed.fetchval("SHOW synchronous_commit") == "off"
