"""Update-scoped logging context."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update


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
