"""/positions, /orders, /close and /panic through the real aiogram bot, the Telegram double and
the dYdX double (real signing with the trader's API key), live and in paper mode.

The bot runs without ``ENCRYPTION_KEYS`` (``polling_bot``): it reads the venue, and /close and
/panic are done by the worker, whose outcome reaches the chat through the outbox."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from aiogram import Dispatcher
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.models import User
from core.domain.preferences import Preferences
from core.domain.states import OrderSide
from core.exchange.factory import create_exchange_provider, create_key_verifier
from core.exchange.orders import OrderKind, OrderRequest, TimeInForce
from core.exchange.port import Exchange
from core.exchange.provider import ExchangeProvider
from core.runtime.config import Settings
from core.services.credentials import CredentialService
from doubles.dydx.accounts import FundedTrader
from doubles.dydx.double import DydxDouble
from doubles.telegram import ChatMessage, TelegramDouble
from doubles.telegram import state as telegram_state
from doubles.telegram.actors import SimulatedUser
from tests.conftest import polling_bot
from tests.e2e.test_bot_key import onboarded

Maker = async_sessionmaker[AsyncSession]


@pytest.fixture
async def running_bot(
    settings: Settings, live_sessionmaker: Maker, dispatcher: Dispatcher, worker: None
) -> AsyncIterator[None]:
    assert settings.has_keyring  # the worker's; polling_bot gives the bot none
    async with polling_bot(settings, live_sessionmaker, dispatcher) as (_, services):
        assert not services["exchanges"].can_sign
        yield


def _text(message: ChatMessage) -> str:
    return message.text or ""


async def _ask(user: SimulatedUser, text: str) -> str:
    await user.send(text)
    return _text(await user.next_message(10))


async def _user_id(maker: Maker, telegram_id: int) -> int:
    async with maker() as session:
        user = await session.scalar(select(User).where(User.telegram_id == telegram_id))
    assert user is not None
    return user.id


async def _with_key(
    maker: Maker, settings: Settings, chat: SimulatedUser, trader: FundedTrader
) -> int:
    """Store the trader's API key for the chat's user (what /key does, tested elsewhere)."""
    user_id = await _user_id(maker, chat.id)
    credentials = CredentialService(
        maker,
        settings.keyring,
        create_key_verifier(settings.dydx),
    )
    try:
        await credentials.add_key(user_id, trader.owner_address, trader.api_private_key_hex)
    finally:
        await credentials.close()
    return user_id


async def _exchange(
    maker: Maker, settings: Settings, user_id: int, *, paper: bool = False
) -> tuple[ExchangeProvider, Exchange]:
    provider = create_exchange_provider(maker, settings)
    prefs = Preferences(paper=paper)
    return provider, await provider.for_user(user_id, prefs)


async def _open_position(exchange: Exchange, size: str, client_id: int) -> None:
    """A market buy of ``size`` ETH (fills at the oracle on both venues)."""
    height = await exchange.block_height()
    await exchange.place_order(
        OrderRequest(
            market="ETH-USD",
            side=OrderSide.BUY,
            size=Decimal(size),
            kind=OrderKind.MARKET,
            price=Decimal(3100),
            client_id=client_id,
            time_in_force=TimeInForce.IOC,
            good_til_block=exchange.capabilities.short_term_good_til_block(height),
        )
    )


async def _rest_limit(exchange: Exchange, client_id: int) -> None:
    """A long-term limit buy far below the oracle: it rests on the book."""
    await exchange.place_order(
        OrderRequest(
            market="ETH-USD",
            side=OrderSide.BUY,
            size=Decimal("0.1"),
            kind=OrderKind.LIMIT,
            price=Decimal(2000),
            client_id=client_id,
            good_til_block_time=datetime.now(UTC) + timedelta(days=1),
        )
    )


async def _until(predicate: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait for the Indexer double to show what the node did."""
    deadline = time.monotonic() + 10
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"never saw {what}")
        await asyncio.sleep(0.1)


@pytest.mark.usefixtures("running_bot")
async def test_positions_orders_and_close_live(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    funded_trader: FundedTrader,
    dydx_double: DydxDouble,
) -> None:
    chat = await onboarded(telegram_double, "Pat")
    user_id = await _with_key(live_sessionmaker, settings, chat, funded_trader)

    empty = await _ask(chat, "/positions")
    assert "Positions (💸 LIVE)" in empty
    assert "No open positions." in empty
    assert "Equity $10,000.00 · free collateral $10,000.00" in empty
    assert "No open orders." in await _ask(chat, "/orders")

    provider, exchange = await _exchange(live_sessionmaker, settings, user_id)
    try:
        await _open_position(exchange, "0.2", client_id=900_001)
        await _rest_limit(exchange, client_id=900_002)

        async def settled() -> bool:
            return bool(await exchange.positions()) and bool(await exchange.open_orders())

        await _until(settled, "the position and the resting order")
    finally:
        await provider.close()

    shown = await _ask(chat, "/positions")
    assert "ETH-USD LONG 0.2 @ $3,000.00" in shown, shown
    assert "/close MARKET closes one position" in shown
    listed = await _ask(chat, "/orders")
    assert "ETH-USD BUY limit 0.1 @ $2,000.00" in listed, listed

    assert "Send /close and a market" in await _ask(chat, "/close")
    assert "is not a market like ETH-USD" in await _ask(chat, "/close ???")
    assert "Closing your ETH-USD position" in await _ask(chat, "/close eth")
    result = _text(await chat.next_message(15))
    assert result.startswith("✅ Closed: ETH-USD: sold 0.2 @ $3,000.00"), result

    await chat.send("/close ETH-USD")
    await chat.next_message()
    assert "You have no open ETH-USD position" in _text(await chat.next_message(15))


@pytest.mark.usefixtures("running_bot")
async def test_without_a_key_the_commands_say_what_to_do(
    telegram_double: TelegramDouble,
) -> None:
    chat = await onboarded(telegram_double, "Kim")
    for command in ("/positions", "/orders"):
        answer = await _ask(chat, command)
        assert "add your dYdX API trading key with /key first" in answer, answer


@pytest.mark.usefixtures("running_bot")
async def test_panic_asks_then_cancels_closes_and_pauses(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    funded_trader: FundedTrader,
    dydx_double: DydxDouble,
) -> None:
    chat = await onboarded(telegram_double, "Max")
    user_id = await _with_key(live_sessionmaker, settings, chat, funded_trader)
    provider, exchange = await _exchange(live_sessionmaker, settings, user_id)
    try:
        await _open_position(exchange, "0.3", client_id=900_011)
        await _rest_limit(exchange, client_id=900_012)

        async def settled() -> bool:
            return bool(await exchange.positions()) and bool(await exchange.open_orders())

        await _until(settled, "the position and the resting order")

        # Cancelling does nothing.
        await chat.send("/panic")
        question = await chat.next_message()
        assert "Close everything?" in _text(question)
        assert [b.text for b in question.buttons] == [
            "🛑 Yes, close everything now",
            "No, keep everything",
        ]
        await chat.press(question, text="No, keep everything")
        await chat.wait_edited(question)
        assert "Nothing was done" in _text(question)
        assert question.buttons == []

        # A question replaced by a newer /panic is stale.
        await chat.send("/panic")
        older = await chat.next_message()
        await chat.send("/panic")
        newer = await chat.next_message()
        stale = await chat.press(older, text="🛑 Yes, close everything now")
        assert stale is not None
        assert "expired; nothing was done" in (stale.text or "")
        assert bool(await exchange.positions())

        await chat.press(newer, text="🛑 Yes, close everything now")
        await chat.wait_edited(newer)
        assert "closing every position" in _text(newer)
        report = _text(await chat.next_message(20))
        assert "Panic done (💸 LIVE)" in report, report
        assert "Trading is paused" in report
        assert "Cancelled 1 open order." in report
        assert "ETH-USD: sold 0.3 @ $3,000.00, closed" in report

        async with live_sessionmaker() as session:
            user = await session.get(User, user_id)
            assert user is not None
            assert user.paused

        async def flat() -> bool:
            return not await exchange.positions() and not await exchange.open_orders()

        await _until(flat, "a flat account")
    finally:
        await provider.close()

    # The question answered loses its buttons: it cannot be used twice.
    assert newer.buttons == []


@pytest.mark.usefixtures("running_bot")
async def test_a_panic_confirmation_expires(
    telegram_double: TelegramDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = await onboarded(telegram_double, "Eve")
    # The double stamps the question two minutes in the past.
    monkeypatch.setattr(telegram_state, "now", lambda: int(time.time()) - 120)
    await chat.send("/panic")
    question = await chat.next_message()
    monkeypatch.undo()
    answer = await chat.press(question, text="🛑 Yes, close everything now")
    assert answer is not None
    assert answer.show_alert
    assert "expired; nothing was done" in (answer.text or "")
    await chat.wait_edited(question)
    assert question.buttons == []
    assert "expired" in _text(question)


@pytest.mark.usefixtures("running_bot")
async def test_paper_mode_positions_and_close(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
) -> None:
    chat = await onboarded(telegram_double, "Pip")
    user_id = await _user_id(live_sessionmaker, chat.id)
    async with live_sessionmaker() as session:
        user = await session.get(User, user_id)
        assert user is not None
        user.settings = Preferences(paper=True).to_json()
        await session.commit()
    provider, exchange = await _exchange(live_sessionmaker, settings, user_id, paper=True)
    try:
        await _open_position(exchange, "0.5", client_id=900_021)
    finally:
        await provider.close()

    shown = await _ask(chat, "/positions")
    assert "Positions (📝 PAPER)" in shown
    assert "ETH-USD LONG 0.5 @ $3,001.50" in shown, shown
    await chat.send("/close ETH-USD")
    await chat.next_message()
    closed = _text(await chat.next_message(15))
    assert closed.startswith("✅ Closed (paper): ETH-USD: sold 0.5"), closed
    assert dydx_double.node.broadcasts == []
