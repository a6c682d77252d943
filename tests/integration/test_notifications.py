"""The notifications outbox, delivered through the real aiogram to the Telegram double."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import NamedTuple

import pytest
from aiogram import Bot
from aiogram.methods import Response
from aiogram.types import Message
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.adapters.telegram import TelegramSender, create_bot
from core.db.base import utcnow
from core.db.models import Notification
from core.db.repositories.execution import ExecutionRepository
from core.db.repositories.outbox import PlainOutbox
from core.db.uow import UnitOfWork
from core.domain.states import NotificationState
from core.runtime.config import Settings
from core.services.notifications import NotificationService, backoff
from core.services.priority import PlacementGate
from doubles.telegram import PNG_SIGNATURE, TelegramDouble

PNG = (
    PNG_SIGNATURE
    + bytes.fromhex("0000000d49484452000000010000000108060000001f15c489")
    + bytes.fromhex("0000000d4944415478da63f8cfc0f01f0005000201a0b1d3a2")
    + bytes.fromhex("0000000049454e44ae426082")
)


@pytest.fixture
async def bot(
    make_settings: Callable[..., Settings], telegram_env: dict[str, str]
) -> AsyncIterator[Bot]:
    bot = create_bot(make_settings(**telegram_env))
    yield bot
    await bot.session.close()


class Delivery(NamedTuple):
    """Sessions to look at the outbox with, and the service delivering it."""

    maker: async_sessionmaker[AsyncSession]
    service: Callable[..., NotificationService]


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[ExecutionRepository]:
    """The worker's plain asyncpg store (its pools open on first use)."""
    repository = ExecutionRepository(database_url)
    yield repository
    await repository.close()


@pytest.fixture(params=["unit of work", "plain asyncpg"])
def outbox(request: pytest.FixtureRequest, store: ExecutionRepository) -> Delivery:
    """The service with its statements through the unit of work (the bot, the web), or on
    the plain asyncpg pool (the worker): the same outcomes either way."""
    if request.param == "unit of work":
        maker = request.getfixturevalue("sessionmaker")
        return Delivery(maker, lambda **kw: NotificationService(maker, **kw))
    # Its own pool sees only committed rows: real transactions, tables emptied afterwards.
    live = request.getfixturevalue("live_sessionmaker")
    return Delivery(live, lambda **kw: NotificationService(live, outbox=PlainOutbox(store), **kw))


async def _enqueue(
    sessionmaker: async_sessionmaker[AsyncSession], chat_id: int, text: str, **kw: object
) -> bool:
    async with UnitOfWork(sessionmaker) as uow:
        added = await uow.notifications.enqueue(chat_id=chat_id, kind="test", text=text, **kw)  # type: ignore[arg-type]
        await uow.commit()
        return added


async def _states(sessionmaker: async_sessionmaker[AsyncSession]) -> list[Notification]:
    async with sessionmaker() as session:
        return list((await session.scalars(select(Notification).order_by(Notification.id))).all())


async def test_messages_and_photos_are_delivered_once(
    telegram_double: TelegramDouble, bot: Bot, outbox: Delivery
) -> None:
    user = telegram_double.user(first_name="Carol", started=True)
    assert await _enqueue(outbox.maker, user.chat_id, "Filled <b>BTC-USD</b>", dedupe_key="a")
    assert not await _enqueue(outbox.maker, user.chat_id, "Filled again", dedupe_key="a")
    assert await _enqueue(outbox.maker, user.chat_id, "P&amp;L chart", attachment=PNG)

    service = outbox.service()
    report = await service.deliver_due(TelegramSender(bot))
    assert (report.sent, report.retried, report.failed) == (2, 0, 0)
    text = await user.next_message()
    assert text.text == "Filled BTC-USD"
    photo = await user.next_message()
    assert photo.caption == "P&L chart"
    assert photo.photo_bytes is not None
    assert photo.photo_bytes.startswith(PNG_SIGNATURE)
    assert all(n.state == NotificationState.SENT for n in await _states(outbox.maker))
    assert (await service.deliver_due(TelegramSender(bot))).sent == 0


async def test_an_outage_is_retried_later_and_nothing_is_lost(
    telegram_double: TelegramDouble, bot: Bot, outbox: Delivery
) -> None:
    user = telegram_double.user(first_name="Dan", started=True)
    await _enqueue(outbox.maker, user.chat_id, "one")
    await _enqueue(outbox.maker, user.chat_id, "two")
    service = outbox.service()

    telegram_double.set_down(True)
    report = await service.deliver_due(TelegramSender(bot))
    assert (report.sent, report.retried) == (0, 1)
    first, _second = await _states(outbox.maker)
    assert first.state == NotificationState.PENDING
    assert first.attempts == 1
    assert first.next_attempt_at > utcnow()
    assert "unavailable" in (first.last_error or "")

    telegram_double.set_down(False)
    # Not due yet: nothing is sent before the back-off expires...
    later = await service.deliver_due(TelegramSender(bot))
    assert later.sent == 1  # "two" was never tried, so it is due now
    async with outbox.maker() as session:
        row = await session.get(Notification, first.id)
        assert row is not None
        row.next_attempt_at = utcnow() - timedelta(seconds=1)
        await session.commit()
    assert (await service.deliver_due(TelegramSender(bot))).sent == 1
    texts = sorted(m.text for m in user.bot_messages)
    assert texts == ["one", "two"]


async def test_flood_control_respects_retry_after(
    telegram_double: TelegramDouble, bot: Bot, outbox: Delivery
) -> None:
    user = telegram_double.user(first_name="Eve", started=True)
    await _enqueue(outbox.maker, user.chat_id, "hello")
    telegram_double.flood(1, retry_after=30)
    report = await outbox.service().deliver_due(TelegramSender(bot))
    assert report.retried == 1
    (row,) = await _states(outbox.maker)
    assert row.next_attempt_at - utcnow() > timedelta(seconds=25)


async def test_a_chat_that_cannot_receive_fails_permanently(
    telegram_double: TelegramDouble, bot: Bot, outbox: Delivery
) -> None:
    stranger = telegram_double.user(first_name="Never Started")  # never wrote to the bot
    ok = telegram_double.user(first_name="Frank", started=True)
    await _enqueue(outbox.maker, stranger.chat_id, "you cannot get this")
    await _enqueue(outbox.maker, ok.chat_id, "you can")
    report = await outbox.service().deliver_due(TelegramSender(bot))
    assert (report.sent, report.failed) == (1, 1)
    failed, sent = await _states(outbox.maker)
    assert failed.state == NotificationState.FAILED
    assert sent.state == NotificationState.SENT


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff(n).total_seconds() for n in (1, 2, 3)] == [1, 2, 4]
    assert backoff(30) == timedelta(seconds=30)


async def test_a_garbage_collection_does_not_make_the_next_send_rebuild_its_response_model(
    telegram_double: TelegramDouble, bot: Bot
) -> None:
    # pydantic caches Response[Message] weakly: unpinned, a collection drops it and the next
    # answer rebuilds it (milliseconds of CPU on the worker's event loop).
    user = telegram_double.user(first_name="Dan", started=True)
    await TelegramSender(bot).send(user.chat_id, "first", None)
    gc.collect()
    model = weakref.ref(Response[Message])
    gc.collect()
    assert model() is not None, "the response model was collected: it will be rebuilt"
    await TelegramSender(bot).send(user.chat_id, "second", None)
    assert (await user.next_message()).text == "first"
    assert (await user.next_message()).text == "second"


async def test_overlapping_drains_in_one_process_send_each_message_once(
    telegram_double: TelegramDouble, bot: Bot, outbox: Delivery
) -> None:
    user = telegram_double.user(first_name="Erin", started=True)
    for n in range(5):
        assert await _enqueue(outbox.maker, user.chat_id, f"Filled #{n}")
    service = outbox.service()
    sender = TelegramSender(bot)
    # Ten nudges at once (a burst of executed alerts): one drain sends, the others coalesce.
    reports = await asyncio.gather(*(service.deliver_due(sender) for _ in range(10)))
    assert sum(report.sent for report in reports) == 5
    texts = [(await user.next_message()).text for _ in range(5)]
    assert sorted(texts) == [f"Filled #{n}" for n in range(5)]
    assert all(n.state == NotificationState.SENT for n in await _states(outbox.maker))


async def test_a_background_drain_waits_for_alerts_being_placed(
    telegram_double: TelegramDouble, bot: Bot, outbox: Delivery
) -> None:
    user = telegram_double.user(first_name="Frank", started=True)
    gate = PlacementGate(max_yield=30.0)
    service = outbox.service(gate=gate)
    assert await _enqueue(outbox.maker, user.chat_id, "Filled ETH-USD")
    placing = gate.place()  # an alert of this process is being placed
    service.deliver_soon(TelegramSender(bot))
    await asyncio.sleep(0.3)
    assert [n.state for n in await _states(outbox.maker)] == [NotificationState.PENDING]
    placing.done()  # its order is on its way: the bookkeeping goes on
    assert (await user.next_message()).text == "Filled ETH-USD"
    await service.close()
    assert [n.state for n in await _states(outbox.maker)] == [NotificationState.SENT]


async def test_a_message_whose_sender_died_is_sent_once_its_lease_ends(
    telegram_double: TelegramDouble, bot: Bot, outbox: Delivery
) -> None:
    user = telegram_double.user(first_name="Grace", started=True)
    assert await _enqueue(outbox.maker, user.chat_id, "Filled SOL-USD")
    # A worker claims it and dies before sending: held for its lease, nobody else sends it.
    async with UnitOfWork(outbox.maker, autocommit=True) as uow:
        now = utcnow()
        [claimed] = await uow.notifications.claim_due(now, now + timedelta(seconds=0.5), 10)
        await uow.commit()
    service = outbox.service()
    assert (await service.deliver_due(TelegramSender(bot))).sent == 0
    await asyncio.sleep(0.6)  # the lease ends
    report = await service.deliver_due(TelegramSender(bot))
    assert (report.sent, report.failed) == (1, 0)
    assert (await user.next_message()).text == "Filled SOL-USD"
    [row] = await _states(outbox.maker)
    assert (row.id, row.state, row.attempts) == (claimed.id, NotificationState.SENT, 2)
