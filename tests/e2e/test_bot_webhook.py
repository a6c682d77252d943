"""/webhook through the Telegram double, end to end with the real web server.

The bot issues the webhook; the URL and passphrase read from its message are used to post
alerts to the web app; /webhook then lists them; rotation and revocation stop the old URL.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiogram import Dispatcher
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.models import AuditLog, Notification, Webhook
from core.runtime.config import Settings
from core.security.crypto import token_hash
from core.texts.common import COMMANDS
from doubles.telegram import TelegramDouble
from tests.conftest import polling_bot
from tests.e2e.test_bot_key import onboarded
from tests.integration.test_intake import start, timenow

Maker = async_sessionmaker[AsyncSession]
BASE_URL = "https://tv2dydx.example.com"


@pytest.fixture
async def settings(
    make_settings: Callable[..., Settings], telegram_env: dict[str, str]
) -> Settings:
    return make_settings(**telegram_env, public_base_url=BASE_URL, webhook_ip_allowlist="*")


@pytest.fixture
async def running_bot(
    settings: Settings, live_sessionmaker: Maker, dispatcher: Dispatcher
) -> AsyncIterator[None]:
    async with polling_bot(settings, live_sessionmaker, dispatcher):
        yield


@pytest.fixture
async def web(settings: Settings, live_sessionmaker: Maker) -> AsyncIterator[TestClient]:
    client = await start(settings)
    yield client
    await client.close()


def secrets_in(text: str) -> tuple[str, str, dict[str, Any]]:
    """The URL path, passphrase and alert message a /webhook answer shows."""
    url = re.search(r"https://tv2dydx\.example\.com(/hook/[A-Za-z0-9_-]{32})", text)
    passphrase = re.search(r"Passphrase:\n(\S+)", text)
    message = re.search(r"(\{\n.*?\n\})", text, re.DOTALL)
    assert url, text
    assert passphrase, text
    assert message, text
    return url.group(1), passphrase.group(1), json.loads(message.group(1))


def filled(template: dict[str, Any], **values: str) -> dict[str, Any]:
    """What TradingView sends for the template: placeholders replaced."""
    placeholders = {
        "{{ticker}}": "BTCUSDT.P",
        "{{strategy.order.action}}": "buy",
        "{{strategy.market_position}}": "long",
        "{{strategy.order.contracts}}": "0.002",
        "{{close}}": "64000.5",
        "{{timenow}}": timenow(),
        "{{strategy.order.id}}": "Long",
    }
    body = {}
    for key, value in template.items():
        for placeholder, real in placeholders.items():
            value = value.replace(placeholder, real)
        body[key] = value
    body.update(values)
    return body


def test_webhook_is_in_the_command_menu() -> None:
    assert "webhook" in [command for command, _ in COMMANDS]


@pytest.mark.usefixtures("running_bot")
async def test_webhook_issue_alerts_rotate_and_revoke(
    telegram_double: TelegramDouble, web: TestClient, live_sessionmaker: Maker
) -> None:
    user = await onboarded(telegram_double, "Tess")

    await user.send("/webhook")
    shown = await user.next_message()
    text = shown.text or ""
    path, passphrase, template = secrets_in(text)
    assert "Set-up" in text
    assert [b.text for b in shown.buttons] == ["🔄 New URL and passphrase", "⛔ Revoke the webhook"]
    for placeholder in (
        "{{ticker}}",
        "{{strategy.order.action}}",
        "{{strategy.order.contracts}}",
        "{{strategy.market_position}}",
        "{{strategy.order.id}}",
        "{{timenow}}",
        "{{close}}",
    ):
        assert placeholder in json.dumps(template)
    assert template["passphrase"] == passphrase
    # Only hashes are stored.
    async with live_sessionmaker() as session:
        row = await session.scalar(select(Webhook))
    assert row is not None
    assert row.token_hash == token_hash(path.rsplit("/", 1)[1])
    assert row.passphrase_hash == token_hash(passphrase)

    # The pasted template works as TradingView fills it; a broken one is refused.
    accepted = await web.post(path, data=json.dumps(filled(template)))
    assert accepted.status == 200, await accepted.text()
    refused = await web.post(path, data=json.dumps(filled(template, action="hold")))
    assert refused.status == 422

    # /webhook again: no secrets, the latest alerts instead.
    await user.send("/webhook")
    status = await user.next_message()
    listing = status.text or ""
    assert passphrase not in listing
    assert "BTC-USD buy — accepted" in listing
    assert "hold — refused: invalid alert: action: must be one of buy, sell, close" in listing
    # The refusal was also sent to the chat, through the outbox.
    async with live_sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Notification)) == 1

    # Rotate: asked first, then new secrets; the old URL and passphrase stop at once.
    await user.press(status, text="🔄 New URL and passphrase")
    ask = await user.next_message()
    await user.press(ask, text="Yes, replace them now")
    await user.wait_edited(ask)
    new_path, new_passphrase, new_template = secrets_in(ask.text or "")
    assert (new_path, new_passphrase) != (path, passphrase)
    assert (await web.post(path, data=json.dumps(filled(template)))).status == 404
    old_pass = filled(new_template, passphrase=passphrase, alert_id="x")
    assert (await web.post(new_path, data=json.dumps(old_pass))).status == 401
    fresh = filled(new_template, alert_id="Long-2")
    assert (await web.post(new_path, data=json.dumps(fresh))).status == 200

    # Revoke: asked first; then the URL is gone.
    await user.press(ask, text="⛔ Revoke the webhook")
    confirm = await user.next_message()
    await user.press(confirm, text="Yes, revoke it now")
    await user.wait_edited(confirm)
    assert (confirm.text or "").startswith("Revoked")
    again = filled(new_template, alert_id="Long-3")
    assert (await web.post(new_path, data=json.dumps(again))).status == 404

    async with live_sessionmaker() as session:
        actions = list(await session.scalars(select(AuditLog.action).order_by(AuditLog.id)))
    assert [a for a in actions if a.startswith("webhook_")] == [
        "webhook_issued",
        "webhook_rotated",
        "webhook_revoked",
    ]


@pytest.mark.usefixtures("running_bot")
async def test_cancel_keeps_the_webhook(
    telegram_double: TelegramDouble, live_sessionmaker: Maker
) -> None:
    user = await onboarded(telegram_double, "Cole")
    await user.send("/webhook")
    shown = await user.next_message()
    await user.press(shown, text="⛔ Revoke the webhook")
    ask = await user.next_message()
    await user.press(ask, text="Cancel")
    await user.wait_edited(ask)
    assert ask.text == "Nothing changed: your webhook still works."
    async with live_sessionmaker() as session:
        live = await session.scalar(
            select(func.count()).select_from(Webhook).where(Webhook.revoked_at.is_(None))
        )
    assert live == 1
