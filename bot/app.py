"""The bot's composition: dispatcher, injected services, published command menu."""

from __future__ import annotations

from typing import TypedDict

from aiogram import Bot, Dispatcher
from aiogram.types import BotCommand
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.handlers import get_routers
from bot.middlewares import UpdateContextMiddleware, UserMiddleware
from bot.texts.common import COMMANDS
from core.services.users import UserService


class Services(TypedDict):
    """Services handlers receive by parameter name (aiogram workflow data)."""

    users: UserService


def create_services(sessionmaker: async_sessionmaker[AsyncSession]) -> Services:
    """Build every service the handlers use."""
    return Services(users=UserService(sessionmaker))


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
