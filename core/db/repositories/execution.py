"""The execution hot path's repository, on a plain asyncpg pool (like
:mod:`core.db.repositories.intake`).

Between an alert's job starting and its order leaving the process there are two
statements, each its own transaction: load the alert with its trader and key (allocating
the order's client id in the same statement), and insert the signed order together with
the alert's move to PROCESSING and the entry's bracket (its requested take-profit /
stop-loss).
Through the ORM unit of work the same steps took a dozen round trips (pre-ping, BEGIN,
COMMIT); here asyncpg prepares each statement once per connection. After the broadcast,
an order's final record (:mod:`core.db.repositories.settlement`) and the worker's delivery
of its message (:mod:`core.db.repositories.outbox`) use this store's pools too; the rest
stays with the repositories and the unit of work.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

from core.db.sql import sql_literals
from core.domain.states import (
    BRACKET_INITIAL_STATE,
    OPEN_ALERT_STATES,
    ORDER_INITIAL_STATE,
    AlertState,
    OrderState,
    sources_of,
)

# The alert, its trader and their key; and, when the alert is still open with no order and
# its trader has a key, the subaccount's next client id, allocated in the same statement (a
# burst's alert then makes two round trips before its broadcast: this one and the insert).
# An alert that then expires or is skipped leaves a gap in the client ids, nothing else.
_LOAD = f"""
WITH found AS (
    SELECT a.id, a.user_id, a.state, a.fields, a.received_at, a.strategy, a.market,
           u.telegram_id, u.notify_chat_id, u.paused, u.settings, u.compliance_status,
           c.owner_address, c.subaccount_number, c.authenticator_id, c.key_id, c.ciphertext,
           EXISTS (SELECT 1 FROM orders AS o WHERE o.alert_id = a.id) AS has_orders
    FROM alerts AS a
    JOIN users AS u ON u.id = a.user_id
    LEFT JOIN credentials AS c ON c.user_id = a.user_id
    WHERE a.id = $1
), allocated AS (
    INSERT INTO subaccount_counters (owner_address, subaccount_number, next_client_id)
    SELECT owner_address, subaccount_number, 2 FROM found
    WHERE owner_address IS NOT NULL AND NOT has_orders AND NOT paused
      AND state IN ({sql_literals(OPEN_ALERT_STATES)})
    ON CONFLICT (owner_address, subaccount_number)
    DO UPDATE SET next_client_id = subaccount_counters.next_client_id + 1
    RETURNING next_client_id - 1 AS client_id
)
SELECT found.*, (SELECT client_id FROM allocated) AS client_id FROM found
"""  # noqa: S608 - only the domain's state constants are interpolated

# The counter row is created on first use; the update's row lock serialises allocations.
_ALLOCATE = """
INSERT INTO subaccount_counters (owner_address, subaccount_number, next_client_id)
VALUES ($1, $2, 2)
ON CONFLICT (owner_address, subaccount_number)
DO UPDATE SET next_client_id = subaccount_counters.next_client_id + 1
RETURNING next_client_id - 1
"""

# The order, the alert's PROCESSING mark and the entry's bracket (the protection it asked
# for) commit together in one statement (a data-modifying CTE always runs), so an alert
# still ACCEPTED never has an order and an entry that reaches the chain always has its
# protection recorded. States come from the domain's state machines (constants, never
# input), written into one literal statement prepared once.
_INSERT_ORDER = f"""
WITH picked AS (
    UPDATE alerts SET state = '{AlertState.PROCESSING.value}', started_at = $27
    WHERE $27::timestamptz IS NOT NULL AND id = $2
      AND state IN ({sql_literals(sources_of(AlertState.PROCESSING))})
), placed AS (
    INSERT INTO orders (user_id, alert_id, parent_order_id, purpose, paper, market,
                        owner_address, subaccount_number, client_id, clob_pair_id, order_flags,
                        side, order_type, size, price, trigger_price, reduce_only, time_in_force,
                        good_til_block, good_til_block_time, state, tx_bytes, tx_hash,
                        reference_price, position_before, entry_before, signed_at, created_at,
                        updated_at, bracket_id, generation)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
            $19, $20, '{ORDER_INITIAL_STATE.value}', $21, $22, $23, $24, $25, $26, $26, $26,
            $35, $36)
    RETURNING id, user_id, paper, market, owner_address, subaccount_number
), protected AS (
    INSERT INTO brackets (entry_order_id, user_id, paper, market, owner_address,
                          subaccount_number, position_side, tp_price, tp_pct, sl_price, sl_pct,
                          trail_pct, be_trigger_pct, state, next_check_at, created_at,
                          updated_at)
    SELECT id, user_id, paper, market, owner_address, subaccount_number, $28::varchar,
           $29::numeric, $30::numeric, $31::numeric, $32::numeric, $33::numeric, $34::numeric,
           '{BRACKET_INITIAL_STATE.value}', $26, $26, $26
    FROM placed WHERE $28::varchar IS NOT NULL
)
SELECT id FROM placed
"""  # noqa: S608 - only the domain's state constants are interpolated


# The node accepted the broadcast. Optimistic like every order transition: a reconciler that
# already moved the order on wins, and this changes nothing.
_MARK_SUBMITTED = f"""
UPDATE orders SET state = '{OrderState.SUBMITTED.value}', submitted_at = $2, accepted_at = $3,
                  tx_hash = $4, updated_at = $3
WHERE id = $1 AND state IN ({sql_literals(sources_of(OrderState.SUBMITTED))})
"""  # noqa: S608 - only the domain's state constants are interpolated


class DuplicateLegError(Exception):
    """A leg of this bracket, purpose and generation is already committed (another step
    placed it): nothing was written."""


#: The constraint that makes a retried step unable to place a second leg.
_LEG_UNIQUE = "uq_orders_bracket_id_purpose_generation"


@dataclass(frozen=True, slots=True)
class LoadedAlert:
    """An alert with what executing it needs about its trader (never a decrypted key)."""

    id: int
    user_id: int
    state: str
    fields: dict[str, Any]
    received_at: datetime
    strategy: str | None
    market: str | None
    chat_id: int
    paused: bool
    settings: dict[str, Any]
    compliance_status: str | None
    has_orders: bool
    owner_address: str | None
    subaccount_number: int | None
    authenticator_id: int | None
    key_id: str | None
    ciphertext: bytes | None
    #: The key's subaccount's next client id, allocated with the load (None: not allocated).
    client_id: int | None = None

    @property
    def reserved_client_id(self) -> tuple[str, int, int] | None:
        """``(owner, subaccount, client id)`` allocated with the load, if one was."""
        if self.client_id is None or self.owner_address is None:
            return None
        return self.owner_address, self.subaccount_number or 0, self.client_id


@dataclass(frozen=True, slots=True)
class NewOrder:
    """A signed order to commit as SUBMITTING (amounts in human units)."""

    user_id: int
    alert_id: int | None
    parent_order_id: int | None
    purpose: str
    paper: bool
    market: str
    owner_address: str
    subaccount_number: int
    client_id: int
    order_flags: int
    side: str
    order_type: str
    size: Decimal
    price: Decimal | None
    trigger_price: Decimal | None
    reduce_only: bool
    time_in_force: str
    good_til_block: int | None
    good_til_block_time: datetime | None
    tx_bytes: bytes
    tx_hash: str
    reference_price: Decimal | None
    position_before: Decimal | None
    entry_before: Decimal | None
    signed_at: datetime
    bracket_id: int | None = None
    generation: int | None = None


@dataclass(frozen=True, slots=True)
class NewBracket:
    """The protection an entry asked for, committed with it (prices and percents as sent)."""

    position_side: str
    tp_price: Decimal | None = None
    tp_pct: Decimal | None = None
    sl_price: Decimal | None = None
    sl_pct: Decimal | None = None
    trail_pct: Decimal | None = None
    be_trigger_pct: Decimal | None = None


def _json(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        loaded: dict[str, Any] = json.loads(value)
        return loaded
    return dict(value or {})


async def _keep_session(_connection: Any) -> None:
    """Pool reset hook: these statements leave no session state (skip the reset round trip)."""


class ExecutionRepository:
    """The execution hot path on two small asyncpg pools, opened on first use (so they
    belong to the event loop that uses them).

    Its two state changes (an alert's move to PROCESSING with its first order, and an
    order's move to SUBMITTED) take their allowed-from states from
    :mod:`core.domain.states`, like :meth:`~core.db.repositories.orders.OrderRepository.transition`.

    **Durability per statement.** The order's insert commits synchronously: it must be on
    disk before its bytes are broadcast (commit-then-broadcast), or a crash of the database
    could forget an order the chain has. The other writes here commit without waiting for
    the disk (``synchronous_commit = off``, a connection setting of the second pool), each
    for a reason that holds through a crash of PostgreSQL itself:

    * a client id allocation (with the load, or alone) is only ever used by an order whose
      own synchronous commit comes later and flushes the write-ahead log up to it, so an
      allocation that a crash forgets was never used by a committed order: the counter
      never gives a used id again;
    * an order's move to SUBMITTED after the node accepted it: forgotten, the order is
      SUBMITTING again, and settling finds it on the exchange as it does after a worker
      crash.

    A flush of the disk costs 2-8 ms on a small VM and every commit of a burst queues for
    it: an alert now waits for one (its order's) between its pickup and its broadcast.

    Args:
        database_url: Any ``postgresql[+asyncpg]://`` URL.
        max_size: Most connections per pool.
    """

    def __init__(self, database_url: str, *, max_size: int = 10) -> None:
        scheme, _, rest = database_url.partition("://")
        self._dsn = f"postgresql://{rest}" if scheme.startswith("postgres") else database_url
        self._max_size = max_size
        # (synchronous commits, commits that do not wait for the disk)
        self._pools: tuple[asyncpg.Pool, asyncpg.Pool] | None = None
        self._opening = asyncio.Lock()

    async def _open(self, *, relaxed: bool = False) -> asyncpg.Pool:
        """The pool for synchronous commits, or with ``relaxed`` the one whose commits do not
        wait for the disk (see the class docstring for what may use it)."""
        pools = self._pools
        if pools is None:
            async with self._opening:
                if self._pools is None:
                    self._pools = (
                        await self._create(),
                        await self._create(synchronous_commit="off"),
                    )
                pools = self._pools
        return pools[1] if relaxed else pools[0]

    async def pool(self) -> asyncpg.Pool:
        """The pool whose commits wait for the disk (for other repositories of the hot path)."""
        return await self._open()

    async def _create(self, **server_settings: str) -> asyncpg.Pool:
        return await asyncpg.create_pool(
            self._dsn,
            min_size=0,
            max_size=self._max_size,
            timeout=5,
            command_timeout=10,
            reset=_keep_session,
            server_settings=server_settings or None,
        )

    async def close(self) -> None:
        """Close the pools (a later call opens new ones)."""
        pools, self._pools = self._pools, None
        for pool in pools or ():
            await pool.close()

    async def load(self, alert_id: int) -> LoadedAlert | None:
        """The alert, its trader and their stored key, in one query; None if unknown.

        An open alert with no order yet, of a trader with a key who is not paused, also gets
        its subaccount's next client id (:attr:`LoadedAlert.reserved_client_id`).
        """
        row = await (await self._open(relaxed=True)).fetchrow(_LOAD, alert_id)
        if row is None:
            return None
        return LoadedAlert(
            id=row["id"],
            user_id=row["user_id"],
            state=row["state"],
            fields=_json(row["fields"]),
            received_at=row["received_at"],
            strategy=row["strategy"],
            market=row["market"],
            chat_id=row["notify_chat_id"] or row["telegram_id"],
            paused=row["paused"],
            settings=_json(row["settings"]),
            compliance_status=row["compliance_status"],
            has_orders=row["has_orders"],
            owner_address=row["owner_address"],
            subaccount_number=row["subaccount_number"],
            authenticator_id=row["authenticator_id"],
            key_id=row["key_id"],
            ciphertext=bytes(row["ciphertext"]) if row["ciphertext"] is not None else None,
            client_id=row["client_id"],
        )

    async def allocate_client_id(self, owner_address: str, subaccount_number: int) -> int:
        """The subaccount's next client id, committed (a failed order leaves only a gap)."""
        pool = await self._open(relaxed=True)
        value = await pool.fetchval(_ALLOCATE, owner_address, subaccount_number)
        return int(value)

    async def insert_order(
        self,
        order: NewOrder,
        *,
        picked_up: datetime | None,
        bracket: NewBracket | None = None,
    ) -> int:
        """Commit the order as SUBMITTING; with ``picked_up``, move its alert to PROCESSING;
        with ``bracket``, record the protection the entry asked for (all in one statement).

        Returns:
            The order's id.

        Raises:
            DuplicateLegError: The order is a leg and its generation already has one.
        """
        try:
            return await self._insert(order, picked_up, bracket)
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == _LEG_UNIQUE:
                raise DuplicateLegError(str(exc)) from None
            raise

    async def _insert(
        self, order: NewOrder, picked_up: datetime | None, bracket: NewBracket | None
    ) -> int:
        value = await (await self._open()).fetchval(
            _INSERT_ORDER,
            order.user_id,
            order.alert_id,
            order.parent_order_id,
            order.purpose,
            order.paper,
            order.market,
            order.owner_address,
            order.subaccount_number,
            order.client_id,
            None,
            order.order_flags,
            order.side,
            order.order_type,
            order.size,
            order.price,
            order.trigger_price,
            order.reduce_only,
            order.time_in_force,
            order.good_til_block,
            order.good_til_block_time,
            order.tx_bytes,
            order.tx_hash,
            order.reference_price,
            order.position_before,
            order.entry_before,
            order.signed_at,
            picked_up,
            bracket.position_side if bracket else None,
            bracket.tp_price if bracket else None,
            bracket.tp_pct if bracket else None,
            bracket.sl_price if bracket else None,
            bracket.sl_pct if bracket else None,
            bracket.trail_pct if bracket else None,
            bracket.be_trigger_pct if bracket else None,
            order.bracket_id,
            order.generation,
        )
        return int(value)

    async def mark_submitted(
        self, order_id: int, *, submitted_at: datetime, accepted_at: datetime, tx_hash: str
    ) -> bool:
        """Record the node's acceptance of a SUBMITTING (or UNKNOWN) order.

        Returns:
            Whether the order moved (False: something else had already moved it on).
        """
        status = await (await self._open(relaxed=True)).execute(
            _MARK_SUBMITTED, order_id, submitted_at, accepted_at, tx_hash
        )
        return bool(status == "UPDATE 1")
