"""/key through the real aiogram, the Telegram double and the dYdX double."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import AsyncIterator, Callable

import pytest
from aiogram import Dispatcher
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.models import Credential, User
from core.runtime.config import Settings
from doubles.dydx.accounts import FundedTrader
from doubles.dydx.double import DydxDouble
from doubles.dydx.keys import new_key, web_app_trading_key_config
from doubles.telegram import ChatMessage, TelegramDouble
from doubles.telegram.actors import SimulatedUser
from tests.conftest import polling_bot

MNEMONIC = "abandon ability able about above absent absorb abstract absurd abuse access accident"


@pytest.fixture
async def running_bot(
    make_settings: Callable[..., Settings],
    telegram_env: dict[str, str],
    dydx_env: dict[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
    dispatcher: Dispatcher,
) -> AsyncIterator[None]:
    settings = make_settings(**telegram_env, **dydx_env)
    async with polling_bot(settings, sessionmaker, dispatcher):
        yield


async def onboarded(telegram_double: TelegramDouble, name: str) -> SimulatedUser:
    """A user who sent /start and accepted the declaration."""
    user = telegram_double.user(first_name=name)
    await user.send("/start")
    await user.next_message()
    declaration = await user.next_message()
    await user.press(declaration, text="I confirm")
    await user.next_message()  # "Thank you, noted."
    return user


async def _credential(
    sessionmaker: async_sessionmaker[AsyncSession], telegram_id: int
) -> Credential | None:
    async with sessionmaker() as session:
        user = await session.scalar(select(User).where(User.telegram_id == telegram_id))
        assert user is not None
        return await session.scalar(select(Credential).where(Credential.user_id == user.id))


def _text(message: ChatMessage) -> str:
    return message.text or message.caption or ""


async def _start_key(user: SimulatedUser, owner_address: str) -> None:
    await user.send("/key")
    assert "Step 1 of 2" in _text(await user.next_message())
    await user.send(owner_address)
    step2 = _text(await user.next_message())
    assert "Step 2 of 2" in step2
    assert owner_address in step2


async def _send_secret(user: SimulatedUser, text: str) -> ChatMessage:
    """Send a secret; check it was deleted and the bot said so."""
    sent = await user.send(text)
    notice = await user.next_message()
    assert sent.deleted
    assert sent.deleted_by == "bot"
    assert "I deleted your message" in _text(notice)
    return sent


@pytest.mark.usefixtures("running_bot")
async def test_key_conversation_connects_a_web_app_key_and_shows_it(
    telegram_double: TelegramDouble,
    funded_trader: FundedTrader,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    user = await onboarded(telegram_double, "Alice")
    await _start_key(user, funded_trader.owner_address)
    await _send_secret(user, f"0x{funded_trader.api_private_key_hex}")
    assert "Checking" in _text(await user.next_message())
    connected = _text(await user.next_message())
    assert "Trading key connected" in connected
    assert funded_trader.api_address in connected
    assert f"Authenticator: #{funded_trader.authenticator_id}" in connected
    assert "Next step" in connected

    row = await _credential(sessionmaker, user.id)
    assert row is not None
    assert row.authenticator_id == funded_trader.authenticator_id
    assert row.key_address == funded_trader.api_address

    await user.send("/key")
    status = await user.next_message()
    text = _text(status)
    assert "Your dYdX trading key" in text
    for expected in (
        funded_trader.owner_address,
        funded_trader.api_address,
        f"Authenticator: #{funded_trader.authenticator_id}",
        "Added: ",
        "compliant",
    ):
        assert expected in text
    assert [b.text for b in status.buttons] == ["🔁 Replace key", "🗑 Remove key"]

    # The key never comes back in anything the bot wrote.
    for message in user.bot_messages:
        assert funded_trader.api_private_key_hex not in _text(message)


@pytest.mark.usefixtures("running_bot")
async def test_refusals_explain_why_and_store_nothing(
    telegram_double: TelegramDouble,
    funded_trader: FundedTrader,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    user = await onboarded(telegram_double, "Bob")
    await user.send("/key")
    await user.next_message()

    # Step 1: a seed phrase or a key where the address belongs is deleted all the same.
    await _send_secret(user, MNEMONIC)
    assert "seed phrase" in _text(await user.next_message())
    await _send_secret(user, funded_trader.api_private_key_hex)
    assert "First I need the address" in _text(await user.next_message())
    typo = await user.send("dydx1abc")
    assert "not a dYdX account address" in _text(await user.next_message())
    assert not typo.deleted  # an address is not a secret

    await user.send(funded_trader.owner_address)
    assert "Step 2 of 2" in _text(await user.next_message())

    # Step 2: every message is deleted; format errors let the user paste again.
    await _send_secret(user, MNEMONIC)
    await user.next_message()  # checking
    refusal = _text(await user.next_message())
    assert "seed phrase" in refusal
    assert "Never send your seed phrase" in refusal
    await _send_secret(user, "not-a-key")
    await user.next_message()
    assert "64 characters" in _text(await user.next_message())

    # The owner's own key: refused, and the conversation ends.
    await _send_secret(user, funded_trader.owner_private_key_hex)
    await user.next_message()
    master = _text(await user.next_message())
    assert "main key" in master
    assert "Send /key to start again" in master

    # Outside the conversation a pasted key is still deleted.
    stray = await user.send(funded_trader.api_private_key_hex)
    answer = _text(await user.next_message())
    assert stray.deleted
    assert "I deleted it" in answer
    assert await _credential(sessionmaker, user.id) is None


@pytest.mark.usefixtures("running_bot")
async def test_a_key_that_could_withdraw_is_refused_with_its_reason(
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    funded_trader: FundedTrader,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    broad = new_key()
    subs = [
        {"type": "SignatureVerification", "config": base64.b64encode(broad.public_key).decode()},
        {"type": "SubaccountFilter", "config": base64.b64encode(b"0").decode()},
    ]
    dydx_double.add_authenticator(
        funded_trader.owner_address, "AllOf", json.dumps(subs, separators=(",", ":")).encode()
    )
    user = await onboarded(telegram_double, "Carol")
    await _start_key(user, funded_trader.owner_address)
    await _send_secret(user, broad.private_key_hex)
    await user.next_message()
    refusal = _text(await user.next_message())
    assert "could also move funds" in refusal
    assert "API Trading Keys" in refusal
    assert await _credential(sessionmaker, user.id) is None

    stranger = new_key()
    await _start_key(user, funded_trader.owner_address)
    await _send_secret(user, stranger.private_key_hex)
    await user.next_message()
    assert "has no API trading key" in _text(await user.next_message())
    assert await _credential(sessionmaker, user.id) is None


@pytest.mark.usefixtures("running_bot")
async def test_replace_then_remove_with_confirmation(
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    funded_trader: FundedTrader,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    user = await onboarded(telegram_double, "Dave")
    await _start_key(user, funded_trader.owner_address)
    await _send_secret(user, funded_trader.api_private_key_hex)
    await user.next_message()
    await user.next_message()

    replacement = new_key()
    replacement_id = dydx_double.add_authenticator(
        funded_trader.owner_address, "AllOf", web_app_trading_key_config(replacement.public_key)
    )
    await user.send("/key")
    status = await user.next_message()
    await user.press(status, text="🔁 Replace key")
    assert "replace your trading key" in _text(await user.next_message())
    await user.send(funded_trader.owner_address)
    await user.next_message()
    await _send_secret(user, replacement.private_key_hex)
    await user.next_message()
    assert f"Authenticator: #{replacement_id}" in _text(await user.next_message())
    row = await _credential(sessionmaker, user.id)
    assert row is not None
    assert row.authenticator_id == replacement_id

    await user.send("/key")
    status = await user.next_message()
    await user.press(status, text="🗑 Remove key")
    confirm = await user.next_message()
    assert "Remove the trading key" in _text(confirm)
    await user.press(confirm, text="No, keep it")
    await user.wait_edited(confirm)
    assert "Kept" in _text(confirm)
    assert await _credential(sessionmaker, user.id) is not None

    await user.press(status, text="🗑 Remove key")
    confirm = await user.next_message()
    await user.press(confirm, text="Yes, remove it")
    await user.wait_edited(confirm)
    assert "Removed" in _text(confirm)
    assert "API Trading Keys" in _text(confirm)
    assert await _credential(sessionmaker, user.id) is None

    await user.send("/key")
    assert "Step 1 of 2" in _text(await user.next_message())


@pytest.mark.usefixtures("running_bot")
async def test_cancel_leaves_the_conversation(
    telegram_double: TelegramDouble, funded_trader: FundedTrader
) -> None:
    user = await onboarded(telegram_double, "Erin")
    await _start_key(user, funded_trader.owner_address)
    await user.send("/cancel")
    assert "Cancelled; nothing was stored" in _text(await user.next_message())
    await user.send(funded_trader.owner_address)
    assert "didn't understand" in _text(await user.next_message())


@pytest.mark.usefixtures("running_bot")
async def test_a_picture_at_the_key_step_is_deleted(
    telegram_double: TelegramDouble, funded_trader: FundedTrader
) -> None:
    user = await onboarded(telegram_double, "Faye")
    await _start_key(user, funded_trader.owner_address)
    photo = await user.send_photo(_png(), caption="my key")
    assert "I deleted your message" in _text(await user.next_message())
    assert photo.deleted
    assert "as a text message" in _text(await user.next_message())


@pytest.mark.usefixtures("running_bot")
async def test_compliance_and_an_unreachable_node_are_told(
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    funded_trader: FundedTrader,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    dydx_double.set_compliance(funded_trader.owner_address, "BLOCKED")
    dydx_double.node.unavailable(1, "GetAuthenticators")
    user = await onboarded(telegram_double, "Gus")
    await _start_key(user, funded_trader.owner_address)
    await _send_secret(user, funded_trader.api_private_key_hex)
    await user.next_message()
    retry = _text(await user.next_message())
    assert "could not reach dYdX" in retry
    assert "Nothing was stored" in retry
    assert await _credential(sessionmaker, user.id) is None

    # The conversation is still at step 2: pasting again works.
    await _send_secret(user, funded_trader.api_private_key_hex)
    await user.next_message()
    connected = _text(await user.next_message())
    assert "Trading key connected" in connected
    assert "BLOCKED" in connected
    assert "not place any order" in connected
    await user.send("/key")
    assert "BLOCKED" in _text(await user.next_message())


def _png() -> bytes:
    """A valid 8x8 grey PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + b"\x80" * 8 for _ in range(8))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
