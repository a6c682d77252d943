"""The notifications outbox's delivery statements on the execution hot path's plain asyncpg
pool (the unit-of-work way is :class:`core.services.notifications.SessionOutbox`).

Delivering a message takes two statements (claim it, mark it sent); a worker delivers one
after every executed alert and every recorded fill. Through the ORM each cost ~0.5 ms of
the worker's CPU; as plain prepared statements, ~0.15 ms (#15). The statements and their
rules are the same either way (:class:`~core.db.repositories.notifications.
NotificationRepository` holds the ORM ones): a claim counts an attempt and holds the
message for a lease; a mark changes only a message still PENDING.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from core.db.repositories.execution import ExecutionRepository
from core.db.repositories.notifications import ClaimedNotification
from core.domain.states import NotificationState

_PENDING = NotificationState.PENDING.value

_CLAIM = f"""
UPDATE notifications SET attempts = attempts + 1, next_attempt_at = $2
WHERE id IN (
    SELECT id FROM notifications
    WHERE state = '{_PENDING}' AND next_attempt_at <= $1
    ORDER BY next_attempt_at, id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
RETURNING id, chat_id, text, attachment, attempts, created_at
"""  # noqa: S608 - only the domain's state constant is interpolated

_RELEASE = f"""
UPDATE notifications SET attempts = attempts - 1, next_attempt_at = $2
WHERE id = ANY($1::bigint[]) AND state = '{_PENDING}'
"""  # noqa: S608 - only the domain's state constant is interpolated

_RETRY_NOW = f"""
UPDATE notifications SET next_attempt_at = $1
WHERE state = '{_PENDING}' AND next_attempt_at > $1
"""  # noqa: S608 - only the domain's state constant is interpolated

#: What a mark may set (column names, never input).
_MARKABLE = ("state", "sent_at", "next_attempt_at", "last_error")


class Outbox(Protocol):
    """The outbox statements :class:`~core.services.notifications.NotificationService`
    delivers with; each commits on its own."""

    async def claim_due(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[ClaimedNotification]:
        """Claim up to ``limit`` messages due at ``now``, oldest first, each held until
        ``lease_until`` and counted as an attempt."""
        ...

    async def mark(self, notification_id: int, **values: object) -> None:
        """Record what became of a claimed message still PENDING (``state``, ``sent_at``,
        ``next_attempt_at``, ``last_error``)."""
        ...

    async def release(self, notification_ids: list[int], now: datetime) -> None:
        """Hand back claimed messages that were not tried (due now, the attempt uncounted)."""
        ...

    async def retry_now(self, now: datetime) -> None:
        """Make every message waiting out a back-off due at ``now``."""
        ...


class PlainOutbox:
    """The outbox statements on the execution store's pool (commits wait for the disk: a
    message marked sent stays sent through a crash of PostgreSQL).

    Args:
        store: The execution hot path's repository (its pool is shared).
    """

    def __init__(self, store: ExecutionRepository) -> None:
        self._store = store

    async def claim_due(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[ClaimedNotification]:
        rows = await (await self._store.pool()).fetch(_CLAIM, now, lease_until, limit)
        claimed = [
            ClaimedNotification(
                id=row["id"],
                chat_id=row["chat_id"],
                text=row["text"],
                attachment=row["attachment"],
                attempts=row["attempts"],
                created_at=row["created_at"],
            )
            for row in rows
        ]
        return sorted(claimed, key=lambda message: message.id)

    async def mark(self, notification_id: int, **values: object) -> None:
        unknown = values.keys() - set(_MARKABLE)
        if unknown:
            raise ValueError(f"not a markable column: {sorted(unknown)}")
        columns = [column for column in _MARKABLE if column in values]
        assignments = ", ".join(f"{column} = ${n}" for n, column in enumerate(columns, 2))
        statement = (
            f"UPDATE notifications SET {assignments} "  # noqa: S608 - whitelisted columns
            f"WHERE id = $1 AND state = '{_PENDING}'"
        )
        arguments = [_plain(values[column]) for column in columns]
        await (await self._store.pool()).execute(statement, notification_id, *arguments)

    async def release(self, notification_ids: list[int], now: datetime) -> None:
        if notification_ids:
            await (await self._store.pool()).execute(_RELEASE, notification_ids, now)

    async def retry_now(self, now: datetime) -> None:
        await (await self._store.pool()).execute(_RETRY_NOW, now)


def _plain(value: object) -> object:
    """A state as the database stores it (its value); anything else as is."""
    return value.value if isinstance(value, NotificationState) else value
