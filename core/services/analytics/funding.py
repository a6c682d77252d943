"""Funding payments from the venue into the ledger, idempotently: each payment is unique by
subaccount, market and the block of its funding tick, so fetching again adds nothing."""

from __future__ import annotations

import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.uow import UnitOfWork
from core.exchange.errors import ExchangeError
from core.exchange.history import AccountHistory
from core.runtime.logs import get_logger

#: Rows per INSERT (nine parameters each, well under PostgreSQL's 32,767).
_CHUNK = 1000


class FundingSync:
    """Fetches a trader's funding payments since the newest stored one and stores them.

    Args:
        sessionmaker: Database sessions.
        history: The venue's account history.
        min_interval: Seconds during which a trader's payments are not fetched again (paging
            through ``/trades`` asks the Indexer once); funding ticks are hourly.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        history: AccountHistory,
        *,
        min_interval: float = 60.0,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._history = history
        self._min_interval = min_interval
        self._fetched: dict[int, float] = {}
        self._log = get_logger(__name__)

    async def sync(self, user_id: int) -> int:
        """Store the payments not stored yet (none without a key: no subaccount known).

        Returns:
            How many were new; 0 as well when the venue did not answer (logged: the ledger
            keeps what it has, and the next call catches up).
        """
        last = self._fetched.get(user_id)
        if last is not None and time.monotonic() - last < self._min_interval:
            return 0
        async with UnitOfWork(self._sessionmaker) as uow:
            credential = await uow.credentials.get_for_user(user_id)
            if credential is None:
                return 0
            owner, number = credential.owner_address, credential.subaccount_number
            since = await uow.analytics.last_funding_at(owner, number)
        try:
            # ``afterOrAt`` includes the newest stored tick: its rows are ignored as duplicates.
            events = await self._history.funding(owner, number, since)
        except ExchangeError as exc:
            self._log.warning("funding_sync_failed", user_id=user_id, error=type(exc).__name__)
            return 0
        self._fetched[user_id] = time.monotonic()
        rows = [
            {
                "owner_address": owner,
                "subaccount_number": number,
                "market": event.market,
                "height": event.height,
                "paid_at": event.at,
                "payment": event.payment,
                "rate": event.rate,
                "position_size": event.position_size,
                "oracle_price": event.oracle_price,
            }
            for event in events
        ]
        added = 0
        async with UnitOfWork(self._sessionmaker) as uow:
            for start in range(0, len(rows), _CHUNK):
                added += await uow.analytics.add_funding(user_id, rows[start : start + _CHUNK])
            await uow.commit()
        if added:
            self._log.info("funding_synced", user_id=user_id, added=added)
        return added
