"""The alert-intake hot path's SQL, on a plain asyncpg pool.

Every webhook call runs one indexed lookup and one single-statement insert (its own
transaction, committed before the answer). asyncpg prepares and caches each statement per
connection, and there is no ORM unit of work or pre-ping round trip in the way: at a
thousand alerts a second those cost more than the statements themselves. Everything else
(the bot's views, the sweeper) goes through the repositories and the unit of work.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

from core.logs import get_logger

# State values are AlertState / NotificationState members, written out (plain constants,
# never interpolated), so each statement is one literal string the server prepares once.
_LOOKUP = """
SELECT w.id, w.user_id, w.passphrase_hash, u.paused,
       COALESCE(u.notify_chat_id, u.telegram_id) AS chat_id
FROM webhooks AS w JOIN users AS u ON u.id = w.user_id
WHERE w.token_hash = $1 AND w.rotated_at IS NULL AND w.revoked_at IS NULL
"""

_INSERT_ACCEPTED = """
INSERT INTO alerts (user_id, webhook_id, dedupe_key, external_id, body_hash, strategy,
                    market, action, fields, source_ip, state, received_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, 'ACCEPTED', $11)
ON CONFLICT (user_id, dedupe_key) DO NOTHING
RETURNING id
"""

_INSERT_REJECTED = """
INSERT INTO alerts (user_id, webhook_id, body_hash, strategy, market, action, fields,
                    source_ip, state, reason, received_at)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, 'REJECTED', $9, $10)
RETURNING id
"""

# The rejection and its Telegram notice in one statement (one transaction, one round trip);
# the notice's dedupe key throttles notices per user and time window.
_INSERT_REJECTED_AND_NOTIFY = (
    "WITH alert AS ("
    + _INSERT_REJECTED.strip()
    + """)
INSERT INTO notifications (user_id, chat_id, kind, text, dedupe_key, state, attempts,
                           next_attempt_at, created_at)
SELECT $1, $11, $12, $13, $14, 'PENDING', 0, $10, $10 FROM alert
ON CONFLICT (dedupe_key) DO NOTHING
"""
)

_MARK_ENQUEUED = """
UPDATE alerts SET enqueued_at = $2 WHERE id = ANY($1::bigint[]) AND enqueued_at IS NULL
"""

# Marks are batched off the request path: a lost mark only makes the sweeper enqueue the
# alert again under the same job id, which arq ignores while the job exists.
MARK_BATCH_DELAY_SECONDS = 0.02


class StoreUnavailableError(Exception):
    """PostgreSQL cannot be reached (or timed out): nothing was committed."""


@contextlib.contextmanager
def _unavailable_as_error() -> Iterator[None]:
    try:
        yield
    except (
        OSError,
        TimeoutError,
        asyncpg.InterfaceError,
        asyncpg.PostgresConnectionError,
        asyncpg.CannotConnectNowError,
    ) as exc:
        raise StoreUnavailableError(type(exc).__name__) from exc


async def _keep_session(_connection: Any) -> None:
    """Pool reset hook: intake statements leave no session state, so skip asyncpg's
    default reset query (a round trip on every release)."""


@dataclass(frozen=True, slots=True)
class WebhookOwner:
    """A live webhook and what intake needs of its user.

    Attributes:
        webhook_id: The webhook row.
        user_id: Its owner.
        passphrase_hash: SHA-256 hex of the body passphrase.
        paused: Whether the user paused trading.
        chat_id: Where the user's notices go.
    """

    webhook_id: int
    user_id: int
    passphrase_hash: str
    paused: bool
    chat_id: int


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """What intake writes about one alert (never a secret).

    Attributes:
        body_hash: SHA-256 hex of the raw body.
        fields: The normalised alert (JSON-safe), or ``{}`` when it did not parse.
    """

    user_id: int
    webhook_id: int
    body_hash: str
    received_at: datetime
    source_ip: str | None
    strategy: str | None = None
    market: str | None = None
    action: str | None = None
    fields: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Notice:
    """A Telegram notice to enqueue with a rejection, once per ``dedupe_key``."""

    chat_id: int
    kind: str
    text: str
    dedupe_key: str


class IntakeStore:
    """The hot path's statements over an asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._to_mark: list[tuple[int, datetime]] = []
        self._marker: asyncio.Task[None] | None = None
        self._log = get_logger(__name__)

    @classmethod
    async def connect(cls, database_url: str, *, max_size: int = 10) -> IntakeStore:
        """Open a pool to ``database_url`` (any ``postgresql[+asyncpg]://`` URL)."""
        scheme, _, rest = database_url.partition("://")
        pool = await asyncpg.create_pool(
            f"postgresql://{rest}" if scheme.startswith("postgres") else database_url,
            min_size=0,  # the server starts (and /readyz reports) while PostgreSQL is down
            max_size=max_size,
            timeout=5,
            command_timeout=5,
            reset=_keep_session,
        )
        return cls(pool)

    async def close(self) -> None:
        """Write pending marks, then close the pool."""
        if self._marker is not None:
            await self._marker
        await self._pool.close()

    async def find_webhook(self, token_hash: str) -> WebhookOwner | None:
        """The live (not rotated, not revoked) webhook with this token hash."""
        with _unavailable_as_error():
            row = await self._pool.fetchrow(_LOOKUP, token_hash)
        if row is None:
            return None
        return WebhookOwner(
            webhook_id=row[0], user_id=row[1], passphrase_hash=row[2], paused=row[3], chat_id=row[4]
        )

    async def insert_accepted(
        self, record: AlertRecord, *, dedupe_key: str, external_id: str | None
    ) -> int | None:
        """Commit an accepted alert.

        Returns:
            Its id, or ``None`` when ``(user, dedupe_key)`` exists already (a duplicate).
        """
        with _unavailable_as_error():
            value: int | None = await self._pool.fetchval(
                _INSERT_ACCEPTED,
                record.user_id,
                record.webhook_id,
                dedupe_key,
                external_id,
                record.body_hash,
                record.strategy,
                record.market,
                record.action,
                json.dumps(record.fields or {}),
                record.source_ip,
                record.received_at,
            )
        return value

    async def insert_rejected(
        self, record: AlertRecord, reason: str, notice: Notice | None = None
    ) -> None:
        """Commit a rejected alert, and with it ``notice`` unless one with its key exists."""
        args: list[Any] = [
            record.user_id,
            record.webhook_id,
            record.body_hash,
            record.strategy,
            record.market,
            record.action,
            json.dumps(record.fields or {}),
            record.source_ip,
            reason,
            record.received_at,
        ]
        with _unavailable_as_error():
            if notice is None:
                await self._pool.execute(_INSERT_REJECTED, *args)
                return
            await self._pool.execute(
                _INSERT_REJECTED_AND_NOTIFY,
                *args,
                notice.chat_id,
                notice.kind,
                notice.text,
                notice.dedupe_key,
            )

    def mark_enqueued(self, alert_id: int, at: datetime) -> None:
        """Record, within :data:`MARK_BATCH_DELAY_SECONDS`, that the alert's job is queued."""
        self._to_mark.append((alert_id, at))
        if self._marker is None or self._marker.done():
            self._marker = asyncio.create_task(self._write_marks())

    async def _write_marks(self) -> None:
        while self._to_mark:
            await asyncio.sleep(MARK_BATCH_DELAY_SECONDS)
            batch, self._to_mark = self._to_mark, []
            try:
                await self._pool.execute(
                    _MARK_ENQUEUED, [alert_id for alert_id, _ in batch], max(at for _, at in batch)
                )
            except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
                self._log.warning("alert_marks_lost", count=len(batch), error=type(exc).__name__)
