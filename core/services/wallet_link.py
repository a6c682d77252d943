"""Wallet link: a Telegram user proves control of an Ethereum address with EIP-4361.

The bot issues a one-time token (only its hash is stored) behind a link to the web page;
the page asks the wallet to sign a message this service wrote, with a fresh nonce stored on
the request; :meth:`WalletLinkService.verify` checks it in the order of the security notes
(parse strictly; exact domain, URI and chain id; our unused nonce; times; signer), then
consumes the request atomically and stores the link, the audit entry and the bot's
confirmation in one transaction.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import urlsplit

import siwe  # type: ignore[import-untyped]  # signinwithethereum ships no type information
from eth_utils.address import is_checksum_address, to_checksum_address
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from web3 import HTTPProvider

from core.db.base import utcnow
from core.db.models import User, Wallet, WalletLinkRequest
from core.db.uow import UnitOfWork
from core.runtime.config import Settings
from core.runtime.logs import get_logger
from core.security.crypto import constant_time_equals, new_token, token_hash
from core.services.jobs import JobQueue

LINK_TTL = timedelta(minutes=10)
# A signed message lives shorter than its link: opening the page late must not leave a
# long-lived signature around.
MESSAGE_TTL = timedelta(minutes=5)
CLOCK_SKEW = timedelta(seconds=60)
RPC_TIMEOUT_SECONDS = 10
MAX_MESSAGE_CHARS = 2048
# ERC-1271 and ERC-6492 signatures have no fixed length; 8 KiB is far above real ones.
MAX_SIGNATURE_BYTES = 8192
TOKEN_BYTES = 24  # 192 bits

_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{32}$")
_ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
_SIGNATURE_RE = re.compile(rf"^0x(?:[0-9a-fA-F]{{2}}){{0,{MAX_SIGNATURE_BYTES}}}$")
_USERNAME_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")

# The Ethereum chain wallets are linked on, per dYdX network (dYdX's own onboarding uses
# mainnet for mainnet and Sepolia for testnet). Custom networks are local set-ups: mainnet.
WALLET_CHAINS: dict[str, tuple[int, str]] = {
    "mainnet": (1, "Ethereum"),
    "testnet": (11155111, "Sepolia"),
    "custom": (1, "Ethereum"),
}


# Errors ---------------------------------------------------------------------------------


class WalletLinkError(Exception):
    """A refused wallet-link step. ``str(exc)`` is a short message for the user.

    Attributes:
        code: A stable machine-readable reason, also the log field.
    """

    code: ClassVar[str] = "refused"
    default_message: ClassVar[str] = "The wallet could not be linked."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)

    @property
    def message(self) -> str:
        """The user-facing message."""
        return str(self)


class InvalidInputError(WalletLinkError):
    """A malformed address, chain id, message or signature."""

    code = "invalid_input"


class LinkUnavailableError(WalletLinkError):
    """The token is unknown, used or expired. Deliberately one error for all three."""

    code = "link_unavailable"
    default_message = (
        "This link is no longer valid: a link works once, for 10 minutes. "
        "Send /link to the bot for a new one."
    )


class AlreadyLinkedError(WalletLinkError):
    """The user already has a linked wallet.

    Attributes:
        wallet: That wallet.
    """

    code = "already_linked"
    default_message = "You already have a linked wallet: send /unlink to the bot first."

    def __init__(self, wallet: WalletView) -> None:
        super().__init__()
        self.wallet = wallet


class AddressTakenError(WalletLinkError):
    """The address is linked to another Telegram account."""

    code = "address_taken"
    default_message = "This wallet is linked to another Telegram account."


class WrongDomainError(WalletLinkError):
    """The message was written for another site (phishing, or a misconfigured server)."""

    code = "wrong_domain"


class WrongUriError(WalletLinkError):
    """The message's URI is not this site's."""

    code = "wrong_uri"


class WrongChainError(WalletLinkError):
    """The wallet or the message is on another chain than the one links are made on."""

    code = "wrong_chain"


class NonceMismatchError(WalletLinkError):
    """The message's nonce is not the one this link holds now (replaced, reused, foreign)."""

    code = "nonce_mismatch"
    default_message = (
        "This message was not issued for this link, or a newer one replaced it. "
        "Reload the page and sign again."
    )


class MessageMismatchError(WalletLinkError):
    """A field we always write a certain way differs (statement, times, extra fields)."""

    code = "message_mismatch"
    default_message = (
        "This message is not the one this server issued. Reload the page and sign again."
    )


class MessageExpiredError(WalletLinkError):
    """The signed message is past its expiration time."""

    code = "message_expired"
    default_message = "This message has expired. Reload the page and sign again."


class InvalidSignatureError(WalletLinkError):
    """The signature is not the address's."""

    code = "invalid_signature"
    default_message = "The signature does not match the wallet address in the message."


class ContractWalletUnsupportedError(WalletLinkError):
    """The signer did not recover and no RPC is configured to ask a contract wallet."""

    code = "contract_wallet_needs_rpc"
    default_message = (
        "The signature does not match the address in the message. If this is a contract "
        "wallet (a Safe or another smart account), the server needs ETHEREUM_RPC_URL set "
        "to verify it: ask the operator, or link an ordinary wallet."
    )


class RpcUnavailableError(WalletLinkError):
    """The Ethereum RPC needed for a contract wallet failed or is on another chain."""

    code = "rpc_unavailable"
    default_message = (
        "Could not check this contract wallet with the server's Ethereum RPC. "
        "Try again in a minute."
    )


# Values ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WalletView:
    """A linked wallet as the edges show it.

    Attributes:
        address: EIP-55 checksummed address.
        chain_id: The chain the link was signed for.
        linked_at: When it was linked (UTC).
    """

    address: str
    chain_id: int
    linked_at: datetime

    @classmethod
    def of(cls, wallet: Wallet) -> WalletView:
        """Project an ORM row."""
        return cls(
            address=to_checksum_address(wallet.address),
            chain_id=wallet.chain_id,
            linked_at=wallet.linked_at,
        )


@dataclass(frozen=True, slots=True)
class IssuedLink:
    """A freshly issued link. The token exists only here and in the user's chat.

    Attributes:
        token: The one-time token (never logged or stored).
        url: ``{PUBLIC_BASE_URL}/link/{token}``.
        expires_at: When it stops working.
    """

    token: str
    url: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class LinkSite:
    """Where links are made: the site the message names and the chain it is signed on.

    Attributes:
        base_url: ``PUBLIC_BASE_URL``, without a trailing slash; also the message's URI.
        chain_id: EIP-155 chain id every message must carry.
        chain_name: The chain's name for people.
        rpc_url: Ethereum JSON-RPC URL for ERC-1271 checks, if configured.
    """

    base_url: str
    chain_id: int = 1
    chain_name: str = "Ethereum"
    rpc_url: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> LinkSite:
        """The site described by the settings."""
        chain_id, chain_name = WALLET_CHAINS[settings.dydx_network]
        rpc = settings.ethereum_rpc_url
        return cls(
            base_url=settings.public_base_url.rstrip("/"),
            chain_id=chain_id,
            chain_name=chain_name,
            rpc_url=rpc.get_secret_value() if rpc is not None else None,
        )

    @property
    def domain(self) -> str:
        """The RFC 3986 authority (host[:port]) wallets compare with the page's origin."""
        return urlsplit(self.base_url).netloc.rpartition("@")[2]

    @property
    def uri(self) -> str:
        """The message's URI."""
        return self.base_url

    def link_url(self, token: str) -> str:
        """The page URL of a token."""
        return f"{self.base_url}/link/{token}"


def statement_for(user: User) -> str:
    """The statement naming the Telegram account, so a victim sees whose link it is.

    Only characters the EIP-4361 statement grammar allows; usernames are ``[A-Za-z0-9_]``.
    """
    username = user.username if user.username and _USERNAME_RE.match(user.username) else None
    who = f"@{username} (id {user.telegram_id})" if username else f"id {user.telegram_id}"
    return (
        f"Link this wallet to Telegram user {who} on tv2dydx. "
        "This signature costs nothing and grants no access to funds."
    )


def linked_notification(wallet: WalletView) -> str:
    """The bot's confirmation in the chat (HTML)."""
    return (
        f"✅ Wallet <code>{wallet.address}</code> is now linked to this Telegram account.\n\n"
        "If you did not do this, send /unlink at once.\n"
        "Next step: add your dYdX API trading key with /key."
    )


def _iso(moment: datetime) -> Any:
    return siwe.ISO8601Datetime.from_datetime(moment)


def _parse_time(value: Any) -> datetime:
    return datetime.fromisoformat(str(value))


def _checked_address(address: str) -> str:
    """The EIP-55 form of a lower-case or correctly checksummed address."""
    if not _ADDRESS_RE.match(address):
        raise InvalidInputError("That is not an Ethereum address (0x and 40 hex digits).")
    digits = address[2:]
    mixed = digits != digits.lower() and digits != digits.upper()
    if mixed and not is_checksum_address(address):
        raise InvalidInputError("This address has a wrong checksum (EIP-55); copy it again.")
    return str(to_checksum_address(address))


def _parse_message(message: str) -> Any:
    """Parse with the ABNF grammar and require the canonical text (nothing smuggled)."""
    try:
        parsed = siwe.SiweMessage.from_message(message, abnf=True)
    except Exception:  # the grammar and pydantic raise many kinds; all mean "malformed"
        raise InvalidInputError("This is not a valid sign-in message (EIP-4361).") from None
    if parsed.prepare_message() != message:
        raise InvalidInputError("This is not a valid sign-in message (EIP-4361).")
    return parsed


def _verify_signature(parsed: Any, signature: str, site: LinkSite, now: datetime) -> None:
    """EIP-191 signer recovery, then ERC-1271/6492 through the RPC if one is configured.

    Blocking (web3 over HTTP): run in a thread.
    """
    provider = (
        HTTPProvider(site.rpc_url, request_kwargs={"timeout": RPC_TIMEOUT_SECONDS})
        if site.rpc_url
        else None
    )
    try:
        parsed.verify(
            signature,
            domain=site.domain,
            uri=site.uri,
            chain_id=site.chain_id,
            nonce=parsed.nonce,
            timestamp=now,
            provider=provider,
            strict=True,
        )
    except siwe.InvalidSignature as exc:
        if exc.args:  # the library's "RPC error" while asking the contract
            raise RpcUnavailableError() from None
        if provider is None:
            raise ContractWalletUnsupportedError() from None
        raise InvalidSignatureError() from None
    except siwe.ChainIdMismatch:
        # The message's chain id was checked before: this is the RPC's chain.
        raise RpcUnavailableError(
            "The server's Ethereum RPC is on another chain, so contract wallets cannot be "
            "checked. Ask the operator to fix ETHEREUM_RPC_URL, or link an ordinary wallet."
        ) from None
    except siwe.ExpiredMessage:
        raise MessageExpiredError() from None
    except siwe.VerificationError:
        raise MessageMismatchError() from None
    except Exception:  # transport errors of the RPC (requests, timeouts, bad JSON)
        if provider is None:
            raise
        raise RpcUnavailableError() from None


@dataclass(frozen=True, slots=True)
class _Session:
    """What verification needs from the link request, read before the signature check."""

    request_id: int
    user_id: int
    telegram_id: int
    nonce: str


class WalletLinkService:
    """Issues wallet-link tokens, writes the messages to sign and verifies the signatures.

    Args:
        sessionmaker: Database sessions.
        site: The public site and the chain links are made on.
        queue: Optional job queue, nudged after a link so a worker confirms in the chat at
            once (the worker's schedule delivers anyway).
        clock: The current UTC time (tests move it).
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        site: LinkSite,
        *,
        queue: JobQueue | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._site = site
        self._queue = queue
        self._clock = clock
        self._log = get_logger(__name__)

    @property
    def site(self) -> LinkSite:
        """The public site and the chain links are made on."""
        return self._site

    # Bot side ---------------------------------------------------------------------------

    async def issue_link(self, user_id: int) -> IssuedLink:
        """Issue a one-time link, replacing the user's unused ones.

        Raises:
            AlreadyLinkedError: The user has a wallet; they must /unlink first.
        """
        site = self.site
        now = self._clock()
        token = new_token(TOKEN_BYTES)
        async with UnitOfWork(self._sessionmaker) as uow:
            wallet = await uow.wallets.get_for_user(user_id)
            if wallet is not None:
                raise AlreadyLinkedError(WalletView.of(wallet))
            dropped = await uow.wallets.delete_unused_requests(user_id)
            request = uow.wallets.add_request(
                user_id=user_id,
                token_hash=token_hash(token),
                issued_at=now,
                expires_at=now + LINK_TTL,
            )
            await uow.session.flush()
            uow.audit.record("wallet_link_issued", user_id=user_id, link_request_id=request.id)
            await uow.commit()
        self._log.info(
            "wallet_link_issued", user_id=user_id, link_request_id=request.id, replaced=dropped
        )
        return IssuedLink(token=token, url=site.link_url(token), expires_at=now + LINK_TTL)

    async def status(self, user_id: int) -> WalletView | None:
        """The user's linked wallet, if any."""
        async with UnitOfWork(self._sessionmaker) as uow:
            wallet = await uow.wallets.get_for_user(user_id)
            return WalletView.of(wallet) if wallet is not None else None

    async def unlink(self, user_id: int, *, address: str | None = None) -> WalletView | None:
        """Remove the user's wallet link, and nothing else (key, webhook, history stay).

        Args:
            user_id: The user.
            address: If given, unlink only if this (any-case) address is the linked one, so
                an old confirmation button cannot remove a wallet linked since.

        Returns:
            The wallet that was unlinked, or ``None`` when none (or another) was linked.
        """
        async with UnitOfWork(self._sessionmaker) as uow:
            current = await uow.wallets.get_for_user(user_id)
            if current is None or (address is not None and current.address != address.lower()):
                return None
            wallet = await uow.wallets.delete_for_user(user_id)
            assert wallet is not None  # read above, in this transaction
            view = WalletView.of(wallet)
            uow.audit.record("wallet_unlinked", user_id=user_id, address=wallet.address)
            await uow.commit()
        self._log.info("wallet_unlinked", user_id=user_id, address=wallet.address)
        return view

    # Page side --------------------------------------------------------------------------

    async def check_link(self, token: str) -> None:
        """Whether the page may be shown for ``token``.

        Raises:
            LinkUnavailableError: Unknown, used or expired (not said which).
        """
        async with UnitOfWork(self._sessionmaker) as uow:
            await self._usable_request(uow, token, self._clock())

    async def prepare(self, token: str, address: str, chain_id: int) -> str:
        """Write the EIP-4361 message for the wallet to sign, with a fresh nonce.

        A new call replaces the previous nonce, so only the latest message can be used.

        Args:
            token: The link token from the page URL.
            address: The wallet's address (lower-case or EIP-55).
            chain_id: The chain the wallet is on (``eth_chainId``).

        Returns:
            The message text, byte for byte what must be signed.

        Raises:
            InvalidInputError: Malformed address or chain id.
            WrongChainError: The wallet is on another chain than links are made on.
            LinkUnavailableError: Unknown, used or expired token.
            AlreadyLinkedError: The user already has a wallet.
        """
        try:
            return await self._prepare(token, address, chain_id)
        except WalletLinkError as exc:
            self._log.info("wallet_link_refused", step="prepare", reason=exc.code)
            raise

    async def _prepare(self, token: str, address: str, chain_id: int) -> str:
        site = self.site
        checksummed = _checked_address(address)
        if isinstance(chain_id, bool) or not isinstance(chain_id, int) or chain_id <= 0:
            raise InvalidInputError("That is not a chain id.")
        if chain_id != site.chain_id:
            raise WrongChainError(
                f"Your wallet is on chain id {chain_id}. Switch it to {site.chain_name} "
                f"(chain id {site.chain_id}) and try again."
            )
        now = self._clock()
        async with UnitOfWork(self._sessionmaker) as uow:
            request = await self._usable_request(uow, token, now)
            existing = await uow.wallets.get_for_user(request.user_id)
            if existing is not None:
                raise AlreadyLinkedError(WalletView.of(existing))
            user = await uow.users.get(request.user_id)
            assert user is not None  # the foreign key cascades deletions
            nonce = secrets.token_hex(16)  # 128 bits, alphanumeric as EIP-4361 requires
            message = siwe.SiweMessage(
                domain=site.domain,
                address=checksummed,
                statement=statement_for(user),
                uri=site.uri,
                version="1",
                chain_id=site.chain_id,
                nonce=nonce,
                issued_at=_iso(now),
                expiration_time=_iso(min(now + MESSAGE_TTL, request.expires_at)),
            )
            text = str(message.prepare_message())
            request.nonce = nonce
            await uow.commit()
        self._log.info("wallet_link_message_issued", link_request_id=request.id)
        return text

    async def verify(self, token: str, message: str, signature: str) -> WalletView:
        """Verify a signed message and link the wallet.

        Checked in this order: sizes and shapes; strict parse; exact domain, URI and chain
        id; the link is usable and the nonce is its current one; the statement names its
        user; times; the signer (EIP-191, else ERC-1271 through the RPC). Then, in one
        transaction: the request is consumed by a conditional UPDATE, the wallet inserted,
        the audit entry and the bot's confirmation written. A refusal stores nothing.

        Raises:
            WalletLinkError: A subclass saying why, with a message for the user.
        """
        try:
            return await self._verify(token, message, signature)
        except WalletLinkError as exc:
            self._log.info("wallet_link_refused", step="verify", reason=exc.code)
            raise

    async def _verify(self, token: str, message: str, signature: str) -> WalletView:
        site = self.site
        if not isinstance(message, str) or not isinstance(signature, str):
            raise InvalidInputError("Send the message and the signature as text.")
        if len(message) > MAX_MESSAGE_CHARS:
            raise InvalidInputError("The message is too long.")
        if not _SIGNATURE_RE.match(signature):
            raise InvalidInputError("That is not a signature (0x and hex digits).")
        self._check_token_shape(token)
        parsed = await asyncio.to_thread(_parse_message, message)
        self._check_site(parsed, site)

        now = self._clock()
        session = await self._session_for(token, parsed, now)
        self._check_times(parsed, now)
        await asyncio.to_thread(_verify_signature, parsed, signature, site, now)

        address = str(parsed.address).lower()
        async with UnitOfWork(self._sessionmaker) as uow:
            if not await uow.wallets.consume_request(
                session.request_id, nonce=session.nonce, now=now
            ):
                # Lost a race with another verification or a newer message.
                raise self._refusal(await uow.wallets.get_request(token_hash(token)), now)
            wallet = await uow.wallets.add(
                user_id=session.user_id, address=address, chain_id=site.chain_id, linked_at=now
            )
            if wallet is None:
                own = await uow.wallets.get_for_user(session.user_id)
                if own is not None:
                    raise AlreadyLinkedError(WalletView.of(own))
                raise AddressTakenError()
            view = WalletView.of(wallet)
            uow.audit.record(
                "wallet_linked",
                user_id=session.user_id,
                address=address,
                chain_id=site.chain_id,
                link_request_id=session.request_id,
            )
            await uow.notifications.enqueue(
                chat_id=session.telegram_id,
                user_id=session.user_id,
                kind="wallet_linked",
                text=linked_notification(view),
                dedupe_key=f"wallet_linked:{session.request_id}",
            )
            await uow.commit()
        self._log.info(
            "wallet_linked", user_id=session.user_id, address=address, chain_id=site.chain_id
        )
        if self._queue is not None:
            await self._queue.nudge_notifications()
        return view

    # Checks -----------------------------------------------------------------------------

    @staticmethod
    def _check_token_shape(token: str) -> None:
        if not isinstance(token, str) or not _TOKEN_RE.match(token):
            raise LinkUnavailableError()

    async def _usable_request(
        self, uow: UnitOfWork, token: str, now: datetime
    ) -> WalletLinkRequest:
        self._check_token_shape(token)
        request = await uow.wallets.get_request(token_hash(token))
        if request is None or request.used_at is not None or request.expires_at <= now:
            reason = "unknown" if request is None else "used" if request.used_at else "expired"
            self._log.info("wallet_link_unavailable", reason=reason)
            raise LinkUnavailableError()
        return request

    def _refusal(self, request: WalletLinkRequest | None, now: datetime) -> WalletLinkError:
        if request is None or request.used_at is not None or request.expires_at <= now:
            return LinkUnavailableError()
        return NonceMismatchError()

    @staticmethod
    def _check_site(parsed: Any, site: LinkSite) -> None:
        if parsed.domain != site.domain or parsed.scheme is not None:
            named = f"{parsed.scheme}://{parsed.domain}" if parsed.scheme else parsed.domain
            raise WrongDomainError(
                f"This message was made for {named}, not for {site.domain}. "
                "Never sign a message for another site."
            )
        if str(parsed.uri) != site.uri:
            raise WrongUriError(
                f"This message names {parsed.uri}, not {site.uri}. "
                "Never sign a message for another site."
            )
        if parsed.chain_id != site.chain_id:
            raise WrongChainError(
                f"This message is for chain id {parsed.chain_id}; this server links wallets "
                f"on {site.chain_name} (chain id {site.chain_id})."
            )
        if not is_checksum_address(parsed.address):
            raise MessageMismatchError()
        if (
            parsed.request_id is not None
            or parsed.resources is not None
            or parsed.not_before is not None
            or parsed.expiration_time is None
        ):
            raise MessageMismatchError()

    async def _session_for(self, token: str, parsed: Any, now: datetime) -> _Session:
        async with UnitOfWork(self._sessionmaker) as uow:
            request = await self._usable_request(uow, token, now)
            if request.nonce is None or not constant_time_equals(str(parsed.nonce), request.nonce):
                raise NonceMismatchError()
            user = await uow.users.get(request.user_id)
            assert user is not None  # the foreign key cascades deletions
            if parsed.statement != statement_for(user):
                raise MessageMismatchError()
            if _parse_time(parsed.issued_at) < request.issued_at - CLOCK_SKEW:
                raise MessageMismatchError()
            return _Session(
                request_id=request.id,
                user_id=user.id,
                telegram_id=user.telegram_id,
                nonce=request.nonce,
            )

    @staticmethod
    def _check_times(parsed: Any, now: datetime) -> None:
        issued_at = _parse_time(parsed.issued_at)
        expires_at = _parse_time(parsed.expiration_time)
        if issued_at > now + CLOCK_SKEW or expires_at - issued_at > MESSAGE_TTL:
            raise MessageMismatchError()
        if now >= expires_at or now - issued_at > MESSAGE_TTL:
            raise MessageExpiredError()
