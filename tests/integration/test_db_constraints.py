"""Every unique constraint of the ledger rejects a duplicate at the database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.base import Base
from core.db.models import (
    Alert,
    Credential,
    Fill,
    Notification,
    Order,
    Position,
    SubaccountCounter,
    User,
    Wallet,
    WalletLinkRequest,
    Webhook,
)
from core.domain.states import AlertState, OrderPurpose, OrderSide, OrderState

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
OWNER = "dydx1owner000000000000000000000000000000"


async def _user(session: AsyncSession, telegram_id: int = 1) -> User:
    user = User(telegram_id=telegram_id)
    session.add(user)
    await session.flush()
    return user


def _alert(user_id: int, **kw: Any) -> Alert:
    values: dict[str, Any] = {"body_hash": "0" * 64, "state": AlertState.ACCEPTED}
    values.update(kw)
    return Alert(user_id=user_id, **values)


def _order(user_id: int, **kw: Any) -> Order:
    values: dict[str, Any] = {
        "user_id": user_id,
        "purpose": OrderPurpose.ENTRY,
        "market": "BTC-USD",
        "owner_address": OWNER,
        "subaccount_number": 0,
        "client_id": 1,
        "order_flags": 0,
        "side": OrderSide.BUY,
        "order_type": "MARKET",
        "size": Decimal("0.01"),
        "time_in_force": "IOC",
        "state": OrderState.SUBMITTING,
    }
    values.update(kw)
    return Order(**values)


def _credential(user_id: int, **kw: Any) -> Credential:
    values: dict[str, Any] = {
        "user_id": user_id,
        "owner_address": OWNER,
        "key_address": "dydx1key",
        "authenticator_id": 1,
        "key_id": "k1",
        "ciphertext": b"x",
    }
    values.update(kw)
    return Credential(**values)


Factory = Callable[[int, int], list[Base]]

CASES: dict[str, Factory] = {
    "users.telegram_id": lambda a, b: [User(telegram_id=999), User(telegram_id=999)],
    "wallets.user_id": lambda a, b: [
        Wallet(user_id=a, address="0x" + "a" * 40, chain_id=1),
        Wallet(user_id=a, address="0x" + "b" * 40, chain_id=1),
    ],
    "wallets.address": lambda a, b: [
        Wallet(user_id=a, address="0x" + "a" * 40, chain_id=1),
        Wallet(user_id=b, address="0x" + "a" * 40, chain_id=1),
    ],
    "wallet_link_requests.token_hash": lambda a, b: [
        WalletLinkRequest(user_id=a, token_hash="h", expires_at=NOW),
        WalletLinkRequest(user_id=b, token_hash="h", expires_at=NOW),
    ],
    "wallet_link_requests.nonce": lambda a, b: [
        WalletLinkRequest(user_id=a, token_hash="h1", nonce="n", expires_at=NOW),
        WalletLinkRequest(user_id=a, token_hash="h2", nonce="n", expires_at=NOW),
    ],
    "credentials.user_id": lambda a, b: [
        _credential(a, owner_address="dydx1a"),
        _credential(a, owner_address="dydx1b"),
    ],
    "credentials.owner_subaccount": lambda a, b: [_credential(a), _credential(b)],
    "webhooks.token_hash": lambda a, b: [
        Webhook(user_id=a, token_hash="t", passphrase_hash="p"),
        Webhook(user_id=b, token_hash="t", passphrase_hash="p"),
    ],
    "webhooks.one_active_per_user": lambda a, b: [
        Webhook(user_id=a, token_hash="t1", passphrase_hash="p"),
        Webhook(user_id=a, token_hash="t2", passphrase_hash="p"),
    ],
    "alerts.user_dedupe_key": lambda a, b: [
        _alert(a, dedupe_key="id:1"),
        _alert(a, dedupe_key="id:1"),
    ],
    "orders.owner_subaccount_client_id": lambda a, b: [
        _order(a, client_id=7),
        _order(b, client_id=7),
    ],
    "positions.user_paper_market": lambda a, b: [
        Position(user_id=a, market="ETH-USD"),
        Position(user_id=a, market="ETH-USD"),
    ],
    "fills.user_exchange_fill_id": lambda a, b: [
        Fill(
            user_id=a,
            exchange_fill_id="f1",
            market="BTC-USD",
            side=OrderSide.BUY,
            size=Decimal(1),
            price=Decimal(1),
            filled_at=NOW,
        ),
        Fill(
            user_id=a,
            exchange_fill_id="f1",
            market="BTC-USD",
            side=OrderSide.BUY,
            size=Decimal(1),
            price=Decimal(1),
            filled_at=NOW,
        ),
    ],
    "notifications.dedupe_key": lambda a, b: [
        Notification(chat_id=1, kind="fill", text="a", dedupe_key="k"),
        Notification(chat_id=2, kind="fill", text="b", dedupe_key="k"),
    ],
    "subaccount_counters.pk": lambda a, b: [
        SubaccountCounter(owner_address=OWNER, subaccount_number=0),
        SubaccountCounter(owner_address=OWNER, subaccount_number=0),
    ],
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_unique_constraint_rejects_duplicate(
    sessionmaker: async_sessionmaker[AsyncSession], case: str
) -> None:
    async with sessionmaker() as session:
        a, b = await _user(session, 1), await _user(session, 2)
        first, second = CASES[case](a.id, b.id)
        session.add(first)
        await session.flush()
        session.expunge(first)  # the database, not the identity map, must refuse it
        session.add(second)
        with pytest.raises(IntegrityError) as info:
            await session.flush()
        assert "duplicate key" in str(info.value) or "unique" in str(info.value).lower()


async def test_one_order_per_alert_and_purpose(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session:
        user = await _user(session)
        alert = _alert(user.id, dedupe_key="x")
        session.add(alert)
        await session.flush()
        session.add(_order(user.id, alert_id=alert.id, client_id=1))
        await session.flush()
        # a take-profit for the same alert is fine...
        session.add(
            _order(user.id, alert_id=alert.id, client_id=2, purpose=OrderPurpose.TAKE_PROFIT)
        )
        await session.flush()
        # ...a second entry is not
        session.add(_order(user.id, alert_id=alert.id, client_id=3))
        with pytest.raises(IntegrityError, match="uq_orders_alert_id_purpose"):
            await session.flush()


async def test_rotated_webhook_frees_the_active_slot(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session:
        user = await _user(session)
        old = Webhook(user_id=user.id, token_hash="t1", passphrase_hash="p")
        session.add(old)
        await session.flush()
        old.rotated_at = NOW
        session.add(Webhook(user_id=user.id, token_hash="t2", passphrase_hash="p"))
        await session.flush()


async def test_rejected_alerts_without_dedupe_key_do_not_collide(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session:
        user = await _user(session)
        session.add_all(
            [
                _alert(user.id, state=AlertState.REJECTED, reason="stale"),
                _alert(user.id, state=AlertState.REJECTED, reason="stale"),
            ]
        )
        await session.flush()


@pytest.mark.parametrize(
    ("factory", "constraint"),
    [
        (lambda uid: _order(uid, size=Decimal(0)), "ck_orders_size_positive"),
        (
            lambda uid: Wallet(user_id=uid, address="0x" + "A" * 40, chain_id=1),
            "ck_wallets_address_lowercase",
        ),
        (
            lambda uid: SubaccountCounter(
                owner_address=OWNER, subaccount_number=0, next_client_id=2**32 + 1
            ),
            "ck_subaccount_counters_client_id_range",
        ),
    ],
)
async def test_check_constraints(
    sessionmaker: async_sessionmaker[AsyncSession],
    factory: Callable[[int], Base],
    constraint: str,
) -> None:
    async with sessionmaker() as session:
        user = await _user(session)
        session.add(factory(user.id))
        with pytest.raises(IntegrityError, match=constraint):
            await session.flush()


async def test_money_is_decimal_and_time_is_utc(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session:
        user = await _user(session)
        order = _order(user.id, size=Decimal("0.000123456789012345"))
        session.add(order)
        await session.flush()
        await session.refresh(order)  # values as read back from PostgreSQL
        loaded = order
        assert loaded.size == Decimal("0.000123456789012345")
        assert isinstance(loaded.size, Decimal)
        assert loaded.created_at.tzinfo is not None
        assert loaded.created_at.utcoffset() == timedelta(0)
