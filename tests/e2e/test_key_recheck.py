"""The worker keeps checking what a stored key may do (issue #13, part 3): widened or removed
on the dYdX double after it was accepted, the key stops trading and the trader is told, while
the orders already on the chain stay."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from core.db.base import utcnow
from core.db.models import AuditLog, Credential, Notification
from core.exchange.factory import create_key_verifier
from core.runtime.config import Settings
from core.services.key_watch import AuthorizationWatch
from doubles.dydx.double import DydxDouble
from doubles.telegram import TelegramDouble
from tests.integration.test_trading_key import composite
from tests.trading_stack import (
    Maker,
    Trader,
    add_trader,
    alert,
    running_worker,
    user_row,
    wait_alert,
)
from workers.context import WorkerContext
from workers.jobs.recheck_keys import recheck_keys


@pytest.fixture
async def watch(settings: Settings, live_sessionmaker: Maker) -> AsyncIterator[dict[str, Any]]:
    key_watch = AuthorizationWatch(
        live_sessionmaker, settings.keyring, create_key_verifier(settings.dydx)
    )
    yield {"key_watch": key_watch}
    await key_watch.close()


async def _credential(maker: Maker, user_id: int) -> Credential | None:
    async with maker() as session:
        return await session.scalar(select(Credential).where(Credential.user_id == user_id))


async def _a_day_passes(maker: Maker) -> None:
    async with maker() as session, session.begin():
        await session.execute(
            update(Credential).values(authorization_checked_at=utcnow() - timedelta(days=1))
        )


def _widen(dydx: DydxDouble, me: Trader) -> None:
    """A second authenticator for the same key that lets it sign anything (a transfer too)."""
    assert me.dydx is not None
    dydx.add_authenticator(
        me.dydx.owner_address,
        "AllOf",
        composite(("SignatureVerification", me.dydx.api_public_key), ("SubaccountFilter", b"0")),
    )


async def test_a_widened_key_stops_trading_within_the_interval_and_the_trader_is_told(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    watch: dict[str, Any],
    web: TestClient,
) -> None:
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    other = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    context = cast(WorkerContext, watch)
    await _a_day_passes(live_sessionmaker)
    assert await recheck_keys(context) == 0  # unchanged: checked, kept
    kept = await _credential(live_sessionmaker, me.user_id)
    assert kept is not None
    assert kept.authorization_checked_at is not None

    _widen(dydx_double, me)
    assert await recheck_keys(context) == 0  # checked minutes ago: not on every run
    await _a_day_passes(live_sessionmaker)
    assert await recheck_keys(context) == 1
    assert await recheck_keys(context) == 0  # idempotent

    assert await _credential(live_sessionmaker, me.user_id) is None
    assert await _credential(live_sessionmaker, other.user_id) is not None
    assert (await user_row(live_sessionmaker, me.user_id)).paused
    assert not (await user_row(live_sessionmaker, other.user_id)).paused
    async with live_sessionmaker() as session:
        (told,) = (
            await session.scalars(
                select(Notification.text).where(Notification.user_id == me.user_id)
            )
        ).all()
        audit = await session.scalar(
            select(AuditLog).where(AuditLog.action == "credential_suspended")
        )
    assert "Trading stopped" in told
    assert "now also allows moving funds" in told
    assert "left as they are" in told
    assert "send it with /key, then /resume" in told
    assert audit is not None
    assert audit.details["problem"] == "TOO_BROAD"
    # Trading stopped: the next alert is recorded, not executed.
    response = await web.post(f"/hook/{me.token}", json=alert(me))
    assert response.status == 409, await response.text()


async def test_a_removed_key_stops_trading(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    watch: dict[str, Any],
) -> None:
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    assert me.dydx is not None
    dydx_double.remove_authenticator(me.dydx.owner_address, me.dydx.authenticator_id)
    assert await recheck_keys(cast(WorkerContext, watch)) == 1
    async with live_sessionmaker() as session:
        told = await session.scalar(
            select(Notification.text).where(Notification.user_id == me.user_id)
        )
    assert told is not None
    assert "was removed on dYdX" in told


async def test_after_a_start_the_worker_rechecks_every_key_and_tells_the_trader(
    settings: Settings,
    live_sessionmaker: Maker,
    telegram_double: TelegramDouble,
    dydx_double: DydxDouble,
    web: TestClient,
) -> None:
    """Widened while no worker ran: the starting worker re-checks every key before it takes
    its first job, so an alert already queued is not executed; the message reaches the chat
    through the outbox."""
    me = await add_trader(live_sessionmaker, settings, telegram_double, dydx_double)
    # Checked ten minutes ago: not due for a day, but older than the after-start cache.
    checked = utcnow() - timedelta(minutes=10)
    async with live_sessionmaker() as session, session.begin():
        await session.execute(update(Credential).values(authorization_checked_at=checked))
    _widen(dydx_double, me)
    # An alert accepted while no worker ran: the first order after the start must not go out.
    response = await web.post(f"/hook/{me.token}", json=alert(me))
    assert response.status == 200, await response.text()
    alert_id = (await response.json())["id"]
    async with running_worker(settings):
        said = await me.chat.wait_for(lambda m: "Trading stopped" in (m.text or ""), 30)
        done = await wait_alert(live_sessionmaker, alert_id)
    assert "now also allows moving funds" in (said.text or "")
    assert await _credential(live_sessionmaker, me.user_id) is None
    assert done.state.value == "SKIPPED", done.state  # paused before its job ran
    assert dydx_double.node.broadcasts == []
