"""Delivery of the notifications outbox through a :class:`NotificationSender` port."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.base import utcnow
from core.db.uow import UnitOfWork
from core.domain.states import NotificationState
from core.runtime.logs import get_logger

# Give up only after a day: a Telegram outage of minutes or hours must lose nothing.
GIVE_UP_AFTER = timedelta(hours=24)
# A trade message is worth little when late: retry at least every 30 s during an outage.
MAX_BACKOFF = timedelta(seconds=30)


class SendError(Exception):
    """A message could not be delivered.

    Attributes:
        retryable: Whether trying again later may succeed (outage, flood control).
        retry_after: Seconds the server asked us to wait, if it said.
    """

    def __init__(self, reason: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retryable = retryable
        self.retry_after = retry_after


class NotificationSender(Protocol):
    """Anything that can put a message (and an optional PNG) into a Telegram chat."""

    async def send(self, chat_id: int, text: str, attachment: bytes | None) -> None:
        """Deliver one message.

        Raises:
            SendError: Delivery failed; ``retryable`` tells whether to try again.
        """
        ...


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What one drain of the outbox did."""

    sent: int = 0
    retried: int = 0
    failed: int = 0


def backoff(attempts: int) -> timedelta:
    """Delay before attempt ``attempts + 1``: 1 s doubling, capped at 30 seconds."""
    return min(timedelta(seconds=2 ** min(attempts, 16)) / 2, MAX_BACKOFF)


class NotificationService:
    """Drains the outbox. Each message is its own transaction, so a crash re-sends at most
    the one message that was in flight."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self._log = get_logger(__name__)

    async def deliver_due(self, sender: NotificationSender, *, limit: int = 50) -> DeliveryReport:
        """Send up to ``limit`` due messages.

        Args:
            sender: The delivery port.
            limit: Most messages handled in this call.
        """
        sent = retried = failed = 0
        for _ in range(limit):
            async with UnitOfWork(self._sessionmaker) as uow:
                now = utcnow()
                message = await uow.notifications.claim_next_due(now)
                if message is None:
                    break
                message.attempts += 1
                try:
                    await sender.send(message.chat_id, message.text, message.attachment)
                except SendError as exc:
                    message.last_error = str(exc)[:500]
                    if exc.retryable and now - message.created_at < GIVE_UP_AFTER:
                        delay = backoff(message.attempts)
                        if exc.retry_after is not None:
                            delay = max(delay, timedelta(seconds=exc.retry_after))
                        message.next_attempt_at = now + delay
                        retried += 1
                        self._log.warning(
                            "notification_retry",
                            notification_id=message.id,
                            attempts=message.attempts,
                            error=str(exc),
                        )
                    else:
                        message.state = NotificationState.FAILED
                        failed += 1
                        self._log.error(
                            "notification_failed", notification_id=message.id, error=str(exc)
                        )
                    await uow.commit()
                    if exc.retryable:
                        break  # the channel is unhealthy: stop hammering it this round
                    continue
                message.state = NotificationState.SENT
                message.sent_at = utcnow()
                if message.attempts > 1:
                    # Telegram is back: what waits for its back-off goes out now, not later.
                    await uow.notifications.retry_now(now)
                await uow.commit()
                sent += 1
        return DeliveryReport(sent=sent, retried=retried, failed=failed)
