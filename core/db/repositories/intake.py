"""The alert-intake hot path's SQL, on a plain asyncpg pool.

Every webhook call runs one indexed lookup and one single-statement insert (its own
transaction, committed before the answer). Concurrent calls are coalesced
(:class:`core.runtime.batching.MicroBatcher`): one ``= ANY`` lookup for the tokens arriving
together, and one ``INSERT ... SELECT FROM unnest(...)`` for their alerts, so a busy
server pays one round trip and one WAL flush per batch instead of per alert, and each alert
is still committed before its answer. asyncpg prepares and caches each statement per
connection, and there is no ORM unit of work or pre-ping round trip in the way.
Everything else (the bot's views, the sweeper) goes through the repositories and the unit
of work.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

from core.domain.states import AlertState, NotificationState
from core.runtime.batching import MicroBatcher
from core.runtime.logs import get_logger

# State values are AlertState / NotificationState members (the domain's constants, never
# input), written into each statement once, so it is one literal string prepared once.
_LOOKUP = """
SELECT w.token_hash, w.id, w.user_id, w.passphrase_hash, u.paused,
       COALESCE(u.notify_chat_id, u.telegram_id) AS chat_id,
       c.owner_address, c.subaccount_number,
       COALESCE(u.settings -> 'paper' = 'true'::jsonb, false) AS paper
FROM webhooks AS w JOIN users AS u ON u.id = w.user_id
LEFT JOIN credentials AS c ON c.user_id = w.user_id
WHERE w.token_hash = ANY($1::text[]) AND w.rotated_at IS NULL AND w.revoked_at IS NULL
"""

_INSERT_ACCEPTED = f"""
INSERT INTO alerts (user_id, webhook_id, dedupe_key, external_id, body_hash, strategy,
                    market, action, fields, source_ip, state, received_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, '{AlertState.ACCEPTED.value}', $11)
ON CONFLICT (user_id, dedupe_key) DO NOTHING
RETURNING id
"""  # noqa: S608 - only the domain's state constants are interpolated

# The same insert for a batch, one array per column. Several alerts of one batch with the
# same (user, dedupe key) give one row: the unique constraint stays the only authority.
_INSERT_ACCEPTED_MANY = f"""
INSERT INTO alerts (user_id, webhook_id, dedupe_key, external_id, body_hash, strategy,
                    market, action, fields, source_ip, state, received_at)
SELECT user_id, webhook_id, dedupe_key, external_id, body_hash, strategy, market, action,
       fields::jsonb, source_ip, '{AlertState.ACCEPTED.value}', received_at
FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::text[], $8::text[], $9::text[], $10::text[], $11::timestamptz[])
     AS batch(user_id, webhook_id, dedupe_key, external_id, body_hash, strategy, market,
              action, fields, source_ip, received_at)
ON CONFLICT (user_id, dedupe_key) DO NOTHING
RETURNING id, user_id, dedupe_key
"""  # noqa: S608 - only the domain's state constants are interpolated

_INSERT_REJECTED = f"""
INSERT INTO alerts (user_id, webhook_id, body_hash, strategy, market, action, fields,
                    source_ip, state, reason, received_at)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, '{AlertState.REJECTED.value}', $9, $10)
RETURNING id
"""  # noqa: S608 - only the domain's state constants are interpolated

# The rejection and its Telegram notice in one statement (one transaction, one round trip);
# the notice's dedupe key throttles notices per user and time window.
_INSERT_REJECTED_AND_NOTIFY = (
    "WITH alert AS ("
    + _INSERT_REJECTED.strip()
    + f""")
INSERT INTO notifications (user_id, chat_id, kind, text, dedupe_key, state, attempts,
                           next_attempt_at, created_at)
SELECT $1, $11, $12, $13, $14, '{NotificationState.PENDING.value}', 0, $10, $10 FROM alert
ON CONFLICT (dedupe_key) DO NOTHING
"""  # noqa: S608 - only the domain's state constants are interpolated
)

_MARK_ENQUEUED = """
UPDATE alerts AS a SET enqueued_at = m.at
FROM unnest($1::bigint[], $2::timestamptz[]) AS m(id, at)
WHERE a.id = m.id AND a.enqueued_at IS NULL
"""

# Marks are batched off the request path, each with its own time: a lost mark only makes
# the sweeper enqueue the alert again under the same job id, which arq ignores while the
# job exists, and the sweeper waits seconds (its grace) before it looks. Half a second
# gathers an alert-per-bar-close trader's marks into a few writes a second instead of
# one per alert (a write costs the web ~0.3 ms of CPU on a small VM).
MARK_BATCH_DELAY_SECONDS = 0.5

# Batches of lookups and of inserts each use at most this many connections at once; a
# call arriving while they are busy joins the next batch. Two keep PostgreSQL busy while
# the next batch forms, and leave the rest of the pool to refusals and marks.
BATCHES_IN_FLIGHT = 2
MAX_BATCH = 100


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
        subaccount: ``(owner address, number)`` of the live subaccount the user's alerts
            trade (None without a stored key, or while paper trading): public, a hint the
            worker may act on before it has loaded the alert.
    """

    webhook_id: int
    user_id: int
    passphrase_hash: str
    paused: bool
    chat_id: int
    subaccount: tuple[str, int] | None = None


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
class _Accepted:
    """One accepted alert waiting for its batch's insert."""

    record: AlertRecord
    dedupe_key: str
    external_id: str | None


@dataclass(frozen=True, slots=True)
class Notice:
    """A Telegram notice to enqueue with a rejection, once per ``dedupe_key``."""

    chat_id: int
    kind: str
    text: str
    dedupe_key: str


class IntakeRepository:
    """The intake hot path's statements over an asyncpg pool (alerts are born here, in an
    initial state of :data:`~core.domain.states.ALERT_TRANSITIONS`)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._to_mark: list[tuple[int, datetime]] = []
        self._marker: asyncio.Task[None] | None = None
        self._lookups: MicroBatcher[str, WebhookOwner | None] = MicroBatcher(
            self._find_many, max_batch=MAX_BATCH, max_in_flight=BATCHES_IN_FLIGHT
        )
        self._inserts: MicroBatcher[_Accepted, int | None] = MicroBatcher(
            self._insert_many, max_batch=MAX_BATCH, max_in_flight=BATCHES_IN_FLIGHT
        )
        self._log = get_logger(__name__)

    @classmethod
    async def connect(cls, database_url: str, *, max_size: int = 10) -> IntakeRepository:
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
        """Finish pending batches and marks, then close the pool."""
        await self._lookups.drain()
        await self._inserts.drain()
        if self._marker is not None:
            await self._marker
        await self._pool.close()

    async def find_webhook(self, token_hash: str) -> WebhookOwner | None:
        """The live (not rotated, not revoked) webhook with this token hash."""
        return await self._lookups.submit(token_hash)

    async def _find_many(self, token_hashes: Sequence[str]) -> list[WebhookOwner | None]:
        with _unavailable_as_error():
            rows = await self._pool.fetch(_LOOKUP, list(set(token_hashes)))
        owners = {
            row[0]: WebhookOwner(
                webhook_id=row[1],
                user_id=row[2],
                passphrase_hash=row[3],
                paused=row[4],
                chat_id=row[5],
                subaccount=(row[6], row[7]) if row[6] is not None and not row[8] else None,
            )
            for row in rows
        }
        return [owners.get(token_hash) for token_hash in token_hashes]

    async def insert_accepted(
        self, record: AlertRecord, *, dedupe_key: str, external_id: str | None
    ) -> int | None:
        """Commit an accepted alert (in one transaction with those arriving meanwhile).

        Returns:
            Its id, or ``None`` when ``(user, dedupe_key)`` exists already (a duplicate).
        """
        return await self._inserts.submit(_Accepted(record, dedupe_key, external_id))

    async def _insert_many(self, batch: Sequence[_Accepted]) -> Sequence[int | Exception | None]:
        if len(batch) == 1:
            return [await self._insert_one(batch[0])]
        columns: list[list[Any]] = [[] for _ in range(11)]
        for item in batch:
            record = item.record
            values = (
                record.user_id,
                record.webhook_id,
                item.dedupe_key,
                item.external_id,
                record.body_hash,
                record.strategy,
                record.market,
                record.action,
                json.dumps(record.fields or {}),
                record.source_ip,
                record.received_at,
            )
            for column, value in zip(columns, values, strict=True):
                column.append(value)
        try:
            with _unavailable_as_error():
                rows = await self._pool.fetch(_INSERT_ACCEPTED_MANY, *columns)
        except asyncpg.PostgresError as exc:
            # One bad row must not refuse the others: each alone gets its own outcome.
            self._log.warning("alert_batch_split", size=len(batch), error=type(exc).__name__)
            return [await self._insert_alone(item) for item in batch]
        inserted = {(row[1], row[2]): row[0] for row in rows}
        # The first alert of a (user, key) pair gets the row; any repeat is a duplicate.
        return [inserted.pop((item.record.user_id, item.dedupe_key), None) for item in batch]

    async def _insert_alone(self, item: _Accepted) -> int | Exception | None:
        try:
            return await self._insert_one(item)
        except (asyncpg.PostgresError, StoreUnavailableError) as exc:
            return exc

    async def _insert_one(self, item: _Accepted) -> int | None:
        record = item.record
        with _unavailable_as_error():
            value: int | None = await self._pool.fetchval(
                _INSERT_ACCEPTED,
                record.user_id,
                record.webhook_id,
                item.dedupe_key,
                item.external_id,
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
                    _MARK_ENQUEUED, [alert_id for alert_id, _ in batch], [at for _, at in batch]
                )
            except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
                self._log.warning("alert_marks_lost", count=len(batch), error=type(exc).__name__)
