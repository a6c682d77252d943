"""The demo page's API over the real doubles: the page's user talks to a bot (here aiogram
driven by the test), sees its buttons and files, fires alerts only at the product's web
server, and moves the simulated market."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from core.services.webhooks import IssuedWebhook, alert_template
from core.texts.webhook import issued
from demo.api import API_HEADER, create_app
from demo.stack import Doubles

HEADERS = {API_HEADER: "1"}


@pytest.fixture
async def hook_server() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """Stands in for the product's web server: records what reaches /hook/{token}."""
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(
            {"body": await request.text(), "content_type": request.headers["Content-Type"]}
        )
        return web.json_response({"status": "accepted", "id": len(received)})

    app = web.Application()
    app.router.add_post("/hook/{token}", hook)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/"), received
    await server.close()


@pytest.fixture
def doubles() -> Iterator[Doubles]:
    stack = Doubles()
    stack.start()
    yield stack
    stack.stop()


@pytest.fixture
async def page(
    doubles: Doubles, hook_server: tuple[str, list[dict[str, Any]]]
) -> AsyncIterator[TestClient]:
    client = TestClient(TestServer(create_app(doubles, hook_server[0])))
    await client.start_server()
    yield client
    await client.close()


@pytest.fixture
async def bot(doubles: Doubles) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(doubles.telegram.base_url))
    bot = Bot(
        doubles.telegram.bot.token,
        session=session,
        default=DefaultBotProperties(parse_mode="HTML"),  # as the product's bot
    )
    yield bot
    await bot.session.close()


async def api(page: TestClient, path: str, body: dict[str, Any] | None = None) -> Any:
    if body is None:
        response = await page.get(path, headers=HEADERS)
    else:
        response = await page.post(path, json=body, headers=HEADERS)
    return response.status, await response.json()


async def chat(page: TestClient) -> list[dict[str, Any]]:
    status, view = await api(page, "/api/chat")
    assert status == 200
    return list(view["messages"])


async def test_the_page_is_served_with_a_strict_policy_and_the_api_only_to_it(
    page: TestClient,
) -> None:
    response = await page.get("/")
    text = await response.text()
    assert response.status == 200
    assert "SIMULATED" in text
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy
    assert "unsafe" not in policy
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "Python" not in response.headers["Server"]
    assert re.findall(r'(?:src|href)="(https?:)', text) == []  # no third-party asset
    for name in ("demo.css", "demo.js", "favicon.svg"):
        assert (await page.get(f"/static/{name}")).status == 200
    assert (await page.get("/static/../api.py")).status == 404
    assert (await page.get("/static/nothing.js")).status == 404
    # Another site's page cannot send the custom header without a preflight we never answer.
    assert (await page.post("/api/send", json={"text": "/start"})).status == 403
    assert (await page.get("/api/state")).status == 403


async def test_state_shows_the_funded_simulated_account_and_the_markets(
    page: TestClient, doubles: Doubles
) -> None:
    status, state = await api(page, "/api/state")
    assert status == 200
    assert state["banner"] == "SIMULATED — no real Telegram, no real exchange"
    assert state["trader"]["owner_address"] == doubles.trader.owner_address
    assert state["trader"]["api_key"] == f"0x{doubles.trader.api_private_key_hex}"
    assert state["webhook"] is None
    assert state["prices"]["ETH-USD"] == "3000"
    assert state["bot"]["username"] == doubles.telegram.bot.username


async def test_the_user_sends_text_presses_buttons_and_gets_files(
    page: TestClient, bot: Bot
) -> None:
    status, _ = await api(page, "/api/send", {"text": "  /start  "})
    assert status == 200
    updates = await bot.get_updates(timeout=0)
    assert updates[-1].message is not None
    assert updates[-1].message.text == "/start"
    chat_id = updates[-1].message.chat.id
    markup = InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text="I confirm", callback_data="decl:1")],
            [InlineKeyboardButton(text="Open", url="http://127.0.0.1:8091/link/x")],
        ]
    )
    sent = await bot.send_message(chat_id, "<b>Hello</b> there", reply_markup=markup)
    await bot.send_document(chat_id, BufferedInputFile(b"a,b\n1,2\n", filename="trades.csv"))

    messages = await chat(page)
    assert [m["from"] for m in messages] == ["user", "bot", "bot"]
    hello = messages[1]
    assert hello["text"] == "Hello there"
    assert hello["entities"] == [{"type": "bold", "offset": 0, "length": 5}]
    assert hello["buttons"] == [
        [{"text": "I confirm", "kind": "callback_data", "value": "decl:1"}],
        [{"text": "Open", "kind": "url", "value": "http://127.0.0.1:8091/link/x"}],
    ]
    document = messages[2]["document"]
    response = await page.get(f"/files/{document['file_id']}")
    assert await response.read() == b"a,b\n1,2\n"
    assert response.headers["Content-Disposition"] == 'attachment; filename="trades.csv"'
    assert (await page.get("/files/no-such-file")).status == 404

    async def answer() -> None:
        for _ in range(50):
            for update in await bot.get_updates(offset=updates[-1].update_id + 1, timeout=1):
                if update.callback_query is not None:
                    await update.callback_query.answer("Noted")
                    return

    answering = asyncio.create_task(answer())
    status, pressed = await api(
        page, "/api/press", {"message_id": sent.message_id, "data": "decl:1"}
    )
    await answering
    assert (status, pressed) == (200, {"toast": "Noted", "alert": False})


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/send", {"text": ""}),
        ("/api/send", {"text": "x" * 4097}),
        ("/api/send", {"text": 5}),
        ("/api/press", {"message_id": "1", "data": "x"}),
        ("/api/press", {"message_id": 999, "data": "x"}),
        ("/api/price", {"ticker": "DOGE-USD", "price": "1"}),
        ("/api/price", {"ticker": "ETH-USD", "price": "-1"}),
        ("/api/price", {"ticker": "ETH-USD", "price": "NaN"}),
        ("/api/price", {"ticker": "ETH-USD", "price": "abc"}),
        ("/api/alert", {"url": "https://evil.example/hook/x", "message": "{}"}),
        ("/api/alert", {"url": "", "message": "{}"}),
        ("/api/alert", {"url": "BASE/hook/../healthz", "message": "{}"}),
        ("/api/alert", {"url": "BASE/hook/t", "message": " "}),
    ],
)
async def test_bad_input_gets_a_short_400_and_changes_nothing(
    page: TestClient,
    doubles: Doubles,
    hook_server: tuple[str, list[dict[str, Any]]],
    path: str,
    body: dict[str, Any],
) -> None:
    if isinstance(body.get("url"), str):
        body = {**body, "url": body["url"].replace("BASE", hook_server[0])}
    status, answer = await api(page, path, body)
    assert status == 400
    assert 0 < len(answer["error"]) < 200
    assert await chat(page) == []
    assert doubles.dydx.state.markets["ETH-USD"].oracle_price == Decimal(3000)
    assert hook_server[1] == []


async def test_the_price_moves_the_simulated_oracle(page: TestClient, doubles: Doubles) -> None:
    status, moved = await api(page, "/api/price", {"ticker": "ETH-USD", "price": "3060.5"})
    assert (status, moved) == (200, {"ticker": "ETH-USD", "price": "3060.5"})
    assert doubles.dydx.state.markets["ETH-USD"].oracle_price == Decimal("3060.5")
    assert (await api(page, "/api/state"))[1]["prices"]["ETH-USD"] == "3060.5"


async def test_the_webhook_the_bot_issued_prefills_an_alert_that_fires_like_tradingview(
    page: TestClient, bot: Bot, hook_server: tuple[str, list[dict[str, Any]]]
) -> None:
    base_url, received = hook_server
    await api(page, "/api/send", {"text": "/webhook"})
    chat_id = (await bot.get_updates(timeout=0))[-1].message.chat.id  # type: ignore[union-attr]
    hook = IssuedWebhook(
        url=f"{base_url}/hook/{'T' * 32}",
        passphrase="p" * 24,
        alert_message=alert_template("p" * 24),
        created_at=datetime.now(UTC),
    )
    await bot.send_message(chat_id, issued(hook))

    state = (await api(page, "/api/state"))[1]
    assert state["webhook"]["url"] == hook.url
    assert state["webhook"]["passphrase"] == hook.passphrase
    message = json.loads(state["webhook"]["message"])
    assert message["market"] == "ETH-USD"
    assert message["action"] == "buy"
    assert (message["tp_pct"], message["sl_pct"]) == ("2", "1")
    assert message["time"] == "{{timenow}}"

    before = datetime.now(UTC).replace(microsecond=0)
    status, fired = await api(
        page, "/api/alert", {"url": hook.url, "message": state["webhook"]["message"]}
    )
    assert status == 200
    assert fired["status"] == 200
    assert json.loads(fired["answer"]) == {"status": "accepted", "id": 1}
    assert received[0]["content_type"] == "application/json"
    body = json.loads(received[0]["body"])
    assert body["price"] == "3000"
    assert datetime.fromisoformat(body["time"]) >= before
    assert body["alert_id"] == f"Long-{body['time']}"

    await api(page, "/api/alert", {"url": hook.url, "message": "buy ETH"})
    assert received[1] == {"body": "buy ETH", "content_type": "text/plain; charset=utf-8"}
