"""An order's final record in two round trips, on the execution hot path's asyncpg pool.

Through the unit of work, making an order final took nine round trips (BEGIN, the locked
read, each fill, the trader and alert, the position, the message, the order and the alert
at flush, COMMIT); on a small VM each costs more in system calls and scheduling than in
SQL. Here: one read of the order with its trader and alert, and one statement that writes
everything the final record is made of, committed alone. The statement is optimistic like
every order transition: it moves the order only from a state that may become final, and
every other write of it happens only if the order moved, so of two recorders (the job and
the monitor, or the reconciler) exactly one records the outcome and the message.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from core.db.repositories.execution import ExecutionRepository
from core.domain.states import NotificationState

_READ = """
SELECT o.id, o.user_id, o.alert_id, o.bracket_id, o.purpose, o.paper, o.market, o.side,
       o.size, o.state, o.position_before, o.entry_before, o.reference_price, o.error,
       u.telegram_id, u.notify_chat_id, u.settings, u.paused,
       a.id AS found_alert_id, a.strategy
FROM orders AS o
JOIN users AS u ON u.id = o.user_id
LEFT JOIN alerts AS a ON a.id = o.alert_id AND a.user_id = o.user_id
WHERE o.id = $1
"""

# Parameters: $1 order id, $2 final state, $3 the states it may come from, $4-$7 totals,
# $8 filled at (kept if already set), $9 now, $10 user, $11 paper, $12-$20 the fills,
# $21 position recorded?, $22-$25 the position, $26-$29 the message (kind NULL: none),
# $30 alert id (NULL: none), $31 its final state, $32 the states it may come from,
# $33 its reason.
_RECORD = f"""
WITH moved AS (
    UPDATE orders
    SET state = $2, filled_size = $4, fee = $5, realized_pnl = $6, average_price = $7,
        filled_at = COALESCE(filled_at, $8), closed_at = $9, updated_at = $9
    WHERE id = $1 AND state = ANY($3::varchar[])
    RETURNING id
), new_fills AS (
    INSERT INTO fills (user_id, order_id, paper, exchange_fill_id, market, side, size, price,
                       fee, liquidity, realized_pnl, filled_at)
    SELECT $10, $1, $11, f.fill_id, f.market, f.side, f.size, f.price, f.fee, f.liquidity,
           f.pnl, f.filled_at
    FROM unnest($12::varchar[], $13::varchar[], $14::varchar[], $15::numeric[],
                $16::numeric[], $17::numeric[], $18::varchar[], $19::numeric[],
                $20::timestamptz[])
         AS f(fill_id, market, side, size, price, fee, liquidity, pnl, filled_at)
    WHERE EXISTS (SELECT 1 FROM moved)
    ON CONFLICT (user_id, exchange_fill_id) DO NOTHING
), snapshot AS (
    INSERT INTO positions (user_id, paper, market, side, size, entry_price, realized_pnl,
                           unrealized_pnl, opened_at, closed_at, synced_at)
    SELECT $10, $11, $22::varchar, $23::varchar, $24::numeric, $25::numeric, 0, 0,
           CASE WHEN $24::numeric <> 0 THEN $9::timestamptz END,
           CASE WHEN $24::numeric = 0 THEN $9::timestamptz END, $9::timestamptz
    WHERE $21::boolean AND EXISTS (SELECT 1 FROM moved)
    ON CONFLICT (user_id, paper, market) DO UPDATE
    SET side = EXCLUDED.side, size = EXCLUDED.size, entry_price = EXCLUDED.entry_price,
        synced_at = EXCLUDED.synced_at, closed_at = EXCLUDED.closed_at,
        opened_at = CASE WHEN EXCLUDED.size <> 0
                         THEN COALESCE(positions.opened_at, EXCLUDED.synced_at) END
), message AS (
    INSERT INTO notifications (user_id, chat_id, kind, text, dedupe_key, state, attempts,
                               next_attempt_at, created_at)
    SELECT $10, $26::bigint, $27::varchar, $28::varchar, $29::varchar,
           '{NotificationState.PENDING.value}', 0, $9::timestamptz, $9::timestamptz
    WHERE $27::varchar IS NOT NULL AND EXISTS (SELECT 1 FROM moved)
    ON CONFLICT (dedupe_key) DO NOTHING
), finished AS (
    UPDATE alerts
    SET state = $31, started_at = COALESCE(started_at, $9), reason = $33, finished_at = $9
    WHERE id = $30 AND state = ANY($32::varchar[]) AND EXISTS (SELECT 1 FROM moved)
)
SELECT count(*) FROM moved
"""  # noqa: S608 - only the domain's state constant is interpolated


@dataclass(frozen=True, slots=True)
class OrderToSettle:
    """An order with what its final record needs of its trader and alert."""

    id: int
    user_id: int
    alert_id: int | None
    bracket_id: int | None
    purpose: str
    paper: bool
    market: str
    side: str
    size: Decimal
    state: str
    position_before: Decimal | None
    entry_before: Decimal | None
    reference_price: Decimal | None
    error: str | None
    chat_id: int
    has_notify_chat: bool
    settings: dict[str, Any]
    paused: bool
    alert_found: bool
    strategy: str | None


@dataclass(frozen=True, slots=True)
class NewFill:
    """A fill to record (amounts in human units; the P&L after its fee)."""

    exchange_fill_id: str
    market: str
    side: str
    size: Decimal
    price: Decimal
    fee: Decimal
    liquidity: str | None
    realized_pnl: Decimal
    filled_at: datetime


@dataclass(frozen=True, slots=True)
class PositionAfter:
    """The position in the order's market as the exchange reports it after the order."""

    side: str | None
    size: Decimal
    entry_price: Decimal | None


@dataclass(frozen=True, slots=True)
class FinalRecord:
    """Everything that makes an order final, written together or not at all."""

    order_id: int
    user_id: int
    paper: bool
    state: str
    from_states: Sequence[str]
    filled_size: Decimal
    fee: Decimal
    realized_pnl: Decimal
    average_price: Decimal | None
    filled_at: datetime | None
    now: datetime
    fills: Sequence[NewFill]
    market: str
    position: PositionAfter | None
    message: tuple[int, str, str, str] | None  # chat id, kind, text, dedupe key
    alert: tuple[int, str, Sequence[str], str | None] | None  # id, state, from states, reason


class SettlementRepository:
    """Reads an order to settle and writes its final record (see the module docstring).

    Args:
        store: The hot path's repository, whose synchronous pool this shares.
    """

    def __init__(self, store: ExecutionRepository) -> None:
        self._store = store

    async def order_to_settle(self, order_id: int) -> OrderToSettle | None:
        """The order with its trader and alert, unlocked; None if unknown."""
        row = await (await self._store.pool()).fetchrow(_READ, order_id)
        if row is None:
            return None
        settings = row["settings"]
        return OrderToSettle(
            id=row["id"],
            user_id=row["user_id"],
            alert_id=row["alert_id"],
            bracket_id=row["bracket_id"],
            purpose=row["purpose"],
            paper=row["paper"],
            market=row["market"],
            side=row["side"],
            size=row["size"],
            state=row["state"],
            position_before=row["position_before"],
            entry_before=row["entry_before"],
            reference_price=row["reference_price"],
            error=row["error"],
            chat_id=row["notify_chat_id"] or row["telegram_id"],
            has_notify_chat=row["notify_chat_id"] is not None,
            settings=json.loads(settings) if isinstance(settings, str) else dict(settings or {}),
            paused=row["paused"],
            alert_found=row["found_alert_id"] is not None,
            strategy=row["strategy"],
        )

    async def record_final(self, record: FinalRecord) -> bool:
        """Write the final record in one statement (its own transaction, synchronous).

        Returns:
            Whether the order moved (False: another recorder made it final first, and this
            wrote nothing).
        """
        fills = record.fills
        position = record.position
        message = record.message
        alert = record.alert
        moved = await (await self._store.pool()).fetchval(
            _RECORD,
            record.order_id,
            record.state,
            list(record.from_states),
            record.filled_size,
            record.fee,
            record.realized_pnl,
            record.average_price,
            record.filled_at,
            record.now,
            record.user_id,
            record.paper,
            [f.exchange_fill_id for f in fills],
            [f.market for f in fills],
            [f.side for f in fills],
            [f.size for f in fills],
            [f.price for f in fills],
            [f.fee for f in fills],
            [f.liquidity for f in fills],
            [f.realized_pnl for f in fills],
            [f.filled_at for f in fills],
            position is not None,
            record.market,
            position.side if position else None,
            position.size if position else Decimal(0),
            position.entry_price if position else None,
            message[0] if message else None,
            message[1] if message else None,
            message[2] if message else None,
            message[3] if message else None,
            alert[0] if alert else None,
            alert[1] if alert else None,
            list(alert[2]) if alert else [],
            alert[3] if alert else None,
        )
        return bool(moved)
