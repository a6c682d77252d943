"""The wallet-link page opened as a Telegram Mini App, in headless Chromium: the page sends
the ``initData`` Telegram gave it, and the server refuses another user's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer, unused_port
from eth_account import Account
from eth_account.messages import encode_defunct
from playwright.async_api import Browser, async_playwright
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.models import Wallet
from core.db.uow import UnitOfWork
from core.runtime.config import Settings
from core.services.wallet_link.service import WalletLinkService
from core.services.wallet_link.site import LinkSite
from doubles.telegram import TelegramDouble
from doubles.telegram.webapp import init_data_for, launch_url
from tests.miniapp import CHROMIUM, CHROMIUM_ARGS, PHONE
from webhook_server.app import create_app

WALLET = Account.from_key("0x" + "66" * 32)
# An EIP-1193 wallet answering personal_sign with the test key (see test_link_page.py).
PROVIDER = """
window.ethereum = {
  request: async ({ method, params }) => {
    if (method === "eth_requestAccounts") return ["ADDRESS"];
    if (method === "eth_chainId") return "0x1";
    if (method === "personal_sign") return await window.testWalletSign(params[0]);
    throw Object.assign(new Error("unsupported"), { code: 4200 });
  },
};
""".replace("ADDRESS", WALLET.address.lower())


def personal_sign(data: str) -> str:
    text = bytes.fromhex(data.removeprefix("0x")).decode()
    return "0x" + WALLET.sign_message(encode_defunct(text=text)).signature.hex()


@pytest.fixture(scope="module")
def chromium() -> str:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install chromium"
    return CHROMIUM


@pytest.fixture(scope="module")
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium, args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        await browser.close()


@pytest.fixture
async def live_site(
    make_settings: Callable[..., Settings],
    telegram_env: dict[str, str],
    live_sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[Settings]:
    port = unused_port()
    settings = make_settings(public_base_url=f"http://127.0.0.1:{port}", **telegram_env)
    server = TestServer(create_app(settings), host="127.0.0.1", port=port)
    await server.start_server()
    yield settings
    await server.close()


async def link_in_page(browser: Browser, url: str) -> tuple[str, list[str]]:
    """Open ``url``, press the button; the page's final status (or the linked address)."""
    context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = await context.new_page()
    posted: list[str] = []
    page.on("request", lambda r: posted.append(r.post_data or "") if r.method == "POST" else None)
    await page.expose_function("testWalletSign", personal_sign)
    await page.add_init_script(PROVIDER)
    try:
        await page.goto(url)
        assert "#" not in page.url  # the launch data left the address bar
        await page.click("#sign")
        await page.wait_for_selector("#done:not([hidden]), #status.error", timeout=10_000)
        if await page.is_visible("#done"):
            return await page.text_content("#address") or "", posted
        return await page.text_content("#status") or "", posted
    finally:
        await context.close()


async def test_opened_in_telegram_the_link_is_refused_to_another_user_and_works_for_its_own(
    browser: Browser,
    live_site: Settings,
    telegram_double: TelegramDouble,
    live_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    alice = telegram_double.user(first_name="Alice", username="alice")
    mallory = telegram_double.user(first_name="Mallory")
    async with UnitOfWork(live_sessionmaker) as uow:
        user = await uow.users.get_or_create(alice.id, username="alice")
        await uow.commit()
    issued = await WalletLinkService(
        live_sessionmaker, LinkSite.from_settings(live_site)
    ).issue_link(user.id)

    foreign = launch_url(issued.url, init_data_for(mallory.profile, telegram_double.bot))
    status, posted = await link_in_page(browser, foreign)
    assert "belongs to another Telegram account" in status
    assert all('"initData"' in body for body in posted)
    async with live_sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Wallet)) == 0

    own = launch_url(issued.url, init_data_for(alice.profile, telegram_double.bot))
    address, posted = await link_in_page(browser, own)
    assert address == WALLET.address
    assert len(posted) == 2  # /message and /verify, each with Alice's initData
    assert all('"initData"' in body for body in posted)
