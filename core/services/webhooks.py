"""Personal TradingView webhooks: issue, rotate, revoke, and what arrived lately.

A webhook is two secrets: a URL token and a body passphrase, each 192 random bits, stored
only as SHA-256 hashes (they are random, so a fast hash is enough: there is nothing to
guess). They are shown once, when issued. Rotating or revoking stops the old pair in the
same transaction: the intake looks webhooks up in the database on every call, so the old
URL stops working at once, in every web process.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.base import utcnow
from core.db.models import Webhook
from core.db.uow import UnitOfWork
from core.domain.states import AlertState
from core.runtime.logs import get_logger
from core.security.crypto import new_token, token_hash

TOKEN_BYTES = 24  # 192 bits
RECENT_ALERTS = 10


class WebhookExistsError(Exception):
    """The user already has a live webhook (rotate it to get new secrets)."""


def alert_template(passphrase: str) -> str:
    """The ready-to-paste TradingView alert message (JSON with TradingView placeholders).

    ``alert_id`` combines the order id with the fire time: a strategy reuses its order ids
    (every "Long" entry has the id ``Long``), so the id alone would make the second entry a
    duplicate of the first.
    """
    message = {
        "passphrase": passphrase,
        "market": "{{ticker}}",
        "action": "{{strategy.order.action}}",
        "position": "{{strategy.market_position}}",
        "size": "{{strategy.order.contracts}}",
        "price": "{{close}}",
        "alert_id": "{{strategy.order.id}}-{{timenow}}",
        "time": "{{timenow}}",
    }
    return json.dumps(message, indent=2)


@dataclass(frozen=True, slots=True)
class IssuedWebhook:
    """Fresh secrets, to be shown once and never again.

    Attributes:
        url: The webhook URL (carries the token).
        passphrase: The body passphrase.
        alert_message: The TradingView alert message, passphrase included.
    """

    url: str
    passphrase: str
    alert_message: str
    created_at: datetime

    def __repr__(self) -> str:  # keep the secrets out of tracebacks and logs
        return f"IssuedWebhook(created_at={self.created_at.isoformat()})"


@dataclass(frozen=True, slots=True)
class AlertView:
    """One received alert as /webhook lists it."""

    id: int
    received_at: datetime
    market: str | None
    action: str | None
    state: AlertState
    reason: str | None


@dataclass(frozen=True, slots=True)
class WebhookStatus:
    """A user's webhook and latest alerts.

    Attributes:
        active_since: When the live webhook was issued, or ``None`` without one.
        recent: The latest alerts, newest first.
    """

    active_since: datetime | None
    recent: list[AlertView]

    @property
    def active(self) -> bool:
        """Whether the user has a live webhook."""
        return self.active_since is not None


@dataclass(frozen=True, slots=True)
class WebhookOverview:
    """What /webhook shows.

    Attributes:
        issued: New secrets when this call created the webhook (shown once), else ``None``.
        status: The webhook and the latest alerts.
    """

    issued: IssuedWebhook | None
    status: WebhookStatus


class WebhookService:
    """The bot's side of webhooks."""

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], public_base_url: str
    ) -> None:
        self._sessionmaker = sessionmaker
        self._base_url = public_base_url.rstrip("/")
        self._log = get_logger(__name__)

    def _new(self, user_id: int, at: datetime) -> tuple[Webhook, IssuedWebhook]:
        token = new_token(TOKEN_BYTES)
        passphrase = new_token(TOKEN_BYTES)
        row = Webhook(
            user_id=user_id,
            token_hash=token_hash(token),
            passphrase_hash=token_hash(passphrase),
            created_at=at,
        )
        issued = IssuedWebhook(
            url=f"{self._base_url}/hook/{token}",
            passphrase=passphrase,
            alert_message=alert_template(passphrase),
            created_at=at,
        )
        return row, issued

    async def issue(self, user_id: int) -> IssuedWebhook:
        """Create the user's webhook.

        Raises:
            WebhookExistsError: The user has one already (concurrent calls included).
        """
        now = utcnow()
        async with UnitOfWork(self._sessionmaker) as uow:
            if await uow.webhooks.get_active(user_id) is not None:
                raise WebhookExistsError
            row, issued = self._new(user_id, now)
            try:
                await uow.webhooks.add(row)
            except IntegrityError:  # a concurrent /webhook won the partial unique index
                raise WebhookExistsError from None
            webhook_id = row.id
            uow.audit.record("webhook_issued", user_id=user_id, webhook_id=webhook_id)
            await uow.commit()
        self._log.info("webhook_issued", user_id=user_id, webhook_id=webhook_id)
        return issued

    async def overview(self, user_id: int) -> WebhookOverview:
        """The user's webhook and latest alerts, issuing the webhook first if there is none."""
        issued = None
        try:
            if (await self.status(user_id, limit=0)).active_since is None:
                issued = await self.issue(user_id)
        except WebhookExistsError:
            pass  # a concurrent /webhook issued it: show the status
        return WebhookOverview(issued=issued, status=await self.status(user_id))

    async def rotate(self, user_id: int) -> IssuedWebhook:
        """Replace the user's secrets: the old URL and passphrase stop when this commits.

        Works without a live webhook too (it then simply issues one).
        """
        now = utcnow()
        async with UnitOfWork(self._sessionmaker) as uow:
            retired = await uow.webhooks.retire_active(user_id, at=now, rotated=True)
            row, issued = self._new(user_id, now)
            try:
                await uow.webhooks.add(row)
            except IntegrityError:  # a concurrent rotation committed first
                raise WebhookExistsError from None
            webhook_id = row.id
            uow.audit.record(
                "webhook_rotated", user_id=user_id, webhook_id=webhook_id, retired=retired
            )
            await uow.commit()
        self._log.info("webhook_rotated", user_id=user_id, webhook_id=webhook_id)
        return issued

    async def revoke(self, user_id: int) -> bool:
        """Stop the user's webhook.

        Returns:
            Whether there was a live webhook to stop.
        """
        async with UnitOfWork(self._sessionmaker) as uow:
            retired = await uow.webhooks.retire_active(user_id, at=utcnow(), rotated=False)
            if retired:
                uow.audit.record("webhook_revoked", user_id=user_id)
            await uow.commit()
        if retired:
            self._log.info("webhook_revoked", user_id=user_id)
        return bool(retired)

    async def status(self, user_id: int, *, limit: int = RECENT_ALERTS) -> WebhookStatus:
        """Whether the user has a live webhook, and the latest alerts received."""
        async with UnitOfWork(self._sessionmaker) as uow:
            webhook = await uow.webhooks.get_active(user_id)
            alerts = await uow.alerts.recent(user_id, limit) if limit else []
            # Read inside the unit of work: leaving it rolls back and expires the rows.
            return WebhookStatus(
                active_since=webhook.created_at if webhook is not None else None,
                recent=[
                    AlertView(
                        id=alert.id,
                        received_at=alert.received_at,
                        market=alert.market,
                        action=alert.action,
                        state=alert.state,
                        reason=alert.reason,
                    )
                    for alert in alerts
                ],
            )
