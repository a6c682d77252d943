"""The worker's real-time position monitor: built and started in ``on_startup``, stopped in
``on_shutdown`` (``MONITOR_ENABLED=false`` leaves it off)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.exchange.factory import create_subaccount_stream
from core.exchange.stream import SubaccountRef
from core.runtime.config import Settings
from core.runtime.logs import get_logger
from core.services.execution.outcome import Outcome
from core.services.execution.pipeline import ExecutionService
from core.services.execution.settle import OrderSettler
from core.services.monitor.lease import SubaccountLeases
from core.services.monitor.listener import OracleListener
from core.services.monitor.monitor import PositionMonitor
from core.services.monitor.recording import AfterSync, LedgerRecorder
from core.services.monitor.watchlist import LedgerWatchList
from core.services.notifications import NotificationService
from core.services.priority import PlacementGate
from core.services.protection.trailing_service import TrailingService

_log = get_logger(__name__)


def build_monitor(
    settings: Settings,
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: Redis,
    settler: OrderSettler,
    nudge: Callable[[], Awaitable[None]] | None = None,
    after_sync: AfterSync | None = None,
    lease_prefix: str | None = None,
    oracle_listener: OracleListener | None = None,
    gate: PlacementGate | None = None,
) -> PositionMonitor:
    """A monitor of the configured venue, tuned by the ``MONITOR_*`` settings.

    Args:
        settings: Application settings.
        sessionmaker: Database sessions.
        redis: Redis for the leases.
        settler: Settles our orders the monitor sees change.
        nudge: Asked to deliver the trader's messages when an order became final.
        after_sync: Runs after each sync of a subaccount (the protection service's step).
        lease_prefix: Lease key prefix (tests keep monitors apart with it).
        oracle_listener: Told about oracle prices (the trailing service); subscribes markets.
        gate: The process's placing-first gate (the ledger syncs yield to placing alerts).
    """

    async def settle(order_id: int) -> Outcome:
        outcome = await settler.settle(order_id)
        if nudge is not None and outcome is not Outcome.OPEN:
            await nudge()
        return outcome

    lease_seconds = settings.monitor_lease_seconds
    leases = (
        SubaccountLeases(redis, ttl=lease_seconds, prefix=lease_prefix)
        if lease_prefix is not None
        else SubaccountLeases(redis, ttl=lease_seconds)
    )
    return PositionMonitor(
        stream=create_subaccount_stream(settings.dydx),
        watchlist=LedgerWatchList(sessionmaker),
        leases=leases,
        listener=LedgerRecorder(
            sessionmaker,
            settle,
            after_sync=after_sync,
            followed=settler.followed.is_followed,
            wake=settler.followed.wake,
            gate=gate,
        ),
        oracle_listener=oracle_listener,
        # Renewed at a third of the lease's life; polls need the tick at least as often.
        interval=min(lease_seconds / 3, settings.monitor_poll_seconds, 1.0),
        poll_interval=settings.monitor_poll_seconds,
        catch_up_interval=settings.monitor_catch_up_seconds,
    )


async def start_monitor(ctx: dict[str, Any]) -> None:
    """Build and start the monitor and the trailing service into ``ctx["monitor"]`` and
    ``ctx["trailing"]`` unless ``MONITOR_ENABLED`` is off.

    Without the monitor, stops do not trail: there is no oracle stream and no lease to say
    which worker may move them, and the stops already resting keep covering the positions.
    """
    settings: Settings = ctx["settings"]
    if not settings.monitor_enabled:
        _log.info("monitor_disabled", trailing_stops="off")
        return
    execution: ExecutionService = ctx["execution"]

    async def advance_brackets(ref: SubaccountRef) -> None:
        # What the monitor just recorded may have filled an entry or a leg: one protection
        # step for each position of that subaccount (one-cancels-other within a bracket).
        await execution.protection.advance_for_subaccount(ref.owner_address, ref.subaccount_number)

    notifications: NotificationService = ctx["notifications"]

    async def nudge() -> None:
        notifications.deliver_soon(ctx["sender"])

    monitor: PositionMonitor | None = None

    def held() -> frozenset[SubaccountRef]:
        return monitor.held if monitor is not None else frozenset()

    # Trailing stops and breakeven follow the oracle prices the monitor subscribes; each
    # worker moves the stops of the subaccounts its monitor holds the lease on, so an
    # owner's moves (and the chain's per-owner budget) stay in one process.
    trailing = TrailingService(
        ctx["sessionmaker"],
        execution.protection,
        ctx["exchanges"],
        held=held,
        nudge=nudge,
    )
    await trailing.start()
    ctx["trailing"] = trailing
    monitor = build_monitor(
        settings,
        sessionmaker=ctx["sessionmaker"],
        redis=ctx["redis"],
        settler=execution.settler,
        nudge=nudge,
        after_sync=advance_brackets,
        oracle_listener=trailing,
        gate=execution.gate,
    )
    await monitor.start()
    ctx["monitor"] = monitor
    # Jobs following an order look when this monitor's stream tells its news.
    execution.settler.followed.use_stream(
        lambda owner, number: SubaccountRef(owner, number) in held()
    )


async def stop_monitor(ctx: dict[str, Any]) -> None:
    """Stop the monitor if it runs (its leases are handed back for another worker)."""
    monitor: PositionMonitor | None = ctx.pop("monitor", None)
    if monitor is not None:
        await monitor.stop()
    trailing: TrailingService | None = ctx.pop("trailing", None)
    if trailing is not None:
        await trailing.stop()
