"""WalletLinkService: the EIP-4361 wallet link, verified strictly, against real PostgreSQL.

Every refusal is checked for its message *and* for storing nothing: no wallet row, no
notification, and (where the link should stay usable) an unconsumed request.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import pytest
from aiogram import Bot, Dispatcher
from aiohttp import web
from aiohttp.test_utils import TestServer
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from redis.asyncio import Redis
from siwe import SiweMessage
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.adapters.arq_queue import QUEUE_NAME, ArqJobQueue
from core.adapters.telegram import TelegramSender
from core.db.models import AuditLog, Notification, User, Wallet, WalletLinkRequest
from core.db.uow import UnitOfWork
from core.runtime.config import Settings
from core.security.crypto import token_hash
from core.services.notifications import NotificationService
from core.services.wallet_link.errors import (
    AddressTakenError,
    AlreadyLinkedError,
    ContractWalletUnsupportedError,
    InitDataInvalidError,
    InvalidInputError,
    InvalidSignatureError,
    LinkUnavailableError,
    MessageExpiredError,
    MessageMismatchError,
    NonceMismatchError,
    OtherTelegramUserError,
    RpcUnavailableError,
    WrongChainError,
    WrongDomainError,
    WrongUriError,
)
from core.services.wallet_link.service import LINK_TTL, WalletLinkService
from core.services.wallet_link.site import LinkSite
from doubles.telegram import BotIdentity, TelegramDouble
from doubles.telegram.actors import SimulatedUser
from doubles.telegram.state import UserProfile
from doubles.telegram.webapp import init_data_for
from tests.conftest import polling_bot

BASE_URL = "https://tv2dydx.example.com"
SITE = LinkSite(base_url=BASE_URL)
T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
# Fixed keys: a deterministic wallet per role.
ALICE_KEY = "0x" + "11" * 32
BOB_KEY = "0x" + "22" * 32
MALLORY_KEY = "0x" + "33" * 32
EIP1271_MAGIC = "0x1626ba7e" + "00" * 28


class Clock:
    """A settable UTC clock."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class Linker:
    service: WalletLinkService
    clock: Clock
    sessionmaker: async_sessionmaker[AsyncSession]


def launch_data(url: str) -> str:
    """The ``initData`` a Mini App page reads from its launch URL's fragment."""
    return dict(parse_qsl(url.split("#", 1)[1]))["tgWebAppData"]


def sign(account: LocalAccount, message: str) -> str:
    """EIP-191 personal_sign, as a wallet does it."""
    return "0x" + account.sign_message(encode_defunct(text=message)).signature.hex()


def edit(message: str, **changes: Any) -> str:
    """The message with some fields changed, re-serialised by the library."""
    parsed = SiweMessage.from_message(message)
    return str(parsed.model_copy(update=changes).prepare_message())


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


async def request_row(
    sessionmaker: async_sessionmaker[AsyncSession], token: str
) -> WalletLinkRequest:
    async with sessionmaker() as session:
        row = await session.scalar(
            select(WalletLinkRequest).where(WalletLinkRequest.token_hash == token_hash(token))
        )
        assert row is not None
        return row


async def assert_nothing_stored(
    sessionmaker: async_sessionmaker[AsyncSession], *unconsumed: str
) -> None:
    assert await count(sessionmaker, Wallet) == 0
    assert await count(sessionmaker, Notification) == 0
    for token in unconsumed:
        assert (await request_row(sessionmaker, token)).used_at is None


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def linker(sessionmaker: async_sessionmaker[AsyncSession], clock: Clock) -> Linker:
    return Linker(WalletLinkService(sessionmaker, SITE, clock=clock), clock, sessionmaker)


@pytest.fixture
async def alice(sessionmaker: async_sessionmaker[AsyncSession]) -> User:
    return await make_user(sessionmaker, 1001, "alice")


@pytest.fixture
async def bob(sessionmaker: async_sessionmaker[AsyncSession]) -> User:
    return await make_user(sessionmaker, 1002, None)


ALICE = Account.from_key(ALICE_KEY)
BOB = Account.from_key(BOB_KEY)
MALLORY = Account.from_key(MALLORY_KEY)


# Happy path ---------------------------------------------------------------------------


async def test_link_happy_path_stores_the_wallet_audit_and_confirmation(
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: Clock,
    alice: User,
    redis: Redis,
    redis_url: str,
) -> None:
    queue = await ArqJobQueue.connect(redis_url)
    service = WalletLinkService(sessionmaker, SITE, queue=queue, clock=clock)
    try:
        issued = await service.issue_link(alice.id)
        assert issued.url == f"{BASE_URL}/link/{issued.token}"
        assert len(issued.token) == 32  # 192 bits, base64url
        assert issued.expires_at == T0 + LINK_TTL
        row = await request_row(sessionmaker, issued.token)
        # Only the hash is stored; the token appears in no column.
        assert row.token_hash == token_hash(issued.token)
        assert issued.token not in repr(
            {c.name: getattr(row, c.name) for c in WalletLinkRequest.__table__.columns}
        )
        assert row.nonce is None

        await service.check_link(issued.token)
        clock.advance(timedelta(seconds=30))
        message = await service.prepare(issued.token, ALICE.address.lower(), 1)
        row = await request_row(sessionmaker, issued.token)
        assert row.nonce is not None
        assert len(row.nonce) == 32
        assert message == (
            "tv2dydx.example.com wants you to sign in with your Ethereum account:\n"
            f"{ALICE.address}\n\n"
            "Link this wallet to Telegram user @alice (id 1001) on tv2dydx. This signature "
            "costs nothing and grants no access to funds.\n\n"
            f"URI: {BASE_URL}\n"
            "Version: 1\n"
            "Chain ID: 1\n"
            f"Nonce: {row.nonce}\n"
            "Issued At: 2026-11-25T12:00:30.000Z\n"
            "Expiration Time: 2026-11-25T12:05:30.000Z"
        )

        clock.advance(timedelta(seconds=20))
        linked = await service.verify(issued.token, message, sign(ALICE, message))
        assert linked.address == ALICE.address  # EIP-55 for display
        assert linked.chain_id == 1

        async with sessionmaker() as session:
            wallet = await session.scalar(select(Wallet))
            assert wallet is not None
            assert (wallet.user_id, wallet.address, wallet.chain_id) == (
                alice.id,
                ALICE.address.lower(),
                1,
            )
            note = await session.scalar(select(Notification))
            assert note is not None
            assert (note.chat_id, note.user_id, note.kind) == (1001, alice.id, "wallet_linked")
            assert ALICE.address in note.text
            assert "/unlink" in note.text
            actions = list(await session.scalars(select(AuditLog.action).order_by(AuditLog.id)))
        assert actions == ["wallet_link_issued", "wallet_linked"]
        assert (await request_row(sessionmaker, issued.token)).used_at == clock.now
        # The worker was nudged to deliver the confirmation now.
        assert await redis.zcard(QUEUE_NAME) == 1
        status = await service.status(alice.id)
        assert status is not None
        assert status.address == ALICE.address
    finally:
        await queue.close()


async def test_a_checksummed_address_and_a_username_less_account(linker: Linker, bob: User) -> None:
    issued = await linker.service.issue_link(bob.id)
    message = await linker.service.prepare(issued.token, BOB.address, 1)
    assert "Telegram user id 1002 on tv2dydx." in message
    linked = await linker.service.verify(issued.token, message, sign(BOB, message))
    assert linked.address == BOB.address


# The negative cases of the issue ----------------------------------------------------------


async def test_a_replayed_signature_is_refused(linker: Linker, alice: User) -> None:
    issued = await linker.service.issue_link(alice.id)
    message = await linker.service.prepare(issued.token, ALICE.address, 1)
    signature = sign(ALICE, message)
    await linker.service.verify(issued.token, message, signature)

    with pytest.raises(LinkUnavailableError, match="no longer valid"):
        await linker.service.verify(issued.token, message, signature)
    assert await count(linker.sessionmaker, Wallet) == 1
    assert await count(linker.sessionmaker, Notification) == 1

    # Replayed against a fresh link of the same user (after /unlink): its nonce is old.
    await linker.service.unlink(alice.id)
    fresh = await linker.service.issue_link(alice.id)
    await linker.service.prepare(fresh.token, ALICE.address, 1)
    with pytest.raises(NonceMismatchError, match="not issued for this link"):
        await linker.service.verify(fresh.token, message, signature)
    assert await count(linker.sessionmaker, Wallet) == 0
    assert (await request_row(linker.sessionmaker, fresh.token)).used_at is None


async def test_an_expired_message_is_refused(linker: Linker, alice: User) -> None:
    issued = await linker.service.issue_link(alice.id)
    message = await linker.service.prepare(issued.token, ALICE.address, 1)
    linker.clock.advance(timedelta(minutes=5, seconds=1))  # the link itself lives 10 minutes
    with pytest.raises(MessageExpiredError, match="has expired"):
        await linker.service.verify(issued.token, message, sign(ALICE, message))
    await assert_nothing_stored(linker.sessionmaker, issued.token)


async def test_an_expired_link_is_refused_everywhere(linker: Linker, alice: User) -> None:
    issued = await linker.service.issue_link(alice.id)
    message = await linker.service.prepare(issued.token, ALICE.address, 1)
    signature = sign(ALICE, message)
    linker.clock.advance(LINK_TTL)
    with pytest.raises(LinkUnavailableError):
        await linker.service.check_link(issued.token)
    with pytest.raises(LinkUnavailableError):
        await linker.service.prepare(issued.token, ALICE.address, 1)
    with pytest.raises(LinkUnavailableError, match="Send /link"):
        await linker.service.verify(issued.token, message, signature)
    await assert_nothing_stored(linker.sessionmaker, issued.token)


async def test_a_wrong_domain_is_refused(linker: Linker, alice: User) -> None:
    issued = await linker.service.issue_link(alice.id)
    message = await linker.service.prepare(issued.token, ALICE.address, 1)
    for domain, changes in (
        ("evil.example", {"domain": "evil.example"}),
        ("tv2dydx.example.com:444", {"domain": "tv2dydx.example.com:444"}),
    ):
        forged = edit(message, **changes)
        with pytest.raises(WrongDomainError) as info:
            await linker.service.verify(issued.token, forged, sign(ALICE, forged))
        assert f"made for {domain}, not for tv2dydx.example.com" in info.value.message
    with_scheme = edit(message, scheme="https")
    with pytest.raises(WrongDomainError):
        await linker.service.verify(issued.token, with_scheme, sign(ALICE, with_scheme))
    await assert_nothing_stored(linker.sessionmaker, issued.token)
    # The link still works with the genuine message.
    await linker.service.verify(issued.token, message, sign(ALICE, message))


async def test_a_wrong_uri_is_refused(linker: Linker, alice: User) -> None:
    issued = await linker.service.issue_link(alice.id)
    message = await linker.service.prepare(issued.token, ALICE.address, 1)
    forged = edit(message, uri="https://evil.example/login")
    with pytest.raises(WrongUriError, match=r"names https://evil\.example/login"):
        await linker.service.verify(issued.token, forged, sign(ALICE, forged))
    await assert_nothing_stored(linker.sessionmaker, issued.token)


async def test_a_wrong_chain_id_is_refused(linker: Linker, alice: User) -> None:
    issued = await linker.service.issue_link(alice.id)
    with pytest.raises(WrongChainError, match=r"Switch it to Ethereum \(chain id 1\)"):
        await linker.service.prepare(issued.token, ALICE.address, 5)
    message = await linker.service.prepare(issued.token, ALICE.address, 1)
    forged = edit(message, chain_id=5)
    with pytest.raises(WrongChainError, match="for chain id 5"):
        await linker.service.verify(issued.token, forged, sign(ALICE, forged))
    await assert_nothing_stored(linker.sessionmaker, issued.token)


async def test_testnet_links_on_sepolia(
    sessionmaker: async_sessionmaker[AsyncSession], make_settings: Callable[..., Any], alice: User
) -> None:
    site = LinkSite.from_settings(make_settings(dydx_network="testnet"))
    assert (site.chain_id, site.domain, site.uri) == (11155111, "localhost:8080", site.base_url)
    service = WalletLinkService(sessionmaker, site)
    issued = await service.issue_link(alice.id)
    with pytest.raises(WrongChainError, match="Sepolia"):
        await service.prepare(issued.token, ALICE.address, 1)
    message = await service.prepare(issued.token, ALICE.address, 11155111)
    assert (await service.verify(issued.token, message, sign(ALICE, message))).chain_id == (
        11155111
    )


async def test_a_reused_nonce_is_refused(linker: Linker, alice: User) -> None:
    issued = await linker.service.issue_link(alice.id)
    first = await linker.service.prepare(issued.token, ALICE.address, 1)
    second = await linker.service.prepare(issued.token, ALICE.address, 1)
    assert first != second
    with pytest.raises(NonceMismatchError, match="newer one replaced it"):
        await linker.service.verify(issued.token, first, sign(ALICE, first))
    await assert_nothing_stored(linker.sessionmaker, issued.token)
    await linker.service.verify(issued.token, second, sign(ALICE, second))


async def test_another_users_link_token_is_refused(linker: Linker, alice: User, bob: User) -> None:
    alice_link = await linker.service.issue_link(alice.id)
    bob_link = await linker.service.issue_link(bob.id)
    alice_message = await linker.service.prepare(alice_link.token, ALICE.address, 1)
    await linker.service.prepare(bob_link.token, BOB.address, 1)
    with pytest.raises(NonceMismatchError):
        await linker.service.verify(bob_link.token, alice_message, sign(ALICE, alice_message))
    await assert_nothing_stored(linker.sessionmaker, alice_link.token, bob_link.token)
    # Alice's own link is untouched by the attempt.
    await linker.service.verify(alice_link.token, alice_message, sign(ALICE, alice_message))


async def test_opened_from_telegram_the_init_data_must_be_valid_fresh_and_the_users(
    sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, alice: User, bob: User
) -> None:
    """The page as a Mini App (#13): its ``initData`` is checked when sent; without it (a
    wallet's own browser) the link token alone counts, as before."""
    bot = BotIdentity(token="5555:MiniApp-test-token-000000000000000", id=5555, username="b",
                      first_name="B")  # fmt: skip
    linker = WalletLinkService(sessionmaker, SITE, clock=clock, bot_token=bot.token)
    issued = await linker.issue_link(alice.id)
    signed_at = int(clock.now.timestamp())

    def opened_by(telegram_id: int, *, at: int = signed_at, by: BotIdentity = bot) -> str:
        return init_data_for(UserProfile(id=telegram_id, first_name="X"), by, auth_date=at)

    other_bot = BotIdentity(token="6666:Another-bots-token-00000000000000", id=6666,
                            username="o", first_name="O")  # fmt: skip
    refusals: list[tuple[str, type[Exception]]] = [
        (opened_by(bob.telegram_id), OtherTelegramUserError),
        (opened_by(alice.telegram_id, by=other_bot), InitDataInvalidError),
        (opened_by(alice.telegram_id, at=signed_at - 11 * 60), InitDataInvalidError),
        (opened_by(alice.telegram_id).replace("hash=", "hash=0"), InitDataInvalidError),
    ]
    for init_data, error in refusals:
        with pytest.raises(error):
            await linker.prepare(issued.token, ALICE.address, 1, init_data=init_data)
    message = await linker.prepare(
        issued.token, ALICE.address, 1, init_data=opened_by(alice.telegram_id)
    )
    for init_data, error in refusals:
        with pytest.raises(error):
            await linker.verify(issued.token, message, sign(ALICE, message), init_data=init_data)
    await assert_nothing_stored(sessionmaker, issued.token)
    # The bot's own service has no token to check initData with: it refuses, never trusts.
    with pytest.raises(InitDataInvalidError):
        await WalletLinkService(sessionmaker, SITE, clock=clock).prepare(
            issued.token, ALICE.address, 1, init_data=opened_by(alice.telegram_id)
        )
    wallet = await linker.verify(
        issued.token, message, sign(ALICE, message), init_data=opened_by(alice.telegram_id)
    )
    assert wallet.address == ALICE.address


async def test_a_message_naming_another_account_is_refused(linker: Linker, alice: User) -> None:
    issued = await linker.service.issue_link(alice.id)
    message = await linker.service.prepare(issued.token, ALICE.address, 1)
    forged = message.replace("@alice (id 1001)", "@mallory (id 666)")
    with pytest.raises(MessageMismatchError, match="not the one this server issued"):
        await linker.service.verify(issued.token, forged, sign(ALICE, forged))
    await assert_nothing_stored(linker.sessionmaker, issued.token)


@pytest.mark.parametrize(
    "changes",
    [
        {"request_id": "1"},
        {"resources": ["https://evil.example/"]},
        {"not_before": "2026-11-25T12:00:00.000Z"},
        {"expiration_time": None},
        {"expiration_time": "2026-11-25T13:00:00.000Z"},
        {"issued_at": "2026-11-25T12:30:00.000Z"},
    ],
)
async def test_fields_we_never_write_that_way_are_refused(
    linker: Linker, alice: User, changes: dict[str, Any]
) -> None:
    issued = await linker.service.issue_link(alice.id)
    message = await linker.service.prepare(issued.token, ALICE.address, 1)
    forged = edit(message, **changes)
    with pytest.raises(MessageMismatchError):
        await linker.service.verify(issued.token, forged, sign(ALICE, forged))
    await assert_nothing_stored(linker.sessionmaker, issued.token)


async def test_a_signature_by_another_key_is_refused_and_names_the_rpc_setting(
    linker: Linker, alice: User
) -> None:
    issued = await linker.service.issue_link(alice.id)
    message = await linker.service.prepare(issued.token, ALICE.address, 1)
    with pytest.raises(ContractWalletUnsupportedError, match="ETHEREUM_RPC_URL"):
        await linker.service.verify(issued.token, message, sign(MALLORY, message))
    # A signature over another text does not carry over either.
    with pytest.raises(ContractWalletUnsupportedError):
        await linker.service.verify(issued.token, message, sign(ALICE, message + " "))
    await assert_nothing_stored(linker.sessionmaker, issued.token)


@pytest.mark.parametrize(
    ("address", "chain_id", "error"),
    [
        ("0x123", 1, "not an Ethereum address"),
        ("1" * 42, 1, "not an Ethereum address"),
        ("0x" + "g" * 40, 1, "not an Ethereum address"),
        (ALICE.address[:-1] + ("A" if ALICE.address[-1] != "A" else "B"), 1, "checksum"),
        (ALICE.address.swapcase().replace("0X", "0x"), 1, "checksum"),
        (ALICE.address, 0, "not a chain id"),
        (ALICE.address, True, "not a chain id"),
        (ALICE.address, "1", "not a chain id"),
    ],
)
async def test_malformed_prepare_inputs_are_refused(
    linker: Linker, alice: User, address: str, chain_id: Any, error: str
) -> None:
    issued = await linker.service.issue_link(alice.id)
    with pytest.raises(InvalidInputError, match=error):
        await linker.service.prepare(issued.token, address, chain_id)
    assert (await request_row(linker.sessionmaker, issued.token)).nonce is None


async def test_malformed_verify_inputs_are_refused(linker: Linker, alice: User) -> None:
    issued = await linker.service.issue_link(alice.id)
    message = await linker.service.prepare(issued.token, ALICE.address, 1)
    good = sign(ALICE, message)
    cases: list[tuple[Any, Any, str]] = [
        (message, "0xZZ", "not a signature"),
        (message, good[2:], "not a signature"),
        (message, "0x" + "ab" * 8193, "not a signature"),
        (message, "0x" + "abc", "not a signature"),
        (message, None, "as text"),
        (["not", "text"], good, "as text"),
        ("x" * 2049, good, "too long"),
        ("hello", good, "not a valid sign-in message"),
        (message + "\n", good, "not a valid sign-in message"),
        (message.replace("\n\n", "\n \n", 1), good, "not a valid sign-in message"),
        (message.replace("Version: 1", "Version: 2"), good, "not a valid sign-in message"),
        (message.replace(ALICE.address, ALICE.address.lower()), good, "not the one"),
    ]
    for text, signature, error in cases:
        with pytest.raises((InvalidInputError, MessageMismatchError), match=error):
            await linker.service.verify(issued.token, text, signature)
    await assert_nothing_stored(linker.sessionmaker, issued.token)


@pytest.mark.parametrize("token", ["", "short", "a" * 33, "a" * 31 + "/", "a" * 31 + "!"])
async def test_malformed_or_unknown_tokens_are_unavailable(linker: Linker, token: str) -> None:
    with pytest.raises(LinkUnavailableError):
        await linker.service.check_link(token)
    with pytest.raises(LinkUnavailableError):
        await linker.service.prepare(token, ALICE.address, 1)
    with pytest.raises(LinkUnavailableError):
        await linker.service.check_link("A" * 32)  # well-formed, never issued


# One address per user, one user per address ---------------------------------------------


async def test_an_address_linked_to_another_user_is_refused(
    linker: Linker, alice: User, bob: User
) -> None:
    alice_link = await linker.service.issue_link(alice.id)
    message = await linker.service.prepare(alice_link.token, ALICE.address, 1)
    await linker.service.verify(alice_link.token, message, sign(ALICE, message))

    bob_link = await linker.service.issue_link(bob.id)
    message = await linker.service.prepare(bob_link.token, ALICE.address, 1)
    with pytest.raises(AddressTakenError, match="linked to another Telegram account"):
        await linker.service.verify(bob_link.token, message, sign(ALICE, message))
    assert await linker.service.status(bob.id) is None
    assert await count(linker.sessionmaker, Wallet) == 1
    assert await count(linker.sessionmaker, Notification) == 1
    assert (await request_row(linker.sessionmaker, bob_link.token)).used_at is None


async def test_a_linked_user_must_unlink_first(
    linker: Linker, sessionmaker: async_sessionmaker[AsyncSession], alice: User
) -> None:
    stale = await linker.service.issue_link(alice.id)
    issued = await linker.service.issue_link(alice.id)
    # Issuing a new link dropped the older unused one.
    with pytest.raises(LinkUnavailableError):
        await linker.service.check_link(stale.token)
    message = await linker.service.prepare(issued.token, ALICE.address, 1)
    await linker.service.verify(issued.token, message, sign(ALICE, message))

    with pytest.raises(AlreadyLinkedError, match="/unlink") as info:
        await linker.service.issue_link(alice.id)
    assert info.value.wallet.address == ALICE.address

    # A link issued before the wallet appeared (here: inserted directly) cannot add another.
    async with UnitOfWork(sessionmaker) as uow:
        await uow.wallets.delete_for_user(alice.id)
        await uow.commit()
    pending = await linker.service.issue_link(alice.id)
    message = await linker.service.prepare(pending.token, BOB.address, 1)
    async with UnitOfWork(sessionmaker) as uow:
        await uow.wallets.add(user_id=alice.id, address="0x" + "ab" * 20, chain_id=1, linked_at=T0)
        await uow.commit()
    with pytest.raises(AlreadyLinkedError):
        await linker.service.prepare(pending.token, BOB.address, 1)
    with pytest.raises(AlreadyLinkedError):
        await linker.service.verify(pending.token, message, sign(BOB, message))
    assert (await request_row(sessionmaker, pending.token)).used_at is None


async def test_unlink_removes_the_wallet_link_alone(
    linker: Linker, sessionmaker: async_sessionmaker[AsyncSession], alice: User
) -> None:
    issued = await linker.service.issue_link(alice.id)
    message = await linker.service.prepare(issued.token, ALICE.address, 1)
    await linker.service.verify(issued.token, message, sign(ALICE, message))

    removed = await linker.service.unlink(alice.id)
    assert removed is not None
    assert removed.address == ALICE.address
    assert await linker.service.status(alice.id) is None
    assert await linker.service.unlink(alice.id) is None
    async with sessionmaker() as session:
        assert await session.get(User, alice.id) is not None
        actions = list(await session.scalars(select(AuditLog.action).order_by(AuditLog.id)))
    assert actions[-1] == "wallet_unlinked"
    # The same wallet can be linked again, by anyone.
    again = await linker.service.issue_link(alice.id)
    message = await linker.service.prepare(again.token, ALICE.address, 1)
    await linker.service.verify(again.token, message, sign(ALICE, message))


async def test_two_concurrent_verifications_consume_the_link_once(
    live_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    user = await make_user(live_sessionmaker, 2001, "racer")
    service = WalletLinkService(live_sessionmaker, SITE)
    issued = await service.issue_link(user.id)
    message = await service.prepare(issued.token, ALICE.address, 1)
    signature = sign(ALICE, message)
    results = await asyncio.gather(
        *(service.verify(issued.token, message, signature) for _ in range(4)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, LinkUnavailableError) for r in results if isinstance(r, Exception))
    assert await count(live_sessionmaker, Wallet) == 1
    assert await count(live_sessionmaker, Notification) == 1


# ERC-1271 through an Ethereum RPC ---------------------------------------------------------


@pytest.fixture
async def ethereum_rpc() -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """A loopback JSON-RPC endpoint answering eth_chainId and the isValidSignature call."""
    servers: list[TestServer] = []

    async def start(*, chain_id: int = 1, valid: bool = True) -> str:
        calls: list[str] = []

        async def rpc(request: web.Request) -> web.Response:
            body = await request.json()
            calls.append(body["method"])
            if body["method"] == "eth_chainId":
                result: Any = hex(chain_id)
            elif body["method"] == "eth_call":
                # isValidSignature(bytes32,bytes) selector; the answer is a left-aligned bytes4.
                assert body["params"][0]["data"].startswith("0x1626ba7e")
                result = EIP1271_MAGIC if valid else "0x" + "00" * 32
            else:
                return web.json_response(
                    {"jsonrpc": "2.0", "id": body["id"], "error": {"code": -32601}}
                )
            return web.Response(
                text=json.dumps({"jsonrpc": "2.0", "id": body["id"], "result": result}),
                content_type="application/json",
            )

        app = web.Application()
        app.router.add_post("/", rpc)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return str(server.make_url("/"))

    yield start
    for server in servers:
        await server.close()


async def test_a_contract_wallet_is_verified_with_erc1271(
    sessionmaker: async_sessionmaker[AsyncSession],
    alice: User,
    ethereum_rpc: Callable[..., Awaitable[str]],
) -> None:
    contract = "0x" + "c0" * 20
    service = WalletLinkService(sessionmaker, LinkSite(BASE_URL, rpc_url=await ethereum_rpc()))
    issued = await service.issue_link(alice.id)
    message = await service.prepare(issued.token, contract, 1)
    # Not an EOA signature of the address: only the contract can vouch for it.
    linked = await service.verify(issued.token, message, "0x" + "5a" * 100)
    assert linked.address.lower() == contract


async def test_a_contract_wallet_that_says_no_is_refused(
    sessionmaker: async_sessionmaker[AsyncSession],
    alice: User,
    ethereum_rpc: Callable[..., Awaitable[str]],
) -> None:
    site = LinkSite(BASE_URL, rpc_url=await ethereum_rpc(valid=False))
    service = WalletLinkService(sessionmaker, site)
    issued = await service.issue_link(alice.id)
    message = await service.prepare(issued.token, ALICE.address, 1)
    with pytest.raises(InvalidSignatureError, match="does not match"):
        await service.verify(issued.token, message, sign(MALLORY, message))
    await assert_nothing_stored(sessionmaker, issued.token)


async def test_an_rpc_on_another_chain_or_down_is_reported(
    sessionmaker: async_sessionmaker[AsyncSession],
    alice: User,
    ethereum_rpc: Callable[..., Awaitable[str]],
) -> None:
    for rpc_url, error in (
        (await ethereum_rpc(chain_id=5), "on another chain"),
        ("http://127.0.0.1:1/", "Try again in a minute"),
    ):
        service = WalletLinkService(sessionmaker, LinkSite(BASE_URL, rpc_url=rpc_url))
        issued = await service.issue_link(alice.id)
        message = await service.prepare(issued.token, ALICE.address, 1)
        with pytest.raises(RpcUnavailableError, match=error):
            await service.verify(issued.token, message, sign(MALLORY, message))
        await assert_nothing_stored(sessionmaker, issued.token)
    # EOAs never need the RPC: a correct signature links even with the RPC down.
    linked = await service.verify(issued.token, message, sign(ALICE, message))
    assert linked.address == ALICE.address


# The bot: /link and /unlink through the real aiogram and the Telegram double ----------------


@pytest.fixture
async def bot_settings(
    make_settings: Callable[..., Settings], telegram_env: dict[str, str]
) -> Settings:
    return make_settings(public_base_url=BASE_URL, **telegram_env)


@pytest.fixture
async def running_bot(
    bot_settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    dispatcher: Dispatcher,
) -> AsyncIterator[Bot]:
    async with polling_bot(bot_settings, sessionmaker, dispatcher) as (bot, _services):
        yield bot


async def onboarded(telegram_double: TelegramDouble, username: str) -> SimulatedUser:
    """A user who sent /start and accepted the declaration."""
    member = telegram_double.user(first_name=username.title(), username=username)
    await member.send("/start")
    await member.next_message()
    declaration = await member.next_message()
    await member.press(declaration, text="I confirm")
    await member.next_message()
    return member


async def test_bot_link_then_status_then_unlink(
    running_bot: Bot,
    telegram_double: TelegramDouble,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    member = await onboarded(telegram_double, "alice")
    await member.send("/link")
    offer = await member.next_message()
    text = offer.text or ""
    assert "valid for 10 minutes and works once" in text
    assert "Next step: tap the button below" in text
    [button] = offer.buttons
    assert button.kind == "web_app"  # a Mini App: the page learns who opened it
    assert button.web_app_url is not None
    assert button.web_app_url.startswith(f"{BASE_URL}/link/")
    token = button.web_app_url.rsplit("/", 1)[1]
    init_data = launch_data(member.open_web_app(offer))

    # The page's side, with the service the web server runs (it knows the bot token).
    page = WalletLinkService(sessionmaker, SITE, bot_token=telegram_double.bot.token)
    stranger = telegram_double.user(first_name="Mallory")
    foreign = launch_data(stranger.open_web_app(offer))  # Alice's link opened by Mallory
    with pytest.raises(OtherTelegramUserError):
        await page.prepare(token, ALICE.address, 1, init_data=foreign)
    message = await page.prepare(token, ALICE.address, 1, init_data=init_data)
    assert f"Telegram user @alice (id {member.id})" in message
    with pytest.raises(OtherTelegramUserError):
        await page.verify(token, message, sign(ALICE, message), init_data=foreign)
    await page.verify(token, message, sign(ALICE, message), init_data=init_data)
    report = await NotificationService(sessionmaker).deliver_due(TelegramSender(running_bot))
    assert report.sent == 1
    confirmation = await member.next_message()
    assert f"Wallet {ALICE.address} is now linked" in (confirmation.text or "")

    # /link now shows the status instead of a new link.
    await member.send("/link")
    status = await member.next_message()
    assert f"Your linked wallet: {ALICE.address}" in (status.text or "")
    assert "send /unlink first" in (status.text or "")
    assert status.buttons == []

    await member.send("/unlink")
    question = await member.next_message()
    assert f"Unlink wallet {ALICE.address}?" in (question.text or "")
    assert [b.text for b in question.buttons] == ["Unlink", "Keep it"]
    await member.press(question, text="Keep it")
    await member.wait_edited(question)
    assert "stays linked" in (question.text or "")
    assert question.buttons == []
    assert await count(sessionmaker, Wallet) == 1

    await member.send("/unlink")
    question = await member.next_message()
    await member.press(question, text="Unlink")
    await member.wait_edited(question)
    assert f"Wallet {ALICE.address} is no longer linked" in (question.text or "")
    assert "Next step: send /link" in (question.text or "")
    assert await count(sessionmaker, Wallet) == 0

    await member.send("/unlink")
    nothing = await member.next_message()
    assert "No wallet is linked" in (nothing.text or "")
    assert "send /link" in (nothing.text or "")


async def test_bot_an_old_unlink_button_cannot_remove_a_newer_wallet(
    running_bot: Bot,
    telegram_double: TelegramDouble,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    member = await onboarded(telegram_double, "bob")
    async with UnitOfWork(sessionmaker) as uow:
        user = await uow.users.get_by_telegram_id(member.id)
        assert user is not None
        await uow.wallets.add(
            user_id=user.id, address=ALICE.address.lower(), chain_id=1, linked_at=T0
        )
        await uow.commit()
    await member.send("/unlink")
    old_question = await member.next_message()
    # Meanwhile the wallet was replaced by another one.
    async with UnitOfWork(sessionmaker) as uow:
        await uow.wallets.delete_for_user(user.id)
        await uow.wallets.add(
            user_id=user.id, address=BOB.address.lower(), chain_id=1, linked_at=T0
        )
        await uow.commit()
    await member.press(old_question, text="Unlink")
    await member.wait_edited(old_question)
    assert "Nothing was unlinked" in (old_question.text or "")
    assert await count(sessionmaker, Wallet) == 1


async def test_bot_link_needs_the_declaration(
    running_bot: Bot, telegram_double: TelegramDouble
) -> None:
    member = telegram_double.user(first_name="Eve")
    await member.send("/start")
    await member.next_message()
    await member.next_message()
    await member.send("/link")
    gate = await member.next_message()
    assert gate.text == "Please accept the declaration first: send /start."
    assert gate.buttons == []
