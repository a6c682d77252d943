"""``WalletLinkService``: issues link tokens, writes the messages to sign, verifies and links."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.base import utcnow
from core.db.models import WalletLinkRequest
from core.db.uow import UnitOfWork
from core.runtime.logs import get_logger
from core.security.crypto import constant_time_equals
from core.security.webapp import InitDataError, verify_init_data
from core.services.jobs import JobQueue
from core.services.single_use import (
    TOKEN_TTL,
    TokenState,
    find_token,
    issue_token,
    token_state,
    well_formed,
)
from core.services.wallet_link.errors import (
    AddressTakenError,
    AlreadyLinkedError,
    InitDataInvalidError,
    InvalidInputError,
    LinkUnavailableError,
    MessageMismatchError,
    NonceMismatchError,
    OtherTelegramUserError,
    WalletLinkError,
    WrongChainError,
)
from core.services.wallet_link.message import (
    CLOCK_SKEW,
    MAX_MESSAGE_CHARS,
    MESSAGE_TTL,
    check_site,
    check_times,
    checked_address,
    message_time,
    parse_message,
    statement_for,
    write_message,
)
from core.services.wallet_link.signature import check_signature_shape, verify_signature
from core.services.wallet_link.site import LinkSite
from core.services.wallet_link.views import IssuedLink, WalletView
from core.texts import link as texts

LINK_TTL = TOKEN_TTL


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
        bot_token: The bot's token, to check the Mini App ``initData`` of a page opened from
            Telegram (the web server's instance; without it such calls are refused).
        clock: The current UTC time (tests move it).
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        site: LinkSite,
        *,
        queue: JobQueue | None = None,
        bot_token: str | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._site = site
        self._queue = queue
        self._bot_token = bot_token
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
        async with UnitOfWork(self._sessionmaker) as uow:
            wallet = await uow.wallets.get_for_user(user_id)
            if wallet is not None:
                raise AlreadyLinkedError(WalletView.of(wallet))
            issued = await issue_token(uow.wallet_links, user_id, self._clock())
            request_id = issued.request.id
            uow.audit.record("wallet_link_issued", user_id=user_id, link_request_id=request_id)
            await uow.commit()
        self._log.info(
            "wallet_link_issued",
            user_id=user_id,
            link_request_id=request_id,
            replaced=issued.replaced,
        )
        return IssuedLink(
            token=issued.token, url=site.link_url(issued.token), expires_at=issued.expires_at
        )

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

    async def prepare(
        self, token: str, address: str, chain_id: int, *, init_data: str | None = None
    ) -> str:
        """Write the EIP-4361 message for the wallet to sign, with a fresh nonce.

        A new call replaces the previous nonce, so only the latest message can be used.

        Args:
            token: The link token from the page URL.
            address: The wallet's address (lower-case or EIP-55).
            chain_id: The chain the wallet is on (``eth_chainId``).
            init_data: The Mini App ``initData`` when the page was opened from Telegram: it
                must be valid, fresh and the link's user. ``None`` from a plain browser
                (a wallet app's), where the link token alone counts, as before.

        Returns:
            The message text, byte for byte what must be signed.

        Raises:
            InvalidInputError: Malformed address or chain id.
            WrongChainError: The wallet is on another chain than links are made on.
            LinkUnavailableError: Unknown, used or expired token.
            AlreadyLinkedError: The user already has a wallet.
            InitDataInvalidError: ``init_data`` is forged, malformed or stale.
            OtherTelegramUserError: ``init_data`` is another Telegram user's.
        """
        try:
            return await self._prepare(token, address, chain_id, init_data)
        except WalletLinkError as exc:
            self._log.info("wallet_link_refused", step="prepare", reason=exc.code)
            raise

    async def _prepare(self, token: str, address: str, chain_id: int, init_data: str | None) -> str:
        site = self.site
        checksummed = checked_address(address)
        if isinstance(chain_id, bool) or not isinstance(chain_id, int) or chain_id <= 0:
            raise InvalidInputError(texts.NOT_A_CHAIN_ID)
        if chain_id != site.chain_id:
            raise WrongChainError(
                texts.wallet_on_wrong_chain(chain_id, site.chain_name, site.chain_id)
            )
        now = self._clock()
        async with UnitOfWork(self._sessionmaker) as uow:
            request = await self._usable_request(uow, token, now)
            user = await uow.users.get(request.user_id)
            assert user is not None  # the foreign key cascades deletions
            self._check_opener(init_data, user.telegram_id, now)
            existing = await uow.wallets.get_for_user(request.user_id)
            if existing is not None:
                raise AlreadyLinkedError(WalletView.of(existing))
            nonce = secrets.token_hex(16)  # 128 bits, alphanumeric as EIP-4361 requires
            text = write_message(
                site,
                checksummed,
                statement_for(user),
                nonce,
                issued_at=now,
                expires_at=min(now + MESSAGE_TTL, request.expires_at),
            )
            request.nonce = nonce
            await uow.commit()
        self._log.info("wallet_link_message_issued", link_request_id=request.id)
        return text

    async def verify(
        self, token: str, message: str, signature: str, *, init_data: str | None = None
    ) -> WalletView:
        """Verify a signed message and link the wallet.

        Checked in this order: sizes and shapes; strict parse; exact domain, URI and chain
        id; the link is usable and the nonce is its current one; the Mini App ``init_data``
        (when given, as for :meth:`prepare`) is its user's; the statement names its user;
        times; the signer (EIP-191, else ERC-1271 through the RPC). Then, in one transaction:
        the request is consumed by a conditional UPDATE, the wallet inserted, the audit entry
        and the bot's confirmation written. A refusal stores nothing.

        Raises:
            WalletLinkError: A subclass saying why, with a message for the user.
        """
        try:
            return await self._verify(token, message, signature, init_data)
        except WalletLinkError as exc:
            self._log.info("wallet_link_refused", step="verify", reason=exc.code)
            raise

    async def _verify(
        self, token: str, message: str, signature: str, init_data: str | None
    ) -> WalletView:
        site = self.site
        if not isinstance(message, str) or not isinstance(signature, str):
            raise InvalidInputError(texts.NOT_TEXT)
        if len(message) > MAX_MESSAGE_CHARS:
            raise InvalidInputError(texts.MESSAGE_TOO_LONG)
        check_signature_shape(signature)
        self._check_token_shape(token)
        parsed = await asyncio.to_thread(parse_message, message)
        check_site(parsed, site)

        now = self._clock()
        session = await self._session_for(token, parsed, now, init_data)
        check_times(parsed, now)
        await asyncio.to_thread(verify_signature, parsed, signature, site, now)

        address = str(parsed.address).lower()
        async with UnitOfWork(self._sessionmaker) as uow:
            if not await uow.wallet_links.consume_with_nonce(
                session.request_id, nonce=session.nonce, now=now
            ):
                # Lost a race with another verification or a newer message.
                raise self._refusal(await find_token(uow.wallet_links, token), now)
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
                text=texts.linked(view),
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
        if not well_formed(token):
            raise LinkUnavailableError()

    async def _usable_request(
        self, uow: UnitOfWork, token: str, now: datetime
    ) -> WalletLinkRequest:
        self._check_token_shape(token)
        request = await find_token(uow.wallet_links, token)
        state = token_state(request, now)
        if request is None or state is not TokenState.USABLE:
            self._log.info("wallet_link_unavailable", reason=state.value)
            raise LinkUnavailableError()
        return request

    @staticmethod
    def _refusal(request: WalletLinkRequest | None, now: datetime) -> WalletLinkError:
        if token_state(request, now) is not TokenState.USABLE:
            return LinkUnavailableError()
        return NonceMismatchError()

    def _check_opener(self, init_data: str | None, telegram_id: int, now: datetime) -> None:
        """A page opened from Telegram must have been opened by the link's own user."""
        if init_data is None:
            return
        if self._bot_token is None:
            raise InitDataInvalidError()
        try:
            opener = verify_init_data(init_data, self._bot_token, now=now)
        except InitDataError:
            raise InitDataInvalidError() from None
        if opener.telegram_id != telegram_id:
            raise OtherTelegramUserError()

    async def _session_for(
        self, token: str, parsed: Any, now: datetime, init_data: str | None
    ) -> _Session:
        async with UnitOfWork(self._sessionmaker) as uow:
            request = await self._usable_request(uow, token, now)
            if request.nonce is None or not constant_time_equals(str(parsed.nonce), request.nonce):
                raise NonceMismatchError()
            user = await uow.users.get(request.user_id)
            assert user is not None  # the foreign key cascades deletions
            self._check_opener(init_data, user.telegram_id, now)
            if parsed.statement != statement_for(user):
                raise MessageMismatchError()
            if message_time(parsed.issued_at) < request.issued_at - CLOCK_SKEW:
                raise MessageMismatchError()
            return _Session(
                request_id=request.id,
                user_id=user.id,
                telegram_id=user.telegram_id,
                nonce=request.nonce,
            )
