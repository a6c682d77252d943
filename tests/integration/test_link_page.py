"""The wallet-link page and its JSON calls: through aiohttp's client, and in headless Chromium
with an injected EIP-1193 wallet that signs with a test key.

The web app opens its own database engine, so these tests commit for real
(``live_sessionmaker`` empties the tables afterwards).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiogram import Bot
from aiohttp.test_utils import TestClient, TestServer, unused_port
from eth_account import Account
from eth_account.messages import encode_defunct
from playwright.async_api import Browser, Page, async_playwright
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.adapters.telegram import TelegramSender, create_bot
from core.db.base import utcnow
from core.db.models import Notification, User, Wallet
from core.db.uow import UnitOfWork
from core.runtime.config import Settings
from core.services.notifications import NotificationService
from core.services.wallet_link.service import WalletLinkService
from core.services.wallet_link.site import LinkSite
from doubles.telegram import TelegramDouble
from webhook_server.app import create_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
WALLET = Account.from_key("0x" + "44" * 32)
OTHER = Account.from_key("0x" + "55" * 32)
SECURITY_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


def sign(message: str, account: Any = WALLET) -> str:
    return "0x" + account.sign_message(encode_defunct(text=message)).signature.hex()


async def make_user(
    sessionmaker: async_sessionmaker[AsyncSession], telegram_id: int, username: str | None
) -> User:
    async with UnitOfWork(sessionmaker) as uow:
        user = await uow.users.get_or_create(telegram_id, username=username)
        await uow.commit()
        return user


async def count(sessionmaker: async_sessionmaker[AsyncSession], model: type[Any]) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def assert_secured(headers: Any, *, page: bool = False) -> str:
    """Check the security headers; return the CSP. A page (a Mini App) may be framed by
    Telegram's web client alone; a JSON answer by nobody."""
    for name, value in SECURITY_HEADERS.items():
        assert headers[name] == value, name
    csp = str(headers["Content-Security-Policy"])
    assert csp.startswith("default-src 'none'")
    assert "connect-src 'self'" in csp
    if page:
        assert csp.endswith("frame-ancestors https://web.telegram.org")
        assert "X-Frame-Options" not in headers  # it cannot name an origin: the CSP decides
    else:
        assert "frame-ancestors 'none'" in csp
        assert headers["X-Frame-Options"] == "DENY"
    return csp


# aiohttp test client ------------------------------------------------------------------------


@pytest.fixture
async def web_settings(make_settings: Callable[..., Settings]) -> Settings:
    # Tests here make many calls per link; the limits have a test of their own.
    return make_settings(
        public_base_url="https://tv2dydx.example.com",
        link_rate_per_token=100_000,
        link_rate_per_ip=100_000,
    )


@pytest.fixture
async def client(
    web_settings: Settings, live_sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[TestClient]:
    client = TestClient(TestServer(create_app(web_settings)))
    await client.start_server()
    yield client
    await client.close()


@pytest.fixture
def issuer(
    web_settings: Settings, live_sessionmaker: async_sessionmaker[AsyncSession]
) -> WalletLinkService:
    """The bot's side of the feature, on the same database as the web app."""
    return WalletLinkService(live_sessionmaker, LinkSite.from_settings(web_settings))


async def test_the_page_is_self_contained_with_a_nonce_csp(
    client: TestClient, issuer: WalletLinkService, live_sessionmaker: async_sessionmaker[Any]
) -> None:
    user = await make_user(live_sessionmaker, 3001, "alice")
    issued = await issuer.issue_link(user.id)
    response = await client.get(f"/link/{issued.token}")
    assert response.status == 200
    assert response.content_type == "text/html"
    html = await response.text()
    csp = assert_secured(response.headers, page=True)
    nonce = re.search(r"script-src 'nonce-([A-Za-z0-9_-]{20,})'", csp)
    assert nonce is not None
    assert f"style-src 'nonce-{nonce.group(1)}'" in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert html.count(f'nonce="{nonce.group(1)}"') == 2  # the one <style> and <script>
    assert 'data-state="ready"' in html
    assert 'data-chain-id="1"' in html
    assert 'name="viewport"' in html
    # Nothing third-party, nothing loaded from anywhere: no src, no external link.
    assert " src=" not in html
    assert re.findall(r"<link[^>]*>", html) == ['<link rel="icon" href="data:,">']
    assert "http://" not in html
    # The one URL: where Telegram's web client may receive the page's "ready" event.
    assert re.findall(r"https://[^\s\"']*", html) == ["https://web.telegram.org"]
    assert "{{" not in html
    assert 'main[data-state="gone"] #gone' in html  # the shared static/page.css, inlined
    again = await client.get(f"/link/{issued.token}")
    assert again.headers["Content-Security-Policy"] != csp  # a fresh nonce per response


async def test_the_link_routes_are_rate_limited_per_link_and_per_address(
    make_settings: Callable[..., Settings],
    issuer: WalletLinkService,
    live_sessionmaker: async_sessionmaker[Any],
    redis: Any,
) -> None:
    """Per link and per sender address, checked before the token is looked up; 429 with
    ``Retry-After`` (#13 part 4). A burst is a quarter of a minute's worth, at least 5."""
    settings = make_settings(
        public_base_url="https://tv2dydx.example.com", link_rate_per_token=1, link_rate_per_ip=40
    )
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        user = await make_user(live_sessionmaker, 3050, "rita")
        issued = await issuer.issue_link(user.id)
        pages = [await client.get(f"/link/{issued.token}") for _ in range(6)]
        assert [page.status for page in pages] == [200] * 5 + [429]
        assert 1 <= int(pages[-1].headers["Retry-After"]) <= 60
        assert_secured(pages[-1].headers)
        # The link's calls share its bucket: refused too, in JSON.
        call = await client.post(
            f"/link/{issued.token}/message", json={"address": WALLET.address, "chainId": 1}
        )
        assert call.status == 429
        assert (await call.json())["code"] == "rate_limited"
        assert int(call.headers["Retry-After"]) >= 1
        # Other links from the same address: the per-address bucket (burst 10) runs out too,
        # unknown links included (checked before the lookup).
        statuses = [(await client.get(f"/link/unknown{n}")).status for n in range(10)]
        # 5 were spent above (a refused request charges no bucket).
        assert statuses == [404] * 5 + [429] * 5
        assert not any(issued.token in key.decode() for key in await redis.keys("*"))
    finally:
        await client.close()


async def test_unknown_used_and_expired_links_are_the_same_404(
    client: TestClient,
    web_settings: Settings,
    issuer: WalletLinkService,
    live_sessionmaker: async_sessionmaker[Any],
) -> None:
    alice = await make_user(live_sessionmaker, 3002, "alice")
    bob = await make_user(live_sessionmaker, 3003, "bob")
    used = await issuer.issue_link(alice.id)
    message = await issuer.prepare(used.token, WALLET.address, 1)
    await issuer.verify(used.token, message, sign(message))
    past = WalletLinkService(
        live_sessionmaker,
        LinkSite.from_settings(web_settings),
        clock=lambda: utcnow() - timedelta(minutes=11),
    )
    expired = await past.issue_link(bob.id)

    bodies = []
    for token in ("A" * 32, "short", used.token, expired.token):
        response = await client.get(f"/link/{token}")
        assert response.status == 404
        assert_secured(response.headers, page=True)
        html = await response.text()
        assert 'data-state="gone"' in html
        assert "send <b>/link</b> to the bot" in html
        bodies.append(re.sub(r'nonce="[^"]+"', "", html))
    assert len(set(bodies)) == 1  # which of the three it was is not said


async def test_the_json_calls_link_a_wallet_and_refuse_a_replay(
    client: TestClient, issuer: WalletLinkService, live_sessionmaker: async_sessionmaker[Any]
) -> None:
    user = await make_user(live_sessionmaker, 3004, "carol")
    issued = await issuer.issue_link(user.id)
    base = f"/link/{issued.token}"

    response = await client.post(
        f"{base}/message", json={"address": WALLET.address.lower(), "chainId": 1}
    )
    assert response.status == 200
    assert_secured(response.headers)
    message = (await response.json())["message"]
    assert message.startswith("tv2dydx.example.com wants you to sign in")
    assert "@carol (id 3004)" in message

    response = await client.post(
        f"{base}/verify", json={"message": message, "signature": sign(message)}
    )
    body = await response.json()
    assert response.status == 200, body
    assert body == {"ok": True, "address": WALLET.address}
    assert_secured(response.headers)
    assert await count(live_sessionmaker, Wallet) == 1

    replay = await client.post(
        f"{base}/verify", json={"message": message, "signature": sign(message)}
    )
    assert replay.status == 404
    body = await replay.json()
    assert body["ok"] is False
    assert body["code"] == "link_unavailable"
    assert "no longer valid" in body["error"]
    assert await count(live_sessionmaker, Wallet) == 1
    assert await count(live_sessionmaker, Notification) == 1


async def test_the_json_calls_validate_their_input_strictly(
    client: TestClient, issuer: WalletLinkService, live_sessionmaker: async_sessionmaker[Any]
) -> None:
    user = await make_user(live_sessionmaker, 3005, "dave")
    issued = await issuer.issue_link(user.id)
    base = f"/link/{issued.token}"
    good = {"address": WALLET.address, "chainId": 1}

    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"data": "{}", "headers": {"Content-Type": "text/plain"}}, 400, "Send JSON"),
        ({"data": "{not json", "headers": {"Content-Type": "application/json"}}, 400, "JSON"),
        ({"json": [good]}, 400, "exactly these fields"),
        ({"json": {**good, "extra": 1}}, 400, "exactly these fields"),
        ({"json": {"address": WALLET.address}}, 400, "exactly these fields"),
        ({"json": {**good, "chainId": "1"}}, 400, "wrong type"),
        ({"json": {**good, "chainId": True}}, 400, "wrong type"),
        ({"json": {**good, "chainId": 1.0}}, 400, "wrong type"),
        ({"json": {**good, "address": 42}}, 400, "wrong type"),
        ({"json": {**good, "address": "0x1234"}}, 400, "not an Ethereum address"),
        ({"json": {**good, "chainId": 137}}, 422, "Switch it to Ethereum"),
        (
            {"data": "x" * 30_000, "headers": {"Content-Type": "application/json"}},
            400,
            "too large",
        ),
        ({"json": good, "headers": {"Origin": "https://evil.example"}}, 403, "Cross-origin"),
    ]
    for kwargs, status, error in cases:
        response = await client.post(f"{base}/message", **kwargs)
        body = await response.json()
        assert response.status == status, (kwargs, body)
        assert body["ok"] is False
        assert error in body["error"], body
        assert_secured(response.headers)

    unknown = await client.post(f"/link/{'B' * 32}/message", json=good)
    assert unknown.status == 404
    assert (await unknown.json())["code"] == "link_unavailable"

    # The page's own origin is accepted.
    same = await client.post(
        f"{base}/message", json=good, headers={"Origin": "https://tv2dydx.example.com"}
    )
    assert same.status == 200
    message = (await same.json())["message"]
    for payload, status, code in [
        ({"message": message, "signature": "0x1234zz"}, 400, "invalid_input"),
        ({"message": message, "signature": sign(message, OTHER)}, 422, "contract_wallet"),
        ({"message": message}, 400, "invalid_input"),
    ]:
        response = await client.post(f"{base}/verify", json=payload)
        body = await response.json()
        assert response.status == status, body
        assert body["code"].startswith(code)
    assert await count(live_sessionmaker, Wallet) == 0
    assert await count(live_sessionmaker, Notification) == 0


async def test_the_web_server_starts_and_links_without_redis(
    make_settings: Callable[..., Settings], live_sessionmaker: async_sessionmaker[Any]
) -> None:
    settings = make_settings(redis_url="redis://127.0.0.1:1/0")
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        user = await make_user(live_sessionmaker, 3006, "erin")
        issuer = WalletLinkService(live_sessionmaker, LinkSite.from_settings(settings))
        issued = await issuer.issue_link(user.id)
        assert (await client.get(f"/link/{issued.token}")).status == 200
        response = await client.post(
            f"/link/{issued.token}/message", json={"address": WALLET.address, "chainId": 1}
        )
        message = (await response.json())["message"]
        response = await client.post(
            f"/link/{issued.token}/verify", json={"message": message, "signature": sign(message)}
        )
        assert response.status == 200
        # The confirmation waits in the outbox for the worker's schedule.
        assert await count(live_sessionmaker, Notification) == 1
    finally:
        await client.close()


# Headless Chromium ------------------------------------------------------------------------

# An EIP-1193 provider whose personal_sign is answered by Python with the test key.
PROVIDER_SCRIPT = """
(() => {
  const state = { chainId: "%(chain)s", calls: [] };
  window.__wallet = state;
  window.ethereum = {
    isTestWallet: true,
    request: async ({ method, params }) => {
      state.calls.push(method);
      switch (method) {
        case "eth_requestAccounts":
        case "eth_accounts":
          return ["%(address)s"];
        case "eth_chainId":
          return state.chainId;
        case "wallet_switchEthereumChain":
          if (%(refuse_switch)s) {
            throw Object.assign(new Error("User rejected the request."), { code: 4001 });
          }
          state.chainId = params[0].chainId;
          return null;
        case "personal_sign":
          return await window.testWalletSign(params[0], params[1]);
        default:
          throw Object.assign(new Error("Unsupported method " + method), { code: 4200 });
      }
    },
  };
})();
"""


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's Chromium; never a downloaded browser. Missing Chromium fails, loudly."""
    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)"
    )
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


@pytest.fixture
async def live_site(
    make_settings: Callable[..., Settings],
    telegram_env: dict[str, str],
    live_sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[Settings]:
    """The web server on a loopback port, its PUBLIC_BASE_URL that very address."""
    port = unused_port()
    settings = make_settings(public_base_url=f"http://127.0.0.1:{port}", **telegram_env)
    server = TestServer(create_app(settings), host="127.0.0.1", port=port)
    await server.start_server()
    yield settings
    await server.close()


async def open_phone_page(
    browser: Browser, url: str, *, provider: str | None, signer: Callable[..., str] | None
) -> tuple[Page, list[str], list[str]]:
    """A phone-sized page; returns it with the console errors and the URLs it requested."""
    context = await browser.new_context(
        viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    page = await context.new_page()
    errors: list[str] = []
    requested: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda request: requested.append(request.url))
    if signer is not None:
        await page.expose_function("testWalletSign", signer)
    if provider is not None:
        await page.add_init_script(provider)
    await page.goto(url)
    return page, errors, requested


async def test_chromium_links_a_wallet_and_the_bot_confirms(
    browser: Browser,
    live_site: Settings,
    telegram_double: TelegramDouble,
    live_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    member = telegram_double.user(first_name="Alice", username="alice", started=True)
    user = await make_user(live_sessionmaker, member.id, "alice")
    issued = await WalletLinkService(
        live_sessionmaker, LinkSite.from_settings(live_site)
    ).issue_link(user.id)
    signed: list[str] = []

    def personal_sign(data: str, address: str) -> str:
        # EIP-1193 personal_sign: hex-encoded UTF-8 bytes, signed with the EIP-191 prefix.
        assert address.lower() == WALLET.address.lower()
        text = bytes.fromhex(data.removeprefix("0x")).decode()
        signed.append(text)
        return sign(text)

    provider = PROVIDER_SCRIPT % {
        "chain": "0x1",
        "address": WALLET.address.lower(),
        "refuse_switch": "false",
    }
    page, errors, requested = await open_phone_page(
        browser, issued.url, provider=provider, signer=personal_sign
    )
    try:
        await page.click("#sign")
        await page.wait_for_selector("#done", state="visible", timeout=10_000)
        assert await page.text_content("#address") == WALLET.address
        assert await page.is_hidden("#ready")
        await page.screenshot(path="/tmp/link_page_success.png", full_page=True)
        calls = await page.evaluate("window.__wallet.calls")
    finally:
        await page.context.close()

    assert calls == ["eth_requestAccounts", "eth_chainId", "personal_sign"]
    assert len(signed) == 1
    assert "Telegram user @alice" in signed[0]
    assert signed[0].startswith(f"{urlsplit(live_site.public_base_url).netloc} wants you")
    assert errors == []  # no CSP violation, no script error
    assert all(url.startswith(live_site.public_base_url + "/") for url in requested)

    async with live_sessionmaker() as session:
        wallet = await session.scalar(select(Wallet))
    assert wallet is not None
    assert (wallet.user_id, wallet.address) == (user.id, WALLET.address.lower())

    # The worker's job: deliver the outbox to Telegram.
    bot: Bot = create_bot(live_site)
    try:
        report = await NotificationService(live_sessionmaker).deliver_due(TelegramSender(bot))
    finally:
        await bot.session.close()
    assert report.sent == 1
    confirmation = await member.next_message()
    assert f"Wallet {WALLET.address} is now linked" in (confirmation.text or "")
    assert "/unlink" in (confirmation.text or "")


async def test_chromium_without_a_wallet_explains_how_to_open_the_link(
    browser: Browser, live_site: Settings, live_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = await make_user(live_sessionmaker, 4002, "bob")
    issued = await WalletLinkService(
        live_sessionmaker, LinkSite.from_settings(live_site)
    ).issue_link(user.id)
    page, errors, _ = await open_phone_page(browser, issued.url, provider=None, signer=None)
    try:
        await page.wait_for_selector("#nowallet", state="visible", timeout=5_000)
        text = await page.inner_text("#nowallet")
        assert "No wallet in this browser" in text
        assert "Browser tab" in text
        assert await page.input_value("#url") == issued.url
        assert await page.is_hidden("#sign")
        await page.screenshot(path="/tmp/link_page_nowallet.png", full_page=True)
    finally:
        await page.context.close()
    assert errors == []
    assert await count(live_sessionmaker, Wallet) == 0


async def test_chromium_shows_the_servers_refusal_and_stores_nothing(
    browser: Browser, live_site: Settings, live_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = await make_user(live_sessionmaker, 4003, "carol")
    issued = await WalletLinkService(
        live_sessionmaker, LinkSite.from_settings(live_site)
    ).issue_link(user.id)
    # The wallet is on Polygon and declines to switch.
    provider = PROVIDER_SCRIPT % {
        "chain": "0x89",
        "address": WALLET.address,
        "refuse_switch": "true",
    }
    page, errors, _ = await open_phone_page(
        browser, issued.url, provider=provider, signer=lambda *_: pytest.fail("signed")
    )
    try:
        await page.click("#sign")
        await page.wait_for_selector("#status.error", timeout=10_000)
        status = await page.text_content("#status")
        assert "Your wallet is on chain id 137" in (status or "")
        assert "Switch it to Ethereum (chain id 1)" in (status or "")
        assert await page.is_enabled("#sign")  # the user can switch and try again
        await page.screenshot(path="/tmp/link_page_error.png", full_page=True)
        calls = await page.evaluate("window.__wallet.calls")
    finally:
        await page.context.close()
    assert "wallet_switchEthereumChain" in calls
    assert "personal_sign" not in calls
    # The browser logs the 422 of the refused call; nothing else may fail.
    assert all("422" in error for error in errors), errors
    assert await count(live_sessionmaker, Wallet) == 0
