"""The dYdX trading key at the service level, against the dYdX double's node and Indexer."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any, cast

import pytest
from coincurve import PrivateKey
from dydx_v4_client.node.authenticators import Authenticator, AuthenticatorType
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.base import utcnow
from core.db.models import AuditLog, Credential, Notification, User
from core.domain.compliance import ComplianceStatus
from core.exchange.dydx import keys
from core.exchange.dydx.indexer import IndexerClient
from core.exchange.dydx.node import NodeReader
from core.exchange.errors import ExchangeUnavailableError
from core.exchange.factory import create_key_verifier
from core.exchange.keys import KeyCheckError, KeyProblem
from core.runtime.config import Settings
from core.security.crypto import DecryptionError
from core.security.secrets import looks_secret
from core.services.credentials import (
    CredentialRefusedError,
    CredentialService,
    NoCredentialError,
    Refusal,
)
from core.services.users import UserService
from core.texts import key as key_texts
from doubles.dydx.accounts import FundedTrader, make_funded_trader
from doubles.dydx.double import DydxDouble
from doubles.dydx.keys import KeyMaterial, new_key, web_app_trading_key_config

MNEMONIC = "abandon ability able about above absent absorb abstract absurd abuse access accident"
PLACE = "/dydxprotocol.clob.MsgPlaceOrder"
CANCEL = "/dydxprotocol.clob.MsgCancelOrder"
TRANSFER = "/dydxprotocol.sending.MsgCreateTransfer"
WITHDRAW = "/dydxprotocol.sending.MsgWithdrawFromSubaccount"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def composite(*subs: tuple[str, bytes]) -> bytes:
    """An AllOf/AnyOf config as the chain stores it (JSON, base64 sub-configs)."""
    return json.dumps(
        [{"type": kind, "config": _b64(config)} for kind, config in subs], separators=(",", ":")
    ).encode()


def sig(key: KeyMaterial) -> tuple[str, bytes]:
    return ("SignatureVerification", key.public_key)


def msg_filter(*types: str) -> tuple[str, bytes]:
    return ("MessageFilter", ",".join(types).encode())


@pytest.fixture
def settings(make_settings: Callable[..., Settings], dydx_env: dict[str, str]) -> Settings:
    return make_settings(**dydx_env)


@pytest.fixture
async def service(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> AsyncIterator[CredentialService]:
    credentials = CredentialService(
        sessionmaker,
        settings.keyring,
        create_key_verifier(settings.dydx, node_timeout=2.0, indexer_timeout=2.0),
    )
    yield credentials
    await credentials.close()


@pytest.fixture
def new_user(sessionmaker: async_sessionmaker[AsyncSession]) -> Callable[[], Any]:
    counter = iter(range(10_000, 20_000))

    async def create() -> int:
        user, _ = await UserService(sessionmaker).register(
            next(counter), username=None, language_code=None
        )
        return user.id

    return create


async def _stored(
    sessionmaker: async_sessionmaker[AsyncSession], user_id: int
) -> Credential | None:
    async with sessionmaker() as session:
        return await session.scalar(select(Credential).where(Credential.user_id == user_id))


async def _actions(sessionmaker: async_sessionmaker[AsyncSession], user_id: int) -> list[str]:
    async with sessionmaker() as session:
        rows = await session.scalars(
            select(AuditLog.action).where(AuditLog.user_id == user_id).order_by(AuditLog.id)
        )
        return list(rows)


async def _assert_nothing_stored(
    sessionmaker: async_sessionmaker[AsyncSession], user_id: int
) -> None:
    assert await _stored(sessionmaker, user_id) is None
    assert [a for a in await _actions(sessionmaker, user_id) if a.startswith("credential")] == []
    async with sessionmaker() as session:
        user = await session.get(User, user_id)
        assert user is not None
        assert user.compliance_status is None


# --- accepted --------------------------------------------------------------------------------


async def test_a_web_app_trading_key_is_accepted_and_stored_encrypted(
    service: CredentialService,
    new_user: Callable[[], Any],
    funded_trader: FundedTrader,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    user_id = await new_user()
    view = await service.add_key(
        user_id, funded_trader.owner_address, f"0x{funded_trader.api_private_key_hex}"
    )
    assert view.owner_address == funded_trader.owner_address
    assert view.key_address == funded_trader.api_address
    assert view.authenticator_id == funded_trader.authenticator_id
    assert view.subaccount_number == 0
    assert view.compliance_status is ComplianceStatus.COMPLIANT
    assert funded_trader.api_private_key_hex not in repr(view)

    row = await _stored(sessionmaker, user_id)
    assert row is not None
    raw = bytes.fromhex(funded_trader.api_private_key_hex)
    assert raw not in row.ciphertext
    assert funded_trader.api_private_key_hex.encode() not in row.ciphertext
    assert row.authenticator_id == funded_trader.authenticator_id
    assert await service.load_signing_key(user_id) == raw

    async with sessionmaker() as session:
        user = await session.get(User, user_id)
        assert user is not None
        assert user.compliance_status == "COMPLIANT"
        assert user.compliance_checked_at is not None
        audit = await session.scalar(
            select(AuditLog).where(
                AuditLog.user_id == user_id, AuditLog.action == "credential_added"
            )
        )
    assert audit is not None
    assert audit.details["authenticator_id"] == funded_trader.authenticator_id
    assert funded_trader.api_private_key_hex not in json.dumps(audit.details)

    status = await service.status(user_id)
    assert status == view


async def test_swapped_ciphertexts_do_not_open_for_the_other_user(
    service: CredentialService,
    new_user: Callable[[], Any],
    dydx_double: DydxDouble,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    alice_trader, bob_trader = make_funded_trader(dydx_double), make_funded_trader(dydx_double)
    alice, bob = await new_user(), await new_user()
    await service.add_key(alice, alice_trader.owner_address, alice_trader.api_private_key_hex)
    await service.add_key(bob, bob_trader.owner_address, bob_trader.api_private_key_hex)
    assert await service.load_signing_key(alice) == bytes.fromhex(alice_trader.api_private_key_hex)

    async with sessionmaker() as session:
        rows = {
            row.user_id: (row.key_id, row.ciphertext)
            for row in await session.scalars(
                select(Credential).where(Credential.user_id.in_([alice, bob]))
            )
        }
        for user_id, other in ((alice, bob), (bob, alice)):
            key_id, blob = rows[other]
            await session.execute(
                update(Credential)
                .where(Credential.user_id == user_id)
                .values(key_id=key_id, ciphertext=blob)
            )
        await session.commit()

    for user_id in (alice, bob):
        with pytest.raises(DecryptionError) as raised:
            await service.load_signing_key(user_id)
        for trader in (alice_trader, bob_trader):
            assert trader.api_private_key_hex not in str(raised.value)


async def test_replacing_keeps_one_key_and_a_failed_replacement_keeps_the_old_one(
    service: CredentialService,
    new_user: Callable[[], Any],
    dydx_double: DydxDouble,
    funded_trader: FundedTrader,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    user_id = await new_user()
    first = await service.add_key(
        user_id, funded_trader.owner_address, funded_trader.api_private_key_hex
    )
    second_key = new_key()
    second_id = dydx_double.add_authenticator(
        funded_trader.owner_address, "AllOf", web_app_trading_key_config(second_key.public_key)
    )
    second = await service.add_key(
        user_id, funded_trader.owner_address, second_key.private_key_hex.upper()
    )
    assert second.authenticator_id == second_id != first.authenticator_id
    assert second.key_address == second_key.address
    assert await service.load_signing_key(user_id) == bytes.fromhex(second_key.private_key_hex)

    with pytest.raises(CredentialRefusedError):
        await service.add_key(user_id, funded_trader.owner_address, new_key().private_key_hex)
    assert await service.status(user_id) == second
    assert await _actions(sessionmaker, user_id) == [
        "user_registered",
        "credential_added",
        "credential_replaced",
    ]


async def test_remove_forgets_the_key(
    service: CredentialService,
    new_user: Callable[[], Any],
    funded_trader: FundedTrader,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    user_id = await new_user()
    await service.add_key(user_id, funded_trader.owner_address, funded_trader.api_private_key_hex)
    assert await service.remove(user_id) is True
    assert await service.status(user_id) is None
    assert await _stored(sessionmaker, user_id) is None
    with pytest.raises(NoCredentialError):
        await service.load_signing_key(user_id)
    assert await service.remove(user_id) is False
    assert (await _actions(sessionmaker, user_id))[-1] == "credential_removed"


async def test_a_subaccount_already_traded_by_another_user_is_refused(
    service: CredentialService,
    new_user: Callable[[], Any],
    dydx_double: DydxDouble,
    funded_trader: FundedTrader,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    first, second = await new_user(), await new_user()
    await service.add_key(first, funded_trader.owner_address, funded_trader.api_private_key_hex)
    other = new_key()
    dydx_double.add_authenticator(
        funded_trader.owner_address, "AllOf", web_app_trading_key_config(other.public_key)
    )
    with pytest.raises(CredentialRefusedError) as raised:
        await service.add_key(second, funded_trader.owner_address, other.private_key_hex)
    assert raised.value.reason is Refusal.ACCOUNT_TAKEN
    await _assert_nothing_stored(sessionmaker, second)


# --- refused ---------------------------------------------------------------------------------


async def _refused(
    service: CredentialService,
    sessionmaker: async_sessionmaker[AsyncSession],
    user_id: int,
    owner: str,
    key_text: str,
) -> Refusal:
    with pytest.raises(CredentialRefusedError) as raised:
        await service.add_key(user_id, owner, key_text)
    assert key_text not in str(raised.value)
    await _assert_nothing_stored(sessionmaker, user_id)
    return raised.value.reason


async def test_the_master_key_is_refused(
    service: CredentialService,
    new_user: Callable[[], Any],
    funded_trader: FundedTrader,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    user_id = await new_user()
    reason = await _refused(
        service,
        sessionmaker,
        user_id,
        funded_trader.owner_address,
        funded_trader.owner_private_key_hex,
    )
    assert reason is Refusal.MASTER_KEY


async def test_a_mnemonic_is_refused_as_key_and_as_address(
    service: CredentialService,
    new_user: Callable[[], Any],
    funded_trader: FundedTrader,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    user_id = await new_user()
    for owner, key_text in (
        (funded_trader.owner_address, MNEMONIC),
        (funded_trader.owner_address, "1. " + MNEMONIC.replace(" ", "\n")),
        (MNEMONIC, funded_trader.api_private_key_hex),
    ):
        assert await _refused(service, sessionmaker, user_id, owner, key_text) is Refusal.MNEMONIC
    with pytest.raises(CredentialRefusedError) as raised:
        service.check_owner_address(MNEMONIC)
    assert raised.value.reason is Refusal.MNEMONIC


@pytest.mark.parametrize(
    "tree",
    [
        pytest.param(
            lambda k: ("AllOf", composite(sig(k), ("SubaccountFilter", b"0"))),
            id="allof-subaccount",
        ),
        pytest.param(
            lambda k: ("AllOf", composite(sig(k), ("ClobPairIdFilter", b"0,1"))),
            id="allof-clobpair",
        ),
        pytest.param(
            lambda k: (
                "AllOf",
                composite(sig(k), ("AnyOf", composite(msg_filter(PLACE), msg_filter(TRANSFER)))),
            ),
            id="anyof-with-transfer",
        ),
        pytest.param(
            lambda k: ("AllOf", composite(sig(k), msg_filter(PLACE, CANCEL, WITHDRAW))),
            id="filter-list-with-withdraw",
        ),
        pytest.param(lambda k: ("SignatureVerification", k.public_key), id="bare-signature"),
        pytest.param(
            lambda k: ("AnyOf", composite(("AllOf", composite(sig(k), msg_filter(PLACE))), sig(k))),
            id="anyof-with-bare-signature",
        ),
    ],
)
async def test_a_key_whose_authenticator_permits_moving_funds_is_refused(
    tree: Callable[[KeyMaterial], tuple[str, bytes]],
    service: CredentialService,
    new_user: Callable[[], Any],
    dydx_double: DydxDouble,
    funded_trader: FundedTrader,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    key = new_key()
    kind, config = tree(key)
    dydx_double.add_authenticator(funded_trader.owner_address, kind, config)
    user_id = await new_user()
    reason = await _refused(
        service, sessionmaker, user_id, funded_trader.owner_address, key.private_key_hex
    )
    assert reason is Refusal.TOO_BROAD


async def test_a_second_broad_authenticator_for_the_same_key_is_refused(
    service: CredentialService,
    new_user: Callable[[], Any],
    dydx_double: DydxDouble,
    funded_trader: FundedTrader,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # The web-app authenticator alone would be fine; the extra one lets the key withdraw.
    dydx_double.add_authenticator(
        funded_trader.owner_address,
        "AllOf",
        composite(
            ("SignatureVerification", funded_trader.api_public_key), ("SubaccountFilter", b"0")
        ),
    )
    user_id = await new_user()
    reason = await _refused(
        service,
        sessionmaker,
        user_id,
        funded_trader.owner_address,
        funded_trader.api_private_key_hex,
    )
    assert reason is Refusal.TOO_BROAD


async def test_a_key_without_authenticator_or_without_order_placement_is_refused(
    service: CredentialService,
    new_user: Callable[[], Any],
    dydx_double: DydxDouble,
    funded_trader: FundedTrader,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    user_id = await new_user()
    stranger = new_key()
    assert (
        await _refused(
            service, sessionmaker, user_id, funded_trader.owner_address, stranger.private_key_hex
        )
        is Refusal.NO_AUTHENTICATOR
    )
    # The key of another account's authenticator does not count for this one.
    other = make_funded_trader(dydx_double)
    assert (
        await _refused(
            service, sessionmaker, user_id, funded_trader.owner_address, other.api_private_key_hex
        )
        is Refusal.NO_AUTHENTICATOR
    )
    cancel_only = new_key()
    dydx_double.add_authenticator(
        funded_trader.owner_address, "AllOf", composite(sig(cancel_only), msg_filter(CANCEL))
    )
    assert (
        await _refused(
            service, sessionmaker, user_id, funded_trader.owner_address, cancel_only.private_key_hex
        )
        is Refusal.CANNOT_TRADE
    )


async def test_a_key_with_an_authenticator_we_cannot_read_is_refused(
    service: CredentialService,
    new_user: Callable[[], Any],
    dydx_double: DydxDouble,
    funded_trader: FundedTrader,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """A chain upgrade's new authenticator type naming the key: refused, nothing stored."""
    dydx_double.add_unvalidated_authenticator(
        funded_trader.owner_address,
        "FutureAuthenticator",
        json.dumps({"key": _b64(funded_trader.api_public_key), "allow": "*"}).encode(),
    )
    user_id = await new_user()
    reason = await _refused(
        service,
        sessionmaker,
        user_id,
        funded_trader.owner_address,
        funded_trader.api_private_key_hex,
    )
    assert reason is Refusal.UNREADABLE_AUTHENTICATOR
    assert "permissions that mention this key is one I cannot read" in key_texts.refusal(
        reason, funded_trader.owner_address
    )


@pytest.mark.parametrize(
    ("owner", "reason"),
    [
        ("dydx1abc", Refusal.MALFORMED_ADDRESS),
        ("0x52908400098527886E0F7030069857D2E4169EE7", Refusal.MALFORMED_ADDRESS),
        ("cosmos1qypqxpq9qcrsszg2pvxq6rs0zqg3yyc5lzv7xu", Refusal.MALFORMED_ADDRESS),
        ("", Refusal.MALFORMED_ADDRESS),
        (
            "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318",
            Refusal.KEY_INSTEAD_OF_ADDRESS,
        ),
    ],
)
async def test_a_malformed_address_is_refused(
    owner: str,
    reason: Refusal,
    service: CredentialService,
    new_user: Callable[[], Any],
    funded_trader: FundedTrader,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    user_id = await new_user()
    refused = await _refused(
        service, sessionmaker, user_id, owner, funded_trader.api_private_key_hex
    )
    assert refused is reason


async def test_an_address_with_a_broken_checksum_is_refused(
    service: CredentialService,
    new_user: Callable[[], Any],
    funded_trader: FundedTrader,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    owner = funded_trader.owner_address
    broken = owner[:-1] + ("q" if owner[-1] != "q" else "p")
    user_id = await new_user()
    refused = await _refused(
        service, sessionmaker, user_id, broken, funded_trader.api_private_key_hex
    )
    assert refused is Refusal.MALFORMED_ADDRESS
    # Upper case is the same bech32 address; it is stored in its canonical form.
    assert service.check_owner_address(f"  {owner.upper()} ") == owner


@pytest.mark.parametrize(
    ("key_text", "reason"),
    [
        ("abc123", Refusal.MALFORMED_KEY),
        ("g" * 64, Refusal.MALFORMED_KEY),
        ("0x" + "1" * 63, Refusal.MALFORMED_KEY),
        ("1" * 66, Refusal.MALFORMED_KEY),
        ("0" * 64, Refusal.INVALID_KEY),
        ("f" * 64, Refusal.INVALID_KEY),
    ],
)
async def test_a_malformed_key_is_refused(
    key_text: str,
    reason: Refusal,
    service: CredentialService,
    new_user: Callable[[], Any],
    funded_trader: FundedTrader,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    user_id = await new_user()
    assert (
        await _refused(service, sessionmaker, user_id, funded_trader.owner_address, key_text)
        is reason
    )


async def test_node_or_indexer_unreachable_is_a_retryable_error_and_stores_nothing(
    service: CredentialService,
    new_user: Callable[[], Any],
    dydx_double: DydxDouble,
    funded_trader: FundedTrader,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    user_id = await new_user()
    dydx_double.node.unavailable(1, "GetAuthenticators")
    with pytest.raises(ExchangeUnavailableError) as raised:
        await service.add_key(
            user_id, funded_trader.owner_address, funded_trader.api_private_key_hex
        )
    assert raised.value.retryable
    await _assert_nothing_stored(sessionmaker, user_id)

    dydx_double.set_indexer_down()
    with pytest.raises(ExchangeUnavailableError):
        await service.add_key(
            user_id, funded_trader.owner_address, funded_trader.api_private_key_hex
        )
    await _assert_nothing_stored(sessionmaker, user_id)

    dydx_double.set_indexer_down(False)
    view = await service.add_key(
        user_id, funded_trader.owner_address, funded_trader.api_private_key_hex
    )
    assert view.authenticator_id == funded_trader.authenticator_id


async def test_a_node_that_does_not_answer_times_out(
    settings: Settings, funded_trader: FundedTrader
) -> None:
    # A port nobody listens on: the call must fail fast and typed, not hang or block.
    reader = NodeReader("127.0.0.1:9", tls=False, timeout=0.5)
    try:
        with pytest.raises(ExchangeUnavailableError):
            await reader.get_authenticators(funded_trader.owner_address)
    finally:
        await reader.close()
    indexer = IndexerClient("http://127.0.0.1:9", timeout=0.5)
    try:
        with pytest.raises(ExchangeUnavailableError):
            await indexer.compliance_screen(funded_trader.owner_address)
    finally:
        await indexer.close()


# --- compliance ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["BLOCKED", "CLOSE_ONLY", "FIRST_STRIKE_CLOSE_ONLY"])
async def test_a_restricted_owner_is_stored_with_its_status(
    status: str,
    service: CredentialService,
    new_user: Callable[[], Any],
    dydx_double: DydxDouble,
    funded_trader: FundedTrader,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    dydx_double.set_compliance(funded_trader.owner_address, status)
    user_id = await new_user()
    view = await service.add_key(
        user_id, funded_trader.owner_address, funded_trader.api_private_key_hex
    )
    assert view.compliance_status == ComplianceStatus(status)
    assert view.compliance_status is not None
    assert not view.compliance_status.may_open
    assert view.compliance_status.may_trade is (status != "BLOCKED")
    async with sessionmaker() as session:
        user = await session.get(User, user_id)
        assert user is not None
        assert user.compliance_status == status


async def test_screen_all_updates_statuses_and_notifies_only_changes(
    service: CredentialService,
    new_user: Callable[[], Any],
    dydx_double: DydxDouble,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    traders = [make_funded_trader(dydx_double) for _ in range(3)]
    users = [await new_user() for _ in traders]
    for user_id, trader in zip(users, traders, strict=True):
        await service.add_key(user_id, trader.owner_address, trader.api_private_key_hex)

    # Just screened at add time: nothing is due.
    assert (await service.screen_all(pause=0)).screened == 0

    dydx_double.set_compliance(traders[0].owner_address, "BLOCKED")
    dydx_double.set_compliance(traders[1].owner_address, "CLOSE_ONLY")
    report = await service.screen_all(interval=timedelta(0), pause=0)
    assert (report.screened, report.changed, report.failed, report.aborted) == (3, 2, 0, False)
    again = await service.screen_all(interval=timedelta(0), pause=0)
    assert (again.screened, again.changed) == (3, 0)

    async with sessionmaker() as session:
        statuses = {
            u.id: u.compliance_status
            for u in await session.scalars(select(User).where(User.id.in_(users)))
        }
        notes = list(
            await session.scalars(
                select(Notification)
                .where(Notification.user_id.in_(users))
                .order_by(Notification.id)
            )
        )
        changes = await session.scalar(
            select(func.count()).where(
                AuditLog.action == "compliance_changed", AuditLog.user_id.in_(users)
            )
        )
    assert statuses == {users[0]: "BLOCKED", users[1]: "CLOSE_ONLY", users[2]: "COMPLIANT"}
    assert [n.user_id for n in notes] == [users[0], users[1]]
    assert "BLOCKED" in notes[0].text
    assert "not place any order" in notes[0].text
    assert "reduce or close" in notes[1].text
    assert changes == 2

    dydx_double.set_indexer_down()
    down = await service.screen_all(interval=timedelta(0), pause=0)
    assert down.aborted
    assert down.screened == 0


# --- the authenticator analysis (pure) -------------------------------------------------------


def test_the_python_client_encoding_of_nested_composites_is_understood() -> None:
    key = PrivateKey()
    public_key = key.public_key.format(compressed=True)
    tree = Authenticator.compose(
        AuthenticatorType.AllOf,
        [
            Authenticator.signature_verification(public_key),
            Authenticator.compose(
                AuthenticatorType.AnyOf,
                [
                    Authenticator.message_filter(PLACE),
                    Authenticator.message_filter(CANCEL),
                ],
            ),
            Authenticator.subaccount_filter([2, 3]),
            Authenticator.clob_pair_id_filter([0, 1]),
        ],
    )
    stored = keys.StoredAuthenticator(7, tree.type.value, tree.config)
    found = keys.find_trading_authorization([stored], public_key)
    assert found.authenticator_id == 7
    assert found.subaccounts == frozenset({2, 3})
    assert found.subaccount_number == 2
    assert found.clob_pair_ids == frozenset({0, 1})


def test_an_unreadable_authenticator_that_mentions_the_key_refuses_it() -> None:
    """Fail closed (#13): an authenticator we cannot parse or understand is never skipped
    when it concerns the key, whatever encoding carries the key."""
    key, other = new_key(), new_key()
    good = keys.StoredAuthenticator(3, "AllOf", web_app_trading_key_config(key.public_key))
    unreadable = [
        keys.StoredAuthenticator(1, "AllOf", composite(sig(key), ("SubaccountFilter", b"zero"))),
        keys.StoredAuthenticator(2, "AnyOf", composite(sig(key))),
        keys.StoredAuthenticator(4, "FutureAuthenticator", key.public_key),
        keys.StoredAuthenticator(
            5, "AllOf", composite(("AnyOf", composite(sig(key))), ("Unknown", b"x"))
        ),
    ]
    for stored in unreadable:
        with pytest.raises(KeyCheckError) as raised:
            keys.find_trading_authorization([good, stored], key.public_key)
        assert raised.value.problem is KeyProblem.UNREADABLE_AUTHENTICATOR, stored
    # One that concerns another key only authorises nothing for this one: ignored.
    foreign = keys.StoredAuthenticator(
        6, "AllOf", composite(sig(other), ("SubaccountFilter", b"zero"))
    )
    assert keys.find_trading_authorization([foreign, good], key.public_key).authenticator_id == 3


def test_secret_shapes_are_recognised() -> None:
    hex_key = new_key().private_key_hex
    assert looks_secret(hex_key)
    assert looks_secret(f"my key is 0x{hex_key} thanks")
    assert looks_secret(MNEMONIC)
    assert looks_secret(MNEMONIC.replace("access", "acess"))  # one typo
    assert not looks_secret("dydx1abcdef please help me find where the address is shown")
    assert not looks_secret(" ".join(MNEMONIC.split()[:11]))


async def test_the_compliance_cron_job_screens_users_due_once_a_day(
    service: CredentialService,
    new_user: Callable[[], Any],
    dydx_double: DydxDouble,
    funded_trader: FundedTrader,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    from workers.context import WorkerContext
    from workers.jobs.screen_compliance import screen_compliance

    user_id = await new_user()
    await service.add_key(user_id, funded_trader.owner_address, funded_trader.api_private_key_hex)
    ctx = cast(WorkerContext, {"credentials": service})
    dydx_double.set_compliance(funded_trader.owner_address, "BLOCKED")
    # Screened at add time: not due yet, whatever the Indexer says now.
    assert await screen_compliance(ctx) == 0

    async with sessionmaker() as session:
        await session.execute(
            update(User)
            .where(User.id == user_id)
            .values(compliance_checked_at=utcnow() - timedelta(days=1))
        )
        await session.commit()
    assert await screen_compliance(ctx) == 1
    assert await screen_compliance(ctx) == 0  # a second run the same hour does nothing

    async with sessionmaker() as session:
        user = await session.get(User, user_id)
        assert user is not None
        assert user.compliance_status == "BLOCKED"
        notes = list(
            await session.scalars(select(Notification).where(Notification.user_id == user_id))
        )
    assert len(notes) == 1
    assert notes[0].chat_id == user.telegram_id
    assert notes[0].kind == "compliance"
    assert funded_trader.owner_address in notes[0].text
