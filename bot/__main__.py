"""``python -m bot`` (``tv2dydx bot``): long polling, or in webhook mode the consumer of
the updates the web server queued.

aiogram's models take seconds to import, so they are imported after the settings are
validated: a configuration error answers at once.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import structlog

from core.runtime.startup import fail, preflight_or_exit, start_process

if TYPE_CHECKING:
    from aiogram import Bot, Dispatcher

    from core.runtime.config import Settings

log = structlog.get_logger(__name__)
MAX_STARTUP_BACKOFF = 60.0


async def _announce(bot: Bot, dispatcher: Dispatcher, settings: Settings) -> None:
    """Learn who the bot is, publish the menu and the update route, waiting out a Telegram
    outage rather than crash-looping."""
    from aiogram.exceptions import ClientDecodeError, TelegramNetworkError, TelegramServerError

    from bot.app import publish_commands
    from bot.updates import register_webhook

    delay = 1.0
    failures = 0
    while True:
        try:
            # Who the bot is, asked once here (aiogram keeps it): polling then starts with
            # no request of its own that an outage at that moment could crash.
            await bot.me()
            await publish_commands(bot)
            if settings.telegram_mode == "webhook":
                await register_webhook(bot, dispatcher, settings)
            else:
                await bot.delete_webhook(drop_pending_updates=False)
        except (TelegramNetworkError, TelegramServerError, ClientDecodeError) as exc:
            failures += 1
            if failures == 1:  # one line says what to check; the retries are routine
                log.warning(
                    f"bot: cannot reach Telegram at {settings.telegram_api_base} "
                    f"({type(exc).__name__}): check this machine's network, DNS and firewall, "
                    "or TELEGRAM_API_BASE; retrying with back-off up to "
                    f"{MAX_STARTUP_BACKOFF:.0f}s",
                    error=str(exc),
                )
            else:
                log.debug("telegram_unreachable_at_start", error=str(exc), retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_STARTUP_BACKOFF)
            continue
        if failures:
            log.info("bot: Telegram reachable again", attempts=failures + 1)
        return


async def _serve(settings: Settings) -> None:
    from bot.app import close_services, create_dispatcher, create_services
    from core.adapters.telegram import create_bot
    from core.db.engine import create_engine, create_sessionmaker

    engine = create_engine(settings.database_url.get_secret_value())
    bot = create_bot(settings)
    services = create_services(create_sessionmaker(engine), settings)
    services["chart_renderer"].start()  # warm before the first /pnl, in the background
    try:
        dispatcher = create_dispatcher()
        log.info(
            f"bot: answering Telegram updates ({settings.telegram_mode}, "
            f"Bot API {settings.telegram_api_base})"
        )
        await _announce(bot, dispatcher, settings)
        if settings.telegram_mode == "polling":
            await dispatcher.start_polling(
                bot, handle_signals=True, close_bot_session=False, **services
            )
        else:
            await _consume(bot, dispatcher, settings, **services)
    finally:
        await close_services(services)
        await bot.session.close()
        await engine.dispose()


async def _consume(
    bot: Bot, dispatcher: Dispatcher, settings: Settings, **services: object
) -> None:
    import signal

    from redis.asyncio import Redis

    from bot.updates import consume_updates

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    redis: Redis = Redis.from_url(settings.redis_url.get_secret_value())
    try:
        log.info("telegram_webhook_consumer_started")
        await consume_updates(bot, dispatcher, redis, stop, **services)
    finally:
        await redis.aclose()


def main() -> int:
    """Serve Telegram updates until SIGTERM/SIGINT."""
    settings = start_process("bot")
    preflight_or_exit(settings)
    from aiogram.exceptions import TelegramUnauthorizedError

    try:
        asyncio.run(_serve(settings))
    except TelegramUnauthorizedError:
        fail("Telegram rejected BOT_TOKEN; copy it again from @BotFather", code=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
