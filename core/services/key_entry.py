"""The Mini App key form: the key goes from the trader's Telegram app to the web server over
HTTPS, never through a chat message.

The bot issues a single-use form token (only its SHA-256 stored, bound to the user, 10
minutes). The page posts the key together with the Mini App ``initData`` Telegram signed for
whoever opened it. A submission is accepted only if, in this order: the ``initData`` hash is
the bot's and it is fresh; the token is known, unused and unexpired; the ``initData`` user is
the token's user; the key passes the same chain checks as the chat's (through
:class:`~core.services.credentials.CredentialService`, which seals it to the worker's public
key). The token is consumed and the chat confirmation queued in the same transaction that
stores the key, so a refusal changes nothing and a token works once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.base import utcnow
from core.db.models import KeyEntryRequest
from core.db.uow import UnitOfWork
from core.exchange.errors import ExchangeUnavailableError
from core.runtime.logs import get_logger
from core.security.webapp import InitDataError, InitDataProblem, verify_init_data
from core.services.credentials import CredentialRefusedError, CredentialService, CredentialView
from core.services.jobs import JobQueue
from core.services.single_use import TOKEN_TTL, TokenState, find_token, issue_token, token_state
from core.texts import key as key_texts
from core.texts import key_entry as texts

FORM_TTL = TOKEN_TTL


class EntryRefusal(StrEnum):
    """Why a form submission was refused (the page shows the message; the code is for
    machines and logs)."""

    NOT_IN_TELEGRAM = "not_in_telegram"
    BAD_INIT_DATA = "bad_init_data"
    STALE_INIT_DATA = "stale_init_data"
    OTHER_USER = "other_user"
    FORM_UNAVAILABLE = "form_unavailable"
    FORM_USED = "form_used"
    KEY_REFUSED = "key_refused"
    EXCHANGE_UNAVAILABLE = "exchange_unavailable"


class KeyEntryError(Exception):
    """A submission refused; nothing was stored.

    Attributes:
        refusal: Why.
        message: What the page tells the trader (plain text, never the key).
    """

    def __init__(self, refusal: EntryRefusal, message: str) -> None:
        super().__init__(refusal.value)
        self.refusal = refusal
        self.message = message


_INIT_DATA_REFUSALS: dict[InitDataProblem, tuple[EntryRefusal, str]] = {
    InitDataProblem.MISSING: (EntryRefusal.NOT_IN_TELEGRAM, texts.NOT_IN_TELEGRAM),
    InitDataProblem.MALFORMED: (EntryRefusal.BAD_INIT_DATA, texts.BAD_INIT_DATA),
    InitDataProblem.BAD_SIGNATURE: (EntryRefusal.BAD_INIT_DATA, texts.BAD_INIT_DATA),
    InitDataProblem.STALE: (EntryRefusal.STALE_INIT_DATA, texts.STALE_INIT_DATA),
}


@dataclass(frozen=True, slots=True)
class IssuedForm:
    """A form the bot offers (the token appears only in ``url``)."""

    url: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class _Form:
    request_id: int
    user_id: int
    telegram_id: int


class KeyEntryService:
    """Issues key forms (bot) and accepts their submissions (web).

    Args:
        sessionmaker: Database sessions.
        base_url: ``PUBLIC_BASE_URL``; the form is offered only when it is https (Telegram
            opens Mini Apps over https only).
        bot_token: The bot's token, which keys the ``initData`` HMAC.
        credentials: Verifies and stores keys (holding the worker's public sealing key).
        queue: Optional job queue, nudged so a worker sends the confirmation at once.
        clock: The current UTC time (tests move it).
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        base_url: str,
        bot_token: str,
        credentials: CredentialService,
        *,
        queue: JobQueue | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._base_url = base_url.rstrip("/")
        self._bot_token = bot_token
        self._credentials = credentials
        self._queue = queue
        self._clock = clock
        self._log = get_logger(__name__)

    @property
    def form_available(self) -> bool:
        """Whether Telegram can open the form (``PUBLIC_BASE_URL`` is https)."""
        return self._base_url.startswith("https://")

    async def issue(self, user_id: int) -> IssuedForm:
        """A fresh form for the user; their unused ones stop working."""
        async with UnitOfWork(self._sessionmaker) as uow:
            issued = await issue_token(uow.key_entries, user_id, self._clock())
            form_id = issued.request.id
            uow.audit.record("key_form_issued", user_id=user_id, key_form_id=form_id)
            await uow.commit()
        self._log.info(
            "key_form_issued", user_id=user_id, key_form_id=form_id, replaced=issued.replaced
        )
        return IssuedForm(url=f"{self._base_url}/key/{issued.token}", expires_at=issued.expires_at)

    async def check_form(self, token: str) -> None:
        """Whether the page may be shown for ``token``.

        Raises:
            KeyEntryError: ``FORM_UNAVAILABLE`` or ``FORM_USED``.
        """
        async with UnitOfWork(self._sessionmaker, read_only=True) as uow:
            self._usable(await find_token(uow.key_entries, token), self._clock())

    async def submit(
        self, token: str, init_data: str, owner_address: str, private_key_text: str
    ) -> CredentialView:
        """Accept a key from the form.

        Args:
            token: The form token from the page URL.
            init_data: The Mini App ``initData`` the page read.
            owner_address: The dYdX account the key trades for.
            private_key_text: The key as typed (lives only in this call's locals).

        Returns:
            The stored key's view.

        Raises:
            KeyEntryError: Refused; nothing was stored.
        """
        try:
            return await self._submit(token, init_data, owner_address, private_key_text)
        except KeyEntryError as exc:
            self._log.info("key_form_refused", reason=exc.refusal.value)
            raise

    async def _submit(
        self, token: str, init_data: str, owner_address: str, private_key_text: str
    ) -> CredentialView:
        now = self._clock()
        try:
            opener = verify_init_data(init_data, self._bot_token, now=now)
        except InitDataError as exc:
            raise KeyEntryError(*_INIT_DATA_REFUSALS[exc.problem]) from None
        async with UnitOfWork(self._sessionmaker, read_only=True) as uow:
            request = self._usable(await find_token(uow.key_entries, token), now)
            user = await uow.users.get(request.user_id)
            if user is None:  # deleted meanwhile (/delete_me cascades to the form)
                raise KeyEntryError(EntryRefusal.FORM_UNAVAILABLE, texts.FORM_UNAVAILABLE)
            form = _Form(request.id, user.id, user.telegram_id)
        if opener.telegram_id != form.telegram_id:
            raise KeyEntryError(EntryRefusal.OTHER_USER, texts.OTHER_USER)

        async def finish(uow: UnitOfWork, view: CredentialView) -> None:
            # In the transaction that stores the key: of two submissions one wins.
            if not await uow.key_entries.consume(form.request_id, now=self._clock()):
                raise KeyEntryError(EntryRefusal.FORM_USED, texts.FORM_USED)
            await uow.notifications.enqueue(
                chat_id=form.telegram_id,
                user_id=form.user_id,
                kind="key_added",
                text=key_texts.key_added(view),
                dedupe_key=f"key_added:{form.request_id}",
            )

        try:
            view = await self._credentials.add_key(
                form.user_id, owner_address, private_key_text, finish=finish
            )
        except CredentialRefusedError as exc:
            raise KeyEntryError(
                EntryRefusal.KEY_REFUSED, texts.key_refused(exc.reason.value)
            ) from None
        except ExchangeUnavailableError:
            raise KeyEntryError(
                EntryRefusal.EXCHANGE_UNAVAILABLE, texts.EXCHANGE_UNAVAILABLE
            ) from None
        self._log.info("key_form_accepted", user_id=form.user_id, key_form_id=form.request_id)
        if self._queue is not None:
            await self._queue.nudge_notifications()
        return view

    @staticmethod
    def _usable(request: KeyEntryRequest | None, now: datetime) -> KeyEntryRequest:
        state = token_state(request, now)
        if state is TokenState.USED:
            raise KeyEntryError(EntryRefusal.FORM_USED, texts.FORM_USED)
        if request is None or state is not TokenState.USABLE:
            raise KeyEntryError(EntryRefusal.FORM_UNAVAILABLE, texts.FORM_UNAVAILABLE)
        return request
