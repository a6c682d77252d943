"""The Telegram Bot API double, driven by the real, unmodified aiogram client."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F, Router, html
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.filters import Command, CommandStart
from aiogram.methods import SendMessage
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    CallbackQuery,
    ChatMemberAdministrator,
    ChatMemberLeft,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    KeyboardButton,
    MenuButtonWebApp,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    ReplyParameters,
    WebAppInfo,
)
from aiogram.utils.backoff import BackoffConfig
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from doubles.telegram import PNG_SIGNATURE, BotIdentity, TelegramDouble
from doubles.telegram.formatting import format_text

FAST_BACKOFF = BackoffConfig(min_delay=0.05, max_delay=0.3, factor=1.5, jitter=0.01)
WEBHOOK_SECRET = "s3cret-token_for-tests"
KEYBOARD = InlineKeyboardMarkup(
    inline_keyboard=[
        [
            InlineKeyboardButton(text="Confirm", callback_data="confirm"),
            InlineKeyboardButton(text="Docs", url="https://example.com/docs"),
        ]
    ]
)


def make_router() -> Router:
    """Return a small bot: /start with a keyboard, a confirm button, /forget, /ping."""
    router = Router(name=__name__)

    @router.message(CommandStart())
    async def start(message: Message) -> None:
        name = message.from_user.first_name if message.from_user else "there"
        await message.answer(
            f"Hello, <b>{html.quote(name)}</b>!", parse_mode="HTML", reply_markup=KEYBOARD
        )

    @router.callback_query(F.data == "confirm")
    async def confirm(callback: CallbackQuery) -> None:
        await callback.answer("Confirmed")
        assert isinstance(callback.message, Message)
        await callback.message.edit_text("Confirmed ✅")

    @router.message(Command("forget"))
    async def forget(message: Message) -> None:
        await message.delete()
        await message.answer("Forgotten")

    @router.message(Command("ping"))
    async def ping(message: Message) -> SendMessage:
        # Returned, not awaited: in webhook mode aiogram puts it in the webhook's answer.
        return message.answer("pong")

    return router


def make_png(width: int, height: int) -> bytes:
    """Return an RGB PNG built with zlib alone."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    rows = b"".join(
        b"\x00"
        + bytes(itertools.chain.from_iterable((x % 256, y % 256, 128) for x in range(width)))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def png_size(data: bytes) -> tuple[int, int]:
    """Check the PNG signature and IHDR chunk (with its CRC); return (width, height)."""
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (length, kind) == (13, b"IHDR")
    body = data[16:29]
    assert struct.unpack(">I", data[29:33])[0] == zlib.crc32(b"IHDR" + body)
    width, height = struct.unpack(">II", body[:8])
    return width, height


@pytest.fixture(scope="module")
async def bot_sessions() -> AsyncIterator[list[AiohttpSession]]:
    """Close every test's aiogram session together: each close sleeps 0.25 s by design."""
    sessions: list[AiohttpSession] = []
    yield sessions
    await asyncio.gather(*(session.close() for session in sessions))


def make_bot(double: TelegramDouble, sessions: list[AiohttpSession], token: str) -> Bot:
    """Return an aiogram Bot configured the way the product configures it."""
    session = AiohttpSession(api=TelegramAPIServer.from_base(double.base_url))
    sessions.append(session)
    return Bot(token, session=session)


@pytest.fixture
def bot(telegram_double: TelegramDouble, bot_sessions: list[AiohttpSession]) -> Bot:
    """Return an aiogram Bot for the double's registered bot."""
    return make_bot(telegram_double, bot_sessions, telegram_double.bot.token)


@contextlib.asynccontextmanager
async def polling(double: TelegramDouble, bot: Bot) -> AsyncIterator[Dispatcher]:
    """Run ``dp.start_polling`` in a task until the block ends."""
    dispatcher = Dispatcher()
    dispatcher.include_router(make_router())
    task = asyncio.create_task(
        dispatcher.start_polling(
            bot,
            handle_signals=False,
            close_bot_session=False,
            backoff_config=FAST_BACKOFF,
        )
    )
    try:
        await double.wait_until(lambda: double.calls_to("getUpdates"), what="getUpdates call")
        yield dispatcher
    finally:
        await dispatcher.stop_polling()
        await asyncio.wait_for(task, timeout=5)


@contextlib.asynccontextmanager
async def webhook_app(bot: Bot, seen_secrets: list[str | None]) -> AsyncIterator[str]:
    """Serve aiogram's webhook handler on a loopback port; yield its URL."""
    dispatcher = Dispatcher()
    dispatcher.include_router(make_router())
    handler = SimpleRequestHandler(
        dispatcher, bot, secret_token=WEBHOOK_SECRET, handle_in_background=False
    )

    @web.middleware
    async def record_secret(
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        seen_secrets.append(request.headers.get("X-Telegram-Bot-Api-Secret-Token"))
        return await handler(request)

    app = web.Application(middlewares=[record_secret])
    app.router.add_post("/telegram", handler.handle)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    try:
        yield f"http://127.0.0.1:{port}/telegram"
    finally:
        await runner.cleanup()


# --- start-up and the wire ---------------------------------------------------------------


def test_starts_in_well_under_a_second() -> None:
    started = time.perf_counter()
    double = TelegramDouble().start()
    elapsed = time.perf_counter() - started
    try:
        assert elapsed < 1.0
        assert double.base_url.startswith("http://127.0.0.1:")
        assert double.running
    finally:
        double.stop()
    assert not double.running


async def test_unregistered_token_gets_telegrams_401(
    telegram_double: TelegramDouble, bot_sessions: list[AiohttpSession]
) -> None:
    stranger = make_bot(telegram_double, bot_sessions, "123456:ABCdefGHIjklMNOpqrSTUvwxYZ012345678")
    with pytest.raises(TelegramUnauthorizedError, match="Unauthorized"):
        await stranger.get_me()
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{telegram_double.base_url}/bot123456:ABC/getMe") as response,
    ):
        assert response.status == 401
        assert await response.json() == {
            "ok": False,
            "error_code": 401,
            "description": "Unauthorized",
        }


async def test_unknown_method_is_404(telegram_double: TelegramDouble) -> None:
    url = f"{telegram_double.base_url}/bot{telegram_double.bot.token}/sendTelepathy"
    async with aiohttp.ClientSession() as http, http.post(url) as response:
        assert response.status == 404
        assert await response.json() == {
            "ok": False,
            "error_code": 404,
            "description": "Not Found: method not found",
        }


async def test_real_but_unimplemented_method_is_reported(
    telegram_double: TelegramDouble,
) -> None:
    url = f"{telegram_double.base_url}/bot{telegram_double.bot.token}/sendSticker"
    async with aiohttp.ClientSession() as http, http.post(url) as response:
        assert response.status == 400
        body = await response.json()
    assert body["description"] == "Bad Request: TelegramDouble does not implement sendSticker"
    assert [call.method for call in telegram_double.unimplemented_calls] == ["sendSticker"]


def test_markup_is_parsed_like_telegram() -> None:
    text, entities = format_text(
        "<b>Long 🚀</b> <a href='example.com'>chart</a> $BTC /status", "HTML"
    )
    assert text == "Long 🚀 chart $BTC /status"
    assert entities == [
        {"type": "bold", "offset": 0, "length": 7},  # the rocket is two UTF-16 units
        {"type": "text_link", "offset": 8, "length": 5, "url": "http://example.com/"},
        {"type": "cashtag", "offset": 14, "length": 4},
        {"type": "bot_command", "offset": 19, "length": 7},
    ]
    text, entities = format_text("*PnL* \\+1\\.5% ||hidden|| [docs](https://x.io/a)", "MarkdownV2")
    assert text == "PnL +1.5% hidden docs"
    assert entities == [
        {"type": "bold", "offset": 0, "length": 3},
        {"type": "spoiler", "offset": 10, "length": 6},
        {"type": "text_link", "offset": 17, "length": 4, "url": "https://x.io/a"},
    ]


async def test_get_me_describes_the_registered_bot(
    bot: Bot, telegram_bot: BotIdentity, telegram_env: dict[str, str]
) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.first_name, me.is_bot) == (
        telegram_bot.id,
        "tv2dydx_test_bot",
        "tv2dydx",
        True,
    )
    assert telegram_env["BOT_TOKEN"] == telegram_bot.token
    assert telegram_env["TELEGRAM_API_BASE"].startswith("http://127.0.0.1:")


async def test_keeps_serving_while_the_test_loop_is_blocked(
    telegram_double: TelegramDouble,
) -> None:
    url = f"{telegram_double.base_url}/bot{telegram_double.bot.token}/getMe"
    code = (
        "import sys, urllib.request; "
        "print(urllib.request.urlopen(sys.argv[1], b'').read().decode())"
    )
    # Deliberately blocking: the double must answer from its own thread meanwhile.
    done = subprocess.run(  # noqa: ASYNC221
        [sys.executable, "-c", code, url], capture_output=True, text=True, timeout=30, check=True
    )
    body = json.loads(done.stdout)
    assert body["ok"] is True
    assert body["result"]["username"] == "tv2dydx_test_bot"


# --- user stories through polling --------------------------------------------------------


async def test_command_gets_an_answer_through_polling(
    telegram_double: TelegramDouble, bot: Bot
) -> None:
    user = telegram_double.user(id=1001, first_name="Alice", username="alice")
    async with polling(telegram_double, bot):
        sent = await user.send("/start")
        reply = await user.next_message()

    assert sent.entities == [{"type": "bot_command", "offset": 0, "length": 6}]
    assert reply.text == "Hello, Alice!"
    assert reply.raw_text == "Hello, <b>Alice</b>!"
    assert {"type": "bold", "offset": 7, "length": 5} in reply.entities
    assert reply.keyboard == [[("Confirm", "confirm"), ("Docs", "https://example.com/docs")]]
    assert reply.chat_id == user.id
    call = telegram_double.calls_to("sendMessage")[-1]
    assert call.params["chat_id"] == user.id
    assert call.params["reply_markup"] == {
        "inline_keyboard": [
            [
                {"text": "Confirm", "callback_data": "confirm"},
                {"text": "Docs", "url": "https://example.com/docs"},
            ]
        ]
    }
    assert call.result["message_id"] == reply.message_id
    assert telegram_double.pending_updates() == []


async def test_button_press_is_answered_and_edits_the_message(
    telegram_double: TelegramDouble, bot: Bot
) -> None:
    user = telegram_double.user(first_name="Alice")
    async with polling(telegram_double, bot):
        await user.send("/start")
        menu = await user.next_message()
        answer = await user.press(menu, "confirm")
        edited = await user.wait_edited(menu)

    assert answer is not None
    assert (answer.text, answer.show_alert, answer.data) == ("Confirmed", False, "confirm")
    assert edited is menu
    assert menu.text == "Confirmed ✅"
    assert menu.keyboard == []  # editMessageText without reply_markup drops the keyboard
    assert [version.text for version in menu.versions] == ["Hello, Alice!", "Confirmed ✅"]
    assert menu.edit_date is not None
    assert telegram_double.unanswered_callbacks == []
    with pytest.raises(LookupError, match="no button"):
        await user.press(menu, "confirm")


async def test_pressing_a_link_button_is_refused(telegram_double: TelegramDouble, bot: Bot) -> None:
    user = telegram_double.user(first_name="Alice", started=True)
    sent = await bot.send_message(user.id, "Menu", reply_markup=KEYBOARD)
    menu = await user.next_message()
    assert menu.message_id == sent.message_id
    assert menu.button("Docs").url == "https://example.com/docs"
    with pytest.raises(ValueError, match="url button"):
        await user.press(menu, text="Docs")


async def test_bot_deletes_the_users_message(telegram_double: TelegramDouble, bot: Bot) -> None:
    user = telegram_double.user(first_name="Alice")
    async with polling(telegram_double, bot):
        secret = await user.send("/forget")
        reply = await user.next_message()

    assert reply.text == "Forgotten"
    assert secret.deleted
    assert secret.deleted_by == "bot"
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(user.id, secret.message_id)


async def test_polling_recovers_after_an_outage(telegram_double: TelegramDouble, bot: Bot) -> None:
    user = telegram_double.user(first_name="Alice")
    async with polling(telegram_double, bot):
        telegram_double.set_down(0.4)
        await user.send("/start")
        reply = await user.next_message(timeout=5)

    assert reply.text == "Hello, Alice!"
    assert 502 in {call.status for call in telegram_double.calls_to("getUpdates")}


# --- media ---------------------------------------------------------------------------------


async def test_photo_is_kept_and_can_be_read_back(
    telegram_double: TelegramDouble, bot: Bot
) -> None:
    user = telegram_double.user(first_name="Alice", started=True)
    png = make_png(200, 100)
    sent = await bot.send_photo(
        user.id,
        BufferedInputFile(png, "chart.png"),
        caption="<i>BTC-USD</i> 1h",
        parse_mode="HTML",
    )
    message = await user.next_message()

    assert message.caption == "BTC-USD 1h"
    assert message.photo_bytes == png
    assert png_size(message.photo_bytes) == (200, 100)
    assert [(size["width"], size["height"]) for size in message.photo] == [(90, 45), (200, 100)]
    assert sent.photo is not None
    largest = sent.photo[-1]
    assert (largest.width, largest.height, largest.file_size) == (200, 100, len(png))
    file = await bot.get_file(largest.file_id)
    assert file.file_path is not None
    downloaded = await bot.download_file(file.file_path)
    assert downloaded is not None
    assert png_size(downloaded.read()) == (200, 100)
    upload = telegram_double.calls_to("sendPhoto")[0].params["photo"]
    assert (upload.filename, upload.data) == ("chart.png", png)
    again = await bot.send_photo(user.id, largest.file_id)
    assert again.photo is not None
    assert again.photo[-1].file_unique_id == largest.file_unique_id


async def test_photo_that_is_not_an_image_is_refused(
    telegram_double: TelegramDouble, bot: Bot
) -> None:
    user = telegram_double.user(first_name="Alice", started=True)
    with pytest.raises(TelegramBadRequest, match="IMAGE_PROCESS_FAILED"):
        await bot.send_photo(user.id, BufferedInputFile(b"not a picture", "chart.png"))


async def test_document_is_kept_with_its_name(telegram_double: TelegramDouble, bot: Bot) -> None:
    user = telegram_double.user(first_name="Alice", started=True)
    csv = b"time,side,size\n2024-01-01,buy,0.1\n"
    sent = await bot.send_document(user.id, BufferedInputFile(csv, "trades.csv"), caption="Trades")
    message = await user.next_message()

    assert (message.document_name, message.document_bytes, message.caption) == (
        "trades.csv",
        csv,
        "Trades",
    )
    assert sent.document is not None
    assert sent.document.mime_type == "text/csv"
    downloaded = await bot.download(sent.document)
    assert downloaded is not None
    assert downloaded.read() == csv
    with pytest.raises(TelegramBadRequest, match="can't use file of type Document as Photo"):
        await bot.send_photo(user.id, sent.document.file_id)


async def test_edit_message_media_replaces_the_photo_caption_and_keyboard(
    telegram_double: TelegramDouble, bot: Bot
) -> None:
    user = telegram_double.user(first_name="Alice", started=True)
    first, second = make_png(200, 100), make_png(300, 150)
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="7D", callback_data="p:7d")]]
    )
    sent = await bot.send_photo(
        user.id, BufferedInputFile(first, "a.png"), caption="30 days", reply_markup=keyboard
    )
    message = await user.next_message()

    edited = await bot.edit_message_media(
        InputMediaPhoto(
            media=BufferedInputFile(second, "b.png"), caption="<b>7</b> days", parse_mode="HTML"
        ),
        chat_id=user.id,
        message_id=sent.message_id,
        reply_markup=keyboard,
    )
    assert isinstance(edited, Message)
    assert edited.photo is not None
    assert (edited.photo[-1].width, edited.photo[-1].height) == (300, 150)
    assert message.photo_bytes == second
    assert (message.caption, len(message.edits)) == ("7 days", 1)
    assert message.keyboard == [[("7D", "p:7d")]]
    assert message.versions[0].media != message.current.media

    # The same file, caption and keyboard again changes nothing, as Telegram says.
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_media(
            InputMediaPhoto(
                media=edited.photo[-1].file_id, caption="<b>7</b> days", parse_mode="HTML"
            ),
            chat_id=user.id,
            message_id=sent.message_id,
            reply_markup=keyboard,
        )
    # Without a caption and a keyboard, both go.
    await bot.edit_message_media(
        InputMediaPhoto(media=BufferedInputFile(first, "a.png")),
        chat_id=user.id,
        message_id=sent.message_id,
    )
    assert (message.caption, message.keyboard, message.photo_bytes) == (None, [], first)
    text = await bot.send_message(user.id, "plain")
    with pytest.raises(TelegramBadRequest, match="there is no media in the message to edit"):
        await bot.edit_message_media(
            InputMediaPhoto(media=BufferedInputFile(first, "a.png")),
            chat_id=user.id,
            message_id=text.message_id,
        )


# --- errors --------------------------------------------------------------------------------


async def test_bad_requests_surface_as_telegram_bad_request(
    telegram_double: TelegramDouble, bot: Bot
) -> None:
    user = telegram_double.user(first_name="Alice", started=True)
    cases: list[tuple[dict[str, object], str]] = [
        ({"chat_id": user.id, "text": ""}, "message text is empty"),
        ({"chat_id": user.id, "text": "   \n"}, "message text is empty"),
        ({"chat_id": user.id, "text": "x" * 4097}, "message is too long"),
        ({"chat_id": 424242, "text": "hi"}, "chat not found"),
        (
            {"chat_id": user.id, "text": "<b>oops", "parse_mode": "HTML"},
            "can't parse entities: Can't find end tag corresponding to start tag b",
        ),
        (
            {"chat_id": user.id, "text": "Price 1.5", "parse_mode": "MarkdownV2"},
            "Character '.' is reserved and must be escaped",
        ),
    ]
    for params, description in cases:
        with pytest.raises(TelegramBadRequest) as raised:
            await bot.send_message(**params)  # type: ignore[arg-type]
        assert description in raised.value.message
    assert telegram_double.calls_to("sendMessage")[0].response == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: message text is empty",
    }

    sent = await bot.send_message(user.id, "Menu", reply_markup=KEYBOARD)
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_reply_markup(
            chat_id=user.id, message_id=sent.message_id, reply_markup=KEYBOARD
        )
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("new", chat_id=user.id, message_id=9999)
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query("12345")


async def test_flood_control_surfaces_as_retry_after(
    telegram_double: TelegramDouble, bot: Bot
) -> None:
    user = telegram_double.user(first_name="Alice", started=True)
    telegram_double.flood(1, retry_after=3)
    with pytest.raises(TelegramRetryAfter) as raised:
        await bot.send_message(user.id, "hi")
    assert raised.value.retry_after == 3
    assert telegram_double.calls_to("sendMessage")[0].response == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 3",
        "parameters": {"retry_after": 3},
    }
    await bot.send_message(user.id, "hi again")
    assert (await user.next_message()).text == "hi again"


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("bad_gateway", ClientDecodeError),
        ("reset", TelegramNetworkError),
        ("server_error", TelegramServerError),
    ],
)
async def test_outage_modes(
    telegram_double: TelegramDouble, bot: Bot, mode: str, error: type[Exception]
) -> None:
    telegram_double.set_down(True, mode=mode)
    with pytest.raises(error):
        await bot.get_me()
    telegram_double.set_down(False)
    assert (await bot.get_me()).username == "tv2dydx_test_bot"
    telegram_double.set_down(0.2, mode=mode)
    await asyncio.sleep(0.25)
    assert (await bot.get_me()).username == "tv2dydx_test_bot"


async def test_users_privacy_is_enforced(telegram_double: TelegramDouble, bot: Bot) -> None:
    stranger = telegram_double.user(first_name="Eve")
    with pytest.raises(TelegramForbiddenError, match="bot can't initiate conversation with a user"):
        await bot.send_message(stranger.id, "hi")

    fan = telegram_double.user(first_name="Fan", started=True)
    await bot.send_message(fan.id, "welcome")
    await fan.block()
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(fan.id, "still there?")
    update = telegram_double.pending_updates()[-1]
    assert update["my_chat_member"]["new_chat_member"]["status"] == "kicked"
    chat = await bot.get_chat(fan.id)
    assert (chat.type, chat.first_name) == ("private", "Fan")


# --- getUpdates and webhooks -------------------------------------------------------------


async def test_get_updates_honours_offset_limit_timeout_and_allowed_updates(
    telegram_double: TelegramDouble, bot: Bot
) -> None:
    user = telegram_double.user(first_name="Bob")
    for text in ("one", "two", "three"):
        await user.send(text)

    first_two = await bot.get_updates(limit=2)
    assert [update.message.text for update in first_two if update.message] == ["one", "two"]
    assert len(await bot.get_updates()) == 3  # nothing confirmed yet
    rest = await bot.get_updates(offset=first_two[-1].update_id + 1)
    assert [update.message.text for update in rest if update.message] == ["three"]
    offset = rest[-1].update_id + 1

    waiting = asyncio.create_task(bot.get_updates(offset=offset, timeout=5))
    await telegram_double.wait_until(
        lambda: any(c.response is None for c in telegram_double.calls_to("getUpdates"))
    )
    started = time.perf_counter()
    await user.send("four")
    woken = await waiting
    assert time.perf_counter() - started < 1.0
    assert [update.message.text for update in woken if update.message] == ["four"]
    offset = woken[-1].update_id + 1

    assert await bot.get_updates(offset=offset, allowed_updates=["callback_query"]) == []
    await user.send("five")  # filtered out: the bot only wants callback queries
    assert await bot.get_updates(offset=offset) == []

    older = asyncio.create_task(bot.get_updates(offset=offset, timeout=5))
    await telegram_double.wait_until(
        lambda: any(c.response is None for c in telegram_double.calls_to("getUpdates"))
    )
    assert await bot.get_updates(offset=offset) == []
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates request"):
        await older


async def test_webhook_delivers_updates_with_the_secret_header(
    telegram_double: TelegramDouble, bot: Bot
) -> None:
    user = telegram_double.user(first_name="Alice")
    seen: list[str | None] = []
    async with webhook_app(bot, seen) as url:
        assert await bot.set_webhook(url, secret_token="wrong-secret")
        await user.send("/start")
        await telegram_double.wait_until(
            lambda: (info := telegram_double.webhook_info()) and info.last_error_message,
            what="webhook delivery error",
        )
        info = await bot.get_webhook_info()
        assert info.last_error_message == "Wrong response from the webhook: 401 Unauthorized"
        assert info.pending_update_count == 1

        assert await bot.set_webhook(url, secret_token=WEBHOOK_SECRET)
        reply = await user.next_message()
        await user.send("/ping")
        pong = await user.next_message()
        with pytest.raises(TelegramConflictError, match="can't use getUpdates method while"):
            await bot.get_updates()
        info = await bot.get_webhook_info()
        assert await bot.delete_webhook()

    assert reply.text == "Hello, Alice!"
    assert pong.text == "pong"
    assert telegram_double.calls_to("sendMessage")[-1].via == "webhook_reply"
    refused = seen.count("wrong-secret")  # refused deliveries are retried until fixed
    assert refused >= 1
    assert seen == ["wrong-secret"] * refused + [WEBHOOK_SECRET] * 2
    assert (info.url, info.pending_update_count) == (url, 0)
    delivered = [d for d in telegram_double.webhook_deliveries if d.status == 200]
    assert len(delivered) == 2
    assert delivered[-1].reply_method == "sendMessage"
    assert all(d.headers["X-Telegram-Bot-Api-Secret-Token"] == WEBHOOK_SECRET for d in delivered)
    assert await bot.get_updates() == []  # polling works again


# --- channels, commands, menu ------------------------------------------------------------


async def test_channel_posting_needs_administrator_rights(
    telegram_double: TelegramDouble, bot: Bot, telegram_bot: BotIdentity
) -> None:
    channel = telegram_double.channel("Signals", username="tv2dydx_signals")
    member = await bot.get_chat_member(channel.id, telegram_bot.id)
    assert isinstance(member, ChatMemberAdministrator)
    assert member.can_post_messages
    admins = await bot.get_chat_administrators(channel.id)
    assert {admin.status for admin in admins} == {"creator", "administrator"}

    sent = await bot.send_message(channel.id, "BTC long 🚀")
    assert sent.sender_chat is not None
    assert (sent.sender_chat.id, sent.from_user) == (channel.id, None)
    assert (await channel.next_post()).text == "BTC long 🚀"
    await bot.send_message("@tv2dydx_signals", "by username")
    assert (await channel.next_post()).text == "by username"

    outsider = telegram_double.channel("Other", username="other_signals", bot_status="left")
    assert isinstance(await bot.get_chat_member(outsider.id, telegram_bot.id), ChatMemberLeft)
    with pytest.raises(TelegramForbiddenError, match="bot is not a member of the channel chat"):
        await bot.send_message(outsider.id, "hi")

    muted = telegram_double.channel("Muted", can_post_messages=False)
    with pytest.raises(TelegramBadRequest, match="need administrator rights in the channel chat"):
        await bot.send_message(muted.id, "hi")

    await channel.set_bot_status("kicked")
    with pytest.raises(TelegramForbiddenError, match="bot was kicked from the channel chat"):
        await bot.send_message(channel.id, "hi")


async def test_commands_and_menu_button(telegram_double: TelegramDouble, bot: Bot) -> None:
    commands = [
        BotCommand(command="start", description="Start"),
        BotCommand(command="status", description="Positions and orders"),
    ]
    assert await bot.set_my_commands(commands)
    got = await bot.get_my_commands()
    assert [(c.command, c.description) for c in got] == [
        (c.command, c.description) for c in commands
    ]
    assert [c["command"] for c in telegram_double.commands()] == ["start", "status"]
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Status", description="x")])

    user = telegram_double.user(first_name="Alice", started=True)
    button = MenuButtonWebApp(text="Open", web_app=WebAppInfo(url="https://app.example.com"))
    assert await bot.set_chat_menu_button(chat_id=user.id, menu_button=button)
    assert user.menu_button == {
        "type": "web_app",
        "text": "Open",
        "web_app": {"url": "https://app.example.com"},
    }
    insecure = MenuButtonWebApp(text="Open", web_app=WebAppInfo(url="http://app.example.com"))
    with pytest.raises(TelegramBadRequest, match="Only HTTPS links are allowed"):
        await bot.set_chat_menu_button(chat_id=user.id, menu_button=insecure)


async def test_user_uploads_reach_the_bot(telegram_double: TelegramDouble, bot: Bot) -> None:
    user = telegram_double.user(first_name="Alice")
    png = make_png(64, 64)
    await user.send_photo(png, caption="my chart")
    await user.send_document(b"key=value\n", "settings.txt")
    photo_update, document_update = await bot.get_updates()

    photo_message, document_message = photo_update.message, document_update.message
    assert photo_message is not None
    assert document_message is not None
    assert photo_message.caption == "my chart"
    assert photo_message.photo is not None
    photo = await bot.download(photo_message.photo[-1])
    assert photo is not None
    assert photo.read() == png
    assert document_message.document is not None
    assert document_message.document.file_name == "settings.txt"
    assert document_message.document.mime_type == "text/plain"
    document = await bot.download(document_message.document)
    assert document is not None
    assert document.read() == b"key=value\n"


async def test_reply_keyboards_replies_and_user_edits(
    telegram_double: TelegramDouble, bot: Bot
) -> None:
    user = telegram_double.user(first_name="Alice")
    question = await user.send("What is my balance?")
    keyboard = ReplyKeyboardMarkup(
        keyboard=[[KeyboardButton(text="Yes"), KeyboardButton(text="No")]], resize_keyboard=True
    )
    answer = await bot.send_message(
        user.id,
        "Sure?",
        reply_markup=keyboard,
        reply_parameters=ReplyParameters(message_id=question.message_id),
    )
    assert answer.reply_to_message is not None
    assert answer.reply_to_message.message_id == question.message_id
    assert answer.reply_markup is None  # a reply keyboard belongs to the chat, not the message
    assert user.reply_keyboard == [["Yes", "No"]]
    await bot.send_message(user.id, "ok", reply_markup=ReplyKeyboardRemove())
    assert user.reply_keyboard is None
    with pytest.raises(TelegramBadRequest, match="message to be replied not found"):
        await bot.send_message(user.id, "x", reply_parameters=ReplyParameters(message_id=9999))

    await user.edit(question, "What is my PnL?")
    updates = await bot.get_updates()
    assert updates[-1].edited_message is not None
    assert updates[-1].edited_message.text == "What is my PnL?"


async def test_channel_events_reach_the_bot(telegram_double: TelegramDouble, bot: Bot) -> None:
    channel = telegram_double.channel("Signals")
    await channel.post("Hello subscribers")
    await channel.set_bot_status("left")
    post, membership = await bot.get_updates()

    assert post.channel_post is not None
    assert post.channel_post.text == "Hello subscribers"
    assert post.channel_post.sender_chat is not None
    assert post.channel_post.sender_chat.id == channel.id
    assert membership.my_chat_member is not None
    assert membership.my_chat_member.old_chat_member.status == "administrator"
    assert membership.my_chat_member.new_chat_member.status == "left"
    assert channel.bot_status() == "left"


async def test_bulk_delete_skips_missing_messages(
    telegram_double: TelegramDouble, bot: Bot
) -> None:
    user = telegram_double.user(first_name="Alice", started=True)
    sent = [await bot.send_message(user.id, f"alert {n}") for n in range(3)]
    assert await bot.delete_messages(user.id, [m.message_id for m in sent] + [9999])
    assert [m.deleted for m in user.bot_messages] == [True, True, True]
    assert len(telegram_double.sent) == 3


async def test_reset_forgets_everything_but_keeps_serving(
    telegram_double: TelegramDouble, bot: Bot
) -> None:
    user = telegram_double.user(first_name="Alice", started=True)
    await bot.send_message(user.id, "hi")
    telegram_double.set_down(True)
    telegram_double.reset()
    assert (telegram_double.calls, telegram_double.sent, telegram_double.bots) == ([], [], [])
    with pytest.raises(TelegramUnauthorizedError):
        await bot.get_me()  # the token is no longer registered, and the outage is over
    telegram_double.add_bot(bot.token, username="again_bot")
    assert (await bot.get_me()).username == "again_bot"
