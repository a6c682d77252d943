"""/pause, /resume, /settings, /notify and /why through the real aiogram bot and the Telegram
double, with the real database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from aiogram import Bot, Dispatcher
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.adapters.telegram import TelegramSender
from core.db.models import Alert, AuditLog, Notification, Order, User
from core.domain.preferences import Preferences
from core.domain.states import AlertState, NotificationState, OrderPurpose, OrderSide, OrderState
from core.runtime.config import Settings
from core.services.notifications import NotificationService
from core.texts.common import COMMANDS, help_text
from doubles.telegram import ChatMessage, TelegramDouble
from doubles.telegram.actors import SimulatedUser
from tests.conftest import polling_bot
from tests.e2e.test_bot_key import onboarded

Maker = async_sessionmaker[AsyncSession]


@pytest.fixture
async def bot(
    make_settings: Callable[..., Settings],
    telegram_env: dict[str, str],
    live_sessionmaker: Maker,
    dispatcher: Dispatcher,
) -> AsyncIterator[Bot]:
    settings = make_settings(**telegram_env)
    async with polling_bot(settings, live_sessionmaker, dispatcher) as (running, _services):
        yield running


def _text(message: ChatMessage) -> str:
    return message.text or ""


async def _user_row(maker: Maker, telegram_id: int) -> User:
    async with maker() as session:
        user = await session.scalar(select(User).where(User.telegram_id == telegram_id))
    assert user is not None
    return user


async def _set_user(maker: Maker, telegram_id: int, **values: object) -> None:
    async with maker() as session:
        user = await session.scalar(select(User).where(User.telegram_id == telegram_id))
        assert user is not None
        for name, value in values.items():
            setattr(user, name, value)
        await session.commit()


async def _ask(user: SimulatedUser, text: str) -> str:
    await user.send(text)
    return _text(await user.next_message())


def test_commands_are_in_the_menu_and_the_help() -> None:
    names = [command for command, _ in COMMANDS]
    for command in ("settings", "pause", "resume", "why", "notify"):
        assert command in names
        assert f"/{command} — " in help_text()


@pytest.mark.usefixtures("bot")
async def test_pause_and_resume(telegram_double: TelegramDouble, live_sessionmaker: Maker) -> None:
    user = await onboarded(telegram_double, "Pia")

    paused = await _ask(user, "/pause")
    assert "Trading paused" in paused
    assert "still arrive and are recorded" in paused
    assert (await _user_row(live_sessionmaker, user.id)).paused
    assert "already paused" in await _ask(user, "/pause")

    resumed = await _ask(user, "/resume")
    assert "Trading resumed" in resumed
    assert "not replayed" in resumed
    assert not (await _user_row(live_sessionmaker, user.id)).paused
    assert "not paused" in await _ask(user, "/resume")

    async with live_sessionmaker() as session:
        actions = list(await session.scalars(select(AuditLog.action).order_by(AuditLog.id)))
    assert [a for a in actions if a.startswith("trading_")] == [
        "trading_paused",
        "trading_resumed",
    ]


@pytest.mark.usefixtures("bot")
async def test_resume_is_refused_while_blocked_and_warns_when_close_only(
    telegram_double: TelegramDouble, live_sessionmaker: Maker
) -> None:
    user = await onboarded(telegram_double, "Bo")
    await _ask(user, "/pause")
    await _set_user(live_sessionmaker, user.id, compliance_status="BLOCKED")

    refused = await _ask(user, "/resume")
    assert "can't resume trading" in refused
    assert "BLOCKED" in refused
    assert (await _user_row(live_sessionmaker, user.id)).paused

    await _set_user(live_sessionmaker, user.id, compliance_status="CLOSE_ONLY")
    resumed = await _ask(user, "/resume")
    assert "Trading resumed" in resumed
    assert "CLOSE_ONLY" in resumed
    assert "only orders that reduce or close" in resumed
    assert not (await _user_row(live_sessionmaker, user.id)).paused


async def _prefs(maker: Maker, telegram_id: int) -> Preferences:
    return Preferences.from_json((await _user_row(maker, telegram_id)).settings)


@pytest.mark.usefixtures("bot")
async def test_settings_presets_apply_in_place(
    telegram_double: TelegramDouble, live_sessionmaker: Maker
) -> None:
    user = await onboarded(telegram_double, "Sam")
    await user.send("/settings")
    screen = await user.next_message()
    text = _text(screen)
    for line in (
        "Mode: 💸 LIVE",
        "Default size: $50 per alert without a size",
        "Slippage: 1% from the oracle price",
        "Leverage cap: 5x",
        "Max notional: $5,000 per order",
        "Max open positions: 5",
        "Daily loss limit: no limit",
        "Allowed markets: all markets",
        "Timezone: UTC",
        "Notifications: this chat",
    ):
        assert line in text, line
    assert [b.text for b in screen.buttons][:2] == ["Default size", "Slippage"]

    # A preference's screen ticks the current value; a preset applies at once.
    await user.press(screen, text="Slippage")
    await user.wait_edited(screen)
    assert "Now: 1%" in _text(screen)
    assert "✅ 1%" in [b.text for b in screen.buttons]
    answer = await user.press(screen, text="0.5%")
    assert answer is not None
    assert answer.text == "Saved"
    await user.wait_edited(screen, 2)
    assert _text(screen).startswith("✅ Slippage: 0.5%")
    assert "Slippage: 0.5% from the oracle price" in _text(screen)
    assert (await _prefs(live_sessionmaker, user.id)).slippage_pct == Decimal("0.5")

    # Paper mode is labelled on both sides of the switch.
    await user.press(screen, text="Paper / live")
    await user.wait_edited(screen, 3)
    await user.press(screen, text="📝 Paper (simulated)")
    await user.wait_edited(screen, 4)
    assert "Mode: 📝 PAPER: orders are simulated, nothing is sent to dYdX" in _text(screen)
    assert (await _prefs(live_sessionmaker, user.id)).paper

    await user.press(screen, text="Daily loss limit")
    await user.wait_edited(screen, 5)
    await user.press(screen, text="$250")
    await user.wait_edited(screen, 6)
    assert "Daily loss limit: $250" in _text(screen)
    await user.press(screen, text="Daily loss limit")
    await user.wait_edited(screen, 7)
    await user.press(screen, text="« Back")
    await user.wait_edited(screen, 8)
    assert _text(screen).startswith("⚙️ Settings")
    await user.press(screen, text="Done")
    await user.wait_edited(screen, 9)
    assert screen.buttons == []


@pytest.mark.usefixtures("bot")
async def test_typed_values_are_validated_and_a_bad_one_changes_nothing(
    telegram_double: TelegramDouble, live_sessionmaker: Maker
) -> None:
    user = await onboarded(telegram_double, "Tia")
    await user.send("/settings")
    screens = [await user.next_message()]

    async def type_for(label: str) -> str:
        screen = screens[-1]
        edits = len(screen.edits)
        await user.press(screen, text=label)
        await user.wait_edited(screen, edits + 1)
        await user.press(screen, text="✏️ Type a value")
        return _text(await user.next_message())

    async def saved(value: str) -> str:
        await user.send(value)
        screen = await user.next_message()
        previous = screens[-1]
        screens.append(screen)
        # The screen the value was asked from lost its (now stale) buttons before the new one.
        assert previous.buttons == []
        assert screen.buttons[0].text == "Default size"
        return _text(screen)

    assert "largest order value in USD" in await type_for("Max notional")
    for bad, why in (
        ("lots", "Max notional: send a number"),
        ("0", "above 0 and at most 1,000,000 USD"),
        ("2,000,000", "above 0 and at most 1,000,000 USD"),
    ):
        refusal = await _ask(user, bad)
        assert why in refusal, refusal
        assert "Nothing changed" in refusal
    assert (await _prefs(live_sessionmaker, user.id)).max_notional_usd == Decimal(5000)
    assert (await saved("2.5k")).startswith("✅ Max notional: $2,500")
    assert (await _prefs(live_sessionmaker, user.id)).max_notional_usd == Decimal(2500)

    await type_for("Allowed markets")
    assert "not a market like BTC-USD" in await _ask(user, "btc, ???")
    assert "Allowed markets: BTC-USD, ETH-USD" in await saved("btc, ETHUSDT")
    assert (await _prefs(live_sessionmaker, user.id)).allowed_markets == ("BTC-USD", "ETH-USD")

    await type_for("Default size")
    assert "Default size: 2% of equity" in await saved("2%")

    await type_for("Timezone")
    assert "send a name like Europe/Berlin" in await _ask(user, "Mars/Olympus")
    assert "Timezone: Europe/Berlin" in await saved("europe/berlin")

    await type_for("Max positions")
    assert "whole number from 1 to 50" in await _ask(user, "2.5")
    assert "Kept your settings" in await _ask(user, "/cancel")
    # After /cancel a number is not taken as a setting any more.
    assert "didn't understand" in await _ask(user, "7")
    prefs = await _prefs(live_sessionmaker, user.id)
    assert prefs.max_open_positions == 5
    assert prefs.timezone == "Europe/Berlin"


@pytest.mark.usefixtures("bot")
async def test_notify_checks_the_channel_posts_a_test_and_can_be_undone(
    telegram_double: TelegramDouble, live_sessionmaker: Maker
) -> None:
    user = await onboarded(telegram_double, "Nia")
    someone = telegram_double.user(first_name="Other")

    assert "come to this chat" in await _ask(user, "/notify")
    assert "doesn't look like a channel" in await _ask(user, "/notify hello world")
    hidden = telegram_double.channel("Hidden", bot_status="left", owner=user)
    assert "can't see that channel" in await _ask(user, f"/notify {hidden.id}")
    telegram_double.channel("Public", "public_sig", bot_status="left", owner=user)
    assert "not an administrator of Public" in await _ask(user, "/notify @public_sig")
    mute = telegram_double.channel("Mute", "mute_sig", owner=user, can_post_messages=False)
    assert "may not post" in await _ask(user, "/notify https://t.me/mute_sig")
    foreign = telegram_double.channel("Foreign", "foreign_sig", owner=someone)
    refusal = await _ask(user, "/notify @foreign_sig")
    assert "Only the owner of Foreign" in refusal
    assert "still go where they did" in refusal
    assert (await _user_row(live_sessionmaker, user.id)).notify_chat_id is None
    assert not foreign.posts
    assert not mute.posts

    mine = telegram_double.channel("My signals", owner=user)
    done = await _ask(user, f"/notify {mine.id}")
    assert "now go to My signals" in done
    post = await mine.next_post()
    assert "will post trade notifications here" in _text(post)
    assert (await _user_row(live_sessionmaker, user.id)).notify_chat_id == mine.id
    assert "go to your channel" in await _ask(user, "/notify")

    assert "come to this chat again" in await _ask(user, "/notify off")
    assert (await _user_row(live_sessionmaker, user.id)).notify_chat_id is None
    assert "already come to this chat" in await _ask(user, "/notify off")


async def test_losing_the_channel_routes_notifications_back_and_says_so(
    telegram_double: TelegramDouble, live_sessionmaker: Maker, bot: Bot
) -> None:
    user = await onboarded(telegram_double, "Lou")
    channel = telegram_double.channel("Signals", owner=user)
    await _ask(user, f"/notify {channel.id}")
    assert (await _user_row(live_sessionmaker, user.id)).notify_chat_id == channel.id

    # A fill notice waiting in the outbox for the channel when the bot loses its rights.
    row = await _user_row(live_sessionmaker, user.id)
    async with live_sessionmaker() as session:
        session.add(
            Notification(user_id=row.id, chat_id=channel.id, kind="order_filled", text="Filled")
        )
        await session.commit()

    await channel.set_bot_status("administrator", can_post_messages=False)

    async def moved_back() -> bool:
        return (await _user_row(live_sessionmaker, user.id)).notify_chat_id is None

    for _ in range(50):
        if await moved_back():
            break
        await asyncio.sleep(0.05)
    assert await moved_back()
    # The notice goes through the outbox like every notification.
    report = await NotificationService(live_sessionmaker).deliver_due(TelegramSender(bot))
    assert report.sent == 2
    assert report.failed == 0
    assert _text(await user.next_message()) == "Filled"
    notice = _text(await user.next_message())
    assert "can no longer post in Signals" in notice
    assert "/notify" in notice
    assert not [post for post in channel.posts if post.text == "Filled"]


async def _alert_with_orders(maker: Maker, telegram_id: int, *, external_id: str) -> int:
    """An executed alert: a closing and an entry order, filled, and the fill notice sent."""
    user = await _user_row(maker, telegram_id)
    t0 = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)

    def at(ms: int) -> datetime:
        return t0 + timedelta(milliseconds=ms)

    async with maker() as session:
        alert = Alert(
            user_id=user.id,
            dedupe_key=f"id:{external_id}",
            external_id=external_id,
            body_hash="0" * 64,
            market="ETH-USD",
            action="sell",
            state=AlertState.EXECUTED,
            received_at=t0,
            enqueued_at=at(3),
            started_at=at(11),
            finished_at=at(400),
        )
        session.add(alert)
        await session.flush()
        orders = []
        for number, purpose in enumerate((OrderPurpose.CLOSE, OrderPurpose.ENTRY)):
            base = 20 + number * 100
            order = Order(
                user_id=user.id,
                alert_id=alert.id,
                purpose=purpose,
                market="ETH-USD",
                owner_address="dydx1test",
                subaccount_number=0,
                client_id=alert.id * 10 + number,
                order_flags=0,
                side=OrderSide.SELL,
                order_type="MARKET",
                size=Decimal("0.5"),
                time_in_force="IOC",
                state=OrderState.FILLED,
                filled_size=Decimal("0.5"),
                average_price=Decimal("3099.5"),
                signed_at=at(base),
                submitted_at=at(base + 4),
                accepted_at=at(base + 30),
                filled_at=at(base + 1250),
            )
            session.add(order)
            orders.append(order)
        await session.flush()
        session.add(
            Notification(
                user_id=user.id,
                chat_id=telegram_id,
                kind="order_filled",
                text="filled",
                dedupe_key=f"order:{orders[-1].id}:final",
                state=NotificationState.SENT,
                created_at=at(1400),
                sent_at=at(1500),
            )
        )
        await session.commit()
        return alert.id


@pytest.mark.usefixtures("bot")
async def test_why_shows_the_timeline_of_ones_own_alerts_only(
    telegram_double: TelegramDouble, live_sessionmaker: Maker
) -> None:
    user = await onboarded(telegram_double, "Wes")
    other = await onboarded(telegram_double, "Oz")
    alert_id = await _alert_with_orders(live_sessionmaker, user.id, external_id="Short-1")
    await _set_user(live_sessionmaker, user.id, settings={"timezone": "Asia/Tokyo"})

    assert "Send /why followed by" in await _ask(user, "/why")
    timeline = await _ask(user, f"/why {alert_id}")
    assert f"Alert #{alert_id} (alert_id Short-1)" in timeline
    assert "ETH-USD sell — executed" in timeline
    # Times in the user's timezone (UTC+9), latencies from the previous step and from receipt.
    assert "Received 2026-11-25 21:00:00 JST" in timeline
    lines = timeline.splitlines()

    def row(name: str) -> str:
        return next(line for line in lines if line.startswith(name))

    assert row("received").split() == ["received", "21:00:00.000"]
    assert row("queued").split() == ["queued", "21:00:00.003", "+3", "ms", "3", "ms"]
    assert row("picked up").split()[-4:] == ["+8", "ms", "11", "ms"]
    assert row("signed (close)").split()[-4:] == ["+9", "ms", "20", "ms"]
    assert row("filled (entry)").split()[-4:] == ["+1.22", "s", "1.37", "s"]
    assert row("notified").split()[-4:] == ["+130", "ms", "1.50", "s"]
    assert "entry: SELL 0.5 ETH-USD — filled, 0.5 @ $3,099.50" in timeline
    assert "Times in Asia/Tokyo" in timeline

    # By TradingView's alert_id too, and #12 works like 12.
    assert f"Alert #{alert_id}" in await _ask(user, "/why Short-1")
    assert f"Alert #{alert_id}" in await _ask(user, f"/why #{alert_id}")
    # Someone else's alert does not exist for them.
    assert "found no alert of yours" in await _ask(other, f"/why {alert_id}")
    assert "found no alert of yours" in await _ask(other, "/why Short-1")
    assert "found no alert of yours" in await _ask(user, "/why 999999999")


@pytest.mark.usefixtures("bot")
async def test_why_of_an_alert_still_waiting_shows_the_missing_steps(
    telegram_double: TelegramDouble, live_sessionmaker: Maker
) -> None:
    user = await onboarded(telegram_double, "Ida")
    row = await _user_row(live_sessionmaker, user.id)
    async with live_sessionmaker() as session:
        alert = Alert(
            user_id=row.id,
            dedupe_key="sha256:x",
            body_hash="1" * 64,
            market="BTC-USD",
            action="buy",
            state=AlertState.SKIPPED,
            reason="trading is paused",
            received_at=datetime.now(UTC),
        )
        session.add(alert)
        await session.commit()
    timeline = await _ask(user, f"/why {alert.id}")
    assert "BTC-USD buy — skipped" in timeline
    assert "Reason: trading is paused" in timeline
    lines = timeline.splitlines()
    for step in ("queued", "picked up", "signed", "broadcast", "accepted", "filled", "notified"):
        assert next(line for line in lines if line.startswith(step)).split()[-1] == "—"
