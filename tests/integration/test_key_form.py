"""The Mini App key form's routes through aiohttp's client: the page's headers, the JSON
call's strictness and answers, and the rate limits (the whole flow in Chromium is in
``tests/e2e/test_key_mini_app.py``).

The web app opens its own database engine, so these tests commit for real.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.base import utcnow
from core.db.models import Credential, KeyEntryRequest, Notification
from core.db.uow import UnitOfWork
from core.exchange.factory import create_key_verifier
from core.runtime.config import Settings
from core.services.credentials import CredentialService
from core.services.key_entry import KeyEntryService
from doubles.telegram import BotIdentity
from doubles.telegram.state import UserProfile
from doubles.telegram.webapp import init_data_for
from tests.conftest import BOT_TOKEN
from webhook_server.app import create_app

BASE_URL = "https://tv2dydx.example.com"
BOT = BotIdentity(token=BOT_TOKEN, id=123456789, username="b", first_name="B")
KEY = "ab" * 32
Maker = async_sessionmaker[AsyncSession]


def opened_by(telegram_id: int, *, age: timedelta = timedelta(seconds=2)) -> str:
    at = int((utcnow() - age).timestamp())
    return init_data_for(UserProfile(id=telegram_id, first_name="T"), BOT, auth_date=at)


@pytest.fixture
def web_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        public_base_url=BASE_URL, link_rate_per_token=100_000, link_rate_per_ip=100_000
    )


@pytest.fixture
async def forms(web_settings: Settings, live_sessionmaker: Maker) -> AsyncIterator[KeyEntryService]:
    """The bot's side: it issues the forms."""
    credentials = CredentialService(
        live_sessionmaker, web_settings.keyring, create_key_verifier(web_settings.dydx)
    )
    yield KeyEntryService(live_sessionmaker, BASE_URL, BOT_TOKEN, credentials)
    await credentials.close()


async def serve(settings: Settings) -> TestClient:
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    return client


@pytest.fixture
async def client(web_settings: Settings, live_sessionmaker: Maker) -> AsyncIterator[TestClient]:
    client = await serve(web_settings)
    yield client
    await client.close()


async def user_with_form(maker: Maker, forms: KeyEntryService, telegram_id: int) -> str:
    async with UnitOfWork(maker) as uow:
        user = await uow.users.get_or_create(telegram_id)
        await uow.commit()
    return (await forms.issue(user.id)).url.removeprefix(BASE_URL)


async def count(maker: Maker, model: type[Any]) -> int:
    async with maker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_the_page_is_self_contained_and_framed_by_telegram_alone(
    client: TestClient, forms: KeyEntryService, live_sessionmaker: Maker
) -> None:
    path = await user_with_form(live_sessionmaker, forms, 7001)
    assert re.fullmatch(r"/key/[A-Za-z0-9_-]{32}", path)
    response = await client.get(path)
    assert response.status == 200
    html = await response.text()
    csp = response.headers["Content-Security-Policy"]
    nonce = re.search(r"script-src 'nonce-([A-Za-z0-9_-]{20,})'", csp)
    assert nonce is not None
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert csp.endswith("frame-ancestors https://web.telegram.org")
    assert "form-action 'none'" in csp
    assert html.count(f'nonce="{nonce.group(1)}"') == 2  # the one <style> and <script>
    assert " src=" not in html  # no script from anywhere, Telegram's included
    assert re.findall(r"https?://[^\s\"']*", html) == ["https://web.telegram.org"]
    assert html.count('autocomplete="off"') == 3  # the form and both fields
    assert 'data-state="ready"' in html
    assert "{{" not in html
    assert 'main[data-state="gone"] #gone' in html  # the shared static/page.css, inlined
    for name, value in {
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }.items():
        assert response.headers[name] == value

    # Unknown, used and expired forms: the same 404 page.
    async with UnitOfWork(live_sessionmaker) as uow:
        user = await uow.users.get_or_create(7002)
        await uow.commit()
    expired = await KeyEntryService(
        live_sessionmaker,
        BASE_URL,
        BOT_TOKEN,
        forms._credentials,
        clock=lambda: utcnow() - timedelta(minutes=11),
    ).issue(user.id)
    for gone in ("/key/" + "A" * 32, "/key/short", expired.url.removeprefix(BASE_URL)):
        response = await client.get(gone)
        assert response.status == 404
        assert 'data-state="gone"' in await response.text()


async def test_refusals_answer_a_clear_message_and_store_nothing(
    client: TestClient, forms: KeyEntryService, live_sessionmaker: Maker
) -> None:
    path = await user_with_form(live_sessionmaker, forms, 7101)
    await user_with_form(live_sessionmaker, forms, 7102)  # another trader
    good = {"initData": opened_by(7101), "ownerAddress": "dydx1x", "key": KEY}
    cases: list[tuple[str, dict[str, Any], int, str, str]] = [
        (path, {"data": "{}", "headers": {"Content-Type": "text/plain"}}, 400, "invalid_input",
         "Send JSON"),
        (path, {"json": {**good, "extra": 1}}, 400, "invalid_input", "exactly these fields"),
        (path, {"json": {"initData": good["initData"], "key": KEY}}, 400, "invalid_input",
         "exactly these fields"),
        (path, {"json": {**good, "key": 42}}, 400, "invalid_input", "wrong type"),
        (path, {"json": good, "headers": {"Origin": "https://evil.example"}}, 403, "",
         "Cross-origin"),
        (path, {"json": {**good, "initData": ""}}, 401, "not_in_telegram",
         "inside Telegram"),
        (path, {"json": {**good, "initData": good["initData"].replace("hash=", "hash=f")}},
         401, "bad_init_data", "signature on this page is not valid"),
        (path, {"json": {**good, "initData": opened_by(7101, age=timedelta(minutes=11))}},
         401, "stale_init_data", "opened too long ago"),
        (path, {"json": {**good, "initData": opened_by(7102)}}, 403, "other_user",
         "belongs to another Telegram account"),
        ("/key/" + "C" * 32, {"json": good}, 404, "form_unavailable", "Send /key"),
        (path, {"json": {**good, "ownerAddress": "not an address"}}, 422, "key_refused",
         "not a dYdX account address"),
        (path, {"json": {**good, "ownerAddress": KEY}}, 422, "key_refused",
         "holds a private key"),
    ]  # fmt: skip
    for target, kwargs, status, code, error in cases:
        response = await client.post(target, **kwargs)
        body = await response.json()
        assert response.status == status, (kwargs, body)
        assert body["ok"] is False
        assert error in body["error"], body
        assert body.get("code", "") == code
        assert response.headers["X-Frame-Options"] == "DENY"
        assert KEY not in str(body)
    assert await count(live_sessionmaker, Credential) == 0
    assert await count(live_sessionmaker, Notification) == 0
    async with live_sessionmaker() as session:
        unused = await session.scalars(select(KeyEntryRequest.used_at))
        assert set(unused) == {None}  # refusals consume no form


async def test_the_key_routes_are_rate_limited_per_form_and_per_address(
    make_settings: Callable[..., Settings],
    forms: KeyEntryService,
    live_sessionmaker: Maker,
    redis: Any,
) -> None:
    """As the link routes (#13 part 4): a burst is a quarter of a minute's worth, at least
    5; over it, 429 with ``Retry-After``; the token is never a Redis key."""
    settings = make_settings(public_base_url=BASE_URL, link_rate_per_token=1, link_rate_per_ip=40)
    client = await serve(settings)
    try:
        path = await user_with_form(live_sessionmaker, forms, 7201)
        pages = [await client.get(path) for _ in range(6)]
        assert [page.status for page in pages] == [200] * 5 + [429]
        assert 1 <= int(pages[-1].headers["Retry-After"]) <= 60
        call = await client.post(path, json={"initData": "", "ownerAddress": "", "key": KEY})
        assert call.status == 429
        assert (await call.json())["code"] == "rate_limited"
        statuses = [(await client.get(f"/key/unknown{n}")).status for n in range(10)]
        assert statuses == [404] * 5 + [429] * 5  # the address's burst of 10 is spent
        token = path.rsplit("/", 1)[1]
        assert not any(token in key.decode() for key in await redis.keys("*"))
    finally:
        await client.close()
