"""The bot's composition: dispatcher, injected services, published command menu."""

from __future__ import annotations

from datetime import timedelta
from typing import TypedDict

from aiogram import Bot, Dispatcher
from aiogram.types import BotCommand
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.handlers import get_routers
from bot.middlewares import UpdateContextMiddleware, UserMiddleware
from core.adapters.arq_queue import ArqJobQueue
from core.db.repositories.execution import ExecutionRepository
from core.exchange.factory import (
    create_account_history,
    create_exchange_provider,
    create_key_verifier,
)
from core.exchange.history import AccountHistory
from core.exchange.provider import ExchangeProvider
from core.runtime.config import Settings
from core.security.crypto import PublicSealer
from core.services.account import AccountService
from core.services.analytics.funding import FundingSync
from core.services.analytics.pnl import PnlService
from core.services.analytics.rendering import ChartRenderer
from core.services.analytics.service import AnalyticsService
from core.services.control.service import ControlService
from core.services.credentials import CredentialService
from core.services.execution.pipeline import ExecutionService
from core.services.key_entry import KeyEntryService
from core.services.manual import ManualRequestService
from core.services.protection.renewal import LegLifetime
from core.services.trading import TradingService
from core.services.users import SetupService, UserService
from core.services.wallet_link.service import WalletLinkService
from core.services.wallet_link.site import LinkSite
from core.services.webhooks import WebhookService
from core.texts.common import COMMANDS

#: How long ``/close`` and ``/panic`` wait for an order's outcome before answering.
MANUAL_SETTLE_TIMEOUT = 10.0


class Services(TypedDict):
    """Services handlers receive by parameter name (aiogram workflow data)."""

    users: UserService
    setup: SetupService
    account: AccountService
    credentials: CredentialService
    key_entry: KeyEntryService
    wallet_link: WalletLinkService
    webhooks: WebhookService
    control: ControlService
    exchanges: ExchangeProvider
    execution_store: ExecutionRepository
    trading: TradingService
    analytics: AnalyticsService
    pnl: PnlService
    chart_renderer: ChartRenderer
    account_history: AccountHistory
    manual: ManualRequestService


def create_services(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> Services:
    """Build every service the handlers use (connections to dYdX open on first use)."""
    # The bot never holds the keyring: it seals accepted keys to the worker's public key and
    # reads the venue without signing; /close, /panic and protection changes are worker jobs.
    credentials = CredentialService(
        sessionmaker, PublicSealer(settings.sealing_key), create_key_verifier(settings.dydx)
    )
    exchanges = create_exchange_provider(sessionmaker, settings, signing=False)
    store = ExecutionRepository(settings.database_url.get_secret_value())
    renderer = ChartRenderer()
    history = create_account_history(settings.dydx)
    analytics = AnalyticsService(sessionmaker, funding=FundingSync(sessionmaker, history))
    queue = ArqJobQueue.lazy(settings.redis_url.get_secret_value())
    return Services(
        manual=ManualRequestService(sessionmaker, queue),
        users=UserService(sessionmaker),
        setup=SetupService(sessionmaker),
        account=AccountService(sessionmaker),
        credentials=credentials,
        # The bot only issues forms; the web server accepts them.
        key_entry=KeyEntryService(
            sessionmaker,
            settings.public_base_url,
            settings.bot_token.get_secret_value(),
            credentials,
        ),
        wallet_link=WalletLinkService(sessionmaker, LinkSite.from_settings(settings)),
        webhooks=WebhookService(sessionmaker, settings.public_base_url),
        control=ControlService(sessionmaker),
        analytics=analytics,
        pnl=PnlService(sessionmaker, analytics, renderer, exchanges, history),
        chart_renderer=renderer,
        account_history=history,
        exchanges=exchanges,
        execution_store=store,
        trading=TradingService(
            sessionmaker,
            exchanges,
            # Reads only here (positions, orders, protection): these exchanges cannot sign.
            ExecutionService(
                sessionmaker,
                exchanges,
                store,
                max_lag=timedelta(seconds=settings.alert_max_lag_seconds),
                leg_lifetime=LegLifetime.of_seconds(
                    settings.protection_leg_lifetime_seconds,
                    settings.protection_renew_before_seconds,
                ),
                settle_timeout=MANUAL_SETTLE_TIMEOUT,
            ),
        ),
    )


async def close_services(services: Services) -> None:
    """Release the connections the services opened."""
    await services["credentials"].close()
    await services["exchanges"].close()
    await services["execution_store"].close()
    await services["account_history"].close()
    services["chart_renderer"].close()
    queue = services["manual"].queue
    if isinstance(queue, ArqJobQueue):
        await queue.close()


def create_dispatcher() -> Dispatcher:
    """A dispatcher with every router.

    Routers are module-level (one per feature), so a process builds one dispatcher; the
    services are passed per run (``start_polling(bot, **services)``) as workflow data.
    """
    dispatcher = Dispatcher()
    dispatcher.update.outer_middleware(UpdateContextMiddleware())
    dispatcher.message.outer_middleware(UserMiddleware())
    dispatcher.callback_query.outer_middleware(UserMiddleware())
    dispatcher.include_routers(*get_routers())
    return dispatcher


async def publish_commands(bot: Bot) -> None:
    """Publish the command menu (setMyCommands)."""
    await bot.set_my_commands(
        [BotCommand(command=command, description=text) for command, text in COMMANDS]
    )
