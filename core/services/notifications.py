"""Delivery of the notifications outbox through a :class:`NotificationSender` port."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.base import utcnow
from core.db.repositories.notifications import ClaimedNotification
from core.db.repositories.outbox import Outbox
from core.db.uow import UnitOfWork
from core.domain.states import NotificationState
from core.runtime.logs import get_logger
from core.services.priority import PlacementGate

# Give up only after a day: a Telegram outage of minutes or hours must lose nothing.
GIVE_UP_AFTER = timedelta(hours=24)
# A trade message is worth little when late: retry at least every 30 s during an outage.
MAX_BACKOFF = timedelta(seconds=30)
# How long a claimed message is held by its sender: longer than sending a batch takes.
CLAIM_LEASE = timedelta(seconds=60)
# Messages claimed at once.
BATCH = 10
# At shutdown, how long a background drain may finish sending what it claimed.
DRAIN_ON_CLOSE_SECONDS = 5.0


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


class _Delivery(Enum):
    """What became of one claimed message."""

    SENT = "sent"
    SENT_AFTER_RETRY = "sent after a retry"  # the channel is back: back-offs were ended
    RETRY = "retry"  # retryable failure: try again later, stop this round
    RETRY_FAILED = "failed, channel unhealthy"  # given up, and stop this round
    FAILED = "failed"  # permanent failure of this one message


def backoff(attempts: int) -> timedelta:
    """Delay before attempt ``attempts + 1``: 1 s doubling, capped at 30 seconds."""
    return min(timedelta(seconds=2 ** min(attempts, 16)) / 2, MAX_BACKOFF)


class SessionOutbox:
    """The outbox statements through the unit of work (the ORM repository).

    Args:
        sessionmaker: Database sessions.
    """

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def claim_due(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[ClaimedNotification]:
        async with UnitOfWork(self._sessionmaker, autocommit=True) as uow:
            batch = await uow.notifications.claim_due(now, lease_until, limit)
            await uow.commit()
        return batch

    async def mark(self, notification_id: int, **values: object) -> None:
        async with UnitOfWork(self._sessionmaker, autocommit=True) as uow:
            await uow.notifications.mark(notification_id, **values)
            await uow.commit()

    async def release(self, notification_ids: list[int], now: datetime) -> None:
        async with UnitOfWork(self._sessionmaker, autocommit=True) as uow:
            await uow.notifications.release(notification_ids, now)
            await uow.commit()

    async def retry_now(self, now: datetime) -> None:
        async with UnitOfWork(self._sessionmaker, autocommit=True) as uow:
            await uow.notifications.retry_now(now)
            await uow.commit()


class NotificationService:
    """Drains the outbox: claims a batch of due messages in one statement (each held for
    :data:`CLAIM_LEASE`), sends them one by one and marks each once tried, so a crash
    re-sends at most the one message that was in flight (the rest are due again when their
    lease ends), and no row is locked while Telegram answers.

    Args:
        sessionmaker: Database sessions (the outbox's statements go through the unit of
            work unless ``outbox`` is given).
        gate: This process's placing-first gate: a background drain waits for it.
        outbox: Where the claim and mark statements run (the worker passes the plain
            asyncpg :class:`~core.db.repositories.outbox.PlainOutbox`).
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        gate: PlacementGate | None = None,
        outbox: Outbox | None = None,
    ) -> None:
        self._outbox: Outbox = outbox or SessionOutbox(sessionmaker)
        self._gate = gate or PlacementGate()
        self._draining = False
        self._again = False
        self._soon: asyncio.Task[None] | None = None
        self._log = get_logger(__name__)

    def deliver_soon(self, sender: NotificationSender) -> None:
        """Drain the outbox in the background of this process, once alerts being placed are
        on their way (what an executed alert or a recorded fill just wrote).

        Costs no queue round trip: the worker that wrote the message sends it. Calls while
        a drain runs make it look again; the worker's schedule delivers anyway.
        """
        if self._soon is not None and not self._soon.done():
            self._again = True
            return
        self._soon = asyncio.get_running_loop().create_task(self._deliver_soon(sender))

    async def _deliver_soon(self, sender: NotificationSender) -> None:
        await self._gate.yield_to_placing()
        try:
            report = await self.deliver_due(sender)
        except Exception as exc:  # a background drain must not die silently
            self._log.warning("notifications_drain_failed", error=str(exc))
            return
        if report.sent or report.retried or report.failed:
            self._log.info(
                "notifications_delivered",
                sent=report.sent,
                retried=report.retried,
                failed=report.failed,
            )

    async def close(self) -> None:
        """Let a background drain finish (it sends at most what is due now)."""
        if self._soon is not None and not self._soon.done():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._soon), DRAIN_ON_CLOSE_SECONDS)
            self._soon.cancel()

    async def deliver_due(self, sender: NotificationSender, *, limit: int = 50) -> DeliveryReport:
        """Send up to ``limit`` due messages.

        Calls that overlap in one process coalesce: while a drain runs, another call only
        asks it to look again once it is done (a burst of executed alerts nudges the outbox
        once per alert), so two drains never race for the same messages.

        Args:
            sender: The delivery port.
            limit: Most messages handled by one drain.
        """
        if self._draining:
            self._again = True
            return DeliveryReport()
        self._draining = True
        total = DeliveryReport()
        try:
            while True:
                self._again = False
                report = await self._drain(sender, limit)
                total = DeliveryReport(
                    sent=total.sent + report.sent,
                    retried=total.retried + report.retried,
                    failed=total.failed + report.failed,
                )
                if not self._again or report.retried:
                    return total
        finally:
            self._draining = False

    async def _drain(self, sender: NotificationSender, limit: int) -> DeliveryReport:
        sent = retried = failed = 0
        while sent + retried + failed < limit:
            # One statement claims a batch (each message held for CLAIM_LEASE); one marks
            # each message once tried: a crash re-sends at most the one in flight.
            now = utcnow()
            batch = await self._outbox.claim_due(
                now, now + CLAIM_LEASE, min(BATCH, limit - sent - retried - failed)
            )
            if not batch:
                break
            again = False  # whether messages waiting out a back-off became due meanwhile
            for n, message in enumerate(batch):
                outcome = await self._deliver_one(sender, message)
                again = again or outcome is _Delivery.SENT_AFTER_RETRY
                sent += outcome in (_Delivery.SENT, _Delivery.SENT_AFTER_RETRY)
                retried += outcome is _Delivery.RETRY
                failed += outcome in (_Delivery.FAILED, _Delivery.RETRY_FAILED)
                if outcome in (_Delivery.RETRY, _Delivery.RETRY_FAILED):
                    # The channel is unhealthy: stop hammering it this round, and hand the
                    # rest of the batch back untried.
                    rest = [later.id for later in batch[n + 1 :]]
                    await self._outbox.release(rest, utcnow())
                    return DeliveryReport(sent=sent, retried=retried, failed=failed)
            if not again and len(batch) < BATCH:
                break
        return DeliveryReport(sent=sent, retried=retried, failed=failed)

    async def _deliver_one(
        self, sender: NotificationSender, message: ClaimedNotification
    ) -> _Delivery:
        """Send one claimed message and record what became of it."""
        now = utcnow()
        try:
            await sender.send(message.chat_id, message.text, message.attachment)
        except SendError as exc:
            error = str(exc)[:500]
            if exc.retryable and now - message.created_at < GIVE_UP_AFTER:
                delay = backoff(message.attempts)
                if exc.retry_after is not None:
                    delay = max(delay, timedelta(seconds=exc.retry_after))
                await self._mark(message.id, next_attempt_at=now + delay, last_error=error)
                self._log.warning(
                    "notification_retry",
                    notification_id=message.id,
                    attempts=message.attempts,
                    error=str(exc),
                )
                return _Delivery.RETRY
            await self._mark(message.id, state=NotificationState.FAILED, last_error=error)
            self._log.error("notification_failed", notification_id=message.id, error=str(exc))
            # A retryable error past the give-up age still means an unhealthy channel.
            return _Delivery.RETRY_FAILED if exc.retryable else _Delivery.FAILED
        retried_before = message.attempts > 1
        await self._outbox.mark(message.id, state=NotificationState.SENT, sent_at=utcnow())
        if retried_before:
            # Telegram is back: what waits for its back-off goes out now, not later.
            await self._outbox.retry_now(now)
        return _Delivery.SENT_AFTER_RETRY if retried_before else _Delivery.SENT

    async def _mark(self, notification_id: int, **values: object) -> None:
        await self._outbox.mark(notification_id, **values)
