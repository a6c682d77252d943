"""/delete_me: the service, and the conversation through the Telegram double."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import pytest
from aiogram import Dispatcher
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.base import Base, utcnow
from core.db.models import (
    Alert,
    AuditLog,
    Credential,
    Notification,
    Order,
    User,
    Wallet,
    WalletLinkRequest,
    Webhook,
)
from core.domain.states import AlertState, OrderPurpose, OrderSide, OrderState
from core.runtime.config import Settings
from core.services.account import AccountService
from doubles.telegram import TelegramDouble
from tests.conftest import polling_bot


async def _populate(session: AsyncSession, telegram_id: int) -> User:
    user = User(telegram_id=telegram_id, username="victor", declaration_version="v")
    session.add(user)
    await session.flush()
    session.add_all(
        [
            Credential(
                user_id=user.id,
                owner_address=f"dydx1o{telegram_id}",
                key_address="k",
                authenticator_id=1,
                key_id="k1",
                ciphertext=b"secret",
            ),
            Wallet(user_id=user.id, address="0x" + "c" * 40, chain_id=1),
            WalletLinkRequest(user_id=user.id, token_hash=f"t{telegram_id}", expires_at=utcnow()),
            Webhook(user_id=user.id, token_hash=f"w{telegram_id}", passphrase_hash="p"),
            Notification(user_id=user.id, chat_id=telegram_id, kind="k", text="t"),
        ]
    )
    alert = Alert(user_id=user.id, body_hash="0" * 64, state=AlertState.EXECUTED)
    session.add(alert)
    await session.flush()
    session.add(
        Order(
            user_id=user.id,
            alert_id=alert.id,
            purpose=OrderPurpose.ENTRY,
            market="BTC-USD",
            owner_address=f"dydx1o{telegram_id}",
            subaccount_number=0,
            client_id=1,
            order_flags=0,
            side=OrderSide.BUY,
            order_type="MARKET",
            size=Decimal("0.1"),
            time_in_force="IOC",
            state=OrderState.FILLED,
        )
    )
    await session.commit()
    return user


async def _count(session: AsyncSession, model: type[Base], user_id: int) -> int:
    column = model.user_id  # type: ignore[attr-defined]
    return int(await session.scalar(select(func.count()).where(column == user_id)) or 0)


async def test_delete_everything(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as session:
        user = await _populate(session, 501)
    await AccountService(sessionmaker).delete_me(user.id, keep_history=False)
    async with sessionmaker() as session:
        assert await session.get(User, user.id) is None
        for model in (Credential, Wallet, WalletLinkRequest, Webhook, Notification, Alert, Order):
            assert await _count(session, model, user.id) == 0
        entry = await session.scalar(select(AuditLog).where(AuditLog.action == "account_deleted"))
        assert entry is not None
        assert entry.user_id is None  # no link back to the erased person
        assert entry.details == {"keep_history": False}


async def test_delete_but_keep_history(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as session:
        user = await _populate(session, 502)
    await AccountService(sessionmaker).delete_me(user.id, keep_history=True)
    async with sessionmaker() as session:
        row = await session.get(User, user.id)
        assert row is not None
        await session.refresh(row)
        assert row.username is None
        assert row.declaration_version is None
        assert row.paused is True
        for model in (Credential, Wallet, WalletLinkRequest, Webhook, Notification):
            assert await _count(session, model, user.id) == 0
        assert await _count(session, Alert, user.id) == 1
        assert await _count(session, Order, user.id) == 1


@pytest.fixture
async def running_bot(
    make_settings: Callable[..., Settings],
    telegram_env: dict[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
    dispatcher: Dispatcher,
) -> AsyncIterator[None]:
    async with polling_bot(make_settings(**telegram_env), sessionmaker, dispatcher):
        yield


@pytest.mark.usefixtures("running_bot")
async def test_delete_me_conversation(
    telegram_double: TelegramDouble, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = telegram_double.user(first_name="Walter")
    await user.send("/delete_me")
    ask = await user.next_message()
    assert [b.text for b in ask.buttons] == [
        "Delete everything",
        "Delete, keep trade history",
        "Cancel",
    ]
    await user.press(ask, text="Cancel")
    await user.wait_edited(ask)
    assert ask.text == "Nothing was deleted."
    async with sessionmaker() as session:
        assert await session.scalar(select(User).where(User.telegram_id == user.id)) is not None

    await user.send("/delete_me")
    ask = await user.next_message()
    await user.press(ask, text="Delete everything")
    await user.wait_edited(ask)
    assert (ask.text or "").startswith("Done: everything is deleted.")
    assert ask.buttons == []
    async with sessionmaker() as session:
        assert await session.scalar(select(User).where(User.telegram_id == user.id)) is None
