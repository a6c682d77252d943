"""/positions shows each position's protection, and its buttons move the stop-loss and remove
the take-profit, through the real aiogram bot, the Telegram double, the web app, the worker
and the dYdX double (real signing)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from aiogram import Dispatcher
from aiohttp.test_utils import TestClient

from core.db.models import User
from core.domain.compliance import DECLARATION
from core.domain.states import OrderPurpose, OrderState
from core.exchange.provider import ExchangeProvider
from core.runtime.config import Settings
from doubles.dydx.double import DydxDouble
from doubles.telegram import TelegramDouble
from tests.conftest import polling_bot
from tests.e2e.test_protection import protected_entry
from tests.protection_checks import assert_invariant, holds, protection, until, venue
from tests.trading_stack import (
    Maker,
    Trader,
    add_trader,
    orders_of,
)


@pytest.fixture
async def running_bot(
    settings: Settings, live_sessionmaker: Maker, dispatcher: Dispatcher
) -> AsyncIterator[None]:
    async with polling_bot(settings, live_sessionmaker, dispatcher):
        yield


async def _trader(
    maker: Maker, settings: Settings, telegram: TelegramDouble, dydx: DydxDouble
) -> Trader:
    """A trader who accepted the declaration (the bot's gate; tested elsewhere)."""
    me = await add_trader(maker, settings, telegram, dydx)
    async with maker() as session, session.begin():
        user = await session.get(User, me.user_id)
        assert user is not None
        user.declaration_version = DECLARATION.version
        user.declaration_accepted_at = datetime.now(UTC)
    return me


async def _ask(me: Trader, text: str) -> str:
    await me.chat.send(text)
    return (await me.chat.next_message(45)).text or ""


async def _legs(maker: Maker, me: Trader, purpose: OrderPurpose) -> list[int]:
    return [
        order.client_id
        for order in await orders_of(maker, me.user_id)
        if order.purpose is purpose and order.state is OrderState.SUBMITTED
    ]


@pytest.mark.usefixtures("running_bot", "worker")
async def test_positions_shows_the_legs_and_the_stop_moves_new_before_old(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    web: TestClient,
) -> None:
    me = await _trader(live_sessionmaker, settings, telegram_double, dydx_double)
    exchange = await venue(exchanges, me)
    await protected_entry(live_sessionmaker, web, me, tp_pct="2", sl_pct="1")
    await until(lambda: holds(exchange, Decimal("0.1"), 2))
    await me.chat.next_message(45)  # "Protected"

    await me.chat.send("/positions")
    screen = await me.chat.wait_for(lambda m: "Positions" in (m.text or ""), 45)
    text = screen.text or ""
    assert "ETH-USD LONG 0.1 @ $3,000.00" in text, text
    assert "  • stop-loss $2,970.00 · 0.1 · resting" in text, text
    assert "  • take-profit $3,060.00 · 0.1 · resting" in text, text
    assert "unprotected" not in text
    assert [b.text for b in screen.buttons] == [
        "Move stop-loss · ETH-USD",
        "Remove take-profit · ETH-USD",
    ]

    (old_stop,) = await _legs(live_sessionmaker, me, OrderPurpose.STOP_LOSS)
    before = len(dydx_double.state.tx_log)
    await me.chat.press(screen, text="Move stop-loss · ETH-USD")
    assert "Send the new stop-loss for ETH-USD" in ((await me.chat.next_message(45)).text or "")
    # Invalid inputs: a short answer, nothing changes, the question stands.
    assert "is not a price" in await _ask(me, "soon")
    assert "must be below the ETH-USD price now" in await _ask(me, "3100")
    assert "not on this market's price grid" in await _ask(me, "2980.00001")
    assert len(dydx_double.state.tx_log) == before
    assert await _legs(live_sessionmaker, me, OrderPurpose.STOP_LOSS) == [old_stop]

    await me.chat.send("2980")
    moved = (await me.chat.wait_for(lambda m: "Stop-loss moved" in (m.text or ""), 45)).text
    assert "Your stop-loss now triggers at $2,980.00" in (moved or ""), moved

    async def replaced() -> bool:
        legs = await _legs(live_sessionmaker, me, OrderPurpose.STOP_LOSS)
        return len(legs) == 1 and legs[0] != old_stop

    await until(replaced)
    (new_stop,) = await _legs(live_sessionmaker, me, OrderPurpose.STOP_LOSS)
    assert new_stop != old_stop
    log = [(e.kind, e.key[2]) for e in dydx_double.state.tx_log[before:] if e.key and e.code == 0]
    assert log.index(("place_order", new_stop)) < log.index(("cancel_order", old_stop)), log
    await until(lambda: holds(exchange, Decimal("0.1"), 2))
    await assert_invariant(exchange)
    await me.chat.send("/positions")
    again = await me.chat.wait_for(lambda m: "$2,980.00 · 0.1" in (m.text or ""), 45)
    assert "  • stop-loss $2,980.00 · 0.1 · resting" in (again.text or ""), again.text


@pytest.mark.usefixtures("running_bot", "worker")
async def test_remove_take_profit_asks_then_cancels_only_it(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    web: TestClient,
) -> None:
    me = await _trader(live_sessionmaker, settings, telegram_double, dydx_double)
    exchange = await venue(exchanges, me)
    await protected_entry(live_sessionmaker, web, me, tp_pct="2", sl_pct="1")
    await until(lambda: holds(exchange, Decimal("0.1"), 2))
    await me.chat.next_message(45)

    await me.chat.send("/positions")
    screen = await me.chat.wait_for(lambda m: "Positions" in (m.text or ""), 45)
    await me.chat.press(screen, text="Remove take-profit · ETH-USD")
    question = await me.chat.next_message(45)
    assert "Remove the take-profit of your ETH-USD position?" in (question.text or "")
    await me.chat.press(question, text="No, keep it")
    await until(lambda: holds(exchange, Decimal("0.1"), 2))

    await me.chat.press(screen, text="Remove take-profit · ETH-USD")
    question = await me.chat.next_message(45)
    await me.chat.press(question, text="Yes, remove the take-profit")
    said = await me.chat.wait_for(lambda m: "take-profit removed" in (m.text or ""), 45)
    assert "Your stop-loss stays" in (said.text or "")
    await until(lambda: holds(exchange, Decimal("0.1"), 1))
    await assert_invariant(exchange)
    await me.chat.send("/positions")
    shown = (await me.chat.wait_for(lambda m: "Positions" in (m.text or ""), 45)).text or ""
    assert "take-profit" not in shown, shown
    assert "  • stop-loss $2,970.00 · 0.1 · resting" in shown, shown
    assert await _legs(live_sessionmaker, me, OrderPurpose.TAKE_PROFIT) == []


@pytest.mark.usefixtures("running_bot", "worker")
async def test_add_protection_to_an_unprotected_position_rests_its_legs(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    exchanges: ExchangeProvider,
    web: TestClient,
) -> None:
    me = await _trader(live_sessionmaker, settings, telegram_double, dydx_double)
    exchange = await venue(exchanges, me)
    await protected_entry(live_sessionmaker, web, me)  # no take-profit, no stop-loss

    async def unprotected() -> bool:
        return await protection(exchange) == (Decimal("0.1"), Decimal(0), 0)

    await until(unprotected)

    await me.chat.send("/positions")
    screen = await me.chat.wait_for(lambda m: "Positions" in (m.text or ""), 45)
    assert "⚠️ unprotected: no stop-loss is resting on this position" in (screen.text or "")
    assert [b.text for b in screen.buttons] == ["Add protection · ETH-USD"]

    before = len(dydx_double.state.tx_log)
    await me.chat.press(screen, text="Add protection · ETH-USD")
    assert "Send the stop-loss for your ETH-USD position" in (
        (await me.chat.next_message(45)).text or ""
    )
    assert "is not a price" in await _ask(me, "lower")
    assert "And a take-profit for ETH-USD?" in await _ask(me, "3100")
    # The market refuses a long's stop-loss above its price: asked again, nothing placed.
    refused = await _ask(me, "none")
    assert "stop-loss must be below the ETH-USD price now" in refused, refused
    assert "Send the stop-loss for your ETH-USD position" in refused
    assert len(dydx_double.state.tx_log) == before
    assert "And a take-profit for ETH-USD?" in await _ask(me, "1%")
    # Checked here, done by the worker (the bot cannot sign), confirmed by the protection.
    assert "Changing the protection of your ETH-USD position" in await _ask(me, "3090")
    await until(lambda: holds(exchange, Decimal("0.1"), 2))
    await assert_invariant(exchange)
    said = await me.chat.wait_for(lambda m: "Protected" in (m.text or ""), 45)
    assert "take-profit $3,090.00 and stop-loss $2,970.00 placed" in (said.text or "")
    await me.chat.send("/positions")
    again = await me.chat.wait_for(lambda m: "$2,970.00 · 0.1" in (m.text or ""), 45)
    assert "  • stop-loss $2,970.00 · 0.1 · resting" in (again.text or ""), again.text
    assert "  • take-profit $3,090.00 · 0.1 · resting" in (again.text or ""), again.text
    assert "unprotected" not in (again.text or "")
