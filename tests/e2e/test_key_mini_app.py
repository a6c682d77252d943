"""The API trading key through the Telegram Mini App form, end to end: the real bot (polling
the Telegram double), the real web app over https on a loopback port, a real worker sending
the outbox, the dYdX double checking the key, and headless Chromium filling the form.

The double's simulated user "opens" the ``web_app`` button as a Telegram client does: the
button's URL with ``#tgWebAppData=<initData signed with the bot token>``.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import pytest
from aiogram import Dispatcher
from aiohttp.test_utils import TestServer, unused_port
from playwright.async_api import Browser, Page, async_playwright
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.models import Credential, Notification
from core.db.uow import UnitOfWork
from core.runtime.config import Settings
from doubles.dydx.accounts import FundedTrader
from doubles.dydx.double import DydxDouble
from doubles.dydx.keys import new_key
from doubles.telegram import ChatMessage, TelegramDouble
from doubles.telegram.actors import SimulatedUser
from doubles.telegram.webapp import init_data_for, launch_url
from tests.conftest import polling_bot, without_keyring
from tests.miniapp import CHROMIUM, CHROMIUM_ARGS, PHONE, captured_json_logs, loopback_tls
from tests.trading_stack import running_worker
from webhook_server.app import create_app

Maker = async_sessionmaker[AsyncSession]


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    with captured_json_logs() as stdout:
        yield stdout


@pytest.fixture
async def stack(
    json_logs: io.StringIO,
    make_settings: Callable[..., Settings],
    telegram_env: dict[str, str],
    dydx_env: dict[str, str],
    live_sessionmaker: Maker,
    dispatcher: Dispatcher,
    redis: Any,
) -> AsyncIterator[Settings]:
    """Web (https, no keyring), bot (no keyring) and worker (the keyring), all running."""
    port = unused_port()
    settings = make_settings(
        public_base_url=f"https://127.0.0.1:{port}",
        **telegram_env,
        **dydx_env,
        link_rate_per_token=100_000,
        link_rate_per_ip=100_000,
    )
    server = TestServer(create_app(without_keyring(settings)), host="127.0.0.1", port=port)
    await server.start_server(ssl=loopback_tls())
    try:
        async with (
            running_worker(settings),
            polling_bot(settings, live_sessionmaker, dispatcher),
        ):
            yield settings
    finally:
        await server.close()


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's Chromium (never a downloaded browser); missing, the test fails loudly."""
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install chromium"
    return CHROMIUM


@pytest.fixture(scope="module")
async def browser(chromium: str) -> AsyncIterator[Browser]:
    """One headless Chromium for the module's tests (a context per test)."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium, args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        await browser.close()


async def onboarded(telegram_double: TelegramDouble, name: str) -> SimulatedUser:
    user = telegram_double.user(first_name=name)
    await user.send("/start")
    await user.next_message()
    declaration = await user.next_message()
    await user.press(declaration, text="I confirm")
    await user.next_message()  # "Thank you, noted."
    return user


async def key_offer(user: SimulatedUser) -> ChatMessage:
    await user.send("/key")
    return await user.wait_for(lambda m: any(b.kind == "web_app" for b in m.buttons))


class Form:
    """The key form open in a phone-sized Chromium page."""

    def __init__(self, page: Page, errors: list[str], requested: list[str]) -> None:
        self.page, self.errors, self.requested = page, errors, requested

    @classmethod
    async def open(cls, browser: Browser, url: str) -> Form:
        context = await browser.new_context(
            viewport=PHONE, is_mobile=True, has_touch=True, ignore_https_errors=True
        )
        page = await context.new_page()
        errors: list[str] = []
        requested: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("request", lambda request: requested.append(request.url))
        await page.goto(url)
        return cls(page, errors, requested)

    async def submit(self, owner: str, key: str) -> None:
        await self.page.fill("#owner", owner)
        await self.page.fill("#key", key)
        await self.page.click("#submit")

    async def refusal(self) -> str:
        await self.page.wait_for_selector("#status.error", timeout=15_000)
        return await self.page.text_content("#status") or ""

    async def close(self) -> None:
        await self.page.context.close()


async def credentials(maker: Maker) -> list[Credential]:
    async with maker() as session:
        return list((await session.scalars(select(Credential))).all())


async def notifications(maker: Maker) -> int:
    async with maker() as session:
        return int(await session.scalar(select(func.count()).select_from(Notification)) or 0)


def forged(url: str, **fields: str) -> str:
    """The launch URL with ``initData`` fields changed and the hash kept (a forgery)."""
    base, fragment = url.split("#", 1)
    params = dict(parse_qsl(fragment))
    data = dict(parse_qsl(params["tgWebAppData"]))
    data.update(fields)
    return launch_url(base, urlencode(data, quote_via=quote))


async def test_a_trader_adds_a_key_through_the_mini_app_and_no_trace_of_it_remains(
    stack: Settings,
    browser: Browser,
    json_logs: io.StringIO,
    telegram_double: TelegramDouble,
    funded_trader: FundedTrader,
    live_sessionmaker: Maker,
) -> None:
    key = funded_trader.api_private_key_hex
    user = await onboarded(telegram_double, "Mia")
    offer = await key_offer(user)
    text = offer.text or ""
    assert "never passes through this chat" in text
    assert "works once, for 10 minutes" in text
    [form_button, paste_button] = offer.buttons
    assert form_button.kind == "web_app"
    assert form_button.web_app_url is not None
    assert form_button.web_app_url.startswith(f"{stack.public_base_url}/key/")
    assert paste_button.kind == "callback_data"

    url = user.open_web_app(offer)
    assert "#tgWebAppData=" in url
    form = await Form.open(browser, url)
    try:
        # The page dropped Telegram's launch data from its address at once.
        assert form.page.url == form_button.web_app_url
        assert await form.page.get_attribute("#key", "autocomplete") == "off"
        assert await form.page.get_attribute("#form", "autocomplete") == "off"
        await form.submit(funded_trader.owner_address, f"0x{key}")
        await form.page.wait_for_selector("#done", state="visible", timeout=15_000)
        assert await form.page.text_content("#key-address") == funded_trader.api_address
        assert await form.page.input_value("#key") == ""
        await form.page.screenshot(path="/tmp/key_form_done.png", full_page=True)
    finally:
        await form.close()
    assert form.errors == []  # no CSP violation, no script error
    assert all(u.startswith(stack.public_base_url + "/") for u in form.requested)
    assert not any(key in u for u in form.requested)

    # The worker sends the confirmation from the outbox.
    confirmation = await user.wait_for(
        lambda m: "Trading key connected" in (m.text or ""), timeout=20
    )
    assert funded_trader.api_address in (confirmation.text or "")
    [row] = await credentials(live_sessionmaker)
    assert row.key_address == funded_trader.api_address
    assert row.key_id.startswith("x:")  # sealed to the worker's public key by the web
    await user.send("/key")
    status = await user.wait_for(lambda m: "Your dYdX trading key" in (m.text or ""))
    assert funded_trader.owner_address in (status.text or "")

    # Nothing of the key anywhere: Bot API calls (updates included: getUpdates' answers),
    # messages, log lines of web, bot and worker.
    secrets = [key, key.upper(), f"0x{key}"]
    traffic = [
        json.dumps([call.params, call.response], default=str) for call in telegram_double.calls
    ]
    chat = [m.text or "" for m in user.messages]
    logs = json_logs.getvalue()
    assert "key_form_accepted" in logs  # the web's lines were captured
    assert "/key/***" in logs  # the access log, token redacted
    for secret in secrets:
        assert not any(secret in blob for blob in traffic)
        assert not any(secret in line for line in chat)
        assert secret not in logs


async def test_forged_stale_foreign_and_broad_submissions_change_nothing(
    stack: Settings,
    browser: Browser,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    funded_trader: FundedTrader,
    live_sessionmaker: Maker,
) -> None:
    user = await onboarded(telegram_double, "Noor")
    offer = await key_offer(user)
    good = user.open_web_app(offer)
    form_url = good.split("#", 1)[0]
    broad = new_key()  # its authenticator lets it sign anything: transfers too
    dydx_double.add_authenticator(
        funded_trader.owner_address, "SignatureVerification", broad.public_key
    )
    stale_at = int((datetime.now(UTC) - timedelta(minutes=11)).timestamp())
    mallory = telegram_double.user(first_name="Mallory")
    cases = [
        ("forged initData", forged(good, user=json.dumps({"id": mallory.id})), None,
         "Telegram's signature on this page is not valid"),
        ("stale initData", user.open_web_app(offer, auth_date=stale_at), None,
         "opened too long ago"),
        ("another user's initData", launch_url(form_url, init_data_for(mallory.profile, user.bot)),
         None, "belongs to another Telegram account"),
        ("a key that can move funds", good, broad.private_key_hex, "can also move funds"),
        ("a malformed key", good, "0x" + funded_trader.api_private_key_hex[:-1],
         "That is not a private key"),
    ]  # fmt: skip
    for what, url, key, expected in cases:
        form = await Form.open(browser, url)
        try:
            await form.submit(funded_trader.owner_address, key or funded_trader.api_private_key_hex)
            message = await form.refusal()
            assert expected in message, (what, message)
            assert await form.page.is_enabled("#submit"), what  # the trader may correct it
            await form.page.screenshot(path=f"/tmp/key_form_{what.replace(' ', '_')}.png")
        finally:
            await form.close()
        assert await credentials(live_sessionmaker) == [], what
        assert await notifications(live_sessionmaker) == 0, what

    # The form still works after the refusals; a second tab of it is then refused.
    second = await Form.open(browser, user.open_web_app(offer))
    first = await Form.open(browser, user.open_web_app(offer))
    try:
        await first.submit(funded_trader.owner_address, funded_trader.api_private_key_hex)
        await first.page.wait_for_selector("#done", state="visible", timeout=15_000)
        [accepted] = await credentials(live_sessionmaker)
        await second.submit(funded_trader.owner_address, funded_trader.api_private_key_hex)
        assert "This form was already used" in await second.refusal()
    finally:
        await first.close()
        await second.close()
    [row] = await credentials(live_sessionmaker)
    assert (row.id, row.created_at, row.ciphertext) == (
        accepted.id,
        accepted.created_at,
        accepted.ciphertext,
    )
    assert await notifications(live_sessionmaker) == 1  # one confirmation only
    reopened = await Form.open(browser, user.open_web_app(offer))
    try:
        assert await reopened.page.is_visible("#gone")
        assert "already used" in (await reopened.page.text_content("#gone") or "")
    finally:
        await reopened.close()


async def test_a_plain_browser_gets_no_form(
    stack: Settings, browser: Browser, telegram_double: TelegramDouble
) -> None:
    user = await onboarded(telegram_double, "Olu")
    offer = await key_offer(user)
    assert offer.buttons[0].web_app_url is not None
    form = await Form.open(browser, offer.buttons[0].web_app_url)  # no launch data
    try:
        await form.page.wait_for_selector("#outside", state="visible", timeout=5_000)
        assert "Open this form in Telegram" in (await form.page.text_content("#outside") or "")
        assert await form.page.is_hidden("#form")
    finally:
        await form.close()
    assert form.errors == []


async def test_pasting_in_the_chat_still_works_after_a_warning(
    stack: Settings,
    telegram_double: TelegramDouble,
    funded_trader: FundedTrader,
    live_sessionmaker: Maker,
) -> None:
    user = await onboarded(telegram_double, "Pia")
    offer = await key_offer(user)
    await user.press(offer, text="Paste it in the chat instead")
    step1 = await user.wait_for(lambda m: "Step 1 of 2" in (m.text or ""))
    assert "Pasting a key sends it through Telegram's servers" in (step1.text or "")
    assert "The secure form" in (step1.text or "")
    await user.send(funded_trader.owner_address)
    await user.wait_for(lambda m: "Step 2 of 2" in (m.text or ""))
    pasted = await user.send(funded_trader.api_private_key_hex)
    await user.wait_for(lambda m: "Trading key connected" in (m.text or ""), timeout=15)
    assert pasted.deleted
    assert pasted.deleted_by == "bot"
    [row] = await credentials(live_sessionmaker)
    assert row.key_address == funded_trader.api_address


async def test_the_checklists_key_step_carries_the_form_button(
    stack: Settings, browser: Browser, telegram_double: TelegramDouble, live_sessionmaker: Maker
) -> None:
    user = await onboarded(telegram_double, "Quin")
    async with UnitOfWork(live_sessionmaker) as uow:
        row = await uow.users.get_by_telegram_id(user.id)
        assert row is not None
        await uow.wallets.add(
            user_id=row.id, address="0x" + "ab" * 20, chain_id=1, linked_at=datetime.now(UTC)
        )
        await uow.commit()
    await user.send("/start")
    checklist = await user.wait_for(lambda m: "Set-up" in (m.text or ""))
    assert "Next step: /key" in (checklist.text or "")
    assert [b.kind for b in checklist.buttons] == ["web_app", "callback_data"]
    form = await Form.open(browser, user.open_web_app(checklist))
    try:
        assert await form.page.is_visible("#form")
    finally:
        await form.close()
