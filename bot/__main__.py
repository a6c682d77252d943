"""``python -m bot`` (``tv2dydx bot``): long polling."""

from __future__ import annotations

import asyncio

from bot.app import create_dispatcher, create_services, publish_commands
from core.config import Settings
from core.db.engine import create_engine, create_sessionmaker
from core.runtime import fail, preflight_or_exit, start_process
from core.telegram import create_bot


async def _serve(settings: Settings) -> None:
    engine = create_engine(settings.database_url.get_secret_value())
    bot = create_bot(settings)
    try:
        dispatcher = create_dispatcher(create_services(create_sessionmaker(engine)))
        await publish_commands(bot)
        await bot.delete_webhook(drop_pending_updates=False)
        await dispatcher.start_polling(bot, handle_signals=True, close_bot_session=False)
    finally:
        await bot.session.close()
        await engine.dispose()


def main() -> int:
    """Poll Telegram for updates until SIGTERM/SIGINT."""
    settings = start_process("bot")
    if settings.telegram_mode != "polling":
        fail("TELEGRAM_MODE=webhook: updates are delivered to `tv2dydx web`, not polled", code=2)
    preflight_or_exit(settings)
    asyncio.run(_serve(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
