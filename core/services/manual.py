"""Manual requests: ``/close``, ``/panic`` and protection changes, asked in the bot and done by
the worker, the only process that holds the keyring (issue #13, part 2).

The bot writes one ``manual_requests`` row and queues its job (``manual:{id}``); the worker runs
it and writes the outcome into the notifications outbox in the same transaction that marks the
row done, so the trader hears exactly once. A re-delivered job finds the row done and does
nothing; a job re-run after its worker died mid-way finds ``attempts`` above zero and resumes:
a close it may already have sent is reported from the ledger, never sent twice. Runs of one
request are serialised by a PostgreSQL advisory lock held for the run.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.base import utcnow
from core.db.models_manual import ManualRequest
from core.db.uow import UnitOfWork
from core.exchange.errors import (
    ExchangeError,
    ExchangeUnavailableError,
    PermanentExchangeError,
    UnknownOutcomeError,
)
from core.runtime.logs import get_logger
from core.services.jobs import RUN_MANUAL_REQUEST, JobQueue, manual_request_job_id
from core.services.protection.manual import ProtectionInputError, StopInput
from core.services.trading import NothingToCloseError, TradingNotReadyError, TradingService
from core.texts import protection as protection_texts
from core.texts import trade as trade_texts
from core.texts import trading as texts

MANUAL_NOTIFICATION = "manual"
# Advisory-lock keys of manual requests: "manu" in the high half, the request id below (the
# position locks use their own keys).
_LOCK_BASE = 0x6D616E75 << 32
_OUTCOME_CHARS = 4000
#: A request started this long ago and not finished lost its job: the sweeper queues it again.
STALE_AFTER = timedelta(minutes=5)
#: Runs of one request before it is given up (and the trader told to check by hand).
MAX_ATTEMPTS = 5


class RequestKind(StrEnum):
    """What the trader asked for."""

    CLOSE = "CLOSE"
    PANIC = "PANIC"
    MOVE_STOP = "MOVE_STOP"
    PROTECT = "PROTECT"
    REMOVE_TP = "REMOVE_TP"


def describe_failure(exc: TradingNotReadyError | ExchangeError) -> str:
    """Plain words for why a trading action did not go through."""
    if isinstance(exc, TradingNotReadyError):
        return texts.not_ready(exc.reason)
    if isinstance(exc, ExchangeUnavailableError):
        return texts.unavailable()
    if isinstance(exc, PermanentExchangeError):
        return texts.refused(exc.reason)
    if isinstance(exc, UnknownOutcomeError):
        return texts.unknown_outcome()
    return texts.failed(str(exc) or type(exc).__name__)


def _stop_json(stop: StopInput | None) -> dict[str, str] | None:
    if stop is None:
        return None
    if stop.price is not None:
        return {"price": str(stop.price)}
    return {"pct": str(stop.pct)}


def _stop_of(data: Any) -> StopInput | None:
    if not isinstance(data, dict):
        return None
    if "price" in data:
        return StopInput(price=Decimal(data["price"]))
    return StopInput(pct=Decimal(data["pct"]))


@dataclass(frozen=True, slots=True)
class _Claim:
    """A request claimed for one run."""

    request_id: int
    user_id: int
    chat_id: int
    kind: RequestKind
    market: str | None
    params: dict[str, Any]
    resume_since: datetime | None  # set when an earlier run may have sent orders
    attempt: int  # this run's number (1 for the first)


class ManualRequestService:
    """Records manual requests (bot side) and does them (worker side).

    Args:
        sessionmaker: Database sessions.
        queue: Where request jobs are queued (the bot's; unused in the worker).
        trading: Does the work; None in the bot, which never signs.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        queue: JobQueue | None = None,
        trading: TradingService | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._queue = queue
        self._trading = trading
        self._log = get_logger(__name__)

    @property
    def queue(self) -> JobQueue | None:
        """The queue requests go to (the bot closes it on shutdown)."""
        return self._queue

    # The bot's side -----------------------------------------------------------------

    async def ask_close(self, user_id: int, market: str) -> int:
        """Ask the worker to close ``market``'s position (``/close``)."""
        return await self._ask(user_id, RequestKind.CLOSE, market)

    async def ask_panic(self, user_id: int) -> int:
        """Pause now, and ask the worker to cancel and close everything (``/panic``)."""
        return await self._ask(user_id, RequestKind.PANIC, None, pause=True)

    async def ask_move_stop(
        self, user_id: int, market: str, stop: StopInput, *, paper: bool
    ) -> int:
        """Ask the worker to move the position's stop-loss."""
        params = {"stop": _stop_json(stop), "paper": paper}
        return await self._ask(user_id, RequestKind.MOVE_STOP, market, params)

    async def ask_protect(
        self, user_id: int, market: str, stop: StopInput, take: StopInput | None, *, paper: bool
    ) -> int:
        """Ask the worker to protect an unprotected position."""
        params = {"stop": _stop_json(stop), "take": _stop_json(take), "paper": paper}
        return await self._ask(user_id, RequestKind.PROTECT, market, params)

    async def ask_remove_take_profit(self, user_id: int, market: str) -> int:
        """Ask the worker to cancel the position's take-profit."""
        return await self._ask(user_id, RequestKind.REMOVE_TP, market)

    async def _ask(
        self,
        user_id: int,
        kind: RequestKind,
        market: str | None,
        params: dict[str, Any] | None = None,
        *,
        pause: bool = False,
    ) -> int:
        async with UnitOfWork(self._sessionmaker) as uow:
            user = await uow.users.get(user_id)
            if user is None:
                raise TradingNotReadyError(trade_texts.SEND_START_FIRST)
            if pause:  # alerts stop at once, whatever the worker's queue looks like
                user.paused = True
            request = ManualRequest(user_id=user_id, kind=kind.value, market=market)
            request.params = params or {}
            uow.session.add(request)
            uow.audit.record("manual_requested", user_id=user_id, kind=kind.value, market=market)
            await uow.commit()
            request_id = request.id
        await self._enqueue(request_id)
        return request_id

    async def _enqueue(self, request_id: int) -> None:
        """Queue the request's job; when Redis is down the row waits for the worker's sweeper
        (every 5 s), so the trader's request is never lost."""
        if self._queue is None:
            return
        try:
            await self._queue.enqueue(
                RUN_MANUAL_REQUEST, request_id, job_id=manual_request_job_id(request_id)
            )
        except Exception as exc:  # any transport failure: the sweeper queues it
            self._log.warning("manual_request_not_queued", request_id=request_id, error=str(exc))

    # The worker's side --------------------------------------------------------------

    async def pending(
        self, *, older_than: timedelta, stale_after: timedelta = STALE_AFTER, limit: int = 100
    ) -> list[tuple[int, str]]:
        """Requests to queue again, with the job id to use: never started and older than
        ``older_than`` (their enqueue was lost), or started longer than ``stale_after`` ago
        and never finished (their job gave up; a new job id, so it runs again)."""
        now = utcnow()
        async with UnitOfWork(self._sessionmaker) as uow:
            rows = await uow.session.execute(
                select(ManualRequest.id, ManualRequest.state, ManualRequest.attempts)
                .where(
                    or_(
                        and_(
                            ManualRequest.state == "PENDING",
                            ManualRequest.created_at < now - older_than,
                        ),
                        and_(
                            ManualRequest.state == "RUNNING",
                            ManualRequest.started_at < now - stale_after,
                        ),
                    )
                )
                .order_by(ManualRequest.id)
                .limit(limit)
            )
            return [
                (
                    request_id,
                    manual_request_job_id(request_id)
                    + ("" if state == "PENDING" else f":{attempts}"),
                )
                for request_id, state, attempts in rows
            ]

    async def run(self, request_id: int) -> bool:
        """Do one request once; a second delivery finds it done (or running) and does nothing.

        Returns:
            Whether this run did it.
        """
        if self._trading is None:
            raise TypeError("trading required (worker only)")
        async with self._exclusive(request_id) as mine:
            if not mine:
                return False  # another run of the same request is on it
            claim = await self._claim(request_id)
            if claim is None:
                return False
            if claim.attempt > MAX_ATTEMPTS:
                text: str | None = texts.manual_gave_up()
            else:
                text = await self._perform(claim)
            await self._finish(claim, text)
        self._log.info("manual_request_done", request_id=request_id, kind=claim.kind.value)
        return True

    @contextlib.asynccontextmanager
    async def _exclusive(self, request_id: int) -> AsyncIterator[bool]:
        """Hold the request's advisory lock for the block (released if the process dies)."""
        async with self._sessionmaker() as session, session.begin():
            mine = await session.scalar(
                select(func.pg_try_advisory_xact_lock(_LOCK_BASE + request_id))
            )
            yield bool(mine)

    async def _claim(self, request_id: int) -> _Claim | None:
        async with UnitOfWork(self._sessionmaker) as uow:
            request = await uow.session.get(ManualRequest, request_id, with_for_update=True)
            if request is None or request.state == "DONE":
                return None
            user = await uow.users.get(request.user_id)
            if user is None:
                return None
            resume_since = request.created_at if request.attempts > 0 else None
            request.attempts += 1
            request.state = "RUNNING"
            request.started_at = utcnow()
            claim = _Claim(
                request_id,
                request.user_id,
                user.telegram_id,
                RequestKind(request.kind),
                request.market,
                dict(request.params),
                resume_since,
                request.attempts,
            )
            await uow.commit()
        return claim

    async def _perform(self, claim: _Claim) -> str | None:
        """The work, and what to tell the trader about it (None: the protection service's
        own message says it)."""
        assert self._trading is not None
        trading, user_id, market = self._trading, claim.user_id, claim.market or ""
        try:
            if claim.kind is RequestKind.CLOSE:
                try:
                    result = await trading.close_market(
                        user_id, market, resume_since=claim.resume_since
                    )
                except NothingToCloseError as exc:
                    return texts.nothing_to_close(exc.market)
                return texts.closed(result)
            if claim.kind is RequestKind.PANIC:
                try:
                    report = await trading.panic(user_id, resume_since=claim.resume_since)
                except TradingNotReadyError as exc:
                    return texts.panic_not_ready(exc.reason)
                except ExchangeError as exc:
                    reason = (
                        exc.reason
                        if isinstance(exc, PermanentExchangeError)
                        else "dYdX did not answer"
                    )
                    return texts.panic_not_ready(reason)
                return texts.panic_report(report)
            return await self._protect(claim, trading, market)
        except ProtectionInputError as exc:
            return str(exc)
        except (TradingNotReadyError, ExchangeError) as exc:
            return describe_failure(exc)

    async def _protect(self, claim: _Claim, trading: TradingService, market: str) -> str | None:
        paper = bool(claim.params.get("paper"))
        if claim.kind is RequestKind.REMOVE_TP:
            cancelled = await trading.remove_take_profit(claim.user_id, market)
            return protection_texts.take_profit_removed_text(market, cancelled)
        stop = _stop_of(claim.params.get("stop"))
        if stop is None:
            raise ProtectionInputError(protection_texts.not_a_price(""))
        if claim.kind is RequestKind.MOVE_STOP:
            moved = await trading.move_stop(claim.user_id, market, stop)
        else:
            take = _stop_of(claim.params.get("take"))
            moved = await trading.protect_position(claim.user_id, market, stop, take)
        if moved.resting:
            return None  # resting already: the protection message says "Stop-loss moved"
        return protection_texts.stop_moving_text(market, moved.trigger, paper=paper)

    async def _finish(self, claim: _Claim, text: str | None) -> None:
        async with UnitOfWork(self._sessionmaker) as uow:
            request = await uow.session.get(ManualRequest, claim.request_id, with_for_update=True)
            if request is None:
                return  # the user was deleted meanwhile
            request.state = "DONE"
            request.outcome = (text or "")[:_OUTCOME_CHARS]
            request.finished_at = utcnow()
            if text is not None:
                await uow.notifications.enqueue(
                    chat_id=claim.chat_id,
                    kind=MANUAL_NOTIFICATION,
                    text=text,
                    user_id=claim.user_id,
                    dedupe_key=manual_request_job_id(claim.request_id),
                )
            await uow.commit()
