"""``python -m bot`` (``tv2dydx bot``): long polling.

aiogram's models take seconds to import, so they are imported after the settings are
validated: a configuration error answers at once.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import structlog

from core.runtime import fail, preflight_or_exit, start_process

if TYPE_CHECKING:
    from aiogram import Bot

    from core.config import Settings

log = structlog.get_logger(__name__)
MAX_STARTUP_BACKOFF = 60.0


async def _announce(bot: Bot) -> None:
    """Publish the menu, waiting out a Telegram outage rather than crash-looping."""
    from aiogram.exceptions import ClientDecodeError, TelegramNetworkError, TelegramServerError

    from bot.app import publish_commands

    delay = 1.0
    while True:
        try:
            await publish_commands(bot)
            await bot.delete_webhook(drop_pending_updates=False)
            return
        except (TelegramNetworkError, TelegramServerError, ClientDecodeError) as exc:
            log.warning("telegram_unreachable_at_start", error=str(exc), retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_STARTUP_BACKOFF)


async def _serve(settings: Settings) -> None:
    from bot.app import create_dispatcher, create_services
    from core.db.engine import create_engine, create_sessionmaker
    from core.telegram import create_bot

    engine = create_engine(settings.database_url.get_secret_value())
    bot = create_bot(settings)
    try:
        services = create_services(create_sessionmaker(engine))
        await _announce(bot)
        await create_dispatcher().start_polling(
            bot, handle_signals=True, close_bot_session=False, **services
        )
    finally:
        await bot.session.close()
        await engine.dispose()


def main() -> int:
    """Poll Telegram for updates until SIGTERM/SIGINT."""
    settings = start_process("bot")
    if settings.telegram_mode != "polling":
        fail("TELEGRAM_MODE=webhook: updates are delivered to `tv2dydx web`, not polled", code=2)
    preflight_or_exit(settings)
    from aiogram.exceptions import TelegramUnauthorizedError

    try:
        asyncio.run(_serve(settings))
    except TelegramUnauthorizedError:
        fail("Telegram rejected BOT_TOKEN; copy it again from @BotFather", code=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
