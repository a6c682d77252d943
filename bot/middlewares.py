"""Middlewares: logging context per update, and the current user per message or button."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiogram import BaseMiddleware
from aiogram.types import CallbackQuery, Message, TelegramObject, Update

from core.services.users import UserService


class UpdateContextMiddleware(BaseMiddleware):
    """Bind the update id to every log line written while handling it."""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        """Run the handler chain inside a bound logging context."""
        update_id = event.update_id if isinstance(event, Update) else None
        with structlog.contextvars.bound_contextvars(update_id=update_id):
            return await handler(event, data)


class UserMiddleware(BaseMiddleware):
    """Register (or load) the sender and hand handlers ``user`` (a ``UserView``).

    Only private chats create users: the bot is personal, never a group bot.
    """

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        """Attach the user, then continue."""
        sender = event.from_user if isinstance(event, Message | CallbackQuery) else None
        chat = (
            event.chat
            if isinstance(event, Message)
            else event.message.chat
            if isinstance(event, CallbackQuery) and event.message is not None
            else None
        )
        if sender is None or sender.is_bot or chat is None or chat.type != "private":
            return await handler(event, data)
        users: UserService = data["users"]
        user, created = await users.register(
            sender.id, username=sender.username, language_code=sender.language_code
        )
        data["user"], data["user_created"] = user, created
        with structlog.contextvars.bound_contextvars(user_id=user.id):
            return await handler(event, data)
